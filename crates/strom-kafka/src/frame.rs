//! Kafka framing: a 4-byte big-endian length, then that many bytes of request.
//! Parsing is two-phase: an incomplete frame is `Ok(None)`; the length is checked
//! against the cap before anything is allocated for it.

use bytes::{Buf, Bytes, BytesMut};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame of {0} bytes exceeds socket.request.max.bytes {1}")]
    TooLarge(usize, usize),
    #[error("negative frame length {0}")]
    Negative(i32),
}

/// Length (with its prefix) of the incomplete frame at the front of `buf`, once its
/// length prefix is there. The caller makes room for it (after checking it may).
pub fn pending(buf: &BytesMut) -> Option<usize> {
    let len_bytes = buf.get(..4)?;
    let len = i32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
    let total = usize::try_from(len).ok()?.checked_add(4)?;
    (buf.len() < total).then_some(total)
}

/// Take one whole frame (without its length prefix) off the front of `buf`.
pub fn parse(buf: &mut BytesMut, max: usize) -> Result<Option<Bytes>, FrameError> {
    let Some(len_bytes) = buf.get(..4) else { return Ok(None) };
    let len = i32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
    let len = usize::try_from(len).map_err(|_| FrameError::Negative(len))?;
    if len > max {
        return Err(FrameError::TooLarge(len, max));
    }
    if buf.len() < 4 + len {
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(len).freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_then_complete() {
        let mut buf = BytesMut::from(&[0u8, 0, 0, 3, 1][..]);
        assert_eq!(parse(&mut buf, 10), Ok(None));
        buf.extend_from_slice(&[2, 3, 0]);
        assert_eq!(parse(&mut buf, 10).unwrap().unwrap().as_ref(), &[1, 2, 3]);
        assert_eq!(buf.as_ref(), &[0]);
        assert_eq!(parse(&mut buf, 10), Ok(None));
    }

    #[test]
    fn oversized_and_negative_lengths_fail_before_allocating() {
        let mut buf = BytesMut::from(&[0x7fu8, 0xff, 0xff, 0xff][..]);
        assert!(matches!(parse(&mut buf, 1 << 20), Err(FrameError::TooLarge(..))));
        assert!(buf.capacity() < 1 << 20);
        let mut buf = BytesMut::from(&[0xffu8, 0xff, 0xff, 0xff][..]);
        assert_eq!(parse(&mut buf, 10), Err(FrameError::Negative(-1)));
    }
}
