//! One connection to one broker: TCP or TLS, SASL, API version negotiation, framing and pipelining.
//!
//! Opening does, in order and all within one timeout: TCP connect (no Nagle: requests are whole frames
//! written at once), the TLS handshake when `security.protocol` asks for TLS (never a fallback to
//! plaintext), ApiVersions (v3 with this client's name and version, KIP-511; v0 when the broker answers
//! UNSUPPORTED_VERSION), then SASL when asked: SaslHandshake v1 and SaslAuthenticate (KIP-152) with PLAIN
//! or SCRAM (`crate::scram`). ApiVersions comes first because it is the one request a SASL listener
//! accepts before authentication, and SaslAuthenticate's version is picked from its answer.
//!
//! Framing is the protocol's: a 4-byte big-endian length, then a header and body. Messages are encoded
//! and decoded by the `kafka-protocol` crate. Once open, a connection either does one request at a time
//! ([`Connection::call`], for Metadata and InitProducerId) or is split into a [`RequestWriter`] and a
//! [`ResponseReader`] so that several produce requests are in flight: the broker answers in request order,
//! so the reader takes responses in the order the writer sent them.
//!
//! Errors name the broker and what failed, and tell network trouble that a new connection may cure
//! ([`ConnectionError::is_retriable`]) from settings that will fail again the same way.
//!
//! [`Connection`] with [`Connection::open`], [`Connection::require_version`] and [`Connection::call`] is
//! public for the console tools (`logpipe topics`), which make the admin requests librdkafka has no API
//! for over it, with the same TLS and SASL settings as their librdkafka clients.
//!
//! References: <https://kafka.apache.org/protocol>, KIP-152 (SaslAuthenticate), KIP-511 (ApiVersions v3).

use std::fmt;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, RequestHeader, ResponseHeader, SaslAuthenticateRequest, SaslHandshakeRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::ResponseError;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{self, AlertDescription, CertificateError};
use tokio_rustls::TlsConnector;

use crate::scram::ScramClient;
use crate::security::{SaslCredentials, SaslMechanism, Security};

/// Refuse larger responses before allocating: a wrong port (an HTTP server, a TLS listener) would
/// otherwise make us allocate whatever its first four bytes spell.
const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// What this client tells brokers it is (ApiVersions v3; KIP-511 allows `[a-zA-Z0-9.-]`).
const SOFTWARE_NAME: &str = "logpipe-producer";

/// ApiVersions v3 carries the client's name and version; every broker still answers v0.
const API_VERSIONS_VERSION: i16 = 3;

/// SaslHandshake v1 means the tokens travel in SaslAuthenticate requests (KIP-152), not raw frames.
const SASL_HANDSHAKE_VERSIONS: (i16, i16) = (1, 1);
const SASL_AUTHENTICATE_VERSIONS: (i16, i16) = (0, 2);

/// What a connection was doing when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The TCP connect.
    Connect,
    /// The TLS handshake, before any Kafka request.
    TlsHandshake,
    /// A request of this API and its response (during the open: ApiVersions, SaslHandshake, SaslAuthenticate).
    Request(ApiKey),
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Phase::Connect => f.write_str("connect"),
            Phase::TlsHandshake => f.write_str("the TLS handshake"),
            Phase::Request(api) => write!(f, "{api:?}"),
        }
    }
}

/// Why a connection could not be opened or a request failed. Every message names the broker; none holds
/// the SASL password.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The network failed: connection refused, host unreachable, name not resolved.
    #[error("broker {broker}: {during} failed: {error}")]
    Io { broker: String, during: Phase, error: std::io::Error },
    /// The broker closed (or reset) the connection.
    #[error("broker {broker}: the connection was closed during {during}{hint}")]
    Closed { broker: String, during: Phase, hint: &'static str },
    #[error("broker {broker}: no answer within {timeout:?} during {during}")]
    Timeout { broker: String, during: Phase, timeout: Duration },
    /// TLS failed: an untrusted certificate, a name mismatch, a refused client certificate (which TLS 1.3
    /// reports after the handshake, at the first read).
    #[error("broker {broker}: TLS error during {during}: {reason}")]
    Tls { broker: String, during: Phase, reason: String },
    /// SASL failed: wrong credentials, or a mechanism the broker does not offer.
    #[error("broker {broker}: {message}")]
    Authentication { broker: String, message: String },
    /// The broker and this client have no version of an API in common.
    #[error("broker {broker}: {message}")]
    Unsupported { broker: String, message: String },
    /// The broker's answer cannot be read (not Kafka, or a bug on either side), or a request cannot be
    /// encoded in the version asked for.
    #[error("broker {broker}: {during}: {message}")]
    Protocol { broker: String, during: Phase, message: String },
}

