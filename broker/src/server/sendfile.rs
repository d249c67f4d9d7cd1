//! Sending record batches from their segment file straight to a plain TCP socket with `sendfile(2)`.
//!
//! Why: a Fetch response is almost all record batches, stored exactly as they are sent. Read into a
//! buffer and written out, every byte is copied twice by the kernel (page cache → buffer → socket), about
//! half of the broker's CPU while it serves consumers (docs/PERFORMANCE.md, "Where the broker's fetch
//! time goes"). `sendfile` hands the page-cache pages to the socket instead, as Kafka's
//! `FileChannel.transferTo` does on PLAINTEXT listeners. TLS must encrypt the bytes in user space, so TLS
//! connections keep the buffered path.
//!
//! The socket is non-blocking: each `sendfile` sends what fits in the socket buffer and the loop waits
//! for writability in between (`TcpStream::writable` + `try_io`, which clears the readiness on
//! EAGAIN). A peer that goes away makes `sendfile` fail (EPIPE, ECONNRESET) and the error ends the
//! connection. The length was already written in the response, so a file that turns out shorter
//! (which nothing in the running broker does: only recovery at start-up truncates) is an error too, and
//! the connection is closed rather than sending a frame that does not add up.

use std::io;

use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::storage::FileRecords;

/// Sends all of `records` to `socket`.
pub async fn send(socket: &TcpStream, records: &FileRecords) -> io::Result<()> {
    let end = records.position() + records.len();
    let mut position = records.position();
    while position < end {
        socket.writable().await?;
        let count = usize::try_from(end - position).unwrap_or(usize::MAX);
        let sent = socket.try_io(Interest::WRITABLE, || {
            // `sendfile` advances its own copy of the offset; the file's cursor is never used.
            let mut at = position;
            Ok(rustix::fs::sendfile(socket, records.file(), Some(&mut at), count)?)
        });
        match sent {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "{} ends at {position}, before {end}: shortened while being sent",
                        records.path().display()
                    ),
                ))
            }
            Ok(n) => position += n as u64,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    /// A file of `len` numbered bytes after a 1000-byte prefix, as records at position 1000.
    fn records(len: usize) -> (FileRecords, Vec<u8>) {
        let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&[0; 1000]).unwrap();
        file.write_all(&bytes).unwrap();
        (FileRecords::new(Arc::new(file), std::path::Path::new("test.log"), 1000, len as u64), bytes)
    }

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (server, client)
    }

    #[tokio::test]
    async fn sends_every_byte_through_a_full_socket_buffer() {
        // Far more than a socket buffer holds: sendfile sends part, hits EAGAIN, waits, goes on.
        let (records, expected) = records(24 << 20);
        let (server, mut client) = pair().await;
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.unwrap();
            got
        });
        send(&server, &records).await.unwrap();
        drop(server);
        assert!(reader.await.unwrap() == expected);
    }

    #[tokio::test]
    async fn a_peer_that_goes_away_ends_the_send_with_an_error() {
        let (records, _) = records(24 << 20);
        let (server, client) = pair().await;
        drop(client);
        // The deadline only keeps a wedged send from hanging the test run.
        let sent = tokio::time::timeout(Duration::from_secs(60), send(&server, &records)).await;
        assert!(sent.expect("send returns").is_err());
    }

    #[tokio::test]
    async fn a_file_shorter_than_promised_is_an_error() {
        let (records, _) = records(10_000);
        records.file().set_len(5_000).unwrap();
        let (server, _client) = pair().await;
        let e = send(&server, &records).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(e.to_string().contains("test.log"), "{e}");
    }
}
