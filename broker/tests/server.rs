//! The server over real sockets: bad frames close only their own connection, ApiVersions falls back to
//! v0 for an unknown version, pipelined requests are answered in order, and shutdown is clean.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, MetadataRequest, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use logpipe_broker::{BrokerConfig, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

struct Running {
    addr: std::net::SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<logpipe_broker::Result<()>>,
    _dir: tempfile::TempDir,
}

async fn start() -> Running {
    let dir = tempfile::tempdir().unwrap();
    let config = BrokerConfig {
        listeners: vec!["127.0.0.1:0".into()],
        log_dirs: dir.path().to_path_buf(),
        socket_request_max_bytes: 1 << 20,
        message_max_bytes: 1 << 19,
        ..BrokerConfig::default()
    };
    let server = Server::bind(config).await.unwrap();
    let addr = server.local_addrs()[0];
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server.run(shutdown.clone()));
    Running { addr, shutdown, task, _dir: dir }
}

fn request_frame(api_key: ApiKey, version: i16, correlation_id: i32, body: &impl Encodable) -> Bytes {
    let mut payload = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("server-test")))
        .encode(&mut payload, api_key.request_header_version(version))
        .unwrap();
    body.encode(&mut payload, version).unwrap();
    let mut frame = BytesMut::new();
    frame.put_i32(payload.len() as i32);
    frame.put(payload);
    frame.freeze()
}

async fn read_response(socket: &mut TcpStream) -> Option<Bytes> {
    let size =
        tokio::time::timeout(Duration::from_secs(10), socket.read_i32()).await.expect("response in time").ok()?;
    let mut payload = vec![0; size as usize];
    socket.read_exact(&mut payload).await.ok()?;
    Some(payload.into())
}

/// A metadata round trip on a fresh connection: proves the broker still serves.
async fn assert_serving(addr: std::net::SocketAddr) {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket.write_all(&request_frame(ApiKey::Metadata, 9, 5, &MetadataRequest::default())).await.unwrap();
    let mut response = read_response(&mut socket).await.expect("metadata response");
    let header = ResponseHeader::decode(&mut response, ApiKey::Metadata.response_header_version(9)).unwrap();
    assert_eq!(header.correlation_id, 5);
}

/// Waits (with a deadline) for the broker to close a connection.
async fn assert_closed(socket: &mut TcpStream) {
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buf)).await.expect("closed in time") {
            Ok(0) | Err(_) => return,
            Ok(_) => continue,
        }
    }
}

#[tokio::test]
async fn bad_frames_close_only_their_connection() {
    let broker = start().await;
    let bystander = TcpStream::connect(broker.addr).await.unwrap();

    let garbage: &[&[u8]] = &[
        &[0x7f, 0xff, 0xff, 0xff],                                      // oversized length prefix
        &[0xff, 0xff, 0xff, 0xf0],                                      // negative length
        &[0, 0, 0, 10, 0x03, 0xe7, 0, 0, 0, 0, 0, 1, 0xff, 0xff],       // unknown api key 999
        &[0, 0, 0, 12, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8], // garbage
        &[0, 0, 0, 12, 0, 3, 0, 9, 0, 0, 0, 1, 0xff, 0xff, 0x7f, 0xff], // metadata v9 with a bad body
    ];
    for bytes in garbage {
        let mut socket = TcpStream::connect(broker.addr).await.unwrap();
        socket.write_all(bytes).await.unwrap();
        assert_closed(&mut socket).await;
        assert_serving(broker.addr).await;
    }
    // A truncated frame followed by a half-close.
    let mut socket = TcpStream::connect(broker.addr).await.unwrap();
    socket.write_all(&[0, 0, 0, 100, 0, 3]).await.unwrap();
    socket.shutdown().await.unwrap();
    assert_closed(&mut socket).await;
    assert_serving(broker.addr).await;
    drop(bystander);
    broker.shutdown.cancel();
    broker.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn api_versions_with_unknown_version_falls_back_to_v0() {
    let broker = start().await;
    let mut socket = TcpStream::connect(broker.addr).await.unwrap();
    let body = kafka_protocol::messages::ApiVersionsRequest::default();
    // Encode as v3 (what a new client sends) but claim v99 in the header.
    let mut frame = request_frame(ApiKey::ApiVersions, 3, 11, &body).to_vec();
    frame[6..8].copy_from_slice(&99i16.to_be_bytes());
    socket.write_all(&frame).await.unwrap();
    let mut response = read_response(&mut socket).await.unwrap();
    let header = ResponseHeader::decode(&mut response, 0).unwrap();
    assert_eq!(header.correlation_id, 11);
    let versions = ApiVersionsResponse::decode(&mut response, 0).unwrap();
    assert_eq!(versions.error_code, kafka_protocol::ResponseError::UnsupportedVersion.code());
    assert!(versions.api_keys.iter().any(|k| k.api_key == ApiKey::Produce as i16));
    broker.shutdown.cancel();
    broker.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let broker = start().await;
    let mut socket = TcpStream::connect(broker.addr).await.unwrap();
    let mut pipeline = BytesMut::new();
    for correlation_id in 0..50 {
        pipeline.put(request_frame(ApiKey::Metadata, 9, correlation_id, &MetadataRequest::default()));
    }
    socket.write_all(&pipeline).await.unwrap();
    for expected in 0..50 {
        let mut response = read_response(&mut socket).await.unwrap();
        let header = ResponseHeader::decode(&mut response, ApiKey::Metadata.response_header_version(9)).unwrap();
        assert_eq!(header.correlation_id, expected);
    }
    broker.shutdown.cancel();
    broker.task.await.unwrap().unwrap();
}
