//! The admin endpoint of a running appliance (Logstash's monitoring API plays this part, on port 9600):
//! `GET /status` answers the [`StatusReport`](crate::StatusReport) as JSON, `GET /metrics` the same in
//! Prometheus text format. Each request collects a fresh report; nothing is cached.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use logpipe_agent::metrics::{Handler, MetricsServer, Page};

use crate::report::Sources;

pub struct AdminServer {
    server: MetricsServer,
}

impl AdminServer {
    pub async fn bind(address: &str) -> std::io::Result<Self> {
        Ok(Self { server: MetricsServer::bind(address).await? })
    }

    /// The bound address (port 0 picks one).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.server.local_addr()
    }

    /// Serves until `shutdown` is cancelled.
    pub async fn run(self, sources: Sources, shutdown: CancellationToken) {
        let handler: Handler = Arc::new(move |path: &str| match path {
            "/status" => serde_json::to_string(&sources.collect()).ok().map(Page::json),
            "/metrics" => Some(Page::metrics(crate::metrics::render(&sources))),
            _ => None,
        });
        self.server.serve(handler, shutdown).await
    }
}
