//! The Kafka sources of `riskd run` (design §7):
//!
//! - [`group_consumer_config`]: the consumer-group settings for the activity topic, with
//!   automatic offset *storing* off, so only the pipeline decides what is done;
//! - [`read_partitions`]: reads chosen partitions of a topic from the beginning to their
//!   current end, outside any group (state restore from the changelog);
//! - [`follow_signals`]: follows every partition of the signals topic into the
//!   [`RiskTable`], so any instance answers lookups for every identity (reads scale
//!   separately from scoring);
//! - [`record_lag`]: per-partition consumer lag from librdkafka's statistics.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;
use rdkafka::statistics::Statistics;
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::config::KafkaConfig;
use crate::metrics::metrics;
use crate::risk_table::SharedRiskTable;
use crate::signal::Signal;
use crate::sink::kafka::{client_config, forward_log};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot create a Kafka consumer: {0}")]
    Create(KafkaError),
    #[error("cannot read topic `{topic}`: {source}")]
    Read { topic: String, source: KafkaError },
    #[error("stopped by shutdown")]
    Cancelled,
}

/// Settings for the group consumer on the input topic.
pub fn group_consumer_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut config = client_config(kafka);
    let session_ms = kafka.session_timeout.0.as_millis().to_string();
    let commit_ms = kafka.commit_interval.0.as_millis().to_string();
    // librdkafka refuses a consumer whose `max.poll.interval.ms` (default 5 minutes) is
    // below its session timeout; a longer `kafka.session_timeout` raises it to match.
    let poll_ms = kafka
        .session_timeout
        .0
        .max(Duration::from_secs(300))
        .as_millis()
        .to_string();
    let defaults = [
        ("auto.offset.reset", "earliest".to_string()),
        ("session.timeout.ms", session_ms),
        ("max.poll.interval.ms", poll_ms),
        ("statistics.interval.ms", "5000".to_string()),
        ("enable.partition.eof", "false".to_string()),
    ];
    for (key, value) in defaults {
        if !kafka.properties.contains_key(key) {
            config.set(key, value);
        }
    }
    // Not overridable: these are the at-least-once contract.
    // - The pipeline stores an offset only once every effect of that record (and of the
    //   records before it) is acknowledged; librdkafka must never store one on its own.
    // - Auto-commit then only ever commits what the pipeline stored, on a timer; the
    //   pipeline also commits synchronously on revocation and shutdown.
    config
        .set("group.id", &kafka.group_id)
        .set("enable.auto.offset.store", "false")
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", commit_ms);
    if !kafka.group_instance_id.trim().is_empty() {
        config.set("group.instance.id", kafka.group_instance_id.trim());
    }
    config
}

/// Updates `riskd_consumer_lag_messages{topic, partition}` for `topic` from a statistics
/// callback. Topics (from config) and partition numbers are small fixed sets, unlike
/// identities. The topic label keeps the two stages of a repartitioned input apart:
/// with one label set they overwrote each other every five seconds.
pub fn record_lag(statistics: &Statistics, topic_name: &str) {
    let Some(topic) = statistics.topics.get(topic_name) else {
        return;
    };
    for (id, partition) in &topic.partitions {
        // -1 is librdkafka's internal "UA" partition and unassigned partitions report a
        // negative lag; neither is a real backlog.
        if *id < 0 || partition.consumer_lag < 0 {
            continue;
        }
        metrics()
            .consumer_lag
            .with_label_values(&[topic_name, &id.to_string()])
            .set(partition.consumer_lag);
    }
}

/// Context for group-less readers: librdkafka's log to `tracing`.
pub struct ReaderContext;

impl ClientContext for ReaderContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        forward_log("reader", level, fac, log_message);
    }
    fn error(&self, error: KafkaError, reason: &str) {
        // End-of-partition also arrives here as a "global error"; it is how readers
        // know they are done (handled in `poll`), not a problem.
        if matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::PartitionEOF)
        ) {
            return;
        }
        tracing::warn!(client = "reader", %error, reason, "kafka client error");
    }
}
impl ConsumerContext for ReaderContext {}

