//! The page, its script and its style sheet, compiled into the binary with `include_str!`: the console
//! works offline, behind a proxy, with nothing to install and nothing fetched from a CDN. The script is
//! plain JavaScript (no framework, no build step); the charts are SVG drawn by it.

use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

const PAGE: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/app.css");

/// Only this origin's script and style; no inline script, no framing.
const POLICY: &str = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(CONTENT_TYPE, content_type), (CACHE_CONTROL, "no-cache"), (CONTENT_SECURITY_POLICY, POLICY)], body)
        .into_response()
}

pub fn page() -> Response {
    asset("text/html; charset=utf-8", PAGE)
}

pub fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

pub fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}
