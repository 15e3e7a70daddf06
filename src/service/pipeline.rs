//! The scoring pipeline of `riskd run`: one thread that polls the group consumer,
//! decodes, scores with one [`Engine`], produces every effect, and decides which input
//! offsets are safe to store (design §7).
//!
//! # Why one thread
//!
//! librdkafka calls the rebalance callback from inside `poll`, on the polling thread.
//! Because that thread is also the one that processes records, a callback never runs
//! while a record is half processed: on revocation the pipeline is between records,
//! flushes state, waits for acknowledgements and commits before the partitions move;
//! on assignment it restores state before the next `poll` can hand out a record of the
//! new partitions. The [`Pipeline`] sits in a mutex inside the consumer's context only
//! so the callback can reach it; the mutex is never contended.
//!
//! # The offset rule
//!
//! An input offset is stored (and then committed by auto-commit on a timer, or
//! synchronously on revoke and shutdown) only when the record and every record before
//! it on its partition are done: signals and dead-letter copies acknowledged, and the
//! state changelog write covering it acknowledged (see [`offsets`](super::offsets)).
//! The changelog is written in batches every `kafka.state_flush_interval`; a batch is
//! sent only after the signals of the events it covers are acknowledged, so restored
//! state never claims an event whose signal was lost.
//!
//! # Stages
//!
//! The same loop, offset rule and dead letters serve a second [`Stage`]: with
//! `kafka.repartition_topic` set, a repartition pipeline (its own consumer group and
//! thread) decodes the unkeyed input and re-produces each event keyed by identity, and
//! the scoring pipeline reads that topic. An input record of the repartition stage is
//! done when all of its events are acknowledged; it has no state to cover.
//!
//! # Idle input
//!
//! Event time comes from the events. When no record arrives for `kafka.idle_advance`,
//! the watermark moves on from where the last record left it at the pace of the wall
//! clock, so scores decay and idle identities are evicted while the input is quiet. No
//! input offset waits for these decay signals, so state batches wait for them instead.
//! After a restart into a quiet input, idle time counts from the newest restored event.
//!
//! # Ownership
//!
//! The engine keeps, with each identity's state, its [`Origin`]: the input partition its
//! events come from and the offset of the last one folded into its state (kept there,
//! not in a map of the pipeline's own, so a name is stored once). The state record goes
//! to the same
//! partition number of the changelog topic, so a restore reads exactly the changelog
//! partitions matching the assigned input partitions, and on revocation the identities
//! of the revoked partitions are forgotten.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header};
use rdkafka::producer::BaseRecord;
use rdkafka::statistics::Statistics;
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::changelog;
use super::dedupe::DedupeWindow;
use super::offsets::PartitionTrack;
use super::{Readiness, ServiceError};
use crate::config::Config;
use crate::decode::{decode, Decoded, Format, Limits, RejectReason, Rejection};
use crate::engine::{Engine, PrefetchKeys, PREFETCH_DISTANCE};
use crate::event::ActivityEvent;
use crate::metrics::metrics;
use crate::risk_table::{wall_clock_ms, SharedRiskTable};
use crate::signal::{parse_time_ms, Signal};
use crate::sink::kafka::{
    create_producer, dead_letter_headers, forward_log, is_permanent, is_queue_full, owned_headers,
    Ack, Outgoing, Producer, Token, DEAD_LETTER_MAX_BYTES, HEADER_ORIGINAL_BYTES,
};
use crate::source::generator::write_native;
use crate::source::kafka::{group_consumer_config, read_partitions, record_lag};
use crate::state::Origin;

/// How long `poll` blocks when no record is waiting; bounds how late a flush tick or a
/// shutdown request is noticed.
const POLL_TIMEOUT: Duration = Duration::from_millis(100);
/// Offsets are handed to librdkafka's store at most this often (it is an FFI call that
/// builds a partition list; auto-commit picks them up on its own timer anyway).
const STORE_EVERY: Duration = Duration::from_millis(50);
/// Shortest wait without a partition assignment before the group consumer is replaced.
const REJOIN_AFTER_MIN: Duration = Duration::from_secs(15);

/// How far ahead of the wall clock an event time may be, and its config text.
#[derive(Debug, Clone)]
struct Lookahead {
    ms: i64,
    text: String,
}

/// Rejects an event stamped more than `decode.max_lookahead` ahead of the wall clock.
///
/// Why: the event-time watermark is set by the events themselves, so a single bogus
/// far-future record (a broken clock, a typo in a year, a hostile producer) would move
/// it for *everyone*: every score would decay to `normal` at once (an attacker could
/// wipe the risk of the identity it is abusing), and the next idle sweep would evict
/// every identity with its baseline, sending all of them back to `learning`. The engine
/// reads no clock (replays are deterministic), so the runtime supplies the bound: here
/// per record, against the clock now; `riskd replay` once, at its start
/// ([`Engine::refuse_after`]). The watermark itself follows any jump: a quiet spell is
/// not an error.
///
/// Events far in the *past* are not refused here: a consumer catching up on a backlog
/// legitimately reads old events, and an old event cannot move the watermark (it only
/// moves forward); per-identity lateness in the engine protects each baseline.
fn beyond_wall_clock(time_ms: i64, now_ms: i64, lookahead: &Lookahead) -> Option<Rejection> {
    (time_ms > now_ms.saturating_add(lookahead.ms)).then(|| {
        Rejection::new(
            RejectReason::TooFarAhead,
            format!(
                "event time {} is more than {} ahead of the wall clock",
                crate::signal::format_time_ms(time_ms),
                lookahead.text
            ),
        )
    })
}

/// A changelog write of every identity whose state changed before it was taken.
struct StateBatch {
    id: u64,
    /// Per partition, the consumer position this batch covers.
    barrier: HashMap<i32, i64>,
    /// Records still to hand to the producer: (identity, partition, value or tombstone).
    unsent: VecDeque<(String, i32, Option<Vec<u8>>)>,
    /// Records handed to the producer and not acknowledged yet.
    in_flight: usize,
}

