//! The Kafka sink of `riskd run`: one idempotent producer for every effect of an event
//! (risk signals, dead-lettered records, state changelog writes), with delivery reports
//! handed back to the pipeline so it can store offsets only for acknowledged work
//! (design §7, at-least-once).
//!
//! Every record carries a [`Token`] saying which input record (or which state batch) it
//! belongs to. librdkafka's producer thread calls [`DeliveryContext::delivery`] when the
//! broker acknowledges or permanently refuses a record; the context turns that into an
//! [`Ack`] on a channel the pipeline drains. Nothing here decides about offsets.
//!
//! Failures: `message.timeout.ms` is 0 (unlimited), so librdkafka retries transient
//! errors (broker down, paused, leader moving) forever, in order (idempotence on). A
//! delivery that still fails is permanent for that attempt (e.g. a record too large);
//! the report then carries an owned copy of the record so the pipeline can re-enqueue
//! it after a backoff instead of losing it.
//!
//! Topics: [`ensure_topics`] creates any missing topic the service needs, with
//! `cleanup.policy=compact` for the keyed signals and state topics.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, Sender};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::Message;

use crate::config::KafkaConfig;
use crate::decode::RejectReason;
use crate::signal::Level;

/// Header carrying the rejection reason (a `RejectReason` name) on dead-lettered records.
pub const HEADER_REASON: &str = "riskd-reason";
/// Header carrying the human-readable rejection detail.
pub const HEADER_DETAIL: &str = "riskd-detail";
/// Headers locating the original record.
pub const HEADER_SOURCE_TOPIC: &str = "riskd-source-topic";
pub const HEADER_SOURCE_PARTITION: &str = "riskd-source-partition";
pub const HEADER_SOURCE_OFFSET: &str = "riskd-source-offset";
/// On a dead letter cut to [`DEAD_LETTER_MAX_BYTES`]: the original record's size.
pub const HEADER_ORIGINAL_BYTES: &str = "riskd-original-bytes";

/// Largest dead-letter payload: under librdkafka's default `message.max.bytes`
/// (1,000,000), with room for the headers. An input record may be larger (up to
/// `decode.max_record_bytes`, a CloudTrail envelope many times that): its copy is cut
/// to this, and the record itself stays in the input topic at the offset the headers
/// name. A copy the producer refuses would be retried for ever and hold back every
/// commit behind it.
pub const DEAD_LETTER_MAX_BYTES: usize = 900_000;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot create the Kafka producer: {0}")]
    Create(KafkaError),
    #[error("cannot create topics: {0}")]
    Admin(KafkaError),
    #[error("cannot create topic `{topic}`: {code}")]
    Topic {
        topic: String,
        code: RDKafkaErrorCode,
    },
    #[error("cannot read metadata of topic `{topic}`: {source}")]
    Metadata { topic: String, source: KafkaError },
    #[error(
        "state topic `{state}` has {state_partitions} partitions but input topic `{input}` has \
         {input_partitions}; the changelog must use the input's partition numbers \
         (add partitions to `kafka.state_topic` to match, recreate it, or choose another \
         name)"
    )]
    StatePartitions {
        state: String,
        state_partitions: usize,
        input: String,
        input_partitions: usize,
    },
}

/// What a produced record is an effect of, returned with its delivery report.
#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    /// A signal caused by the input record at (`partition`, `offset`).
    Signal {
        partition: i32,
        offset: i64,
        level: Level,
        /// Event time of the signal, for `event_to_signal_seconds`.
        time_ms: i64,
    },
    /// A decay signal emitted while the input was idle (`kafka.idle_advance`). No input
    /// offset waits for it; state batches do, so the changelog never records an emitted
    /// score the signals topic has not received.
    Decay { level: Level },
    /// An event of the input record at (`partition`, `offset`), re-produced keyed by
    /// identity to the repartition topic.
    Routed { partition: i32, offset: i64 },
    /// A dead-lettered copy of the input record at (`partition`, `offset`).
    DeadLetter { partition: i32, offset: i64 },
    /// One identity's state in changelog batch `batch`.
    State { batch: u64 },
    /// A signals-topic tombstone for an evicted identity. No offset waits for it: if it
    /// is lost, followers keep a stale last signal until the next eviction, nothing more.
    Forgotten,
}

