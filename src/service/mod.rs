//! `riskd run`: the Kafka service (design §7).
//!
//! # Layout
//!
//! - this module wires the parts together and owns the shutdown order;
//! - [`pipeline`]: the consumer thread — decode, score, produce, offsets, rebalances;
//! - [`offsets`]: which input offset is safe to store (pure bookkeeping);
//! - [`changelog`]: the state changelog record format;
//! - [`dedupe`]: the bounded `event_id` window;
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
pub mod offsets;
pub mod pipeline;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiError};
use crate::config::Config;
use crate::risk_table::{RiskTable, SharedRiskTable};
use crate::sink::kafka::{ensure_topics, SinkError};
use crate::source::kafka::{follow_signals, SourceError};

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

async fn run_kafka(
    config: &Config,
    table: &SharedRiskTable,
    shutdown: &CancellationToken,
) -> Result<(), ServiceError> {
    // Topics: wait for the broker rather than crash when it is not up yet.
    let mut backoff = Duration::from_millis(250);
    let partitions = loop {
        match ensure_topics(&config.kafka).await {
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
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    {
        let config = config.clone();
        let table = table.clone();
        let readiness = Arc::clone(&readiness);
        let cancel = shutdown.clone();
        std::thread::Builder::new()
            .name("riskd-pipeline".into())
            .spawn(move || {
                let result = pipeline::run(config, partitions.state, table, readiness, cancel);
                let _ = done_tx.send(result);
            })
            .map_err(|e| ServiceError::Thread(e.to_string()))?;
    }

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
