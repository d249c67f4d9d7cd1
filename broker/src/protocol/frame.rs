//! Kafka framing: every request and response is a 4-byte big-endian size followed by that many bytes.
//!
//! This is the only async codec code. The declared size is checked against `socket.request.max.bytes`
//! *before* the buffer is allocated, so a hostile or corrupt length prefix cannot make the broker reserve
//! gigabytes.
//!
//! References: <https://kafka.apache.org/protocol#protocol_common>

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("request frame of {declared} bytes exceeds socket.request.max.bytes ({max})")]
    TooLarge { declared: i64, max: i32 },
    #[error("negative or empty request frame size {0}")]
    InvalidSize(i32),
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads the request frames of one connection into one buffer.
///
/// Why: a new zeroed buffer per request gave each produce request fresh pages, which the kernel faulted
/// in as the socket's bytes were copied into them: 70,000 page faults of the appliance's agent and
/// broker in shipping two million nginx lines, 7,600 with this reader (docs/PERFORMANCE.md). Each frame
/// is split off this buffer and frozen, so once the request is handled and dropped its memory is read
/// into again. While requests keep coming a connection keeps about the largest frame up to
/// [`KEPT_AT_MOST`] (up to twice that as the buffer grows); once it has waited [`KEPT_WHILE_IDLE`] for
/// the next request, it keeps next to nothing, as a new buffer per request did.
#[derive(Debug, Default)]
pub struct FrameReader {
    /// Bytes read and not yet handed out: the start of the next frames.
    buffer: BytesMut,
}

/// Bytes asked of the socket at least, so that small requests come in one read.
const READ_AHEAD: usize = 64 << 10;

/// A frame larger than this is read into memory of its own, freed with it, so that a connection does
/// not keep the largest request it ever sent (`socket.request.max.bytes` is 100 MiB).
const KEPT_AT_MOST: usize = 1 << 20;

/// How long a connection waits for its next request with the buffer before it lets the buffer go, so
/// that a broker with many quiet clients does not hold a buffer for each.
const KEPT_WHILE_IDLE: Duration = Duration::from_secs(1);

