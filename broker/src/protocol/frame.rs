//! Kafka framing: every request and response is a 4-byte big-endian size followed by that many bytes.
//!
//! This is the only async codec code. The declared size is checked against `socket.request.max.bytes`
//! *before* the buffer is allocated, so a hostile or corrupt length prefix cannot make the broker reserve
//! gigabytes.
//!
//! References: <https://kafka.apache.org/protocol#protocol_common>

use bytes::{Bytes, BytesMut};
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

/// Reads one frame. `Ok(None)` is a clean end of stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R, max_size: i32) -> Result<Option<Bytes>, FrameError> {
    let mut size_bytes = [0u8; 4];
    let mut filled = 0;
    while filled < size_bytes.len() {
        let n = reader.read(&mut size_bytes[filled..]).await?;
        if n == 0 {
            return if filled == 0 { Ok(None) } else { Err(FrameError::Truncated) };
        }
        filled += n;
    }
    let size = i32::from_be_bytes(size_bytes);
    check_size(size, max_size)?;
    let mut payload = BytesMut::zeroed(size as usize);
    reader.read_exact(&mut payload).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => FrameError::Truncated,
        _ => FrameError::Io(e),
    })?;
    Ok(Some(payload.freeze()))
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

    #[tokio::test]
    async fn reads_consecutive_frames_and_clean_eof() {
        let mut input: &[u8] = &[0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9];
        assert_eq!(read_frame(&mut input, 100).await.unwrap().unwrap().len(), 8);
        assert_eq!(read_frame(&mut input, 100).await.unwrap().unwrap().len(), 9);
        assert!(read_frame(&mut input, 100).await.unwrap().is_none());
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
