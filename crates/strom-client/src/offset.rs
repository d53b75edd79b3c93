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