/// An owned copy of a record, kept only when a delivery failed and must be re-sent.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub topic: String,
    pub partition: Option<i32>,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Outgoing {
    fn from_message<M: Message>(message: &M) -> Self {
        let headers = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|header| {
                        (
                            header.key.to_string(),
                            header.value.map(<[u8]>::to_vec).unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Outgoing {
            topic: message.topic().to_string(),
            partition: Some(message.partition()),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            headers,
        }
    }
}

/// A delivery report: `Ok` once the broker acknowledged the record.
#[derive(Debug)]
pub struct Ack {
    pub token: Token,
    pub result: Result<(), (KafkaError, Box<Outgoing>)>,
}

/// Producer context: forwards delivery reports to the pipeline and librdkafka's log to
/// `tracing`.
pub struct DeliveryContext {
    acks: Sender<Ack>,
}

impl ClientContext for DeliveryContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        forward_log("producer", level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // Transient broker errors are retried by librdkafka; they are worth a warning
        // (an operator wants to see an outage) but never fatal.
        tracing::warn!(client = "producer", %error, reason, "kafka client error");
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<Token>;

    fn delivery(&self, result: &DeliveryResult<'_>, token: Box<Token>) {
        let result = match result {
            Ok(_) => Ok(()),
            Err((error, message)) => {
                Err((error.clone(), Box::new(Outgoing::from_message(message))))
            }
        };
        // The receiver only goes away when the pipeline has finished; a late report then
        // has no one left to care.
        let _ = self.acks.send(Ack {
            token: *token,
            result,
        });
    }
}

/// Maps librdkafka's syslog-style levels onto `tracing`.
pub fn forward_log(client: &'static str, level: RDKafkaLogLevel, fac: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => tracing::error!(client, fac, "{message}"),
        RDKafkaLogLevel::Warning => tracing::warn!(client, fac, "{message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(client, fac, "{message}")
        }
        RDKafkaLogLevel::Debug => tracing::debug!(client, fac, "{message}"),
    }
}

/// Base client config shared by every riskd Kafka client: bootstrap servers plus the
/// operator's pass-through `kafka.properties` (TLS, SASL, tuning). Values may be secrets:
/// this config is never formatted into a log line.
pub fn client_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &kafka.brokers);
    for (key, value) in &kafka.properties {
        config.set(key, value);
    }
    // rust-rdkafka derives librdkafka's log level from the `log` crate, which riskd does
    // not use (it logs with `tracing`); without this librdkafka's warnings would vanish.
    // A `log_level` property (0-7, syslog levels) raises it, e.g. with `debug = "cgrp"`.
    let level = kafka
        .properties
        .get("log_level")
        .and_then(|l| l.trim().parse::<u8>().ok())
        .map_or(RDKafkaLogLevel::Warning, |l| match l {
            0 => RDKafkaLogLevel::Emerg,
            1 => RDKafkaLogLevel::Alert,
            2 => RDKafkaLogLevel::Critical,
            3 => RDKafkaLogLevel::Error,
            4 => RDKafkaLogLevel::Warning,
            5 => RDKafkaLogLevel::Notice,
            6 => RDKafkaLogLevel::Info,
            _ => RDKafkaLogLevel::Debug,
        });
    config.set_log_level(level);
    config
}

/// The producer riskd writes every effect with.
pub type Producer = ThreadedProducer<DeliveryContext>;

