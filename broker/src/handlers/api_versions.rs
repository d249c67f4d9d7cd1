//! ApiVersions: which APIs and versions this broker implements.
//!
//! The reply carries only the api key list: no supported/finalized feature tags. librdkafka before 2.2
//! misreads an ApiVersions v3 reply that carries tagged fields, and Debian's kcat is built on 2.0.2.
//!
//! References: KIP-35, KIP-511 (v0 fallback for an unsupported request version).

use std::future::{ready, Future};
use std::sync::Arc;

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse, RequestHeader};
use kafka_protocol::ResponseError;

use super::{code, SUPPORTED};
use crate::broker::Broker;

pub const VERSIONS: (i16, i16) = (0, 3);

pub fn handle(
    _broker: &Arc<Broker>,
    _header: &RequestHeader,
    _request: ApiVersionsRequest,
) -> impl Future<Output = ApiVersionsResponse> + Send + 'static {
    ready(ApiVersionsResponse::default().with_api_keys(api_keys()))
}

/// The reply to an ApiVersions request whose version we lack, to be encoded as v0: the client reads our
/// list from it and retries with a version we support.
pub fn unsupported_version_response() -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_error_code(code(ResponseError::UnsupportedVersion)).with_api_keys(api_keys())
}

fn api_keys() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|(key, (min, max))| {
            ApiVersion::default().with_api_key(*key as i16).with_min_version(*min).with_max_version(*max)
        })
        .collect()
}
