//! SaslHandshake (KIP-43): the client names a mechanism; the reply lists the enabled ones. v0 is
//! followed by raw SASL tokens in size-prefixed frames, v1 by SaslAuthenticate requests.
//!
//! The connection owns the SASL state ([`crate::security::sasl::SaslSession`]) and calls this.
//!
//! References: <https://kafka.apache.org/protocol#sasl_handshake>, KIP-43, KIP-152.

use kafka_protocol::messages::{SaslHandshakeRequest, SaslHandshakeResponse};
use kafka_protocol::ResponseError;

use super::{code, str_bytes};
use crate::security::sasl::SaslSession;

pub const VERSIONS: (i16, i16) = (0, 1);

/// The reply, and whether the connection may go on (false: close after sending it).
pub fn handle(session: Option<&mut SaslSession>, request: &SaslHandshakeRequest) -> (SaslHandshakeResponse, bool) {
    let Some(session) = session else {
        // Not a SASL listener.
        return (SaslHandshakeResponse::default().with_error_code(code(ResponseError::IllegalSaslState)), false);
    };
    let mechanisms = session.enabled_mechanisms().iter().map(|m| str_bytes(m.clone())).collect();
    let response = SaslHandshakeResponse::default().with_mechanisms(mechanisms);
    if session.in_exchange() {
        return (response.with_error_code(code(ResponseError::IllegalSaslState)), false);
    }
    match session.handshake(request.mechanism.as_str()) {
        Ok(()) => (response, true),
        Err(()) => (response.with_error_code(code(ResponseError::UnsupportedSaslMechanism)), false),
    }
}