/// Creates the producer and the receiver its delivery reports arrive on.
pub fn create_producer(kafka: &KafkaConfig) -> Result<(Producer, Receiver<Ack>), SinkError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let mut config = client_config(kafka);
    // Our defaults go first so `kafka.properties` can tune them ...
    let defaults = [
        ("linger.ms", "5".to_string()),
        ("compression.type", "none".to_string()),
        ("batch.num.messages", "10000".to_string()),
    ];
    for (key, value) in defaults {
        if !kafka.properties.contains_key(key) {
            config.set(key, value);
        }
    }
    // ... but these carry the at-least-once guarantee and are not negotiable:
    // - unlimited delivery timeout: a broker outage delays records, never drops them;
    // - idempotence: librdkafka's endless retries neither duplicate nor reorder records,
    //   so the last changelog value per identity is really the newest state;
    // - a bounded queue: when the broker is slow, `send` reports QueueFull and the
    //   pipeline stops consuming (backpressure) instead of buffering without limit.
    config
        .set("message.timeout.ms", "0")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set(
            "queue.buffering.max.messages",
            kafka.producer_queue.to_string(),
        );
    let producer = config
        .create_with_context(DeliveryContext { acks: tx })
        .map_err(SinkError::Create)?;
    Ok((producer, rx))
}

/// True when a send failed only because the bounded producer queue is full.
pub fn is_queue_full(error: &KafkaError) -> bool {
    matches!(
        error,
        KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)
    )
}

/// Headers for a dead-lettered record: the reason (a stable snake_case name), the
/// detail, and where the original came from so an operator can find and replay it.
pub fn dead_letter_headers(
    reason: RejectReason,
    detail: &str,
    topic: &str,
    partition: i32,
    offset: i64,
) -> OwnedHeaders {
    let partition = partition.to_string();
    let offset = offset.to_string();
    OwnedHeaders::new_with_capacity(5)
        .insert(Header {
            key: HEADER_REASON,
            value: Some(reason.as_str()),
        })
        .insert(Header {
            key: HEADER_DETAIL,
            value: Some(detail),
        })
        .insert(Header {
            key: HEADER_SOURCE_TOPIC,
            value: Some(topic),
        })
        .insert(Header {
            key: HEADER_SOURCE_PARTITION,
            value: Some(partition.as_str()),
        })
        .insert(Header {
            key: HEADER_SOURCE_OFFSET,
            value: Some(offset.as_str()),
        })
}

/// Copies headers out of a record for a later re-send.
pub fn headers_to_vec(headers: &OwnedHeaders) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .map(|h| {
            (
                h.key.to_string(),
                h.value.map(<[u8]>::to_vec).unwrap_or_default(),
            )
        })
        .collect()
}

/// Rebuilds headers from an [`Outgoing`] copy for a re-send.
pub fn owned_headers(headers: &[(String, Vec<u8>)]) -> Option<OwnedHeaders> {
    if headers.is_empty() {
        return None;
    }
    let mut owned = OwnedHeaders::new_with_capacity(headers.len());
    for (key, value) in headers {
        owned = owned.insert(Header {
            key: key.as_str(),
            value: Some(value.as_slice()),
        });
    }
    Some(owned)
}

/// Partition counts of the service's topics, as [`ensure_topics`] found them.
#[derive(Debug, Clone, Copy)]
pub struct TopicPartitions {
    pub input: usize,
    pub state: usize,
}

/// Creates whichever of the service's topics are missing and returns the partition
/// counts. The state topic is created with the input's partition count, because each
/// identity's state lives on the partition number its events come from.
pub async fn ensure_topics(kafka: &KafkaConfig) -> Result<TopicPartitions, SinkError> {
    let admin: AdminClient<DefaultClientContext> =
        client_config(kafka).create().map_err(SinkError::Admin)?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let replication = || TopicReplication::Fixed(kafka.topic_replication);

    // The input first: its partition count decides the state topic's.
    create(
        &admin,
        &options,
        NewTopic::new(&kafka.input_topic, kafka.topic_partitions, replication()),
    )
    .await?;
    let input_partitions = partition_count(&admin, &kafka.input_topic)?;
    let state_count = i32::try_from(input_partitions).unwrap_or(i32::MAX);
    let compact: BTreeMap<&str, &str> = [("cleanup.policy", "compact")].into();
    let mut signals = NewTopic::new(&kafka.signals_topic, kafka.topic_partitions, replication());
    let mut state = NewTopic::new(&kafka.state_topic, state_count, replication());
    for (key, value) in &compact {
        signals = signals.set(key, value);
        state = state.set(key, value);
    }
    create(&admin, &options, signals).await?;
    create(&admin, &options, state).await?;
    create(
        &admin,
        &options,
        NewTopic::new(
            &kafka.dead_letter_topic,
            kafka.topic_partitions,
            replication(),
        ),
    )
    .await?;

    let state_partitions = partition_count(&admin, &kafka.state_topic)?;
    if state_partitions < input_partitions {
        return Err(SinkError::StatePartitions {
            state: kafka.state_topic.clone(),
            state_partitions,
            input: kafka.input_topic.clone(),
            input_partitions,
        });
    }
    Ok(TopicPartitions {
        input: input_partitions,
        state: state_partitions,
    })
}

