//! The logpipe indexer's pure core: what Logstash does between its kafka input and its elasticsearch
//! output, without any I/O. A record value is decoded into an [`Event`], run through [`filters`], given an
//! index by the [`RouteTable`], and encoded into a [`BulkRequest`]; the bulk response is turned into a
//! [`retry::BulkOutcome`] that says what to retry, what to dead-letter and what is done.
//!
//! - [`event`]: the event and field references (`[a][b]`, `a.b`), tags, `@timestamp`.
//! - [`codec`]: `json` and `plain` record decoding (never drops; `_jsonparsefailure`).
//! - [`condition`]: `when` conditions (tag, equals, matches, and/or/not).
//! - [`template`]: Logstash sprintf templates (`%{[f]}`, `%{+YYYY.MM.dd}`).
//! - [`filters`]: `nginx_access`, `nginx_error`, `grok`, `date`, `mutate`, and the [`FilterChain`].
//! - [`route`]: the ordered [`RouteTable`].
//! - [`bulk`]: the NDJSON `_bulk` body ([`BulkRequest`]) and document ids.
//! - [`retry`]: the pure retry decision on a `_bulk` response.
//! - [`config`]: the `[indexer]` section ([`IndexerConfig`]) and its compilation into the types above.

pub mod bulk;
pub mod codec;
pub mod condition;
pub mod config;
mod error;
pub mod event;
pub mod filters;
pub mod retry;
pub mod route;
pub mod template;

pub use bulk::{BulkRequest, DocId};
pub use codec::Codec;
pub use condition::Condition;
pub use config::{Compiled, IndexerConfig};
pub use error::{Error, Result};
pub use event::{Event, FieldRef};
pub use filters::{Filter, FilterChain};
pub use retry::BulkOutcome;
pub use route::{RouteTable, Routed};
pub use template::Template;