/// A delivery that failed and waits for its re-send.
struct Retry {
    due: Instant,
    attempt: u32,
    record: Box<Outgoing>,
    token: Token,
}

pub struct Pipeline {
    config: Config,
    /// Output topic names, shared so a record can borrow one while `self` is mutable.
    signals_topic: Arc<str>,
    dead_letter_topic: Arc<str>,
    format: Format,
    limits: Limits,
    /// `decode.max_lookahead`, applied against the wall clock (see [`beyond_wall_clock`]).
    max_lookahead: Lookahead,
    engine: Engine,
    producer: Producer,
    acks: Receiver<Ack>,
    table: SharedRiskTable,
    readiness: Arc<Readiness>,
    cancel: CancellationToken,
    tracks: HashMap<i32, PartitionTrack>,
    windows: HashMap<i32, DedupeWindow>,
    batches: VecDeque<StateBatch>,
    next_batch: u64,
    retries: VecDeque<Retry>,
    last_flush: Instant,
    last_store: Instant,
    /// When the last input record was handled, and the engine's watermark after it: the
    /// idle advance starts from there.
    last_record: Instant,
    idle_base_ms: i64,
    /// Idle decay signals sent and not acknowledged yet; state batches wait for them.
    decays_in_flight: u32,
    /// Partitions of the state topic at start: an assigned input partition at or past
    /// it has nowhere to restore from or write to.
    state_partitions: usize,
    /// Why the pipeline stopped on its own, for `run` to return.
    fatal: Option<ServiceError>,
    stage: Stage,
    last_poll_warning: Option<Instant>,
    /// `engine.stats().evicted` already added to the eviction counter.
    evicted_exported: u64,
    /// Pre-resolved metric handles for the per-record path (a labelled lookup per
    /// record would cost more than the atomic add itself).
    consumed: prometheus::IntCounter,
    /// Scratch buffers reused for every record.
    decoded: Vec<Decoded>,
    signals: Vec<Signal>,
}

/// The group consumer's context: rebalance callbacks reach the pipeline through it.
pub struct RunContext {
    /// Shared with the next consumer if this one has to be replaced (see
    /// [`REJOIN_AFTER_MIN`]).
    pipeline: Arc<Mutex<Pipeline>>,
    input_topic: String,
    /// When the consumer last left a stable generation (revocation, session loss) without
    /// having been given a new assignment since; `None` while it holds one.
    unassigned_since: Mutex<Option<Instant>>,
}

pub type RunConsumer = BaseConsumer<RunContext>;

impl RunContext {
    fn pipeline(&self) -> MutexGuard<'_, Pipeline> {
        // A panic while holding the lock would have ended the pipeline thread; if we
        // get here anyway the data is still consistent enough to drain and commit.
        self.pipeline.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_assigned(&self, assigned: bool) {
        let mut since = self
            .unassigned_since
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *since = if assigned {
            None
        } else {
            Some(since.unwrap_or_else(Instant::now))
        };
    }

    /// How long the consumer has been without an assignment (0 while it has one).
    fn unassigned_for(&self) -> Duration {
        self.unassigned_since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map_or(Duration::ZERO, |t| t.elapsed())
    }

    fn input_partitions(&self, tpl: &TopicPartitionList) -> Vec<i32> {
        tpl.elements_for_topic(&self.input_topic)
            .iter()
            .map(|e| e.partition())
            .collect()
    }
}

impl ClientContext for RunContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        forward_log("consumer", level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(client = "consumer", %error, reason, "kafka client error");
    }

    fn stats(&self, statistics: Statistics) {
        record_lag(&statistics, &self.input_topic);
    }
}

impl ConsumerContext for RunContext {
    fn pre_rebalance(&self, consumer: &RunConsumer, rebalance: &Rebalance<'_>) {
        // Revocation is handled *before* librdkafka unassigns: offsets of these
        // partitions can still be stored and committed, and the next owner will start
        // exactly where our acknowledged work ends.
        if let Rebalance::Revoke(tpl) = rebalance {
            let partitions = self.input_partitions(tpl);
            self.set_assigned(false);
            self.pipeline().on_revoke(consumer, &partitions);
        }
    }