impl ConnectionError {
    /// Network trouble (I/O, a closed connection, a timeout): a new connection, later, may well work.
    /// The other errors come from the settings or the broker's software and will happen again the same
    /// way: report them, don't retry in a tight loop.
    pub fn is_retriable(&self) -> bool {
        matches!(self, Self::Io { .. } | Self::Closed { .. } | Self::Timeout { .. })
    }

    /// Adds a guess at the cause to a closed connection.
    fn with_hint(self, hint: &'static str) -> Self {
        match self {
            Self::Closed { broker, during, .. } => Self::Closed { broker, during, hint },
            other => other,
        }
    }
}

/// A TLS client meeting a plaintext listener: the broker reads the ClientHello as a huge frame and closes.
const PLAINTEXT_LISTENER_HINT: &str = " (is it a PLAINTEXT or SASL_PLAINTEXT listener? security.protocol asks for TLS)";
/// A plaintext client meeting a TLS listener: the broker fails the handshake and closes.
const TLS_LISTENER_HINT: &str = " (is it an SSL or SASL_SSL listener? security.protocol asks for plaintext)";

/// An I/O error as a [`ConnectionError`]: rustls' own errors are TLS errors, a connection the peer
/// ended is `Closed`.
fn io_error(broker: &str, during: Phase, error: std::io::Error) -> ConnectionError {
    use std::io::ErrorKind;
    let broker = broker.to_owned();
    if let Some(tls) = error.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        return ConnectionError::Tls { broker, during, reason: tls_reason(tls) };
    }
    match error.kind() {
        ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe => {
            ConnectionError::Closed { broker, during, hint: "" }
        }
        _ => ConnectionError::Io { broker, during, error },
    }
}

/// rustls' reason, and which setting to look at.
fn tls_reason(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => {
            format!(
                "{error} (connect by a name the certificate holds, or set ssl.endpoint.identification.algorithm \
                 = none to check only that it chains to the CA)"
            )
        }
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            format!("{error} (the broker's certificate does not chain to a trusted CA: check ssl.ca.location)")
        }
        rustls::Error::AlertReceived(
            AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::AccessDenied,
        ) => format!(
            "{error} (the broker did not accept this client's certificate: check ssl.certificate.location and \
             ssl.key.location)"
        ),
        other => other.to_string(),
    }
}

/// A TCP or TLS stream.
trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// One open, authenticated connection to one broker.
pub struct Connection {
    broker: String,
    /// The broker's ApiVersions answer: (api key, min version, max version).
    versions: Vec<(i16, i16, i16)>,
    writer: RequestWriter,
    reader: ResponseReader,
}

/// The sending half: encodes requests and numbers them.
pub(crate) struct RequestWriter {
    broker: String,
    stream: WriteHalf<Box<dyn Stream>>,
    client_id: StrBytes,
    next_correlation_id: i32,
    /// Reused for every request: a frame is encoded here and written with one call.
    frame: BytesMut,
}

/// The receiving half: reads responses in the order their requests were sent.
pub(crate) struct ResponseReader {
    broker: String,
    stream: ReadHalf<Box<dyn Stream>>,
    /// Bytes read and not yet handed out: the start of the next frames. Each frame is split off it and
    /// frozen, so once the caller has dropped a frame its memory is read into again, neither zeroed
    /// nor taken fresh from the system (a new zeroed buffer per fetch response made a third of the
    /// indexer's page faults). It keeps about the largest response's size.
    buffer: BytesMut,
}

