//! ListTransactions: which transactional ids pass the request's filters.

use super::coordinator::{lock, TxnCoordinator, TxnRef};
use super::state_record::{TxnMetadata, TxnState};

/// ListTransactions' filters; an empty list (or `None`, or a negative duration)
/// lets everything through.
#[derive(Debug, Clone, Default)]
pub struct TxnListFilter {
    /// State names as [`TxnState::name`] spells them.
    pub states: Vec<String>,
    pub producer_ids: Vec<i64>,
    /// Only transactions open at least this long (KIP-994); -1 for all.
    pub min_duration_ms: i64,
    /// A regular expression the whole transactional id must match (KIP-1152); one
    /// that does not compile filters nothing.
    pub transactional_id_pattern: Option<String>,
}

/// The answer to ListTransactions.
#[derive(Debug, Clone, Default)]
pub struct TxnListing {
    /// Sorted by transactional id.
    pub transactions: Vec<TxnMetadata>,
    /// The filter's state names that name no state.
    pub unknown_states: Vec<String>,
}

impl TxnCoordinator {
    /// ListTransactions over the transactional ids this node coordinates.
    pub fn list(&self, filter: &TxnListFilter) -> TxnListing {
        let now = self.now_ms();
        let pattern = filter
            .transactional_id_pattern
            .as_deref()
            .filter(|p| !p.is_empty())
            .and_then(|p| regex::Regex::new(&format!("^(?:{p})$")).ok());
        let txns: Vec<TxnRef> = self.txns().values().cloned().collect();
        let mut transactions: Vec<TxnMetadata> = txns
            .iter()
            .map(|t| lock(t).clone())
            .filter(|m| filter.states.is_empty() || filter.states.iter().any(|s| s == m.state.name()))
            .filter(|m| filter.producer_ids.is_empty() || filter.producer_ids.contains(&m.producer_id))
            .filter(|m| {
                filter.min_duration_ms < 0
                    || (m.state == TxnState::Ongoing && now - m.start_ms >= filter.min_duration_ms)
            })
            .filter(|m| pattern.as_ref().is_none_or(|p| p.is_match(&m.transactional_id)))
            .collect();
        transactions.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        TxnListing {
            transactions,
            unknown_states: filter
                .states
                .iter()
                .filter(|s| TxnState::from_name(s).is_none())
                .cloned()
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use strom_log::ManualClock;

    use super::*;
    use crate::broker::{Broker, BrokerConfig, NewTopic};
    use crate::group::{GroupConfig, GroupCoordinator, TopicPartition};
    use crate::txn::{InitProducerId, NoRemoteMarkers, TxnConfig};

    #[test]
    fn filters_by_state_producer_duration_and_pattern() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_000_000));
        let broker = Broker::open_with_clock(BrokerConfig::new(dir.path()), clock.clone()).unwrap();
        let topic = NewTopic {
            name: "t".into(),
            num_partitions: 1,
            replication_factor: 1,
            ..Default::default()
        };
        broker.create_topic(topic, false).unwrap();
        let groups = GroupCoordinator::open(broker.clone(), GroupConfig::default()).unwrap();
        let txns = TxnCoordinator::open(broker, groups, TxnConfig::default(), Arc::new(NoRemoteMarkers)).unwrap();
        let init = |id: &str| {
            txns.init_producer_id(&InitProducerId {
                transactional_id: Some(id.into()),
                transaction_timeout_ms: 60_000,
                producer_id: -1,
                producer_epoch: -1,
            })
            .unwrap()
        };
        let open = init("app-1");
        let idle = init("other");
        txns.add_partitions("app-1", open, &[TopicPartition::new("t", 0)])
            .unwrap();
        clock.advance_ms(5_000);
        let ids = |filter: TxnListFilter| -> Vec<String> {
            txns.list(&filter)
                .transactions
                .into_iter()
                .map(|m| m.transactional_id)
                .collect()
        };
        let all = TxnListFilter {
            min_duration_ms: -1,
            ..Default::default()
        };
        assert_eq!(ids(all.clone()), ["app-1", "other"], "sorted by id");
        let ongoing = TxnListFilter {
            states: vec!["Ongoing".into()],
            ..all.clone()
        };
        assert_eq!(ids(ongoing), ["app-1"]);
        let by_producer = TxnListFilter {
            producer_ids: vec![idle.producer_id],
            ..all.clone()
        };
        assert_eq!(ids(by_producer), ["other"]);
        let open_long = |ms| TxnListFilter {
            min_duration_ms: ms,
            ..all.clone()
        };
        assert_eq!(ids(open_long(5_000)), ["app-1"], "open 5 s by the broker's clock");
        assert!(ids(open_long(5_001)).is_empty());
        let pattern = |p: &str| TxnListFilter {
            transactional_id_pattern: Some(p.into()),
            ..all.clone()
        };
        assert_eq!(ids(pattern("app-.")), ["app-1"]);
        assert!(ids(pattern("app")).is_empty(), "the whole id must match");
        assert_eq!(
            ids(pattern("(")).len(),
            2,
            "a pattern that does not compile filters nothing"
        );
        let unknown = TxnListFilter {
            states: vec!["Ongoing".into(), "Sleeping".into()],
            ..all
        };
        assert_eq!(txns.list(&unknown).unknown_states, ["Sleeping"]);
    }
}