    fn post_rebalance(&self, _consumer: &RunConsumer, rebalance: &Rebalance<'_>) {
        match rebalance {
            // Restore *after* librdkafka assigned, so fetching of the new partitions
            // runs in the background while we read the changelog; no record of them
            // reaches the pipeline before this callback returns.
            Rebalance::Assign(tpl) => {
                let partitions = self.input_partitions(tpl);
                self.pipeline().on_assign(&partitions);
                // An empty assignment counts too: the group is stable, we are simply
                // one instance more than there are partitions.
                self.set_assigned(true);
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(err) => tracing::warn!(%err, "rebalance error"),
        }
    }

    fn commit_callback(&self, result: rdkafka::error::KafkaResult<()>, _: &TopicPartitionList) {
        if let Err(err) = result {
            // Not fatal: offsets stay stored and the next commit carries them; at worst
            // a crash now replays a little more.
            tracing::debug!(%err, "offset commit failed");
        }
    }
}

/// Runs the pipeline until `cancel`, then drains. Blocking: call from a dedicated thread.
/// What a pipeline does with the events it decodes.
#[derive(Debug, Clone)]
pub enum Stage {
    /// Score them: the service's main stage.
    Score,
    /// Re-produce each, as native JSON keyed by identity, to this topic (for input not
    /// keyed by identity, `kafka.repartition_topic`); the scoring stage reads it. No
    /// state, no signals: only dead letters and offsets.
    Repartition { topic: Arc<str> },
}

impl Stage {
    /// This stage's heartbeat slot in the risk table ([`crate::risk_table::STAGES`]).
    fn heartbeat(&self) -> usize {
        match self {
            Stage::Score => 0,
            Stage::Repartition { .. } => 1,
        }
    }
}

pub fn run(
    config: Config,
    stage: Stage,
    state_partitions: usize,
    table: SharedRiskTable,
    readiness: Arc<Readiness>,
    cancel: CancellationToken,
) -> Result<(), ServiceError> {
    let kafka = &config.kafka;
    let (producer, acks) = create_producer(kafka)?;
    let budget = kafka.session_timeout.0;
    let pipeline = Arc::new(Mutex::new(Pipeline {
        format: kafka.input_format,
        limits: Limits::from(&config.decode),
        max_lookahead: Lookahead {
            ms: config.decode.max_lookahead.as_millis_i64(),
            text: config.decode.max_lookahead.to_string(),
        },
        engine: Engine::new(&config),
        producer,
        acks,
        table,
        readiness,
        cancel: cancel.clone(),
        tracks: HashMap::new(),
        windows: HashMap::new(),
        batches: VecDeque::new(),
        next_batch: 0,
        retries: VecDeque::new(),
        last_flush: Instant::now(),
        last_store: Instant::now(),
        last_record: Instant::now(),
        idle_base_ms: i64::MIN,
        decays_in_flight: 0,
        state_partitions,
        fatal: None,
        last_poll_warning: None,
        evicted_exported: 0,
        decoded: Vec::with_capacity(4),
        signals: Vec::with_capacity(4),
        consumed: metrics().events_consumed.with_label_values(&[match stage {
            Stage::Score => "kafka",
            Stage::Repartition { .. } => "kafka_repartition",
        }]),
        stage,
        signals_topic: Arc::from(kafka.signals_topic.as_str()),
        dead_letter_topic: Arc::from(kafka.dead_letter_topic.as_str()),
        config: config.clone(),
    }));
    let rejoin_after = (kafka.session_timeout.0 * 3).max(REJOIN_AFTER_MIN);

    let consumer = loop {
        let consumer: RunConsumer = group_consumer_config(kafka)
            .create_with_context(RunContext {
                pipeline: Arc::clone(&pipeline),
                input_topic: kafka.input_topic.clone(),
                // Not assigned yet: joining counts as being without an assignment.
                unassigned_since: Mutex::new(Some(Instant::now())),
            })
            .map_err(ServiceError::Consumer)?;
        consumer
            .subscribe(&[&kafka.input_topic])
            .map_err(ServiceError::Consumer)?;
        tracing::info!(topic = %kafka.input_topic, group = %kafka.group_id, "consuming");

        let mut stuck = false;
        while !cancel.is_cancelled() {
            // The rebalance callbacks run inside this call; the pipeline lock is free.
            let polled = consumer.poll(POLL_TIMEOUT);
            let mut pipeline = consumer.context().pipeline();
            match polled {
                Some(Ok(message)) => pipeline.handle(&message),
                Some(Err(err)) => pipeline.poll_error(&err),
                None => {}
            }
            pipeline.housekeeping(&consumer);
            // Alive: `/readyz` turns unready when this stops for `api.max_pipeline_stall`
            // (a hung producer, a wedged rebalance), so enforcement points stop trusting
            // scores that no longer move.
            pipeline.table.beat(pipeline.stage.heartbeat());
            drop(pipeline);
            if consumer.context().unassigned_for() > rejoin_after {
                stuck = true;
                break;
            }
        }
        if !stuck {
            break consumer;
        }
        // Without an assignment for several session timeouts: the group is not
        // converging. Seen with Tansu after a broker freeze: the member id librdkafka
        // abandoned on session loss stays the group leader and every rejoin waits for
        // it. A fresh client (new connection, new member) lets the coordinator settle.
        // Nothing is lost: no partitions are held, and their state was flushed (or is
        // in the changelog up to the last acknowledged batch) at revocation.
        tracing::warn!(
            waited = ?rejoin_after,
            "no partition assignment from the consumer group; reconnecting with a fresh consumer"
        );
        drop(consumer);
    };

    // Shutdown, in order (the whole sequence must fit in the session timeout, after
    // which the group hands our partitions to someone else anyway):
    let started = Instant::now();
    {
        let mut pipeline = consumer.context().pipeline();
        // 1. We stopped polling above, so no new record enters; the last one was fully
        //    processed in its loop iteration ("finish in-flight").
        // 2. Write the state of everything processed, and wait (bounded) until every
        //    signal, dead letter and state record is acknowledged.
        pipeline.stage_batch();
        pipeline.drain(&consumer, None, started + budget / 2);
        // 3. Store what is now safe and commit it synchronously, so a restart or the
        //    next owner resumes right after our last acknowledged record.
        pipeline.commit(&consumer, None);
        tracing::info!(
            identities = pipeline.engine.identities(),
            elapsed = ?started.elapsed(),
            "drained; leaving the consumer group"
        );
    }
    // 4. Dropping the consumer closes it: librdkafka leaves the group (the revoke
    //    callback finds nothing left to do) so partitions move at once, without waiting
    //    for our session to time out.
    let (producer, consumer_fatal) = {
        let mut pipeline = consumer.context().pipeline();
        (pipeline.producer.clone(), pipeline.fatal.take())
    };
    drop(consumer);
    // 5. Anything the producer still holds was not covered by a committed offset; give
    //    it what is left of the budget, then drop it (it will be redelivered).
    let left = budget.saturating_sub(started.elapsed());
    if let Err(err) = rdkafka::producer::Producer::flush(&producer, left.min(budget / 4)) {
        tracing::warn!(%err, "producer not flushed at shutdown; uncommitted records will be redelivered");
    }
    tracing::info!(elapsed = ?started.elapsed(), "pipeline stopped");
    consumer_fatal.map_or(Ok(()), Err)
}

/// Assigned input partitions with no partition of the same number in the state topic.
fn without_state_partition(assigned: &[i32], state_partitions: usize) -> Vec<i32> {
    assigned
        .iter()
        .copied()
        .filter(|&p| usize::try_from(p).map_or(true, |p| p >= state_partitions))
        .collect()
}

impl Pipeline {
    /// Processes one input record: decode, dedupe, score, produce effects, track.
    fn handle(&mut self, message: &BorrowedMessage<'_>) {
        let m = metrics();
        let started = Instant::now();
        let partition = message.partition();
        let offset = message.offset();
        self.consumed.inc();
        self.tracks
            .entry(partition)
            .or_insert_with(|| PartitionTrack::new(offset));

        let payload = message.payload().unwrap_or_default();
        // Once per record, not per event: a CloudTrail document may hold many.
        let now_ms = wall_clock_ms();
        let mut decoded = std::mem::take(&mut self.decoded);
        decoded.clear();
        decode(self.format, payload, &self.limits, &mut decoded);
        // Deliveries of this record not acknowledged yet (or never sendable, which
        // holds its offset back for good and so gets it redelivered after a restart).
        let mut outstanding = 0u32;
        let mut items = decoded.drain(..);
        while let Some(item) = items.next() {
            match item {
                Decoded::Event(event) => {
                    if let Some(rejection) =
                        beyond_wall_clock(event.time_ms, now_ms, &self.max_lookahead)
                    {
                        outstanding += 1;
                        self.send_dead_letter(message, &rejection);
                        continue;
                    }
                    if let Stage::Repartition { topic } = &self.stage {
                        let topic = Arc::clone(topic);
                        outstanding += 1;
                        self.send_routed(&topic, partition, offset, &event);
                        continue;
                    }
                    let window = self
                        .windows
                        .entry(partition)
                        .or_insert_with(|| DedupeWindow::new(self.config.kafka.dedupe_window));
                    if let Some(id) = &event.event_id {
                        if window.check_and_insert(id) {
                            m.events_duplicate.inc();
                            continue;
                        }
                    }
                    if let Some(origin) = self.engine.origin(&event.identity) {
                        if origin.partition == partition && offset <= origin.floor {
                            // Already folded into the restored state before a crash.
                            m.events_duplicate.inc();
                            continue;
                        }
                    }
                    // A CloudTrail document holds many events: their state loads while
                    // this one is scored (a record of one event has nothing ahead).
                    self.engine.prefetch_ahead(
                        items
                            .as_slice()
                            .iter()
                            .filter_map(|d| match d {
                                Decoded::Event(e) => Some(PrefetchKeys::of(e)),
                                _ => None,
                            })
                            .take(PREFETCH_DISTANCE),
                    );
                    let mut signals = std::mem::take(&mut self.signals);
                    signals.clear();
                    match self.engine.process(&event, &mut signals) {
                        Ok(()) => {
                            // A new identity starts from `Origin::NONE`: no floor.
                            if let Some(origin) = self.engine.origin_mut(&event.identity) {
                                origin.partition = partition;
                                origin.offset = offset;
                            }
                            for signal in signals.drain(..) {
                                outstanding += 1;
                                self.send_signal(partition, offset, signal);
                            }
                        }
                        Err(rejection) => {
                            outstanding += 1;
                            self.send_dead_letter(message, &rejection);
                        }
                    }
                    self.signals = signals;
                }
                Decoded::Skipped(_) => m.events_skipped.inc(),
                Decoded::Rejected(rejection) => {
                    outstanding += 1;
                    self.send_dead_letter(message, &rejection);
                }
            }
        }
        drop(items);
        self.decoded = decoded;
        if let Some(track) = self.tracks.get_mut(&partition) {
            track.processed(offset, outstanding);
        }
        self.last_record = Instant::now();
        self.idle_base_ms = self.engine.watermark_ms();
        m.event_processing_seconds
            .observe(started.elapsed().as_secs_f64());
    }