/// Bytes asked of the socket at least, so that small responses come in one read.
const READ_AHEAD: usize = 64 << 10;

/// Reads from `stream` until `buffer` holds at least `n` bytes.
async fn fill(stream: &mut (impl AsyncRead + Unpin), buffer: &mut BytesMut, n: usize) -> std::io::Result<()> {
    while buffer.len() < n {
        buffer.reserve((n - buffer.len()).max(READ_AHEAD));
        if stream.read_buf(buffer).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(())
}

impl Connection {
    /// Connects to `broker` ("host:port"), does TLS and then SASL as `security` says, and learns the
    /// broker's API versions. Requests carry `client_id`. The whole open is bounded by `timeout`.
    pub async fn open(
        broker: &str,
        security: &Security,
        client_id: &str,
        timeout: Duration,
    ) -> Result<Connection, ConnectionError> {
        let mut phase = Phase::Connect;
        let opened = tokio::time::timeout(timeout, Self::open_steps(broker, security, client_id, &mut phase)).await;
        opened.unwrap_or_else(|_| Err(ConnectionError::Timeout { broker: broker.to_owned(), during: phase, timeout }))
    }

    /// [`Connection::open`] without the timeout; `phase` follows the steps so a timeout can say where
    /// it struck.
    async fn open_steps(
        broker: &str,
        security: &Security,
        client_id: &str,
        phase: &mut Phase,
    ) -> Result<Connection, ConnectionError> {
        let tcp = TcpStream::connect(broker).await.map_err(|e| io_error(broker, Phase::Connect, e))?;
        tcp.set_nodelay(true).map_err(|e| io_error(broker, Phase::Connect, e))?;
        let stream: Box<dyn Stream> = match security.tls() {
            None => Box::new(tcp),
            Some(config) => {
                *phase = Phase::TlsHandshake;
                let name = server_name(broker)?;
                let tls = TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| io_error(broker, Phase::TlsHandshake, e).with_hint(PLAINTEXT_LISTENER_HINT))?;
                Box::new(tls)
            }
        };
        let (read, write) = tokio::io::split(stream);
        let mut connection = Connection {
            broker: broker.to_owned(),
            versions: Vec::new(),
            writer: RequestWriter {
                broker: broker.to_owned(),
                stream: write,
                client_id: StrBytes::from_string(client_id.to_owned()),
                next_correlation_id: 1,
                frame: BytesMut::with_capacity(1024),
            },
            reader: ResponseReader { broker: broker.to_owned(), stream: read, buffer: BytesMut::new() },
        };
        *phase = Phase::Request(ApiKey::ApiVersions);
        let versions = connection.api_versions().await;
        connection.versions =
            if security.tls().is_none() { versions.map_err(|e| e.with_hint(TLS_LISTENER_HINT))? } else { versions? };
        if let Some(credentials) = security.sasl() {
            connection.authenticate(credentials, phase).await?;
        }
        Ok(connection)
    }

    /// The broker's versions of every API, by ApiVersions.
    async fn api_versions(&mut self) -> Result<Vec<(i16, i16, i16)>, ConnectionError> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str(SOFTWARE_NAME))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let correlation_id = self.writer.send(&request, API_VERSIONS_VERSION).await?;
        let body = self.reader.read_frame::<ApiVersionsRequest>(API_VERSIONS_VERSION, correlation_id).await?;
        // A broker without v3 answers UNSUPPORTED_VERSION in a v0 body; both versions start with the
        // error code.
        let unsupported = body.get(..2) == Some(&ResponseError::UnsupportedVersion.code().to_be_bytes()[..]);
        let response = if unsupported {
            let correlation_id = self.writer.send(&ApiVersionsRequest::default(), 0).await?;
            self.reader.receive::<ApiVersionsRequest>(0, correlation_id).await?
        } else {
            self.reader.decode::<ApiVersionsRequest>(body, API_VERSIONS_VERSION)?
        };
        if let Some(error) = ResponseError::try_from_code(response.error_code) {
            return Err(ConnectionError::Protocol {
                broker: self.broker.clone(),
                during: Phase::Request(ApiKey::ApiVersions),
                message: format!("the broker answered {error:?}"),
            });
        }
        Ok(response.api_keys.iter().map(|v| (v.api_key, v.min_version, v.max_version)).collect())
    }

    /// SaslHandshake, then the mechanism's SaslAuthenticate exchange.
    async fn authenticate(&mut self, credentials: &SaslCredentials, phase: &mut Phase) -> Result<(), ConnectionError> {
        let mechanism = credentials.mechanism;
        let broker = self.broker.clone();
        let failed = |detail: String| ConnectionError::Authentication {
            broker: broker.clone(),
            message: format!(
                "SASL {} authentication as user `{}` failed: {detail}",
                mechanism.name(),
                credentials.username
            ),
        };
        let handshake_version = self.require_version(ApiKey::SaslHandshake, SASL_HANDSHAKE_VERSIONS)?;
        let authenticate_version = self.require_version(ApiKey::SaslAuthenticate, SASL_AUTHENTICATE_VERSIONS)?;
        *phase = Phase::Request(ApiKey::SaslHandshake);
        let request = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism.name()));
        let handshake = self.round_trip(&request, handshake_version).await?;
        if handshake.error_code != 0 {
            let offered: Vec<&str> = handshake.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(failed(if offered.is_empty() {
                "this listener does not use SASL (is it a PLAINTEXT or SSL listener? security.protocol asks for \
                 SASL)"
                    .to_owned()
            } else {
                format!("the broker offers only {}: check sasl.mechanism", offered.join(", "))
            }));
        }
        *phase = Phase::Request(ApiKey::SaslAuthenticate);
        match mechanism {
            SaslMechanism::Plain => {
                // RFC 4616: [authzid] NUL authcid NUL passwd.
                let token = format!("\0{}\0{}", credentials.username, credentials.password());
                self.sasl_token(token.into_bytes(), authenticate_version, &failed).await?;
            }
            SaslMechanism::Scram(scram) => {
                let client = ScramClient::new(scram, &credentials.username, credentials.password());
                let server_first = self.sasl_token(client.client_first(), authenticate_version, &failed).await?;
                // PBKDF2: thousands of HMACs, off the async workers.
                let (client_final, check) = tokio::task::spawn_blocking(move || client.client_final(&server_first))
                    .await
                    .map_err(|e| failed(format!("the SCRAM computation failed ({e})")))?
                    .map_err(|e| failed(e.to_string()))?;
                let server_final = self.sasl_token(client_final, authenticate_version, &failed).await?;
                check.verify(&server_final).map_err(|e| failed(e.to_string()))?;
            }
        }
        Ok(())
    }

    /// One SaslAuthenticate round: our token out, the broker's back.
    async fn sasl_token(
        &mut self,
        token: Vec<u8>,
        version: i16,
        failed: &impl Fn(String) -> ConnectionError,
    ) -> Result<Bytes, ConnectionError> {
        let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
        let response = self.round_trip(&request, version).await?;
        match ResponseError::try_from_code(response.error_code) {
            None => Ok(response.auth_bytes),
            Some(error) => {
                let said = response.error_message.as_deref().map(str::to_owned).unwrap_or_else(|| format!("{error:?}"));
                Err(failed(format!(
                    "{said}. Check sasl.username and sasl.password, and that the user exists on the broker for \
                     this mechanism"
                )))
            }
        }
    }

    /// The highest version of `api` in `ours` that the broker supports, if any.
    pub(crate) fn version(&self, api: ApiKey, ours: (i16, i16)) -> Option<i16> {
        let &(_, min, max) = self.versions.iter().find(|(key, ..)| *key == api as i16)?;
        let best = ours.1.min(max);
        (best >= ours.0.max(min)).then_some(best)
    }

    /// The highest version of `api` in `ours` (min, max) that the broker supports, or an
    /// [`ConnectionError::Unsupported`] error saying what each side speaks.
    pub fn require_version(&self, api: ApiKey, ours: (i16, i16)) -> Result<i16, ConnectionError> {
        self.version(api, ours).ok_or_else(|| {
            let theirs = match self.versions.iter().find(|(key, ..)| *key == api as i16) {
                Some((_, min, max)) => format!("versions {min}..={max}"),
                None => "no version".to_owned(),
            };
            ConnectionError::Unsupported {
                broker: self.broker.clone(),
                message: format!("the broker supports {theirs} of {api:?}, this client {}..={}", ours.0, ours.1),
            }
        })
    }

    /// One request and its response, bounded by `timeout`. After a timeout the connection is out of step
    /// (the response may still come): drop it.
    pub async fn call<R: Request>(
        &mut self,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response, ConnectionError> {
        let answered = tokio::time::timeout(timeout, self.round_trip(request, version)).await;
        answered.unwrap_or_else(|_| {
            Err(ConnectionError::Timeout {
                broker: self.broker.clone(),
                during: Phase::Request(api_key::<R>()),
                timeout,
            })
        })
    }

    async fn round_trip<R: Request>(&mut self, request: &R, version: i16) -> Result<R::Response, ConnectionError> {
        let correlation_id = self.writer.send(request, version).await?;
        self.reader.receive::<R>(version, correlation_id).await
    }

    /// Halves for pipelining: the writer sends requests, the reader takes their responses in order.
    pub(crate) fn split(self) -> (RequestWriter, ResponseReader) {
        (self.writer, self.reader)
    }

    /// The address this connection was opened to ("host:port"), as errors name it.
    pub fn broker(&self) -> &str {
        &self.broker
    }
}