/// Creates `topic` with the configured partitions and replication if it is missing (the
/// generator's target when it feeds a broker with topic auto-creation off).
pub async fn ensure_topic(kafka: &KafkaConfig, topic: &str) -> Result<(), SinkError> {
    let admin: AdminClient<DefaultClientContext> =
        client_config(kafka).create().map_err(SinkError::Admin)?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let replication = TopicReplication::Fixed(kafka.topic_replication);
    create(
        &admin,
        &options,
        NewTopic::new(topic, kafka.topic_partitions, replication),
    )
    .await
}

async fn create(
    admin: &AdminClient<DefaultClientContext>,
    options: &AdminOptions,
    topic: NewTopic<'_>,
) -> Result<(), SinkError> {
    let results = admin
        .create_topics([&topic], options)
        .await
        .map_err(SinkError::Admin)?;
    for result in results {
        match result {
            Ok(name) => tracing::info!(topic = %name, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(SinkError::Topic { topic: name, code }),
        }
    }
    Ok(())
}

/// Partition count of `topic` from fresh metadata.
pub fn partition_count<C: ClientContext>(
    admin: &AdminClient<C>,
    topic: &str,
) -> Result<usize, SinkError> {
    let metadata = admin
        .inner()
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|source| SinkError::Metadata {
            topic: topic.to_string(),
            source,
        })?;
    let count = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map(|t| t.partitions().len())
        .unwrap_or(0);
    if count == 0 {
        return Err(SinkError::Metadata {
            topic: topic.to_string(),
            source: KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownTopicOrPartition),
        });
    }
    Ok(count)
}

/// True for delivery errors that a later re-send cannot fix by itself but that an
/// operator can (a record over the broker's size limit, missing authorisation). Used
/// only to pick the log level: the record is re-sent either way.
pub fn is_permanent(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
                | RDKafkaErrorCode::InvalidRecord
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_headers_name_reason_and_origin() {
        let headers = dead_letter_headers(RejectReason::InvalidJson, "bad", "in", 3, 42);
        let pairs: Vec<(String, String)> = headers
            .iter()
            .map(|h| {
                (
                    h.key.to_string(),
                    String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                )
            })
            .collect();
        assert_eq!(
            pairs,
            vec![
                (HEADER_REASON.into(), "invalid_json".into()),
                (HEADER_DETAIL.into(), "bad".into()),
                (HEADER_SOURCE_TOPIC.into(), "in".into()),
                (HEADER_SOURCE_PARTITION.into(), "3".into()),
                (HEADER_SOURCE_OFFSET.into(), "42".into()),
            ]
        );
    }

    #[test]
    fn properties_pass_through_but_guarantees_win() {
        let mut kafka = crate::config::Config::default_config()
            .expect("defaults")
            .kafka;
        kafka.properties.insert("linger.ms".into(), "50".into());
        kafka
            .properties
            .insert("message.timeout.ms".into(), "1000".into());
        let config = client_config(&kafka);
        assert_eq!(config.get("linger.ms"), Some("50"));
        // client_config only passes through; create_producer overrides the guarantee.
        assert_eq!(config.get("message.timeout.ms"), Some("1000"));
    }
}
