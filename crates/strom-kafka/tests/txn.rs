//! Wire-level tests of the transaction APIs: the client form of AddPartitionsToTxn
//! (v0–3) and the batched, verify-only form (v4+), with Kafka's error codes; the
//! inter-broker WriteTxnMarkers.

mod common;

use kafka_protocol::messages::add_partitions_to_txn_request::{AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction};
use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strom_broker::AppendOrigin;
use strom_log::RecordBatchBuilder;
use tokio::net::TcpStream;

use common::*;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn topics(partitions: &[i32]) -> Vec<AddPartitionsToTxnTopic> {
    vec![AddPartitionsToTxnTopic::default()
        .with_name(TopicName(s("t")))
        .with_partitions(partitions.to_vec())]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_partitions_in_both_forms() {
    let h = start().await;
    let mut stream = TcpStream::connect(h.addr).await.unwrap();
    let init = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(s("app"))))
        .with_transaction_timeout_ms(60_000);
    let init: InitProducerIdResponse = call(&mut stream, ApiKey::InitProducerId, 3, &init).await;
    assert_eq!(init.error_code, 0);
    let (pid, epoch) = (init.producer_id, init.producer_epoch);

    // v3: one transaction; a missing partition fails the request, the rest are not attempted.
    let add = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(s("app")))
        .with_v3_and_below_producer_id(pid)
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(topics(&[0, 9]));
    let response: AddPartitionsToTxnResponse = call(&mut stream, ApiKey::AddPartitionsToTxn, 3, &add).await;
    let codes: Vec<i16> = response.results_by_topic_v3_and_below[0]
        .results_by_partition
        .iter()
        .map(|p| p.partition_error_code)
        .collect();
    assert_eq!(
        codes,
        vec![55, 3],
        "OPERATION_NOT_ATTEMPTED, UNKNOWN_TOPIC_OR_PARTITION"
    );
    let add = add.with_v3_and_below_topics(topics(&[0]));
    let response: AddPartitionsToTxnResponse = call(&mut stream, ApiKey::AddPartitionsToTxn, 3, &add).await;
    assert_eq!(
        response.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
        0
    );

    // v4: a batch; verify_only tells which partitions are in the transaction.
    let verify = |producer_epoch: i16| {
        AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(s("app")))
            .with_producer_id(pid)
            .with_producer_epoch(producer_epoch)
            .with_verify_only(true)
            .with_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(TopicName(s("t")))
                .with_partitions(vec![0])])
    };
    let request = AddPartitionsToTxnRequest::default().with_transactions(vec![verify(epoch), verify(epoch - 1)]);
    let response: AddPartitionsToTxnResponse = call(&mut stream, ApiKey::AddPartitionsToTxn, 4, &request).await;
    let code =
        |i: usize| response.results_by_transaction[i].topic_results[0].results_by_partition[0].partition_error_code;
    assert_eq!(
        (code(0), code(1)),
        (0, 90),
        "in the transaction; PRODUCER_FENCED for a stale epoch"
    );

    let end = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(s("app")))
        .with_producer_id(pid)
        .with_producer_epoch(epoch)
        .with_committed(true);
    let response: EndTxnResponse = call(&mut stream, ApiKey::EndTxn, 3, &end).await;
    assert_eq!(response.error_code, 0);
    let response: EndTxnResponse = call(&mut stream, ApiKey::EndTxn, 3, &end.with_committed(false)).await;
    assert_eq!(response.error_code, 48, "INVALID_TXN_STATE: abort after commit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_txn_markers_closes_an_open_transaction() {
    let h = start().await;
    let broker = h.api.broker();
    let (topic, partition) = (broker.topic("t").unwrap(), broker.partition("t", 0).unwrap());
    let mut batch = RecordBatchBuilder::new().producer(9_000, 0, 0).flags(true, false);
    batch.push(1, Some(b"k"), Some(b"v"));
    broker
        .append(&topic, &partition, &batch.build().unwrap(), AppendOrigin::Client)
        .unwrap();
    assert_eq!((partition.high_watermark(), partition.last_stable_offset()), (1, 0));

    let mut stream = TcpStream::connect(h.addr).await.unwrap();
    let request = WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
        .with_producer_id(ProducerId(9_000))
        .with_producer_epoch(0)
        .with_transaction_result(true)
        .with_topics(vec![
            WritableTxnMarkerTopic::default()
                .with_name(TopicName(s("t")))
                .with_partition_indexes(vec![0, 5]),
            WritableTxnMarkerTopic::default()
                .with_name(TopicName(s("missing")))
                .with_partition_indexes(vec![0]),
        ])]);
    for attempt in 0..2 {
        let response: WriteTxnMarkersResponse = call(&mut stream, ApiKey::WriteTxnMarkers, 1, &request).await;
        let marker = &response.markers[0];
        assert_eq!(marker.producer_id, ProducerId(9_000));
        let codes: Vec<(String, i32, i16)> = marker
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |p| (t.name.0.to_string(), p.partition_index, p.error_code))
            })
            .collect();
        assert_eq!(
            codes,
            vec![("t".into(), 0, 0), ("t".into(), 5, 3), ("missing".into(), 0, 3)],
            "written; UNKNOWN_TOPIC_OR_PARTITION twice"
        );
        // The second marker (a retry) closes nothing more and fails nothing.
        let end = 2 + attempt;
        assert_eq!((partition.high_watermark(), partition.last_stable_offset()), (end, end));
    }
}
