//! SaslAuthenticate (KIP-152): one SASL token each way per request. v1 adds the session lifetime that
//! tells clients when to re-authenticate (KIP-368); v2 is the flexible encoding.
//!
//! The connection owns the SASL state and calls [`response`] with the outcome of a step.
//!
//! References: <https://kafka.apache.org/protocol#sasl_authenticate>, KIP-152, KIP-368.

use bytes::Bytes;
use kafka_protocol::messages::SaslAuthenticateResponse;
use kafka_protocol::ResponseError;

use super::{code, str_bytes};

pub const VERSIONS: (i16, i16) = (0, 2);

/// A token to send back (the exchange goes on, or it succeeded with this final token). v0 has no
/// session lifetime field; a v0 client is not told, and its connection closes when the session ends.
pub fn token(version: i16, reply: Vec<u8>, session_lifetime_ms: i64) -> SaslAuthenticateResponse {
    let lifetime = if version >= 1 { session_lifetime_ms } else { 0 };
    SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(reply)).with_session_lifetime_ms(lifetime)
}

/// SASL_AUTHENTICATION_FAILED with Kafka's message (the connection closes after it).
pub fn failed(message: &str) -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(code(ResponseError::SaslAuthenticationFailed))
        .with_error_message(Some(str_bytes(message)))
}

/// ILLEGAL_SASL_STATE: a SaslAuthenticate without a handshake, or on a listener without SASL.
pub fn illegal_state(message: &str) -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(code(ResponseError::IllegalSaslState))
        .with_error_message(Some(str_bytes(message)))
}