impl RequestWriter {
    /// Encodes and writes one request (header with the next correlation id and the client id) and
    /// flushes it. Returns the correlation id, for [`ResponseReader::receive`].
    pub(crate) async fn send<R: Request>(&mut self, request: &R, version: i16) -> Result<i32, ConnectionError> {
        let api = api_key::<R>();
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        self.frame.clear();
        encode_request(&mut self.frame, request, version, correlation_id, &self.client_id).map_err(|message| {
            ConnectionError::Protocol { broker: self.broker.clone(), during: Phase::Request(api), message }
        })?;
        let written = async {
            self.stream.write_all(&self.frame).await?;
            self.stream.flush().await
        };
        written.await.map_err(|e| io_error(&self.broker, Phase::Request(api), e))?;
        Ok(correlation_id)
    }
}

impl ResponseReader {
    /// Reads the next response and decodes it as `R::Response` of `version`, checking that it answers
    /// `correlation_id`. No timeout here: the caller bounds the wait.
    pub(crate) async fn receive<R: Request>(
        &mut self,
        version: i16,
        correlation_id: i32,
    ) -> Result<R::Response, ConnectionError> {
        let body = self.read_frame::<R>(version, correlation_id).await?;
        self.decode::<R>(body, version)
    }

    /// The next response frame's body, after its header (checked against `correlation_id`).
    async fn read_frame<R: Request>(&mut self, version: i16, correlation_id: i32) -> Result<Bytes, ConnectionError> {
        let during = Phase::Request(api_key::<R>());
        let protocol_error = |message| ConnectionError::Protocol { broker: self.broker.clone(), during, message };
        fill(&mut self.stream, &mut self.buffer, 4).await.map_err(|e| io_error(&self.broker, during, e))?;
        let prefix: [u8; 4] = self.buffer[..4].try_into().expect("four bytes");
        let size = i32::from_be_bytes(prefix);
        let Some(size) = usize::try_from(size).ok().filter(|&size| size <= MAX_RESPONSE_BYTES) else {
            return Err(protocol_error(bad_frame_size(prefix)));
        };
        fill(&mut self.stream, &mut self.buffer, 4 + size).await.map_err(|e| io_error(&self.broker, during, e))?;
        self.buffer.advance(4);
        let mut body = self.buffer.split_to(size).freeze();
        let header = ResponseHeader::decode(&mut body, R::Response::header_version(version))
            .map_err(|e| protocol_error(format!("cannot decode the response header: {e:#}")))?;
        if header.correlation_id != correlation_id {
            return Err(protocol_error(format!(
                "the response has correlation id {}, the request {correlation_id}",
                header.correlation_id
            )));
        }
        Ok(body)
    }

