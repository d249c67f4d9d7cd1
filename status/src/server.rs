//! The admin endpoint of a running appliance (Logstash's monitoring API plays this part, on port 9600):
//! `GET /status` answers the [`StatusReport`](crate::StatusReport) as JSON, `GET /metrics` the same in
//! Prometheus text format. Each request collects a fresh report; nothing is cached.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use logpipe_admin::Router;

use crate::report::Sources;

/// The appliance's routes over `sources`; serve them with [`logpipe_admin::AdminServer`].
pub fn router(sources: Sources) -> Router {
    let for_metrics = sources.clone();
    Router::new()
        .route("/status", get(move || async move { status(&sources) }))
        .route("/metrics", get(move || async move { logpipe_admin::metrics(crate::metrics::render(&for_metrics)) }))
}

fn status(sources: &Sources) -> Response {
    match serde_json::to_string(&sources.collect()) {
        Ok(body) => logpipe_admin::json(body),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("status report: {e}\n")).into_response(),
    }
}
