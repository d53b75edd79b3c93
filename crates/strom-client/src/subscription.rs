//! What a group member subscribes to: a list of topics or a pattern matched against the
//! cluster's topics.

use crate::error::{Error, Result};

/// What a member subscribes to.
#[derive(Debug, Clone)]
pub(crate) enum Subscription {
    /// These topics.
    Topics(Vec<String>),
    /// Every topic whose whole name matches the pattern (Java's `Pattern.matcher().matches()`).
    Pattern {
        /// The pattern as given.
        source: String,
        /// The pattern anchored at both ends.
        regex: regex::Regex,
    },
}

impl Subscription {
    /// A pattern subscription; the pattern must match whole topic names.
    pub fn pattern(source: &str) -> Result<Self> {
        let regex = regex::Regex::new(&format!("^(?:{source})$"))
            .map_err(|error| Error::Config(format!("invalid topic pattern {source:?}: {error}")))?;
        Ok(Subscription::Pattern {
            source: source.to_string(),
            regex,
        })
    }

    /// The subscribed topics among `topics` (names of the cluster's non-internal topics for
    /// a pattern), sorted.
    pub fn matching<'a>(&self, topics: impl Iterator<Item = &'a str>) -> Vec<String> {
        let mut out: Vec<String> = match self {
            Subscription::Topics(names) => names.clone(),
            Subscription::Pattern { regex, .. } => {
                topics.filter(|name| regex.is_match(name)).map(str::to_string).collect()
            }
        };
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_matches_whole_topic_names_only() {
        let subscription = Subscription::pattern("metrics-.*|logs").expect("valid pattern");
        let topics = ["metrics-a", "metrics-", "old-metrics-a", "logs", "logs-2", "other"];
        assert_eq!(
            subscription.matching(topics.into_iter()),
            ["logs", "metrics-", "metrics-a"]
        );
        assert!(Subscription::pattern("(").is_err());
        let names = Subscription::Topics(vec!["b".into(), "a".into(), "b".into()]);
        assert_eq!(names.matching(std::iter::empty()), ["a", "b"]);
    }
}