    fn decode<R: Request>(&self, mut body: Bytes, version: i16) -> Result<R::Response, ConnectionError> {
        R::Response::decode(&mut body, version).map_err(|e| ConnectionError::Protocol {
            broker: self.broker.clone(),
            during: Phase::Request(api_key::<R>()),
            message: format!("cannot decode the v{version} response: {e:#}"),
        })
    }
}

/// What a response frame's impossible size prefix says about the other end.
fn bad_frame_size(prefix: [u8; 4]) -> String {
    // A TLS record starts with its content type (21 alert, 22 handshake) and major version 3.
    if matches!(prefix, [21 | 22, 3, ..]) {
        "the broker answered with TLS, not Kafka (is it an SSL or SASL_SSL listener? this connection is plaintext)"
            .to_owned()
    } else {
        let size = i32::from_be_bytes(prefix);
        format!("response frame size {size} is not between 0 and {MAX_RESPONSE_BYTES} (is this a Kafka broker?)")
    }
}

/// Encodes a complete request frame into `frame`: length, header, body.
fn encode_request<R: Request>(
    frame: &mut BytesMut,
    request: &R,
    version: i16,
    correlation_id: i32,
    client_id: &StrBytes,
) -> Result<(), String> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(client_id.clone()));
    frame.extend_from_slice(&[0; 4]);
    header.encode(frame, R::header_version(version)).map_err(|e| format!("cannot encode the header: {e:#}"))?;
    request.encode(frame, version).map_err(|e| format!("cannot encode the v{version} request: {e:#}"))?;
    let size = i32::try_from(frame.len() - 4).map_err(|_| format!("request of {} bytes is too large", frame.len()))?;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

