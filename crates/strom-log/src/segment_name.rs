//! Segment file names: the base offset as 20 zero-padded digits and a suffix
//! (`00000000000000000042.log`); the suffixes themselves are in
//! [`constants`](crate::constants).

use crate::constants::SEGMENT_FILE_NAME_DIGITS;

/// `NNNNNNNNNNNNNNNNNNNN.<suffix>` for a base offset.
pub fn segment_file_name(base_offset: i64, suffix: &str) -> String {
    format!("{:0width$}.{suffix}", base_offset, width = SEGMENT_FILE_NAME_DIGITS)
}

/// The base offset encoded in a segment file name with the given suffix.
pub fn parse_segment_file_name(name: &str, suffix: &str) -> Option<i64> {
    let stem = name.strip_suffix(suffix)?.strip_suffix('.')?;
    if stem.len() != SEGMENT_FILE_NAME_DIGITS || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(segment_file_name(42, "log"), "00000000000000000042.log");
        assert_eq!(parse_segment_file_name("00000000000000000042.log", "log"), Some(42));
        assert_eq!(parse_segment_file_name("00000000000000000042.index", "log"), None);
        assert_eq!(parse_segment_file_name("42.log", "log"), None);
    }
}
