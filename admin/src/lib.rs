//! What every admin endpoint of logpipe shares: an HTTP server (axum on tokio) that serves a few
//! read-only pages on a bound address until shut down, and a writer for the Prometheus text exposition
//! format. The agent's own `/metrics` (`agent.metrics_address`) and the appliance's `[admin]` endpoint
//! (`/status`, `/metrics`) are both built from these.
//!
//! - [`server`]: [`AdminServer`], bind then serve a [`Router`] until a [`CancellationToken`] fires.
//! - [`exposition`]: [`Exposition`], metric families with `# HELP` and `# TYPE`, escaped labels.
//!
//! [`CancellationToken`]: tokio_util::sync::CancellationToken

mod exposition;
mod protection;
mod server;

pub use axum::Router;
pub use exposition::{Exposition, Kind, CONTENT_TYPE};
pub use protection::{Protection, ProtectionFiles};
pub use server::{json, metrics, AdminServer, BindError};
