//! TEMPORARY plaintext stand-in for the helper's connection layer (replaced at merge).
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;

use crate::security::Security;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectionError {
    #[error("{broker}: {message}")]
    Io { broker: String, message: String },
}

impl ConnectionError {
    pub(crate) fn is_retriable(&self) -> bool {
        true
    }
}

fn io(broker: &str, e: impl ToString) -> ConnectionError {
    ConnectionError::Io { broker: broker.to_owned(), message: e.to_string() }
}

pub(crate) struct Connection {
    stream: TcpStream,
    broker: String,
    versions: Vec<(i16, i16, i16)>,
    next: i32,
    client_id: String,
}

impl Connection {
    pub(crate) async fn open(
        broker: &str,
        _security: &Security,
        client_id: &str,
        timeout: Duration,
    ) -> Result<Connection, ConnectionError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(broker))
            .await
            .map_err(|_| io(broker, "timeout"))?
            .map_err(|e| io(broker, e))?;
        stream.set_nodelay(true).map_err(|e| io(broker, e))?;
        let mut c =
            Connection { stream, broker: broker.into(), versions: vec![], next: 1, client_id: client_id.into() };
        let r = c.call(&ApiVersionsRequest::default(), 0, timeout).await?;
        c.versions = r.api_keys.iter().map(|k| (k.api_key, k.min_version, k.max_version)).collect();
        Ok(c)
    }

    pub(crate) fn version(&self, api: ApiKey, ours: (i16, i16)) -> Option<i16> {
        let (_, min, max) = self.versions.iter().find(|v| v.0 == api as i16)?;
        let best = ours.1.min(*max);
        (best >= ours.0.max(*min)).then_some(best)
    }

    pub(crate) async fn call<R: Request>(
        &mut self,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response, ConnectionError> {
        let id = self.next;
        self.next += 1;
        let frame = encode(request, version, id, &self.client_id);
        let broker = self.broker.clone();
        let stream = &mut self.stream;
        tokio::time::timeout(timeout, async {
            stream.write_all(&frame).await.map_err(|e| io(&broker, e))?;
            read::<R, _>(stream, version, id, &broker).await
        })
        .await
        .map_err(|_| io(&self.broker, "timeout"))?
    }

    pub(crate) fn split(self) -> (RequestWriter, ResponseReader) {
        let (r, w) = tokio::io::split(self.stream);
        (
            RequestWriter { w, next: self.next, broker: self.broker.clone(), client_id: self.client_id },
            ResponseReader { r, broker: self.broker },
        )
    }

    pub(crate) fn broker(&self) -> &str {
        &self.broker
    }
}

pub(crate) struct RequestWriter {
    w: WriteHalf<TcpStream>,
    next: i32,
    broker: String,
    client_id: String,
}

impl RequestWriter {
    pub(crate) async fn send<R: Request>(&mut self, request: &R, version: i16) -> Result<i32, ConnectionError> {
        let id = self.next;
        self.next += 1;
        let frame = encode(request, version, id, &self.client_id);
        self.w.write_all(&frame).await.map_err(|e| io(&self.broker, e))?;
        Ok(id)
    }
}

pub(crate) struct ResponseReader {
    r: ReadHalf<TcpStream>,
    broker: String,
}

impl ResponseReader {
    pub(crate) async fn receive<R: Request>(
        &mut self,
        version: i16,
        correlation_id: i32,
    ) -> Result<R::Response, ConnectionError> {
        read::<R, _>(&mut self.r, version, correlation_id, &self.broker).await
    }
}

fn encode<R: Request>(request: &R, version: i16, id: i32, client_id: &str) -> BytesMut {
    let api = ApiKey::try_from(R::KEY).unwrap();
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_owned())));
    let mut frame = BytesMut::with_capacity(64);
    frame.extend_from_slice(&[0; 4]);
    header.encode(&mut frame, api.request_header_version(version)).unwrap();
    request.encode(&mut frame, version).unwrap();
    let len = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&len.to_be_bytes());
    frame
}

async fn read<R: Request, S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
    version: i16,
    id: i32,
    broker: &str,
) -> Result<R::Response, ConnectionError> {
    let api = ApiKey::try_from(R::KEY).unwrap();
    let len = s.read_i32().await.map_err(|e| io(broker, e))?;
    let mut body = vec![0; len as usize];
    s.read_exact(&mut body).await.map_err(|e| io(broker, e))?;
    let mut body = Bytes::from(body);
    let header = ResponseHeader::decode(&mut body, api.response_header_version(version)).map_err(|e| io(broker, e))?;
    if header.correlation_id != id {
        return Err(io(broker, "correlation"));
    }
    let r = R::Response::decode(&mut body, version).map_err(|e| io(broker, e))?;
    let _ = body.remaining();
    Ok(r)
}