    fn send_signal(&mut self, partition: i32, offset: i64, signal: Signal) {
        let token = Token::Signal {
            partition,
            offset,
            level: signal.level,
            time_ms: parse_time_ms(&signal.time).unwrap_or(0),
        };
        self.publish(token, signal);
    }

    /// Moves event time on while no record arrives (see "Idle input" above): from the
    /// watermark the last record left, by the wall-clock time since it. Starting there,
    /// not at the wall clock, keeps a pause in a backfill of old events from jumping
    /// to now and evicting every identity it has built.
    fn advance_idle(&mut self) {
        let after = self.config.kafka.idle_advance.0;
        let idle = self.last_record.elapsed();
        if after.is_zero() || idle < after || self.idle_base_ms == i64::MIN {
            return;
        }
        let idle_ms = i64::try_from(idle.as_millis()).unwrap_or(i64::MAX);
        let mut signals = std::mem::take(&mut self.signals);
        signals.clear();
        self.engine
            .advance_to(self.idle_base_ms.saturating_add(idle_ms), &mut signals);
        for signal in signals.drain(..) {
            let token = Token::Decay {
                level: signal.level,
            };
            self.decays_in_flight += 1;
            self.publish(token, signal);
        }
        self.signals = signals;
    }

    fn publish(&mut self, token: Token, signal: Signal) {
        let payload = match serde_json::to_vec(&signal) {
            Ok(p) => p,
            Err(err) => {
                // Cannot happen for this plain struct; if it did, the offset stays
                // held back (outstanding never acknowledged) rather than losing it.
                tracing::error!(%err, "cannot serialise a signal");
                return;
            }
        };
        let topic = Arc::clone(&self.signals_topic);
        let record = BaseRecord::with_opaque_to(&topic, Box::new(token))
            .key(signal.identity.as_bytes())
            .payload(payload.as_slice());
        self.send_blocking(record);
        // Apply our own signal at once: lookups for identities we own need not wait for
        // the follower's round trip through the topic.
        self.table.apply(signal);
    }

    /// Re-produces an event keyed by identity (the repartition stage). Acknowledged like
    /// a dead letter: its input offset waits for it.
    fn send_routed(&mut self, topic: &str, partition: i32, offset: i64, event: &ActivityEvent) {
        let mut payload = Vec::with_capacity(256);
        if let Err(err) = write_native(&mut payload, event) {
            // Writing to a Vec cannot fail; if it did, the offset stays held back.
            tracing::error!(%err, "cannot encode an event for the repartition topic");
            return;
        }
        payload.pop(); // the NDJSON newline
        let record =
            BaseRecord::with_opaque_to(topic, Box::new(Token::Routed { partition, offset }))
                .key(event.identity.as_bytes())
                .payload(payload.as_slice());
        self.send_blocking(record);
    }

