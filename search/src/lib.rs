//! Search over indexed logs, for the web console's Search page: a small query language ([`query`],
//! Lucene's query string as Kibana users type it) and a streaming scan of the file output's daily NDJSON
//! files ([`scan`]). Kept apart from the web crate so it is light to build and benchmark
//! (`scripts/bench-search.sh`).

pub mod query;
pub mod scan;

pub use scan::{day_of, scan_files, Answer, Hit, Request};
