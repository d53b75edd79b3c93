//! `Compression`: the codecs a v2 batch's records section may be compressed with.
//!
//! The whole records section (everything after the 61-byte header) is one compressed
//! stream. Formats: gzip (RFC 1952), snappy (either the xerial framing that the Java
//! client writes — magic `\x82SNAPPY\0`, two i32 versions, then `[i32 length][raw
//! snappy block]`* — or a bare raw snappy block as some clients send), LZ4 frame
//! format, and zstd frames. Decompression output is capped at
//! [`DECOMPRESSED_BYTES_MAX`].

use std::io::{Read, Write};

use crate::constants::DECOMPRESSED_BYTES_MAX;
use crate::error::LogError;

const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const XERIAL_HEADER_SIZE: usize = 16;
const XERIAL_BLOCK_SIZE: usize = 32 * 1024;

/// A record batch compression codec (attribute bits 0-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Codec 0.
    None,
    /// Codec 1.
    Gzip,
    /// Codec 2.
    Snappy,
    /// Codec 3.
    Lz4,
    /// Codec 4.
    Zstd,
}

impl Compression {
    /// Maps the attribute bits to a codec.
    pub fn from_codec(codec: u8) -> Result<Compression, LogError> {
        match codec {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            other => Err(LogError::UnsupportedCompression(other)),
        }
    }

    /// The attribute bits for this codec.
    pub fn codec(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// Decompresses a records section. `Compression::None` returns a copy.
    pub fn decompress(self, input: &[u8]) -> Result<Vec<u8>, LogError> {
        let limit = DECOMPRESSED_BYTES_MAX;
        match self {
            Compression::None => Ok(input.to_vec()),
            Compression::Gzip => read_capped(flate2::read::GzDecoder::new(input), limit),
            Compression::Snappy => decompress_snappy(input, limit),
            Compression::Lz4 => read_capped(lz4_flex::frame::FrameDecoder::new(input), limit),
            Compression::Zstd => {
                let decoder =
                    zstd::stream::read::Decoder::new(input).map_err(|e| LogError::corrupt(format!("zstd: {e}")))?;
                read_capped(decoder, limit)
            }
        }
    }

    /// Compresses a records section (snappy uses the xerial framing, like the Java client).
    pub fn compress(self, input: &[u8]) -> Result<Vec<u8>, LogError> {
        match self {
            Compression::None => Ok(input.to_vec()),
            Compression::Gzip => {
                let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                encoder.write_all(input)?;
                Ok(encoder.finish()?)
            }
            Compression::Snappy => compress_snappy_xerial(input),
            Compression::Lz4 => {
                let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::new());
                encoder.write_all(input)?;
                encoder.finish().map_err(|e| LogError::corrupt(format!("lz4: {e}")))
            }
            Compression::Zstd => Ok(zstd::stream::encode_all(input, 3)?),
        }
    }
}

fn read_capped(reader: impl Read, limit: usize) -> Result<Vec<u8>, LogError> {
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| LogError::corrupt(format!("decompression failed: {e}")))?;
    if out.len() > limit {
        return Err(LogError::BatchTooLarge {
            size: out.len() as u64,
            max: limit as u64,
        });
    }
    Ok(out)
}

fn decompress_snappy_raw(input: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), LogError> {
    let length = snap::raw::decompress_len(input).map_err(|e| LogError::corrupt(format!("snappy: {e}")))?;
    if out.len().saturating_add(length) > limit {
        return Err(LogError::BatchTooLarge {
            size: out.len().saturating_add(length) as u64,
            max: limit as u64,
        });
    }
    let block = snap::raw::Decoder::new()
        .decompress_vec(input)
        .map_err(|e| LogError::corrupt(format!("snappy: {e}")))?;
    out.extend_from_slice(&block);
    Ok(())
}

fn decompress_snappy(input: &[u8], limit: usize) -> Result<Vec<u8>, LogError> {
    let mut out = Vec::new();
    if input.get(..XERIAL_MAGIC.len()) != Some(&XERIAL_MAGIC[..]) {
        decompress_snappy_raw(input, &mut out, limit)?;
        return Ok(out);
    }
    let mut rest = input.get(XERIAL_HEADER_SIZE..).unwrap_or(&[]);
    while !rest.is_empty() {
        let length_bytes: [u8; 4] = rest
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| LogError::corrupt("snappy: truncated xerial block length"))?;
        let length = usize::try_from(i32::from_be_bytes(length_bytes))
            .map_err(|_| LogError::corrupt("snappy: negative xerial block length"))?;
        let block = rest
            .get(4..4usize.saturating_add(length))
            .ok_or_else(|| LogError::corrupt("snappy: truncated xerial block"))?;
        decompress_snappy_raw(block, &mut out, limit)?;
        rest = rest.get(4 + length..).unwrap_or(&[]);
    }
    Ok(out)
}

fn compress_snappy_xerial(input: &[u8]) -> Result<Vec<u8>, LogError> {
    let mut out = Vec::with_capacity(input.len() / 2 + XERIAL_HEADER_SIZE);
    out.extend_from_slice(&XERIAL_MAGIC);
    out.extend_from_slice(&1i32.to_be_bytes());
    out.extend_from_slice(&1i32.to_be_bytes());
    let mut encoder = snap::raw::Encoder::new();
    for chunk in input.chunks(XERIAL_BLOCK_SIZE) {
        let block = encoder
            .compress_vec(chunk)
            .map_err(|e| LogError::corrupt(format!("snappy: {e}")))?;
        let length = i32::try_from(block.len()).map_err(|_| LogError::corrupt("snappy: block too large"))?;
        out.extend_from_slice(&length.to_be_bytes());
        out.extend_from_slice(&block);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    #[test]
    fn round_trips_every_codec() {
        let input: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        for codec in ALL {
            let compressed = codec.compress(&input).unwrap();
            assert_eq!(codec.decompress(&compressed).unwrap(), input, "{codec:?}");
            assert_eq!(Compression::from_codec(codec.codec()).unwrap(), codec);
        }
        assert!(Compression::from_codec(5).is_err());
    }

    #[test]
    fn reads_raw_snappy_too() {
        let input = b"hello hello hello hello".repeat(100);
        let raw = snap::raw::Encoder::new().compress_vec(&input).unwrap();
        assert_eq!(Compression::Snappy.decompress(&raw).unwrap(), input);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for codec in ALL {
            for len in 0..64 {
                let garbage: Vec<u8> = (0..len).map(|i| (i * 91 + 7) as u8).collect();
                let _ = codec.decompress(&garbage);
            }
            let mut xerial = XERIAL_MAGIC.to_vec();
            xerial.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 0x7f, 0xff, 0xff, 0xff, 1]);
            let _ = codec.decompress(&xerial);
        }
    }
}