    /// Tombstone on the signals topic (same key, so the same partition and after the
    /// identity's last signal): followers drop the identity and compaction removes it.
    fn send_signal_tombstone(&mut self, identity: &str) {
        let topic = Arc::clone(&self.signals_topic);
        let record =
            BaseRecord::with_opaque_to(&topic, Box::new(Token::Forgotten)).key(identity.as_bytes());
        self.send_blocking(record);
    }

    fn send_dead_letter(&mut self, message: &BorrowedMessage<'_>, rejection: &Rejection) {
        // Logged and counted in one place (design §12), at debug: a flood of bad input
        // must not flood the logs too; the counter and the dead-letter topic carry it.
        metrics().rejected(rejection.reason).inc();
        tracing::debug!(
            reason = rejection.reason.as_str(),
            detail = %rejection.detail,
            partition = message.partition(),
            offset = message.offset(),
            "record rejected and dead-lettered"
        );
        let headers = dead_letter_headers(
            rejection.reason,
            &rejection.detail,
            message.topic(),
            message.partition(),
            message.offset(),
        );
        let token = Token::DeadLetter {
            partition: message.partition(),
            offset: message.offset(),
        };
        let payload = message.payload().unwrap_or_default();
        let (payload, headers) = if payload.len() > DEAD_LETTER_MAX_BYTES {
            let original = payload.len().to_string();
            let headers = headers.insert(Header {
                key: HEADER_ORIGINAL_BYTES,
                value: Some(original.as_str()),
            });
            (&payload[..DEAD_LETTER_MAX_BYTES], headers)
        } else {
            (payload, headers)
        };
        let topic = Arc::clone(&self.dead_letter_topic);
        let mut record = BaseRecord::with_opaque_to(&topic, Box::new(token))
            .payload(payload)
            .headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        self.send_blocking(record);
    }

    /// Sends a record, waiting while the producer queue is full: that wait is the
    /// backpressure that stops consumption when the broker is slow or away. Gives up only
    /// on shutdown; the record's delivery then stays outstanding, so its input offset is
    /// never stored and the record is redelivered after the restart.
    fn send_blocking(&mut self, mut record: BaseRecord<'_, [u8], [u8], Box<Token>>) {
        loop {
            match self.producer.send(record) {
                Ok(()) => return,
                Err((err, back)) if is_queue_full(&err) => {
                    if self.cancel.is_cancelled() {
                        tracing::warn!(
                            "shutdown while the producer queue is full; record left for redelivery"
                        );
                        return;
                    }
                    record = back;
                    // Acks free queue space; handle them while we wait.
                    self.drain_acks(Some(Duration::from_millis(10)));
                }
                Err((err, back)) => {
                    // Not a capacity problem (e.g. an unknown topic right after start):
                    // treat like a failed delivery and re-send later.
                    let outgoing = Outgoing {
                        topic: back.topic.to_string(),
                        partition: back.partition,
                        key: back.key.map(<[u8]>::to_vec),
                        payload: back.payload.map(<[u8]>::to_vec),
                        headers: back
                            .headers
                            .as_ref()
                            .map(crate::sink::kafka::headers_to_vec)
                            .unwrap_or_default(),
                    };
                    self.schedule_retry(*back.delivery_opaque, Box::new(outgoing), 0, &err);
                    return;
                }
            }
        }
    }

    fn schedule_retry(
        &mut self,
        token: Token,
        record: Box<Outgoing>,
        attempt: u32,
        err: &KafkaError,
    ) {
        if let Token::DeadLetter { partition, offset } = token {
            if is_permanent(err) {
                // A diagnostic copy the broker will never take (too large for its
                // limits, a topic we may not write): retried, it would hold back this
                // partition's commits, and with them every state write, for good. The
                // record itself is still in the input topic.
                metrics().dead_letters_dropped.inc();
                tracing::error!(
                    partition,
                    offset,
                    topic = %record.topic,
                    %err,
                    "dead-letter copy refused by the broker; dropped (the record stays in the input topic)"
                );
                self.apply_ack(Ack {
                    token,
                    result: Ok(()),
                });
                return;
            }
        }
        let backoff = Duration::from_millis(500) * 2u32.saturating_pow(attempt.min(6));
        if is_permanent(err) {
            tracing::error!(topic = %record.topic, %err, attempt, "delivery refused by the broker; will retry (fix the broker or topic settings)");
        } else {
            tracing::warn!(topic = %record.topic, %err, attempt, "delivery failed; will retry");
        }
        self.retries.push_back(Retry {
            due: Instant::now() + backoff.min(Duration::from_secs(30)),
            attempt: attempt + 1,
            record,
            token,
        });
    }

    /// Re-sends failed deliveries whose backoff has passed.
    fn send_retries(&mut self) {
        let now = Instant::now();
        let mut waiting = VecDeque::new();
        while let Some(retry) = self.retries.pop_front() {
            if retry.due > now {
                waiting.push_back(retry);
                continue;
            }
            let headers = owned_headers(&retry.record.headers);
            let mut record =
                BaseRecord::with_opaque_to(&retry.record.topic, Box::new(retry.token.clone()));
            if let Some(p) = retry.record.partition {
                record = record.partition(p);
            }
            if let Some(k) = &retry.record.key {
                record = record.key(k.as_slice());
            }
            if let Some(v) = &retry.record.payload {
                record = record.payload(v.as_slice());
            }
            if let Some(h) = headers {
                record = record.headers(h);
            }
            if let Err((err, _)) = self.producer.send(record) {
                let mut retry = retry;
                if !is_queue_full(&err) {
                    retry.attempt += 1;
                }
                retry.due = now + Duration::from_millis(100);
                waiting.push_back(retry);
            }
        }
        self.retries = waiting;
    }

