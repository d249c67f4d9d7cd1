//! An admin endpoint: bind first (so the caller can report the address, or fail on a taken port),
//! then serve a [`Router`] until shutdown. Requests are read-only GETs; any other method gets axum's
//! 405, an unknown path 404. Pages are rendered per request from the caller's state, so a slow scraper
//! only ever waits on itself.

use std::net::SocketAddr;

use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A bound, not yet serving, admin listener.
pub struct AdminServer {
    listener: TcpListener,
}

impl AdminServer {
    pub async fn bind(address: &str) -> std::io::Result<Self> {
        Ok(Self { listener: TcpListener::bind(address).await? })
    }

    /// The bound address (port 0 picks one).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `router` until `shutdown` is cancelled; connections in progress finish their request.
    pub async fn serve(self, router: Router, shutdown: CancellationToken) {
        let address = self.listener.local_addr().ok();
        if let Err(e) = axum::serve(self.listener, router).with_graceful_shutdown(shutdown.cancelled_owned()).await {
            tracing::warn!(error = %e, ?address, "admin endpoint stopped");
        }
    }
}

/// A `/metrics` answer: the text exposition with its content type.
pub fn metrics(body: String) -> Response {
    ([(CONTENT_TYPE, crate::CONTENT_TYPE)], body).into_response()
}

/// A JSON answer from an already serialized body.
pub fn json(body: String) -> Response {
    ([(CONTENT_TYPE, "application/json")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;

    #[tokio::test]
    async fn serves_pages_404s_unknown_paths_and_stops_on_shutdown() {
        let server = AdminServer::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", server.local_addr().unwrap());
        let router = Router::new().route("/metrics", get(|| async { metrics("up 1\n".into()) }));
        let shutdown = CancellationToken::new();
        let serving = tokio::spawn(server.serve(router, shutdown.clone()));

        let client = reqwest::Client::new();
        let page = client.get(format!("{base}/metrics")).send().await.unwrap();
        assert_eq!(page.status(), 200);
        assert_eq!(page.headers()[CONTENT_TYPE.as_str()], crate::CONTENT_TYPE);
        assert_eq!(page.text().await.unwrap(), "up 1\n");
        assert_eq!(client.get(format!("{base}/nope")).send().await.unwrap().status(), 404);
        assert_eq!(client.post(format!("{base}/metrics")).send().await.unwrap().status(), 405);

        shutdown.cancel();
        serving.await.unwrap();
    }
}
