//! Kafka helpers for tests and benches: unique topic sets, producing native events,
//! reading topics to their end, waiting for a group's committed offsets, and reading the
//! state changelog back into an [`Engine`].

#![allow(dead_code)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, OwnedMessage};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};

use riskd::config::Config;
use riskd::engine::Engine;
use riskd::signal::Signal;

/// One test's topics and group, unique on a shared broker.
#[derive(Debug, Clone)]
pub struct Topics {
    pub input: String,
    pub signals: String,
    pub state: String,
    pub dead_letter: String,
    pub group: String,
}

impl Topics {
    pub fn new(name: &str) -> Self {
        let tag = format!("{name}-{}", std::process::id());
        Topics {
            input: format!("{tag}.activity"),
            signals: format!("{tag}.signals"),
            state: format!("{tag}.state"),
            dead_letter: format!("{tag}.dlq"),
            group: format!("{tag}.riskd"),
        }
    }

    /// Waits (up to a minute) until riskd's group has committed the end of the input
    /// topic: every record produced so far is acknowledged end to end.
    pub fn wait_input_drained(&self, bootstrap: &str) {
        wait_committed_to_end(bootstrap, &self.group, &self.input, Duration::from_secs(60));
    }

    /// `RISKD__KAFKA__*` variables pointing riskd at these topics.
    pub fn env(&self, bootstrap: &str) -> Vec<(String, String)> {
        [
            ("BROKERS", bootstrap),
            ("GROUP_ID", &self.group),
            ("INPUT_TOPIC", &self.input),
            ("SIGNALS_TOPIC", &self.signals),
            ("STATE_TOPIC", &self.state),
            ("DEAD_LETTER_TOPIC", &self.dead_letter),
        ]
        .into_iter()
        .map(|(k, v)| (format!("RISKD__KAFKA__{k}"), v.to_string()))
        .collect()
    }

    /// The same settings applied to a config, for in-process use.
    pub fn apply(&self, bootstrap: &str, config: &mut Config) {
        config.kafka.brokers = bootstrap.to_string();
        config.kafka.group_id = self.group.clone();
        config.kafka.input_topic = self.input.clone();
        config.kafka.signals_topic = self.signals.clone();
        config.kafka.state_topic = self.state.clone();
        config.kafka.dead_letter_topic = self.dead_letter.clone();
    }
}

pub fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client")
}

/// Creates `topic` with `partitions` (before riskd starts, so the test picks the count).
pub async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let results = admin(bootstrap)
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("create topics");
    for r in results {
        r.expect("topic created");
    }
}

/// A native activity event as JSON.
pub fn native_event(
    identity: &str,
    time_ms: i64,
    seq: usize,
    action: &str,
    destination: &str,
    outcome: &str,
) -> Vec<u8> {
    serde_json::json!({
        "time": time_ms,
        "identity": identity,
        "action": action,
        "destination": destination,
        "event_id": format!("{identity}#{seq}"),
        "identity_kind": "service_account",
        "source_network": "vpc-a",
        "outcome": outcome,
        "bytes": 1000 + (seq % 7) * 100,
    })
    .to_string()
    .into_bytes()
}

/// A deterministic workload: `identities` × `per_identity` events, interleaved
/// round-robin, one second apart in event time from `start_ms`, keyed by identity.
/// Some calls fail and some go to new destinations so scores move.
pub fn workload(
    prefix: &str,
    identities: usize,
    per_identity: usize,
    start_ms: i64,
) -> Vec<(String, Vec<u8>)> {
    workload_spaced(prefix, identities, per_identity, start_ms, 1000)
}

/// [`workload`] with `spacing_ms` of event time between consecutive events.
///
/// Keep the whole workload's event-time span well under `decode.max_lateness` (1 h)
/// when it is read from several partitions: riskd's engine has one event-time
/// watermark, and partitions are consumed in chunks, so a partition can run ahead of
/// another by a large part of the span and make its events `too_late`.
pub fn workload_spaced(
    prefix: &str,
    identities: usize,
    per_identity: usize,
    start_ms: i64,
    spacing_ms: i64,
) -> Vec<(String, Vec<u8>)> {
    let mut records = Vec::with_capacity(identities * per_identity);
    for seq in 0..per_identity {
        for i in 0..identities {
            let identity = format!("{prefix}-sa-{i:04}");
            let n = records.len();
            let outcome = if (seq + i) % 9 == 0 {
                "denied"
            } else {
                "success"
            };
            let destination = format!("svc-{}.internal/api/{}", i % 5, seq % (3 + i % 4));
            let action = if seq % 11 == 5 {
                "POST /v1/export"
            } else {
                "GET /v1/items"
            };
            records.push((
                identity.clone(),
                native_event(
                    &identity,
                    start_ms + n as i64 * spacing_ms,
                    seq,
                    action,
                    &destination,
                    outcome,
                ),
            ));
        }
    }
    records
}

