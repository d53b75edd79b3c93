//! Compatibility levels (Confluent's `CompatibilityLevel`) and how a new schema is
//! checked against a subject's earlier versions: which versions, in which direction.
//! The schema types supply the pairwise reader/writer check.

use std::str::FromStr;

/// A subject's (or the registry's) compatibility level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CompatibilityLevel {
    None,
    /// The new schema reads data written with the latest version.
    #[default]
    Backward,
    /// ... with every earlier version.
    BackwardTransitive,
    /// The latest version reads data written with the new schema.
    Forward,
    ForwardTransitive,
    /// Both directions.
    Full,
    FullTransitive,
}

impl CompatibilityLevel {
    pub const ALL: [CompatibilityLevel; 7] = [
        CompatibilityLevel::None,
        CompatibilityLevel::Backward,
        CompatibilityLevel::BackwardTransitive,
        CompatibilityLevel::Forward,
        CompatibilityLevel::ForwardTransitive,
        CompatibilityLevel::Full,
        CompatibilityLevel::FullTransitive,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CompatibilityLevel::None => "NONE",
            CompatibilityLevel::Backward => "BACKWARD",
            CompatibilityLevel::BackwardTransitive => "BACKWARD_TRANSITIVE",
            CompatibilityLevel::Forward => "FORWARD",
            CompatibilityLevel::ForwardTransitive => "FORWARD_TRANSITIVE",
            CompatibilityLevel::Full => "FULL",
            CompatibilityLevel::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    fn transitive(self) -> bool {
        matches!(
            self,
            CompatibilityLevel::BackwardTransitive
                | CompatibilityLevel::ForwardTransitive
                | CompatibilityLevel::FullTransitive
        )
    }

    /// (the new schema must read the old, the old must read the new).
    fn directions(self) -> (bool, bool) {
        match self {
            CompatibilityLevel::None => (false, false),
            CompatibilityLevel::Backward | CompatibilityLevel::BackwardTransitive => (true, false),
            CompatibilityLevel::Forward | CompatibilityLevel::ForwardTransitive => (false, true),
            CompatibilityLevel::Full | CompatibilityLevel::FullTransitive => (true, true),
        }
    }
}

/// A level name the registry does not know (Confluent's 42203).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive")]
pub struct InvalidLevel;

impl FromStr for CompatibilityLevel {
    type Err = InvalidLevel;

    /// Case-insensitive, as Confluent accepts it.
    fn from_str(s: &str) -> Result<Self, InvalidLevel> {
        CompatibilityLevel::ALL
            .into_iter()
            .find(|level| level.name().eq_ignore_ascii_case(s.trim()))
            .ok_or(InvalidLevel)
    }
}

/// Checks `new` against `previous` (live versions, newest first) at `level`, with
/// `reader_incompatibilities(reader, writer)` giving why a reader cannot read a
/// writer's data. Plain levels check the newest version only; transitive ones every
/// version, newest first, stopping at the first that fails. Returns the messages
/// (empty: compatible).
pub fn check<S>(
    level: CompatibilityLevel,
    new: &S,
    previous: &[&S],
    reader_incompatibilities: impl Fn(&S, &S) -> Vec<String>,
) -> Vec<String> {
    let (backward, forward) = level.directions();
    let versions = if level.transitive() {
        previous
    } else {
        &previous[..previous.len().min(1)]
    };
    for old in versions {
        let mut messages = Vec::new();
        if backward {
            messages.extend(reader_incompatibilities(new, old));
        }
        if forward {
            messages.extend(reader_incompatibilities(old, new));
        }
        if !messages.is_empty() {
            return messages;
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avro::{reader_incompatibilities, AvroSchema};

    fn record(fields: &str) -> AvroSchema {
        AvroSchema::parse(&format!(r#"{{"type":"record","name":"R","fields":[{fields}]}}"#), &[]).unwrap()
    }

    fn avro(level: CompatibilityLevel, new: &AvroSchema, previous: &[&AvroSchema]) -> Vec<String> {
        check(level, new, previous, |r, w| {
            reader_incompatibilities(r, w).iter().map(ToString::to_string).collect()
        })
    }

    #[test]
    fn levels_parse_in_any_case_and_default_to_backward() {
        assert_eq!("full_transitive".parse(), Ok(CompatibilityLevel::FullTransitive));
        assert_eq!(" Forward ".parse(), Ok(CompatibilityLevel::Forward));
        assert_eq!("sideways".parse::<CompatibilityLevel>(), Err(InvalidLevel));
        assert_eq!(CompatibilityLevel::default(), CompatibilityLevel::Backward);
        for level in CompatibilityLevel::ALL {
            assert_eq!(level.name().parse(), Ok(level));
        }
    }

    /// v1 {a}, v2 {a, b with default}, new {a, c without default}: adding `c` without a
    /// default breaks reading old data (backward) but not being read (forward).
    #[test]
    fn each_level_checks_its_direction_and_its_versions() {
        let v1 = record(r#"{"name":"a","type":"int"}"#);
        let v2 = record(r#"{"name":"a","type":"int"},{"name":"b","type":"int","default":0}"#);
        let adds_required = record(r#"{"name":"a","type":"int"},{"name":"c","type":"int"}"#);
        let previous = [&v2, &v1];
        use CompatibilityLevel::*;
        for (level, compatible) in [
            (None, true),
            (Backward, false),
            (BackwardTransitive, false),
            (Forward, true),
            (ForwardTransitive, true),
            (Full, false),
            (FullTransitive, false),
        ] {
            assert_eq!(
                avro(level, &adds_required, &previous).is_empty(),
                compatible,
                "{level:?}"
            );
        }
        // Dropping `a` (no default in the old schemas): new reads old, but old readers
        // need `a`.
        let drops_a = record(r#"{"name":"b","type":"int","default":0}"#);
        assert!(avro(Backward, &drops_a, &previous).is_empty());
        assert!(!avro(Forward, &drops_a, &previous).is_empty());
    }

    /// Only transitive levels look past the latest version.
    #[test]
    fn transitive_levels_check_every_version() {
        let v1 = record(r#"{"name":"a","type":"int"}"#);
        let v2 = record(r#"{"name":"a","type":"int","default":1}"#);
        let v3 = record(r#"{"name":"z","type":"int","default":1}"#);
        // v3 reads v2's data (z defaults) and v1's too; for FORWARD, v2 reads v3's data
        // (a defaults) but v1 cannot (its `a` has no default).
        assert!(avro(CompatibilityLevel::Forward, &v3, &[&v2, &v1]).is_empty());
        let messages = avro(CompatibilityLevel::ForwardTransitive, &v3, &[&v2, &v1]);
        assert_eq!(messages.len(), 1);
        assert!(
            messages[0].contains("READER_FIELD_MISSING_DEFAULT_VALUE"),
            "{messages:?}"
        );
        assert!(avro(CompatibilityLevel::Full, &v3, &[]).is_empty(), "nothing to break");
    }
}
