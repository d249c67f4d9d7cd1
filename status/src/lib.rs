//! What a running appliance reports about itself, in one place: the files the agent tails (with bytes
//! behind), the broker's topics (partitions, sizes) and consumer groups (lag), the documents the indexer
//! indexed, retried and dead-lettered per index, and the health of each Elasticsearch host.
//!
//! - [`report`]: the [`StatusReport`] and how it is collected from the parts running in this process.
//! - [`server`]: the admin endpoint's routes: `/status` (JSON) and `/metrics` (Prometheus text), served
//!   by [`logpipe_admin::AdminServer`].
//! - [`metrics`]: rendering a report as Prometheus metrics.
//! - [`view`]: rendering a report for the terminal, within 80 columns; [`rates`]: throughput and ETAs
//!   between successive reports; [`live`]: `logpipe status` itself, refreshed until `q`.
//! - [`About`]: what a process runs and where (the view's header).
//! - [`client`]: fetching `/status` from a running appliance.

mod about;
pub mod client;
pub mod live;
pub mod metrics;
pub mod rates;
pub mod report;
pub mod server;
pub mod view;

pub use about::{About, PartAbout};
pub use logpipe_admin::{AdminServer, BindError};
pub use report::{Sources, StatusReport};
pub use server::router;

use std::path::PathBuf;

use serde::Deserialize;

/// The `[admin]` section of a pipeline file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Where `/status` and `/metrics` are served, as Logstash's monitoring API on port 9600. Loopback by
    /// default: the endpoint has no authentication. Default `"127.0.0.1:9600"` ([`DEFAULT_ADMIN_ADDRESS`]).
    /// `None` when not configured: a default port that is taken only turns the endpoint off with a
    /// warning, while a configured one that is taken is an error.
    pub address: Option<String>,
    /// Serve the endpoint at all. Default `true`.
    pub enabled: bool,
    /// A file whose first line is a bearer token (`Authorization: Bearer …`; Prometheus'
    /// `authorization.credentials_file`).
    pub auth_token_file: Option<PathBuf>,
    /// HTTP basic auth: user name, with the password in `auth_basic_password_file`.
    pub auth_basic_username: Option<String>,
    pub auth_basic_password_file: Option<PathBuf>,
    /// HTTPS: PEM certificate chain and key.
    pub ssl_certificate_location: Option<PathBuf>,
    pub ssl_key_location: Option<PathBuf>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            address: None,
            enabled: true,
            auth_token_file: None,
            auth_basic_username: None,
            auth_basic_password_file: None,
            ssl_certificate_location: None,
            ssl_key_location: None,
        }
    }
}

/// The admin endpoint's address when `[admin] address` is not set.
pub const DEFAULT_ADMIN_ADDRESS: &str = "127.0.0.1:9600";

impl AdminConfig {
    /// The configured address, or [`DEFAULT_ADMIN_ADDRESS`].
    pub fn address(&self) -> &str {
        self.address.as_deref().unwrap_or(DEFAULT_ADMIN_ADDRESS)
    }

    /// The endpoint's authentication and TLS, read from their files (errors name the `admin.` key).
    pub fn protection(&self) -> Result<logpipe_admin::Protection, String> {
        let files = logpipe_admin::ProtectionFiles {
            auth_token_file: self.auth_token_file.clone(),
            auth_basic_username: self.auth_basic_username.clone(),
            auth_basic_password_file: self.auth_basic_password_file.clone(),
            ssl_certificate_location: self.ssl_certificate_location.clone(),
            ssl_key_location: self.ssl_key_location.clone(),
        };
        logpipe_admin::Protection::load(&files, "admin")
    }
}