    /// Applies delivery reports. With `wait`, blocks up to that long for the first one.
    fn drain_acks(&mut self, wait: Option<Duration>) {
        // Waiting on the broker (a full producer queue, a drain) is being alive, not
        // stalled: every such wait comes through here.
        self.table.beat(self.stage.heartbeat());
        let mut first = match wait {
            // Timeout and a gone sender (producer dropped at exit) both mean "no ack".
            Some(timeout) => self.acks.recv_timeout(timeout).ok(),
            None => None,
        };
        loop {
            let ack = match first.take() {
                Some(ack) => ack,
                None => match self.acks.try_recv() {
                    Ok(ack) => ack,
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                },
            };
            self.apply_ack(ack);
        }
        self.complete_batches();
    }

    fn apply_ack(&mut self, ack: Ack) {
        match ack.result {
            Ok(()) => match ack.token {
                Token::Signal {
                    partition,
                    offset,
                    level,
                    time_ms,
                } => {
                    let m = metrics();
                    m.signal_published(level);
                    let delay_ms = wall_clock_ms().saturating_sub(time_ms).max(0);
                    m.event_to_signal_seconds.observe(delay_ms as f64 / 1000.0);
                    if let Some(track) = self.tracks.get_mut(&partition) {
                        track.ack(offset);
                    }
                }
                Token::Decay { level } => {
                    metrics().signal_published(level);
                    self.decays_in_flight = self.decays_in_flight.saturating_sub(1);
                }
                Token::DeadLetter { partition, offset } | Token::Routed { partition, offset } => {
                    if let Some(track) = self.tracks.get_mut(&partition) {
                        track.ack(offset);
                    }
                }
                Token::State { batch } => {
                    if let Some(b) = self.batches.iter_mut().find(|b| b.id == batch) {
                        b.in_flight = b.in_flight.saturating_sub(1);
                    }
                }
                Token::Forgotten => {}
            },
            Err((err, record)) => {
                let attempt = 0;
                self.schedule_retry(ack.token, record, attempt, &err);
            }
        }
    }

    /// Marks state as covered for batches that are completely acknowledged, oldest
    /// first: coverage must never jump over an older batch still in flight.
    fn complete_batches(&mut self) {
        let retrying: Vec<u64> = self
            .retries
            .iter()
            .filter_map(|r| match r.token {
                Token::State { batch } => Some(batch),
                _ => None,
            })
            .collect();
        while let Some(front) = self.batches.front() {
            let sent = front.unsent.is_empty();
            if !(sent && front.in_flight == 0 && !retrying.contains(&front.id)) {
                break;
            }
            if let Some(batch) = self.batches.pop_front() {
                for (partition, position) in batch.barrier {
                    if let Some(track) = self.tracks.get_mut(&partition) {
                        track.state_covered(position);
                    }
                }
            }
        }
    }

    /// Takes the changed state of every identity into a new batch. It covers every
    /// record processed so far.
    fn stage_batch(&mut self) {
        self.last_flush = Instant::now();
        let dirty = self.engine.take_dirty();
        let mut unsent = VecDeque::with_capacity(dirty.len());
        for (identity, snapshot) in dirty {
            match self.engine.origin(&identity).filter(Origin::is_set) {
                Some(origin) => {
                    let reasons = self.engine.reasons_of(&identity);
                    let value = changelog::encode(origin.offset, &snapshot, reasons);
                    unsent.push_back((identity, origin.partition, Some(value)));
                }
                // Engine state for an identity no input record of ours touched (cannot
                // happen today): without a partition it has no changelog home.
                None => tracing::debug!("dirty state without an owning partition; not written"),
            }
        }
        // Identities the engine evicted get a tombstone, so a restore does not bring
        // back state the cap already threw away; those evicted for idleness get a
        // dormant marker instead (a tombstone once `state.dormant_memory` has passed),
        // so a restarted instance still scores their return. Their origin left the
        // engine with them, in the eviction list. (That list is bounded by the cap: if
        // more than the whole table were evicted between two flushes, the oldest names
        // would go without a tombstone, and a restore would bring those states back
        // under the cap, to be evicted again.) An identity re-created since its
        // eviction has fresh state in `dirty` above: no tombstone for it.
        //
        // The read side forgets them too: the risk table (and, through a signals-topic
        // tombstone, every instance following that topic) would otherwise keep one last
        // signal per identity ever seen, so a sprayed input would grow the API's memory
        // without bound even though the engine's is capped. A lookup then answers
        // `unknown`, which is the truth: riskd holds no baseline for it any more.
        for eviction in self.engine.take_evicted() {
            let identity = eviction.identity;
            if self.engine.events_seen(&identity).is_some() {
                continue;
            }
            self.table.remove(&identity);
            self.send_signal_tombstone(&identity);
            if eviction.origin.is_set() {
                let value = eviction.dormant.map(changelog::encode_dormant);
                unsent.push_back((identity, eviction.origin.partition, value));
            }
        }
        let uncovered = self.tracks.values().any(|t| !t.is_settled());
        if unsent.is_empty() && !uncovered {
            return;
        }
        let barrier = self.tracks.iter().map(|(&p, t)| (p, t.next())).collect();
        self.next_batch += 1;
        self.batches.push_back(StateBatch {
            id: self.next_batch,
            barrier,
            unsent,
            in_flight: 0,
        });
    }

    /// Hands staged state records to the producer, oldest batch first, once the effects
    /// of the events each batch covers are acknowledged.
    fn send_batches(&mut self) {
        if self.decays_in_flight > 0 {
            // The batches may hold the emitted scores of these decays.
            return;
        }
        for i in 0..self.batches.len() {
            let ready = {
                let batch = &self.batches[i];
                batch.barrier.iter().all(|(p, &barrier)| {
                    self.tracks
                        .get(p)
                        .map_or(true, |t| t.effects_done_before(barrier))
                })
            };
            if !ready {
                return;
            }
            let id = self.batches[i].id;
            while let Some((identity, partition, value)) = self.batches[i].unsent.pop_front() {
                let mut record = BaseRecord::with_opaque_to(
                    &self.config.kafka.state_topic,
                    Box::new(Token::State { batch: id }),
                )
                .key(identity.as_bytes())
                .partition(partition);
                if let Some(v) = &value {
                    record = record.payload(v.as_slice());
                }
                match self.producer.send(record) {
                    Ok(()) => self.batches[i].in_flight += 1,
                    Err((err, _)) => {
                        self.batches[i]
                            .unsent
                            .push_front((identity, partition, value));
                        if !is_queue_full(&err) {
                            tracing::warn!(%err, "cannot enqueue a state record; will retry");
                        }
                        return;
                    }
                }
            }
            // A later batch may only start once this one is fully enqueued, which keeps
            // the per-identity order of state records.
        }
    }

