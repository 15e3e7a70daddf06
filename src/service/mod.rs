//! `riskd run`: the Kafka service (design §7).
//!
//! # Layout
//!
//! - this module wires the parts together and owns the shutdown order;
//! - [`pipeline`]: the consumer thread — decode, score, produce, offsets, rebalances;
//! - [`offsets`]: which input offset is safe to store (pure bookkeeping);
//! - [`changelog`]: the state changelog record format;
//! - [`dedupe`]: the bounded `event_id` window;
//! - [`heap`]: handing freed heap back to the OS after a restore;
//! - Kafka clients live in [`crate::source::kafka`] (consumers, the signals follower,
//!   the changelog reader) and [`crate::sink::kafka`] (producer, topics).
//!
//! # Tasks
//!
//! ```text
//!   pipeline thread ── group consumer on kafka.input_topic ─┐
//!        │  (decode → Engine → producer: signals, DLQ, state changelog)
//!        └─ applies own signals ───────────────────────────┤
//!   follower task ── assign(all partitions of signals topic)┴─> RiskTable ─> HTTP API task
//! ```
//!
//! The pipeline is a plain thread, not an async task: librdkafka's rebalance callbacks
//! run on the polling thread and must block (restore, flush, commit) before returning.

pub mod changelog;
pub mod dedupe;
pub mod heap;
pub mod offsets;
pub mod pipeline;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiError};
use crate::config::Config;
use crate::decode::Format;
use crate::risk_table::{RiskTable, SharedRiskTable};
use crate::sink::kafka::{ensure_topic, ensure_topics, SinkError};
use crate::source::kafka::{follow_signals, SourceError};
use pipeline::Stage;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("cannot create the group consumer: {0}")]
    Consumer(rdkafka::error::KafkaError),
    #[error("the pipeline thread failed: {0}")]
    Thread(String),
    #[error(
        "assigned input partitions {partitions:?} have no partition in state topic \
         `{state_topic}` ({state_partitions} partitions): the input topic grew while riskd \
         ran. Add partitions to `{state_topic}` to match and restart (identities whose \
         partition changed start learning again)"
    )]
    InputGrew {
        partitions: Vec<i32>,
        state_topic: String,
        state_partitions: usize,
    },
}

/// `/readyz` turns ready once this instance's state is restored *and* (when following
/// signals) the follower has read the signals topic up to its end at start-up, so the
/// first answers are neither missing state nor stale.
pub struct Readiness {
    table: SharedRiskTable,
    flags: Mutex<(bool, bool)>,
}

impl Readiness {
    pub fn new(table: SharedRiskTable, follow_signals: bool) -> Self {
        Readiness {
            table,
            flags: Mutex::new((false, !follow_signals)),
        }
    }

    /// The first restore after joining the group finished.
    pub fn restored(&self) {
        self.update(|f| f.0 = true);
    }

    /// The signals follower caught up.
    pub fn followed(&self) {
        self.update(|f| f.1 = true);
    }

    fn update(&self, change: impl FnOnce(&mut (bool, bool))) {
        let mut flags = self.flags.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut flags);
        if flags.0 && flags.1 && !self.table.is_ready() {
            // Restoring and following left freed buffers behind (a tenth of the
            // process at a million identities): return them before declaring ready.
            heap::release_free_memory("ready");
            tracing::info!("ready");
            self.table.set_ready(true);
        }
    }
}

/// Runs the service until `shutdown` is cancelled, then drains and returns.
///
/// Returns an error only for problems that retrying cannot fix (the API address is
/// taken, the state topic has the wrong partition count, the client config is invalid).
/// An unreachable broker is waited for.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), ServiceError> {
    let table = RiskTable::new();

    // The API starts first so /healthz and /metrics answer (and /readyz says "not yet")
    // while we wait for the broker and restore state. It stops last, after the drain,
    // so the final metrics can still be scraped during shutdown.
    let listener = api::bind(&config).await?;
    let api_stop = CancellationToken::new();
    let api_task = {
        let table = table.clone();
        let config = config.clone();
        let stop = api_stop.clone();
        tokio::spawn(async move { api::serve(listener, table, &config, stop).await })
    };
    tracing::info!(listen = %config.api.listen, "API listening");

    let result = run_kafka(&config, &table, &shutdown).await;

    api_stop.cancel();
    match api_task.await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::warn!(%err, "API server stopped with an error"),
        Err(err) => tracing::warn!(%err, "API task failed"),
    }
    result
}

/// Starts one pipeline stage on its own OS thread (not spawn_blocking: the runtime must
/// not wait for it at exit if a drain ever hangs on a dead broker). A stage that fails on
/// its own cancels `shutdown`, so the other stops too.
fn spawn_pipeline(
    name: &str,
    config: Config,
    stage: Stage,
    state_partitions: usize,
    table: SharedRiskTable,
    readiness: Arc<Readiness>,
    shutdown: CancellationToken,
) -> Result<tokio::sync::oneshot::Receiver<Result<(), ServiceError>>, ServiceError> {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let result = pipeline::run(
                config,
                stage,
                state_partitions,
                table,
                readiness,
                shutdown.clone(),
            );
            if result.is_err() {
                shutdown.cancel();
            }
            let _ = done_tx.send(result);
        })
        .map_err(|e| ServiceError::Thread(e.to_string()))?;
    Ok(done_rx)
}