/// A consumer that never joins a group or commits: it `assign`s partitions itself.
/// librdkafka still wants a `group.id`; a unique one keeps it out of riskd's group.
fn reader_config(kafka: &KafkaConfig, purpose: &str) -> ClientConfig {
    let mut config = client_config(kafka);
    config
        .set(
            "group.id",
            format!("{}-{purpose}-{}", kafka.group_id, std::process::id()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        // A broker holds a fetch up to this long when there is nothing new, and Tansu
        // holds every fetch this long, with data or not: the wait bounds how many
        // fetches a restore gets per second (100 ms made a 1M-identity restore take
        // 14 s instead of 6). A restore wants it short; a follower that has caught up
        // polls an idle topic with it, so it gets a little longer.
        .set(
            "fetch.wait.max.ms",
            if purpose == "restore" { "10" } else { "25" },
        )
        .set("auto.offset.reset", "earliest");
    config
}

/// Reads `partitions` of `topic` from the beginning up to their end as of the call,
/// handing every record to `apply(partition, offset, key, value)`. Retries on errors with
/// backoff until `cancel` is cancelled: state must be complete before scoring resumes,
/// so a broker outage during a restore waits rather than going on without state.
pub fn read_partitions(
    kafka: &KafkaConfig,
    topic: &str,
    partitions: &[i32],
    cancel: &CancellationToken,
    mut apply: impl FnMut(i32, i64, Option<&[u8]>, Option<&[u8]>),
) -> Result<u64, SourceError> {
    let mut backoff = Duration::from_millis(200);
    loop {
        match read_partitions_once(kafka, topic, partitions, cancel, &mut apply) {
            Ok(n) => return Ok(n),
            Err(SourceError::Cancelled) => return Err(SourceError::Cancelled),
            Err(err) => {
                tracing::warn!(%err, ?backoff, "state restore failed; retrying");
                if sleep_or_cancel(backoff, cancel) {
                    return Err(SourceError::Cancelled);
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// One attempt of [`read_partitions`]. A failed attempt has applied a prefix of the
/// records; applying them again on retry is harmless because later records overwrite
/// earlier ones per key (last write wins, as in the compacted topic itself).
///
/// The end of each partition is detected by librdkafka's partition-EOF event (fetch
/// position reached the high watermark of a fetch response), not by asking for the
/// watermarks up front: Tansu answers ListOffsets(latest) with one past the base offset
/// of the last record *batch*, which would end a restore early.
fn read_partitions_once(
    kafka: &KafkaConfig,
    topic: &str,
    partitions: &[i32],
    cancel: &CancellationToken,
    apply: &mut impl FnMut(i32, i64, Option<&[u8]>, Option<&[u8]>),
) -> Result<u64, SourceError> {
    let read_err = |source| SourceError::Read {
        topic: topic.to_string(),
        source,
    };
    if partitions.is_empty() {
        return Ok(0);
    }
    let consumer: BaseConsumer<ReaderContext> = reader_config(kafka, "restore")
        .create_with_context(ReaderContext)
        .map_err(SourceError::Create)?;
    let mut assignment = TopicPartitionList::new();
    for &p in partitions {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .map_err(read_err)?;
    }
    consumer.assign(&assignment).map_err(read_err)?;
    // Partitions not yet read to their end. Records written after the end was seen
    // belong to this instance's own future (it owns these partitions now).
    let mut remaining: HashSet<i32> = partitions.iter().copied().collect();
    let mut records = 0u64;
    // Progress is judged when a poll comes back empty, not per record: a restore reads
    // millions of records and a clock read each is measurable.
    let mut idle_since = Instant::now();
    let mut records_then = 0u64;
    while !remaining.is_empty() {
        if cancel.is_cancelled() {
            return Err(SourceError::Cancelled);
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                apply(
                    message.partition(),
                    message.offset(),
                    message.key(),
                    message.payload(),
                );
                records += 1;
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                idle_since = Instant::now();
                remaining.remove(&p);
            }
            Some(Err(err)) => return Err(read_err(err)),
            None => {
                if records != records_then {
                    records_then = records;
                    idle_since = Instant::now();
                }
                // A stalled read (broker paused) restarts with a fresh client rather
                // than waiting on a connection that may never answer again.
                if idle_since.elapsed() > Duration::from_secs(30) {
                    return Err(read_err(KafkaError::MessageConsumption(
                        RDKafkaErrorCode::OperationTimedOut,
                    )));
                }
            }
        }
    }
    Ok(records)
}

/// Sleeps `duration` unless cancelled first; returns true if cancelled.
pub fn sleep_or_cancel(duration: Duration, cancel: &CancellationToken) -> bool {
    let deadline = Instant::now() + duration;
    while Instant::now() < deadline {
        if cancel.is_cancelled() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50).min(duration));
    }
    cancel.is_cancelled()
}

/// Follows every partition of the signals topic from the beginning and applies each
/// signal to `table`, until `shutdown`. Calls `caught_up` once the end of the topic as
/// of start-up has been read, so readiness can wait for a complete view.
pub async fn follow_signals(
    kafka: KafkaConfig,
    table: SharedRiskTable,
    shutdown: CancellationToken,
    caught_up: impl FnOnce() + Send + 'static,
) -> Result<(), SourceError> {
    let topic = kafka.signals_topic.clone();
    let read_err = |source| SourceError::Read {
        topic: topic.clone(),
        source,
    };
    let consumer: Arc<StreamConsumer<ReaderContext>> = Arc::new(
        reader_config(&kafka, "follow")
            .create_with_context(ReaderContext)
            .map_err(SourceError::Create)?,
    );

    // Metadata is a blocking call; keep it off the async workers and retry until the
    // broker answers (it may be starting up alongside us).
    let mut backoff = Duration::from_millis(200);
    let partitions: Vec<i32> = loop {
        let c = Arc::clone(&consumer);
        let t = topic.clone();
        let attempt = tokio::task::spawn_blocking(move || -> Result<Vec<i32>, KafkaError> {
            let metadata = c.fetch_metadata(Some(&t), Duration::from_secs(10))?;
            Ok(metadata
                .topics()
                .iter()
                .filter(|m| m.name() == t)
                .flat_map(|m| m.partitions().iter().map(|p| p.id()))
                .collect())
        })
        .await;
        match attempt {
            Ok(Ok(partitions)) if !partitions.is_empty() => break partitions,
            Ok(Ok(_)) => tracing::warn!(topic = %topic, "signals topic has no partitions yet"),
            Ok(Err(err)) => tracing::warn!(%err, "cannot read signals topic metadata; retrying"),
            Err(err) => tracing::warn!(%err, "metadata task failed; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    };

    let mut assignment = TopicPartitionList::new();
    for &p in &partitions {
        assignment
            .add_partition_offset(&topic, p, Offset::Beginning)
            .map_err(read_err)?;
    }
    consumer.assign(&assignment).map_err(read_err)?;
    // Partitions not yet read to the end (partition EOF; see `read_partitions_once` for
    // why not watermarks). Once all have been, the view is complete.
    let mut behind: HashSet<i32> = partitions.into_iter().collect();
    let mut caught_up = Some(caught_up);
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            message = consumer.recv() => message,
        };
        match message {
            Ok(message) => apply_signal(&table, &message),
            Err(KafkaError::PartitionEOF(p)) => {
                behind.remove(&p);
            }
            // librdkafka retries connection problems itself; keep following.
            Err(err) => tracing::warn!(%err, "signals follower"),
        }
        if behind.is_empty() {
            if let Some(f) = caught_up.take() {
                tracing::info!("signals follower caught up");
                f();
            }
        }
    }
}

fn apply_signal(table: &SharedRiskTable, message: &BorrowedMessage<'_>) {
    let Some(payload) = message.payload() else {
        // A tombstone on the signals topic: nothing to say about that identity.
        if let Some(key) = message.key().and_then(|k| std::str::from_utf8(k).ok()) {
            table.remove(key);
        }
        return;
    };
    match serde_json::from_slice::<Signal>(payload) {
        Ok(signal) => table.apply(signal),
        Err(err) => tracing::debug!(
            %err,
            partition = message.partition(),
            offset = message.offset(),
            "ignoring a record on the signals topic that is not a signal"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, HumanDuration};

    #[test]
    fn a_long_session_timeout_still_makes_a_consumer() {
        // librdkafka refuses `session.timeout.ms` above `max.poll.interval.ms` (5 minutes
        // by default) when the client is created, with no word of riskd's key.
        let mut config = Config::default_config().expect("defaults");
        config.kafka.session_timeout = HumanDuration(Duration::from_secs(600));
        let client = group_consumer_config(&config.kafka);
        assert_eq!(client.get("max.poll.interval.ms"), Some("600000"));
        client
            .create::<BaseConsumer>()
            .expect("librdkafka accepts the settings");
        // The default keeps librdkafka's own poll interval.
        let client = group_consumer_config(&Config::default_config().expect("defaults").kafka);
        assert_eq!(client.get("max.poll.interval.ms"), Some("300000"));
    }
}