    /// Periodic work between records.
    fn housekeeping(&mut self, consumer: &RunConsumer) {
        self.drain_acks(None);
        self.advance_idle();
        if !self.retries.is_empty() {
            self.send_retries();
        }
        if self.last_flush.elapsed() >= self.config.kafka.state_flush_interval.0 {
            self.stage_batch();
            self.export_identity_metrics();
        }
        if !self.batches.is_empty() {
            self.send_batches();
            self.complete_batches();
        }
        if self.last_store.elapsed() >= STORE_EVERY {
            self.store(consumer, None);
        }
    }

    /// Sets the identity gauge and adds the evictions since the last export to their
    /// counter (per flush, not per record: the engine keeps the running total).
    fn export_identity_metrics(&mut self) {
        // The repartition stage tracks no identity: exported, its empty engine would set
        // the gauge to 0 between the scoring stage's updates.
        if matches!(self.stage, Stage::Repartition { .. }) {
            return;
        }
        let m = metrics();
        m.identities_tracked
            .set(i64::try_from(self.engine.identities()).unwrap_or(i64::MAX));
        m.identities_dormant
            .set(i64::try_from(self.engine.dormant()).unwrap_or(i64::MAX));
        let evicted = self.engine.stats().evicted;
        m.identities_evicted
            .inc_by(evicted.saturating_sub(self.evicted_exported));
        self.evicted_exported = evicted;
    }

    /// Hands safe positions to librdkafka's offset store (auto-commit sends them).
    fn store(&mut self, consumer: &RunConsumer, only: Option<&[i32]>) -> TopicPartitionList {
        self.last_store = Instant::now();
        let topic = &self.config.kafka.input_topic;
        let mut tpl = TopicPartitionList::new();
        for (&p, track) in self.tracks.iter_mut() {
            if only.is_some_and(|ps| !ps.contains(&p)) {
                continue;
            }
            if let Some(position) = track.take_storable() {
                let _ = tpl.add_partition_offset(topic, p, Offset::Offset(position));
            }
        }
        if tpl.count() > 0 {
            if let Err(err) = consumer.store_offsets(&tpl) {
                // Happens for a partition revoked a moment ago; its next owner replays
                // from the last commit, which is safe.
                tracing::debug!(%err, "cannot store offsets");
            }
        }
        tpl
    }

    /// Stores and synchronously commits the safe positions of `only` (or all) partitions.
    fn commit(&mut self, consumer: &RunConsumer, only: Option<&[i32]>) {
        self.store(consumer, only);
        let topic = &self.config.kafka.input_topic;
        let mut tpl = TopicPartitionList::new();
        for (&p, track) in &self.tracks {
            if only.is_some_and(|ps| !ps.contains(&p)) {
                continue;
            }
            let _ = tpl.add_partition_offset(topic, p, Offset::Offset(track.safe()));
        }
        if tpl.count() == 0 {
            return;
        }
        match consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => tracing::debug!(partitions = tpl.count(), "offsets committed"),
            // E.g. the group already moved on (our session expired): the next owner
            // replays from the previous commit, which at-least-once allows.
            Err(err) => tracing::warn!(%err, "cannot commit offsets"),
        }
    }

    /// Waits until the given partitions (or all) have nothing outstanding, or until
    /// `deadline`. Keeps re-sending and staging nothing new.
    fn drain(&mut self, consumer: &RunConsumer, only: Option<&[i32]>, deadline: Instant) {
        loop {
            self.drain_acks(Some(Duration::from_millis(20)));
            if !self.retries.is_empty() {
                self.send_retries();
            }
            self.send_batches();
            self.complete_batches();
            self.store(consumer, only);
            let settled = self
                .tracks
                .iter()
                .filter(|(p, _)| only.map_or(true, |ps| ps.contains(p)))
                .all(|(_, t)| t.is_settled());
            if settled {
                return;
            }
            if Instant::now() >= deadline {
                tracing::warn!("drain deadline reached with deliveries outstanding; those records will be redelivered");
                return;
            }
        }
    }

    fn on_revoke(&mut self, consumer: &RunConsumer, partitions: &[i32]) {
        let started = Instant::now();
        tracing::info!(?partitions, "partitions revoked; flushing their state");
        // Everything processed so far goes into one last batch; then wait for it and
        // for every signal and dead letter of these partitions, commit, and only then
        // let go of the state: the next owner restores exactly what we acknowledged.
        self.stage_batch();
        let deadline = started + self.config.kafka.session_timeout.0 / 2;
        self.drain(consumer, Some(partitions), deadline);
        self.commit(consumer, Some(partitions));
        // If the drain timed out (broker unreachable, session lost), state records of
        // these partitions may still wait in a batch. They must not be written later,
        // over newer state from the next owner: drop them. Their events are not
        // committed, so the next owner replays them from the last durable state.
        for batch in &mut self.batches {
            batch.unsent.retain(|(_, p, _)| !partitions.contains(p));
            batch.barrier.retain(|p, _| !partitions.contains(p));
        }
        let forgotten = self
            .engine
            .forget_where(|origin| partitions.contains(&origin.partition));
        if !self.config.kafka.follow_signals {
            // Not following the topic, the table holds only what this instance scored:
            // the next owner answers for these now, and nothing would update them here.
            for name in &forgotten {
                self.table.remove(name);
            }
        }
        let forgotten = forgotten.len();
        for p in partitions {
            self.tracks.remove(p);
            self.windows.remove(p);
            let _ = metrics()
                .consumer_lag
                .remove_label_values(&[&self.config.kafka.input_topic, &p.to_string()]);
        }
        self.export_identity_metrics();
        if forgotten > 0 {
            super::heap::release_free_memory("revocation");
        }
        tracing::info!(?partitions, forgotten, elapsed = ?started.elapsed(), "revocation done");
    }

