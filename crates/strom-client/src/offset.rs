//! Where a consumer starts reading a partition: an explicit [`Offset`], or for a group member
//! without a committed offset, its [`AutoOffsetReset`] policy.

/// Where to start reading a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offset {
    /// The log start offset (earliest record still stored).
    Beginning,
    /// The log end offset: only records produced from now on.
    End,
    /// An exact offset.
    At(i64),
    /// The first record with a timestamp at or after this one (ms since the epoch); the end
    /// when there is none.
    Timestamp(i64),
}

/// Where a group member starts reading a partition that has no committed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AutoOffsetReset {
    /// The log start offset.
    Earliest,
    /// The log end offset (Kafka's default).
    #[default]
    Latest,
    /// Fail: `poll` returns an error.
    None,
}

impl AutoOffsetReset {
    pub(crate) fn offset(self) -> Option<Offset> {
        match self {
            AutoOffsetReset::Earliest => Some(Offset::Beginning),
            AutoOffsetReset::Latest => Some(Offset::End),
            AutoOffsetReset::None => None,
        }
    }
}

/// Which offset [`crate::Admin::list_offsets`] and [`crate::Client::list_offsets`] look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The log end offset (the last stable offset for read_committed lookups).
    Latest,
    /// The first offset with a timestamp at or after this one (ms since the epoch).
    Timestamp(i64),
}

impl OffsetSpec {
    /// The `timestamp` field of a ListOffsets request: -2 earliest, -1 latest.
    pub(crate) fn wire(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::Timestamp(timestamp) => timestamp,
        }
    }
}

/// A partition's offset as ListOffsets found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    /// The offset; -1 when no record has a timestamp at or after the one asked for.
    pub offset: i64,
    /// The record's timestamp (ms since the epoch), -1 when unknown.
    pub timestamp: i64,
}

/// A group's committed offset of a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The next offset the group reads.
    pub offset: i64,
    /// The metadata string committed with it (empty when none).
    pub metadata: String,
}
