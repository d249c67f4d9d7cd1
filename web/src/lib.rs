//! The web console: pages a person opens in a browser, served by the appliance's admin endpoint at `/`
//! beside `/status` and `/metrics`. One job: the pages and the JSON APIs behind them.
//!
//! - [`assets`]: the page, script and style sheet, embedded in the binary (nothing fetched at run time).
//! - [`kafka`]: the Kafka client parts: message browser (seek by offset or time), topic configs, group
//!   offset reset (dry run, refused while members are active), dead letters and their re-send.
//! - [`lag_history`]: each group's lag sampled every few seconds for the last hour, in memory.
//! - [`elasticsearch`]: the Search page against Elasticsearch/OpenSearch (`_search`); against the file
//!   output it uses [`logpipe_search`]'s streaming scan.
//! - [`routes`]: the HTTP routes.

mod assets;
mod elasticsearch;
mod kafka;
mod lag_history;
mod routes;

pub use kafka::KafkaAccess;
pub use routes::{router, Console};