async fn run_kafka(
    config: &Config,
    table: &SharedRiskTable,
    shutdown: &CancellationToken,
) -> Result<(), ServiceError> {
    // Unkeyed input: a repartition stage reads it and writes each event keyed by
    // identity to the repartition topic, which the scoring stage reads as its input.
    let repartition = config.kafka.repartition_topic.trim().to_string();
    let raw = config;
    let config = &{
        let mut scoring = config.clone();
        if !repartition.is_empty() {
            scoring.kafka.input_topic = repartition.clone();
            scoring.kafka.input_format = Format::Native;
        }
        scoring
    };

    // Topics: wait for the broker rather than crash when it is not up yet. The scoring
    // stage's input decides the state topic's partitions.
    let mut backoff = Duration::from_millis(250);
    let partitions = loop {
        let mut ready = ensure_topics(&config.kafka).await;
        if ready.is_ok() && !repartition.is_empty() {
            if let Err(err) = ensure_topic(&raw.kafka, &raw.kafka.input_topic).await {
                ready = Err(err);
            }
        }
        match ready {
            Ok(partitions) => {
                tracing::info!(
                    partitions = partitions.input,
                    topic = %config.kafka.input_topic,
                    "topics ready"
                );
                break partitions;
            }
            // A wrong partition count will not fix itself.
            Err(err @ SinkError::StatePartitions { .. }) => return Err(err.into()),
            Err(err) => tracing::warn!(%err, ?backoff, "cannot prepare topics; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    };

    let repartition_stage = if repartition.is_empty() {
        None
    } else {
        let mut stage_config = raw.clone();
        stage_config.kafka.group_id = format!("{}.repartition", raw.kafka.group_id);
        tracing::info!(
            from = %raw.kafka.input_topic,
            to = %repartition,
            group = %stage_config.kafka.group_id,
            "repartitioning the input by identity"
        );
        Some(spawn_pipeline(
            "riskd-repartition",
            stage_config,
            Stage::Repartition {
                topic: Arc::from(repartition.as_str()),
            },
            0,
            table.clone(),
            // Its own readiness: a stage with no state says nothing about lookups.
            Arc::new(Readiness::new(RiskTable::new(), false)),
            shutdown.clone(),
        )?)
    };

    let readiness = Arc::new(Readiness::new(table.clone(), config.kafka.follow_signals));
    let follower_stop = CancellationToken::new();
    let follower = if config.kafka.follow_signals {
        let readiness = Arc::clone(&readiness);
        Some(tokio::spawn(follow_signals(
            config.kafka.clone(),
            table.clone(),
            follower_stop.clone(),
            move || readiness.followed(),
        )))
    } else {
        None
    };

    // The pipeline runs on its own OS thread (not spawn_blocking: the runtime must not
    // wait for it at exit if a drain ever hangs on a dead broker).
    let done_rx = spawn_pipeline(
        "riskd-pipeline",
        config.clone(),
        Stage::Score,
        partitions.state,
        table.clone(),
        Arc::clone(&readiness),
        shutdown.clone(),
    )?;

    // Wait for the pipeline to finish on its own (a fatal error) or, after shutdown,
    // for its drain, but never longer than the session timeout plus a margin: after
    // that the group has moved on and exiting is the right thing to do.
    let mut done_rx = done_rx;
    let result = tokio::select! {
        r = &mut done_rx => r.map_err(|_| ServiceError::Thread("pipeline thread panicked".into())).and_then(|r| r),
        _ = shutdown.cancelled() => {
            let budget = config.kafka.session_timeout.0 + Duration::from_secs(2);
            match tokio::time::timeout(budget, &mut done_rx).await {
                Ok(r) => r.map_err(|_| ServiceError::Thread("pipeline thread panicked".into())).and_then(|r| r),
                Err(_) => {
                    tracing::warn!(?budget, "pipeline did not finish draining in time; exiting anyway");
                    Ok(())
                }
            }
        }
    };
    // A pipeline that failed on its own must stop the rest too.
    shutdown.cancel();
    let result = match repartition_stage {
        Some(done) => {
            let budget = config.kafka.session_timeout.0 + Duration::from_secs(2);
            let stage = match tokio::time::timeout(budget, done).await {
                Ok(r) => r
                    .map_err(|_| ServiceError::Thread("repartition thread panicked".into()))
                    .and_then(|r| r),
                Err(_) => Ok(()),
            };
            result.and(stage)
        }
        None => result,
    };
    follower_stop.cancel();
    if let Some(task) = follower {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(%err, "signals follower stopped with an error"),
            Err(err) => tracing::warn!(%err, "signals follower task failed"),
        }
    }
    result
}