/// Produces keyed records and waits until the broker acknowledged all of them.
pub fn produce(bootstrap: &str, topic: &str, records: &[(Option<String>, Vec<u8>)]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        // Unkeyed records go to a random partition each, as from many producers. With
        // librdkafka's default sticky partitioning (10 ms) a fast burst of them all
        // lands in one partition, and the repartition test saw its input unspread.
        .set("sticky.partitioning.linger.ms", "0")
        .set("message.timeout.ms", "60000")
        .set("queue.buffering.max.messages", "1000000")
        // Room for the oversized records the dead-letter test sends.
        .set("message.max.bytes", "4000000")
        .create()
        .expect("producer");
    for (key, value) in records {
        let mut record = BaseRecord::<[u8], [u8]>::to(topic).payload(value.as_slice());
        if let Some(k) = key {
            record = record.key(k.as_bytes());
        }
        let mut pending = record;
        loop {
            match producer.send(pending) {
                Ok(()) => break,
                Err((_, back)) => {
                    pending = back;
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer
        .flush(Duration::from_secs(60))
        .expect("all test records acknowledged");
}

/// `produce` for (identity, bytes) pairs keyed by identity.
pub fn produce_keyed(bootstrap: &str, topic: &str, records: &[(String, Vec<u8>)]) {
    let keyed: Vec<(Option<String>, Vec<u8>)> = records
        .iter()
        .map(|(k, v)| (Some(k.clone()), v.clone()))
        .collect();
    produce(bootstrap, topic, &keyed);
}

fn reader(bootstrap: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("test-reader-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("reader")
}

pub fn partitions(bootstrap: &str, topic: &str) -> Vec<i32> {
    let consumer = reader(bootstrap);
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect()
}

/// Every record of `topic` up to its current end, in offset order per partition.
///
/// The end is found by reading to partition EOF, not with ListOffsets: Tansu answers
/// ListOffsets(latest) with one past the base offset of the last record batch.
pub fn read_all(bootstrap: &str, topic: &str) -> Vec<OwnedMessage> {
    let parts = partitions(bootstrap, topic);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("test-reader-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("reader");
    let mut tpl = TopicPartitionList::new();
    for &p in &parts {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let mut remaining: std::collections::HashSet<i32> = parts.into_iter().collect();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !remaining.is_empty() {
        assert!(Instant::now() < deadline, "timed out reading {topic}");
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => out.push(m.detach()),
            Some(Err(KafkaError::PartitionEOF(p))) => {
                remaining.remove(&p);
            }
            None => {}
            Some(Err(e)) => panic!("reading {topic}: {e}"),
        }
    }
    out
}

/// True end offsets per partition (one past the last record), by reading to the end.
pub fn end_offsets(bootstrap: &str, topic: &str) -> HashMap<i32, i64> {
    let mut ends: HashMap<i32, i64> = partitions(bootstrap, topic)
        .into_iter()
        .map(|p| (p, 0))
        .collect();
    for m in read_all(bootstrap, topic) {
        let end = ends.entry(m.partition()).or_insert(0);
        *end = (*end).max(m.offset() + 1);
    }
    ends
}

/// Last signal per identity on the signals topic (a key always maps to one partition,
/// and offset order within it is publish order).
pub fn last_signals(bootstrap: &str, topic: &str) -> HashMap<String, Signal> {
    let mut last = HashMap::new();
    for m in read_all(bootstrap, topic) {
        if let Some(payload) = m.payload() {
            let signal: Signal = serde_json::from_slice(payload).expect("signal JSON");
            last.insert(signal.identity.clone(), signal);
        }
    }
    last
}

/// Header value as a string.
pub fn header(m: &OwnedMessage, key: &str) -> Option<String> {
    m.headers().and_then(|h| {
        h.iter()
            .find(|x| x.key == key)
            .and_then(|x| x.value.map(|v| String::from_utf8_lossy(v).into_owned()))
    })
}

/// Committed offsets of `group` on `topic`, per partition (-1 when none).
pub fn committed(bootstrap: &str, group: &str, topic: &str) -> HashMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("committed reader");
    let mut tpl = TopicPartitionList::new();
    for p in partitions(bootstrap, topic) {
        tpl.add_partition(topic, p);
    }
    match consumer.committed_offsets(tpl, Duration::from_secs(10)) {
        Ok(tpl) => tpl
            .elements()
            .iter()
            .map(|e| (e.partition(), e.offset().to_raw().unwrap_or(-1)))
            .collect(),
        Err(_) => HashMap::new(),
    }
}

/// Waits until `group` has committed the end of every partition of `topic`: every
/// record acknowledged end to end (signals, dead letters, state).
pub fn wait_committed_to_end(bootstrap: &str, group: &str, topic: &str, within: Duration) {
    let ends = end_offsets(bootstrap, topic);
    let deadline = Instant::now() + within;
    loop {
        let done = committed(bootstrap, group, topic);
        if ends
            .iter()
            .all(|(p, &end)| end == 0 || done.get(p).is_some_and(|&c| c >= end))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "group {group} did not commit the end of {topic} within {within:?}: ends {ends:?}, committed {done:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Restores the whole state changelog into a fresh engine, as a new owner would, and
/// returns `events_seen` per identity.
pub fn changelog_events_seen(
    bootstrap: &str,
    topic: &str,
    config: &Config,
) -> HashMap<String, u64> {
    let mut engine = Engine::new(config);
    let mut identities = Vec::new();
    for m in read_all(bootstrap, topic) {
        let identity = String::from_utf8(m.key().expect("state key").to_vec()).expect("utf8 key");
        match m.payload() {
            Some(value) => {
                use riskd::service::changelog::{decode_record, Record};
                let value = match decode_record(value).expect("changelog value") {
                    Record::State(value) => value,
                    // A dormant identity's marker: no state, no events to count.
                    Record::Dormant(_) => {
                        engine.forget(&identity);
                        continue;
                    }
                };
                engine
                    .restore(&identity, value.snapshot)
                    .expect("engine restores");
                identities.push(identity);
            }
            None => {
                engine.forget(&identity);
            }
        }
    }
    identities
        .into_iter()
        .filter_map(|id| engine.events_seen(&id).map(|n| (id, n)))
        .collect()
}

/// Expected event count per identity in a workload.
pub fn counts(records: &[(String, Vec<u8>)]) -> HashMap<String, u64> {
    let mut counts = HashMap::new();
    for (identity, _) in records {
        *counts.entry(identity.clone()).or_insert(0) += 1;
    }
    counts
}