fn api_key<R: Request>() -> ApiKey {
    ApiKey::try_from(R::KEY).expect("kafka-protocol's requests have known API keys")
}

/// The name the broker's certificate must hold: the host part of "host:port" (DNS name or IP address).
fn server_name(broker: &str) -> Result<ServerName<'static>, ConnectionError> {
    let host = broker.rsplit_once(':').map_or(broker, |(host, _port)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned()).map_err(|e| ConnectionError::Tls {
        broker: broker.to_owned(),
        during: Phase::TlsHandshake,
        reason: format!("`{host}` is not a host name or IP address a certificate can hold ({e})"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::{ApiVersionsResponse, MetadataRequest};
    use kafka_protocol::protocol::decode_request_header_from_buffer;
    use tokio::net::TcpListener;

    const TIMEOUT: Duration = Duration::from_secs(10);

    /// A fake broker on a free port: `serve` gets each accepted socket.
    async fn fake_broker<F, Fut>(serve: F) -> String
    where
        F: FnOnce(TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            serve(socket).await;
        });
        addr
    }

    /// Reads one request frame: (api key, version, correlation id).
    async fn read_request(socket: &mut TcpStream) -> (i16, i16, i32) {
        let size = socket.read_i32().await.unwrap();
        let mut body = vec![0; size as usize];
        socket.read_exact(&mut body).await.unwrap();
        let header = decode_request_header_from_buffer(&mut Bytes::from(body)).unwrap();
        (header.request_api_key, header.request_api_version, header.correlation_id)
    }

    async fn write_response(socket: &mut TcpStream, correlation_id: i32, body: &ApiVersionsResponse, version: i16) {
        socket.write_all(&response_frame(correlation_id, body, version)).await.unwrap();
    }

    /// A response frame: its size, the header and the body.
    fn response_frame(correlation_id: i32, body: &ApiVersionsResponse, version: i16) -> Vec<u8> {
        let mut payload = BytesMut::new();
        ResponseHeader::default().with_correlation_id(correlation_id).encode(&mut payload, 0).unwrap();
        body.encode(&mut payload, version).unwrap();
        [&(payload.len() as i32).to_be_bytes()[..], &payload].concat()
    }

    /// Responses are read from one buffer the reader keeps: a frame that comes a byte at a time, two that
    /// come in one piece, and the connection closed halfway through a frame.
    #[tokio::test]
    async fn responses_in_pieces_or_run_together_are_read_alike() {
        let answer = ApiVersionsResponse::default().with_api_keys(vec![ApiVersion::default().with_max_version(9)]);
        let broker_answer = answer.clone();
        let addr = fake_broker(|mut socket| async move {
            let (_, version, correlation_id) = read_request(&mut socket).await;
            write_response(&mut socket, correlation_id, &broker_answer, version).await;
            let mut frames = Vec::new();
            for _ in 0..4 {
                let (_, version, correlation_id) = read_request(&mut socket).await;
                frames.push(response_frame(correlation_id, &broker_answer, version));
            }
            for byte in &frames[0] {
                socket.write_all(&[*byte]).await.unwrap();
                socket.flush().await.unwrap();
            }
            socket.write_all(&[&frames[1][..], &frames[2][..]].concat()).await.unwrap();
            socket.write_all(&frames[3][..frames[3].len() / 2]).await.unwrap();
        })
        .await;
        let connection = Connection::open(&addr, &Security::plaintext(), "test", TIMEOUT).await.unwrap();
        let (mut writer, mut reader) = connection.split();
        let mut sent = Vec::new();
        for _ in 0..4 {
            sent.push(writer.send(&ApiVersionsRequest::default(), 2).await.unwrap());
        }
        for correlation_id in &sent[..3] {
            let response = reader.receive::<ApiVersionsRequest>(2, *correlation_id).await.unwrap();
            assert_eq!(response.api_keys, answer.api_keys);
        }
        let err = reader.receive::<ApiVersionsRequest>(2, sent[3]).await.err().unwrap();
        assert!(matches!(err, ConnectionError::Closed { .. }), "{err}");
    }

    #[tokio::test]
    async fn api_versions_falls_back_to_v0() {
        let addr = fake_broker(|mut socket| async move {
            let (api, version, correlation_id) = read_request(&mut socket).await;
            assert_eq!((api, version), (ApiKey::ApiVersions as i16, 3));
            let refusal = ApiVersionsResponse::default().with_error_code(ResponseError::UnsupportedVersion.code());
            write_response(&mut socket, correlation_id, &refusal, 0).await;
            let (_, version, correlation_id) = read_request(&mut socket).await;
            assert_eq!(version, 0);
            let produce =
                ApiVersion::default().with_api_key(ApiKey::Produce as i16).with_min_version(0).with_max_version(7);
            write_response(
                &mut socket,
                correlation_id,
                &ApiVersionsResponse::default().with_api_keys(vec![produce]),
                0,
            )
            .await;
        })
        .await;
        let connection = Connection::open(&addr, &Security::plaintext(), "test", TIMEOUT).await.unwrap();
        assert_eq!(connection.version(ApiKey::Produce, (3, 9)), Some(7));
        assert_eq!(connection.version(ApiKey::Produce, (8, 9)), None);
        assert_eq!(connection.version(ApiKey::Metadata, (0, 12)), None);
        let err = connection.require_version(ApiKey::Produce, (8, 9)).unwrap_err();
        assert!(!err.is_retriable());
        assert!(err.to_string().contains("supports versions 0..=7 of Produce, this client 8..=9"), "{err}");
    }

    /// A fake broker that answers every request (ApiVersions, in the request's version) until the
    /// client hangs up.
    async fn api_versions_broker() -> String {
        fake_broker(|mut socket| async move {
            let produce = ApiVersion::default().with_api_key(ApiKey::Produce as i16).with_max_version(9);
            let answer = ApiVersionsResponse::default().with_api_keys(vec![produce]);
            while let Ok(size) = socket.read_i32().await {
                let mut body = vec![0; size as usize];
                socket.read_exact(&mut body).await.unwrap();
                let header = decode_request_header_from_buffer(&mut Bytes::from(body)).unwrap();
                write_response(&mut socket, header.correlation_id, &answer, header.request_api_version).await;
            }
        })
        .await
    }

    #[tokio::test]
    async fn calls_then_pipelined_requests_in_order() {
        let addr = api_versions_broker().await;
        let mut connection = Connection::open(&addr, &Security::plaintext(), "test", TIMEOUT).await.unwrap();
        assert_eq!(connection.broker(), addr);
        let response = connection.call(&ApiVersionsRequest::default(), 0, TIMEOUT).await.unwrap();
        assert_eq!(response.api_keys.len(), 1);
        let (mut writer, mut reader) = connection.split();
        let mut sent = Vec::new();
        for _ in 0..3 {
            sent.push(writer.send(&ApiVersionsRequest::default(), 2).await.unwrap());
        }
        assert!(sent.windows(2).all(|pair| pair[1] == pair[0] + 1), "{sent:?}");
        for correlation_id in &sent[..2] {
            reader.receive::<ApiVersionsRequest>(2, *correlation_id).await.unwrap();
        }
        let err = reader.receive::<ApiVersionsRequest>(2, sent[2] + 1).await.err().unwrap();
        assert!(matches!(err, ConnectionError::Protocol { .. }) && !err.is_retriable(), "{err}");
        assert!(err.to_string().contains("correlation id"), "{err}");
    }

    #[tokio::test]
    async fn silent_broker_times_out_naming_the_step() {
        let (release, held) = tokio::sync::oneshot::channel::<()>();
        let addr = fake_broker(|socket| async move {
            let _ = held.await; // keeps the socket open and says nothing
            drop(socket);
        })
        .await;
        let err =
            Connection::open(&addr, &Security::plaintext(), "test", Duration::from_millis(200)).await.err().unwrap();
        assert!(matches!(err, ConnectionError::Timeout { during: Phase::Request(ApiKey::ApiVersions), .. }), "{err}");
        assert!(err.is_retriable());
        assert!(err.to_string().contains(&addr), "{err}");
        drop(release);
    }

    #[tokio::test]
    async fn tls_answer_on_a_plaintext_connection_is_named() {
        let addr = fake_broker(|mut socket| async move {
            read_request(&mut socket).await;
            // A TLS alert record, as a TLS listener sends to a client that is not speaking TLS.
            socket.write_all(&[21, 3, 3, 0, 2, 2, 50]).await.unwrap();
        })
        .await;
        let err = Connection::open(&addr, &Security::plaintext(), "test", TIMEOUT).await.err().unwrap();
        assert!(matches!(err, ConnectionError::Protocol { .. }), "{err}");
        assert!(err.to_string().contains("SSL or SASL_SSL listener"), "{err}");
    }

    #[tokio::test]
    async fn refused_connection_is_retriable_io() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let err = Connection::open(&addr, &Security::plaintext(), "test", TIMEOUT).await.err().unwrap();
        assert!(matches!(err, ConnectionError::Io { during: Phase::Connect, .. }), "{err}");
        assert!(err.is_retriable());
        assert!(err.to_string().starts_with(&format!("broker {addr}: connect failed")), "{err}");
    }

    #[test]
    fn frames_carry_length_header_and_body() {
        let mut frame = BytesMut::new();
        let request = MetadataRequest::default();
        encode_request(&mut frame, &request, 9, 42, &StrBytes::from_static_str("agent")).unwrap();
        let mut bytes = frame.freeze();
        let size = i32::from_be_bytes(bytes[..4].try_into().unwrap());
        assert_eq!(size as usize, bytes.len() - 4);
        let _ = bytes.split_to(4);
        let header = decode_request_header_from_buffer(&mut bytes).unwrap();
        assert_eq!((header.request_api_key, header.request_api_version, header.correlation_id), (3, 9, 42));
        assert_eq!(header.client_id.as_deref(), Some("agent"));
        assert_eq!(MetadataRequest::decode(&mut bytes, 9).unwrap(), request);
    }

    #[test]
    fn server_names_from_broker_addresses() {
        assert_eq!(server_name("broker.example:9093").unwrap().to_str(), "broker.example");
        assert_eq!(server_name("127.0.0.1:9093").unwrap().to_str(), "127.0.0.1");
        assert_eq!(server_name("[::1]:9093").unwrap().to_str(), "::1");
        assert!(matches!(server_name("bad host!:1"), Err(ConnectionError::Tls { .. })));
    }
}

#[cfg(test)]
mod broker_tests;