    fn on_assign(&mut self, partitions: &[i32]) {
        if matches!(self.stage, Stage::Repartition { .. }) {
            // Nothing to restore: this stage keeps no state.
            return;
        }
        let orphans = without_state_partition(partitions, self.state_partitions);
        if !orphans.is_empty() {
            // Restoring one would wait for ever for a partition that does not exist,
            // inside the rebalance callback, while /healthz said ok; the next owner
            // would hang the same way. Stop loudly instead.
            let err = ServiceError::InputGrew {
                partitions: orphans,
                state_topic: self.config.kafka.state_topic.clone(),
                state_partitions: self.state_partitions,
            };
            tracing::error!(%err, "stopping");
            self.fatal = Some(err);
            self.cancel.cancel();
            return;
        }
        let started = Instant::now();
        tracing::info!(?partitions, "partitions assigned; restoring state");
        let engine = &mut self.engine;
        // Not following the signals topic, the table would learn of a restored identity
        // only at its next signal: until then, lookups said `unknown`. Fill it from the
        // restored state instead.
        let fill = (!self.config.kafka.follow_signals).then_some(&self.table);
        let (table, heartbeat) = (&self.table, self.stage.heartbeat());
        let mut read = 0u64;
        let mut corrupt = 0u64;
        let result = read_partitions(
            &self.config.kafka,
            &self.config.kafka.state_topic,
            partitions,
            &self.cancel,
            |partition, _offset, key, value| {
                // Restoring a large state is work, not a stall.
                read += 1;
                if read % 4096 == 0 {
                    table.beat(heartbeat);
                }
                let Some(identity) = key.and_then(|k| std::str::from_utf8(k).ok()) else {
                    corrupt += 1;
                    return;
                };
                let Some(value) = value else {
                    // Tombstone: the identity was evicted after its last state.
                    engine.forget(identity);
                    if let Some(table) = fill {
                        table.remove(identity);
                    }
                    return;
                };
                let value = match changelog::decode_record(value) {
                    Ok(changelog::Record::Dormant(mark)) => {
                        // Evicted for idleness: remembered, so its return is scored.
                        engine.restore_dormant(identity, partition, mark);
                        if let Some(table) = fill {
                            table.remove(identity);
                        }
                        return;
                    }
                    Ok(changelog::Record::State(value)) => Ok(value),
                    Err(e) => Err(e),
                };
                let restored = value.map_err(|e| e.to_string()).and_then(|value| {
                    engine
                        .restore(identity, value.snapshot)
                        .map_err(|e| e.to_string())?;
                    engine.restore_reasons(identity, value.reasons);
                    if let Some(table) = fill {
                        if let Some(signal) = engine.last_signal(identity) {
                            table.apply(signal);
                        }
                    }
                    Ok(value.last_offset)
                });
                match restored {
                    Ok(last) => {
                        if let Some(origin) = engine.origin_mut(identity) {
                            *origin = Origin {
                                partition,
                                offset: last,
                                floor: last,
                            };
                        }
                    }
                    Err(_) => corrupt += 1,
                }
            },
        );
        match result {
            Ok(records) => {
                let elapsed = started.elapsed();
                metrics().state_restore_seconds.set(elapsed.as_secs_f64());
                self.export_identity_metrics();
                if corrupt > 0 {
                    tracing::warn!(corrupt, "unreadable changelog records skipped");
                }
                tracing::info!(
                    ?partitions,
                    records,
                    identities = self.engine.identities(),
                    ?elapsed,
                    "state restored"
                );
                // The changelog's fetch buffers and decode scratch are free now. (The
                // first restore's are returned when the service turns ready.)
                if self.table.is_ready() {
                    super::heap::release_free_memory("restore");
                }
                if self.idle_base_ms == i64::MIN {
                    // No record since the start: idle time counts from the newest
                    // restored event, so a restart into a quiet input still decays the
                    // scores it restored.
                    self.idle_base_ms = self.engine.restored_until_ms();
                    self.last_record = Instant::now();
                }
                self.readiness.restored();
            }
            Err(err) => tracing::warn!(%err, "state restore stopped"),
        }
    }

    /// Errors surfaced by `poll`: librdkafka keeps retrying, so they are logged (rate
    /// limited: a down broker reports the same thing many times a second).
    fn poll_error(&mut self, err: &KafkaError) {
        let now = Instant::now();
        if self
            .last_poll_warning
            .map_or(true, |t| now.duration_since(t) > Duration::from_secs(5))
        {
            self.last_poll_warning = Some(now);
            tracing::warn!(%err, "consumer error (retrying)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_partitions_past_the_state_topic_are_found() {
        assert!(without_state_partition(&[0, 1, 2], 3).is_empty());
        assert_eq!(without_state_partition(&[1, 3, 4], 3), vec![3, 4]);
        assert_eq!(without_state_partition(&[-1], 3), vec![-1]);
    }

    #[test]
    fn events_beyond_the_wall_clock_lookahead_are_refused() {
        let lookahead = Lookahead {
            ms: 15 * 60_000,
            text: "15m".into(),
        };
        let now = 1_795_593_600_000;
        assert!(beyond_wall_clock(now, now, &lookahead).is_none());
        assert!(beyond_wall_clock(now + 15 * 60_000, now, &lookahead).is_none());
        // Old events (a backlog) are the engine's business, not the wall clock's.
        assert!(beyond_wall_clock(now - 365 * 86_400_000, now, &lookahead).is_none());
        let rejection = beyond_wall_clock(now + 15 * 60_000 + 1, now, &lookahead).expect("refused");
        assert_eq!(rejection.reason, RejectReason::TooFarAhead);
        assert!(rejection.detail.contains("ahead of the wall clock"));
        assert!(beyond_wall_clock(i64::MAX, i64::MAX, &lookahead).is_none());
        assert!(beyond_wall_clock(i64::MAX, now, &lookahead).is_some());
    }
}