impl FrameReader {
    /// Reads the next frame. `Ok(None)` is a clean end of stream between frames. Safe to cancel: bytes
    /// read stay in the buffer for the next call.
    pub async fn next<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
        max_size: i32,
    ) -> Result<Option<Bytes>, FrameError> {
        if !self.fill(reader, 4).await? {
            return if self.buffer.is_empty() { Ok(None) } else { Err(FrameError::Truncated) };
        }
        let size = i32::from_be_bytes(self.buffer[..4].try_into().expect("four bytes"));
        check_size(size, max_size)?;
        let size = size as usize;
        if !self.fill(reader, 4 + size).await? {
            return Err(FrameError::Truncated);
        }
        self.buffer.advance(4);
        let frame = self.buffer.split_to(size).freeze();
        if size > KEPT_AT_MOST {
            // The bytes after the frame (a read's worth at most) move to memory of their own.
            self.buffer = BytesMut::from(&self.buffer[..]);
        }
        Ok(Some(frame))
    }

    /// Reads until the buffer holds at least `n` bytes; `false` at the end of the stream before that.
    async fn fill<R: AsyncRead + Unpin>(&mut self, reader: &mut R, n: usize) -> std::io::Result<bool> {
        while self.buffer.len() < n {
            self.buffer.reserve((n - self.buffer.len()).max(READ_AHEAD));
            let read = if self.buffer.is_empty() {
                // Between requests: wait with the buffer for a while, then without it.
                match tokio::time::timeout(KEPT_WHILE_IDLE, reader.read_buf(&mut self.buffer)).await {
                    Ok(read) => read?,
                    Err(_) => {
                        self.buffer = BytesMut::new();
                        // The next frame's size only: the memory for the frame comes with it.
                        self.buffer.reserve(4);
                        reader.read_buf(&mut self.buffer).await?
                    }
                }
            } else {
                reader.read_buf(&mut self.buffer).await?
            };
            if read == 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// The smallest valid request is a v0 header: api key (2) + version (2) + correlation id (4) + client id (2).
const MIN_REQUEST_SIZE: i32 = 8;

fn check_size(size: i32, max_size: i32) -> Result<(), FrameError> {
    if size < MIN_REQUEST_SIZE {
        return Err(FrameError::InvalidSize(size));
    }
    if size > max_size {
        return Err(FrameError::TooLarge { declared: size as i64, max: max_size });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_frame(input: &mut &[u8], max_size: i32) -> Result<Option<Bytes>, FrameError> {
        FrameReader::default().next(input, max_size).await
    }

    #[tokio::test]
    async fn reads_consecutive_frames_and_clean_eof() {
        let mut input: &[u8] = &[0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9];
        let mut frames = FrameReader::default();
        assert_eq!(frames.next(&mut input, 100).await.unwrap().unwrap()[..], [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(frames.next(&mut input, 100).await.unwrap().unwrap()[..], [9; 9]);
        assert!(frames.next(&mut input, 100).await.unwrap().is_none());
    }

    /// Hands out one chunk per read, as a socket hands out what has arrived.
    struct Chunks(std::collections::VecDeque<Vec<u8>>);

    impl AsyncRead for Chunks {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            if let Some(mut chunk) = self.0.pop_front() {
                let n = chunk.len().min(buf.remaining());
                buf.put_slice(&chunk[..n]);
                if n < chunk.len() {
                    self.0.push_front(chunk.split_off(n));
                }
            }
            std::task::Poll::Ready(Ok(()))
        }
    }

    fn frame(len: usize, byte: u8) -> Vec<u8> {
        [&(len as u32).to_be_bytes()[..], &vec![byte; len]].concat()
    }

    /// A frame a byte at a time, and half a frame before the end of the stream.
    #[tokio::test]
    async fn frames_in_pieces_are_read_whole() {
        let mut input = Chunks(frame(10, 1).into_iter().map(|b| vec![b]).chain([frame(20, 2)[..9].to_vec()]).collect());
        let mut frames = FrameReader::default();
        assert_eq!(frames.next(&mut input, 100).await.unwrap().unwrap()[..], [1; 10]);
        assert!(matches!(frames.next(&mut input, 100).await, Err(FrameError::Truncated)));
    }

    /// Once a frame is dropped, the next is read into its memory; a frame larger than what a connection
    /// keeps does not stay behind in it, and the bytes read after it are not lost.
    #[tokio::test]
    async fn memory_is_read_into_again_and_large_frames_are_not_kept() {
        let large = KEPT_AT_MOST + 1;
        let mut input = Chunks([frame(100, 1), frame(200, 2), [frame(large, 3), frame(30, 4)].concat()].into());
        let mut frames = FrameReader::default();
        let first = frames.next(&mut input, i32::MAX).await.unwrap().unwrap();
        let first_at = first.as_ptr();
        drop(first);
        let second = frames.next(&mut input, i32::MAX).await.unwrap().unwrap();
        assert_eq!((second.as_ptr(), &second[..]), (first_at, &[2; 200][..]));
        let third = frames.next(&mut input, i32::MAX).await.unwrap().unwrap();
        assert!(third.len() == large && third.iter().all(|&b| b == 3));
        assert!(frames.buffer.capacity() < KEPT_AT_MOST, "kept {} bytes", frames.buffer.capacity());
        assert_eq!(frames.next(&mut input, i32::MAX).await.unwrap().unwrap()[..], [4; 30]);
        assert!(frames.next(&mut input, i32::MAX).await.unwrap().is_none());
    }

    /// While requests keep coming the buffer stays; once the connection has waited long enough for the
    /// next one, it holds next to nothing, and the next request is read as before.
    #[tokio::test(start_paused = true)]
    async fn a_quiet_connection_lets_its_buffer_go() {
        use tokio::io::AsyncWriteExt;
        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        let mut frames = FrameReader::default();
        client.write_all(&frame(1000, 1)).await.unwrap();
        assert_eq!(frames.next(&mut server, i32::MAX).await.unwrap().unwrap()[..], [1; 1000]);

        let waiting = tokio::time::timeout(KEPT_WHILE_IDLE / 2, frames.next(&mut server, i32::MAX)).await;
        assert!(waiting.is_err(), "no request yet");
        assert!(frames.buffer.capacity() >= READ_AHEAD / 2, "kept {} bytes", frames.buffer.capacity());

        let waiting = tokio::time::timeout(KEPT_WHILE_IDLE * 2, frames.next(&mut server, i32::MAX)).await;
        assert!(waiting.is_err(), "no request yet");
        assert!(frames.buffer.capacity() < 64, "kept {} bytes", frames.buffer.capacity());

        client.write_all(&frame(2000, 2)).await.unwrap();
        assert_eq!(frames.next(&mut server, i32::MAX).await.unwrap().unwrap()[..], [2; 2000]);
        drop(client);
        assert!(frames.next(&mut server, i32::MAX).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn refuses_oversized_frame_before_reading_it() {
        let mut input: &[u8] = &[0x7f, 0xff, 0xff, 0xff];
        assert!(matches!(read_frame(&mut input, 1 << 20).await, Err(FrameError::TooLarge { .. })));
    }

    #[tokio::test]
    async fn rejects_negative_size_and_truncation() {
        let mut negative: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        assert!(matches!(read_frame(&mut negative, 100).await, Err(FrameError::InvalidSize(-1))));
        let mut short: &[u8] = &[0, 0, 0, 20, 1, 2];
        assert!(matches!(read_frame(&mut short, 100).await, Err(FrameError::Truncated)));
        let mut half_size: &[u8] = &[0, 0];
        assert!(matches!(read_frame(&mut half_size, 100).await, Err(FrameError::Truncated)));
    }
}
