//! `riskd generate --kafka`: the synthetic fleet produced into a Kafka topic (design §9,
//! "to files or to Kafka"), keyed by identity like real gateway and audit feeds, so a
//! deployment (or the docker-compose stack) can be exercised end to end without files.
//!
//! Events go out in event-time order, optionally paced to a rate so the stream looks
//! live to the consumer. Delivery is checked: the command reports how many records the
//! broker acknowledged and fails if any were refused, so a half-written fleet is never
//! mistaken for a complete one. The labels file is written first, as with files.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use super::{write_native, Fleet, GenerateOptions};
use crate::config::KafkaConfig;
use crate::sink::kafka::{client_config, ensure_topic, is_queue_full, SinkError};

/// Longest wait for outstanding deliveries at the end.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot write {path}")]
    Labels {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot encode labels: {0}")]
    Encode(#[from] serde_json::Error),
    #[error(transparent)]
    Kafka(#[from] SinkError),
    #[error("cannot produce to topic `{topic}`: {source}")]
    Produce { topic: String, source: KafkaError },
    #[error(
        "{failed} of {sent} records to topic `{topic}` were not acknowledged (first error: \
         {first}); the topic holds an incomplete fleet"
    )]
    Undelivered {
        topic: String,
        sent: u64,
        failed: u64,
        first: String,
    },
}

/// What went out.
#[derive(Debug, Clone)]
pub struct PublishSummary {
    pub events: u64,
    pub bytes: u64,
    pub identities: usize,
    pub attacks: usize,
    pub elapsed: Duration,
}

/// Counts refused deliveries (librdkafka calls this on its own thread).
#[derive(Default)]
struct Deliveries {
    failed: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
}

struct Context(Arc<Deliveries>);

impl ClientContext for Context {}

impl ProducerContext for Context {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, _)) = result {
            self.0.failed.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut first) = self.0.first_error.lock() {
                first.get_or_insert_with(|| error.to_string());
            }
        }
    }
}

/// Generates the fleet into `topic` (created if missing) and its labels into `labels`.
/// `rate` caps events per second; 0 sends as fast as the broker takes them.
pub async fn generate_to_kafka(
    opts: &GenerateOptions,
    kafka: &KafkaConfig,
    topic: &str,
    rate: f64,
    labels: &Path,
) -> Result<PublishSummary, PublishError> {
    let started = Instant::now();
    let mut fleet = Fleet::new(opts);
    let label_json = serde_json::to_vec_pretty(fleet.labels())?;
    std::fs::write(labels, label_json).map_err(|source| PublishError::Labels {
        path: labels.to_path_buf(),
        source,
    })?;
    ensure_topic(kafka, topic).await?;

    let deliveries = Arc::new(Deliveries::default());
    let mut config = client_config(kafka);
    for (key, value) in [("linger.ms", "20"), ("batch.num.messages", "10000")] {
        if !kafka.properties.contains_key(key) {
            config.set(key, value);
        }
    }
    // Retries must not reorder one identity's events.
    config.set("enable.idempotence", "true");
    let producer: ThreadedProducer<Context> = config
        .create_with_context(Context(Arc::clone(&deliveries)))
        .map_err(|e| PublishError::Kafka(SinkError::Create(e)))?;

    let mut line = Vec::with_capacity(512);
    let (mut sent, mut bytes) = (0u64, 0u64);
    for event in fleet.by_ref() {
        if rate > 0.0 {
            let due = started + Duration::from_secs_f64(sent as f64 / rate);
            let now = Instant::now();
            if due > now {
                tokio::time::sleep(due - now).await;
            }
        }
        line.clear();
        // Writing into a Vec cannot fail; the newline is NDJSON framing, not payload.
        let _ = write_native(&mut line, &event);
        let payload = line.strip_suffix(b"\n").unwrap_or(&line);
        let mut record = BaseRecord::to(topic).key(&*event.identity).payload(payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((e, back)) if is_queue_full(&e) => {
                    // Backpressure: let the producer thread drain, then retry.
                    record = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => {
                    return Err(PublishError::Produce {
                        topic: topic.to_string(),
                        source: e,
                    })
                }
            }
        }
        sent += 1;
        bytes += payload.len() as u64;
    }
    let flushed = tokio::task::block_in_place(|| producer.flush(FLUSH_TIMEOUT));
    let mut failed = deliveries.failed.load(Ordering::Relaxed);
    let mut first = deliveries
        .first_error
        .lock()
        .ok()
        .and_then(|f| f.clone())
        .unwrap_or_default();
    if let Err(e) = flushed {
        failed = failed.max(u64::try_from(producer.in_flight_count()).unwrap_or(0));
        if first.is_empty() {
            first = format!("flush: {e}");
        }
    }
    if failed > 0 {
        return Err(PublishError::Undelivered {
            topic: topic.to_string(),
            sent,
            failed,
            first,
        });
    }
    Ok(PublishSummary {
        events: sent,
        bytes,
        identities: fleet.labels().identities.len(),
        attacks: fleet.labels().attacks.len(),
        elapsed: started.elapsed(),
    })
}
