//! Request decoding and response encoding, on top of the `kafka-protocol` crate.
//!
//! Pure functions: bytes in, typed request out (and typed response in, framed bytes out). The only I/O in
//! this module is [`frame::FrameReader`]. Which versions are accepted is decided by the caller's table
//! (`handlers::supported_versions`), so ApiVersions, decoding and dispatch can never disagree.
//!
//! References:
//! - Kafka protocol guide: <https://kafka.apache.org/protocol>
//! - KIP-482 (flexible versions, tagged fields), KIP-511 (ApiVersions fallback to v0 on unsupported version)

mod fetch_response;
pub mod frame;
mod legacy;
pub(crate) mod message_set;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::storage::FileRecords;

/// A decoded request: its header (correlation id, client id, version) and typed body.
#[derive(Debug)]
pub struct Request {
    pub api_key: ApiKey,
    pub header: RequestHeader,
    pub body: RequestKind,
}

impl Request {
    pub fn version(&self) -> i16 {
        self.header.request_api_version
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("frame too short for a request header")]
    TooShort,
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    /// The client asked for a version we do not implement. For ApiVersions the connection answers with
    /// v0 and UNSUPPORTED_VERSION (KIP-511); for anything else it is closed, as Kafka does.
    #[error("unsupported version {version} of {api_key:?}")]
    UnsupportedVersion { api_key: ApiKey, version: i16, correlation_id: i32 },
    #[error("malformed {api_key:?} v{version} request: {reason}")]
    Malformed { api_key: ApiKey, version: i16, reason: String },
}

/// Decodes one request frame (without its size prefix). `supported` gives the implemented version range
/// of an api key, or `None` if the key is not implemented at all.
pub fn decode_request(
    mut frame: Bytes,
    supported: impl Fn(ApiKey) -> Option<(i16, i16)>,
) -> Result<Request, DecodeError> {
    if frame.len() < 8 {
        return Err(DecodeError::TooShort);
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api_key = ApiKey::try_from(raw_key).map_err(|_| DecodeError::UnknownApiKey(raw_key))?;
    let (min, max) = supported(api_key).ok_or(DecodeError::UnknownApiKey(raw_key))?;
    if version < min || version > max {
        return Err(DecodeError::UnsupportedVersion { api_key, version, correlation_id });
    }
    let malformed = |e: anyhow::Error| DecodeError::Malformed { api_key, version, reason: e.to_string() };
    let header = RequestHeader::decode(&mut frame, api_key.request_header_version(version)).map_err(malformed)?;
    let body = if legacy::is_legacy(api_key, version) {
        legacy::decode_request(api_key, version, frame)
    } else {
        RequestKind::decode(api_key, &mut frame, version)
    }
    .map_err(malformed)?;
    Ok(Request { api_key, header, body })
}

#[derive(Debug, thiserror::Error)]
#[error("cannot encode {api_key:?} v{version} response: {reason}")]
pub struct EncodeError {
    pub api_key: ApiKey,
    pub version: i16,
    pub reason: String,
}

/// One piece of a response frame: bytes, or record batches still in their segment file (a Fetch
/// response's record sets on a connection that can send them with `sendfile`).
#[derive(Clone, Debug)]
pub enum Part {
    Bytes(Bytes),
    File(FileRecords),
}

impl Part {
    pub(crate) fn len(&self) -> usize {
        match self {
            Part::Bytes(b) => b.len(),
            Part::File(f) => f.len() as usize,
        }
    }
}

/// Encodes a response as a complete frame in parts to be written in order. Fetch responses keep their
/// record batches as the `Bytes` they were read into (`fetch_response`), or in their segment files where
/// `files` says so: one entry per partition of the response in order (topics, then their partitions),
/// `None` where the records are in the response itself. Every other response is one part.
pub fn encode_response_parts(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
    files: &[Option<FileRecords>],
) -> Result<Vec<Part>, EncodeError> {
    let fail = |reason: String| EncodeError { api_key, version, reason };
    if let ResponseKind::Fetch(fetch) = body {
        if let Some(parts) =
            fetch_response::encode(version, correlation_id, fetch, files).map_err(|e| fail(e.to_string()))?
        {
            return Ok(parts);
        }
        if files.iter().any(Option::is_some) {
            // A response the generic encoder must write: it needs the records in memory.
            let fetch = fetch_response::with_records_read(fetch, files).map_err(|e| fail(e.to_string()))?;
            return Ok(vec![Part::Bytes(encode_response(
                api_key,
                version,
                correlation_id,
                &ResponseKind::Fetch(fetch),
            )?)]);
        }
    }
    Ok(vec![Part::Bytes(encode_response(api_key, version, correlation_id, body)?)])
}

/// Encodes a response as a complete frame: size prefix, response header, body.
pub fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> Result<Bytes, EncodeError> {
    let fail = |e: anyhow::Error| EncodeError { api_key, version, reason: e.to_string() };
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i32(0); // size, patched below
                    // ApiVersions responses always use header v0 (no tagged fields) so that any client can parse the
                    // reply before it knows which versions the broker speaks.
    let header_version = api_key.response_header_version(version);
    ResponseHeader::default().with_correlation_id(correlation_id).encode(&mut buf, header_version).map_err(fail)?;
    if legacy::is_legacy(api_key, version) {
        legacy::encode_response(version, body, &mut buf).map_err(fail)?;
    } else {
        body.encode(&mut buf, version).map_err(fail)?;
    }
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests;
