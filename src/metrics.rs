//! Every Prometheus metric riskd exports, in one place (design §12): names are consts,
//! labels come only from small fixed sets, and an identity is never a label.
//!
//! Hot paths use pre-resolved handles (`Metrics::rejected[reason]`, ...) so counting an
//! event is an atomic add, not a label lookup.

use std::sync::OnceLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::decode::RejectReason;
use crate::signal::Level;

pub const EVENTS_CONSUMED: &str = "riskd_events_consumed_total";
pub const EVENTS_REJECTED: &str = "riskd_events_rejected_total";
pub const EVENTS_SKIPPED: &str = "riskd_events_skipped_total";
pub const EVENTS_DUPLICATE: &str = "riskd_events_duplicate_total";
pub const DEAD_LETTERS_DROPPED: &str = "riskd_dead_letters_dropped_total";
pub const SIGNALS_PUBLISHED: &str = "riskd_signals_published_total";
pub const DETECTOR_FIRED: &str = "riskd_detector_fired_total";
pub const IDENTITIES_TRACKED: &str = "riskd_identities_tracked";
pub const IDENTITIES_DORMANT: &str = "riskd_identities_dormant";
pub const IDENTITIES_EVICTED: &str = "riskd_identities_evicted_total";
pub const EVENT_PROCESSING_SECONDS: &str = "riskd_event_processing_seconds";
pub const EVENT_TO_SIGNAL_SECONDS: &str = "riskd_event_to_signal_seconds";
pub const LOOKUP_DURATION_SECONDS: &str = "riskd_lookup_duration_seconds";
pub const DECISIONS: &str = "riskd_decisions_total";
pub const CONSUMER_LAG: &str = "riskd_consumer_lag_messages";
pub const STATE_RESTORE_SECONDS: &str = "riskd_state_restore_seconds";
pub const PIPELINE_SILENT_SECONDS: &str = "riskd_pipeline_silent_seconds";
pub const BUILD_INFO: &str = "riskd_build_info";
pub const API_REQUESTS: &str = "riskd_api_requests_total";

/// Event sources (label `source` on consumed events). `kafka_repartition`: records of
/// the unkeyed input topic read by the repartition stage (each event is then read
/// again, keyed, under `kafka`).
pub const SOURCES: [&str; 5] = ["kafka", "kafka_repartition", "replay", "demo", "generator"];
/// Detector names (label `detector`), fixed by design §4.
pub const DETECTORS: [&str; 8] = [
    "volume_spike",
    "data_volume_spike",
    "new_destination",
    "destination_burst",
    "new_action",
    "new_source",
    "off_hours",
    "failure_burst",
];
/// API endpoints timed by `riskd_lookup_duration_seconds` (label `endpoint`).
pub const LOOKUP_ENDPOINTS: [&str; 3] = ["lookup", "batch", "decide"];
/// Decisions (label `decision`).
pub const DECISION_KINDS: [&str; 3] = ["allow", "step_up", "deny"];

/// Buckets for work done in-process, 250 ns to 100 ms: one event's processing (goal
/// ≤ 1 µs) and a lookup in its handler (a few µs, goal p99 ≤ 100 µs) both need
/// resolution under 10 µs, where the smallest bucket used to be.
const WORK_BUCKETS: [f64; 16] = [
    0.000_000_25,
    0.000_000_5,
    0.000_001,
    0.000_002,
    0.000_005,
    0.000_01,
    0.000_025,
    0.000_05,
    0.000_1,
    0.000_25,
    0.000_5,
    0.001,
    0.005,
    0.01,
    0.05,
    0.1,
];

/// Buckets for an event's age when its signal is published, 10 ms to 6 h: a gateway's
/// events arrive in milliseconds, CloudTrail's 5 to 15 minutes late, and a backfill's
/// hours late. Capped at 10 s, every CloudTrail signal read as "10 s".
const DELAY_BUCKETS: [f64; 14] = [
    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0,
];

pub struct Metrics {
    pub registry: Registry,
    pub events_consumed: IntCounterVec,
    pub events_rejected: IntCounterVec,
    pub events_skipped: IntCounter,
    pub events_duplicate: IntCounter,
    pub dead_letters_dropped: IntCounter,
    pub signals_published: IntCounterVec,
    pub detector_fired: IntCounterVec,
    pub identities_tracked: IntGauge,
    pub identities_dormant: IntGauge,
    pub identities_evicted: IntCounter,
    pub event_processing_seconds: Histogram,
    pub event_to_signal_seconds: Histogram,
    /// By `endpoint` ([`LOOKUP_ENDPOINTS`]): a single lookup's p99 (goal ≤ 100 µs) must
    /// not drown in 1,000-identity batches.
    pub lookup_duration_seconds: HistogramVec,
    pub decisions: IntCounterVec,
    pub consumer_lag: IntGaugeVec,
    pub state_restore_seconds: prometheus::Gauge,
    /// Set when `/metrics` is scraped, from the pipeline's heartbeats (0 when no
    /// pipeline runs in this process).
    pub pipeline_silent_seconds: prometheus::Gauge,
    pub build_info: IntGaugeVec,
    pub api_requests: IntCounterVec,
}

fn counter_vec(registry: &Registry, name: &str, help: &str, label: &str) -> IntCounterVec {
    let vec = IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid metric");
    registry
        .register(Box::new(vec.clone()))
        .expect("unique metric");
    vec
}

fn histogram(registry: &Registry, name: &str, help: &str, buckets: &[f64]) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
        .expect("valid metric");
    registry
        .register(Box::new(h.clone()))
        .expect("unique metric");
    h
}

impl Metrics {
    // `expect` here guards programmer errors in constant names, not input: it runs once at
    // start-up with fixed arguments, and the unit test below exercises it.
    #[allow(clippy::unwrap_used)]
    fn new() -> Self {
        let registry = Registry::new();
        let events_consumed = counter_vec(
            &registry,
            EVENTS_CONSUMED,
            "Activity records read, by source.",
            "source",
        );
        let events_rejected = counter_vec(
            &registry,
            EVENTS_REJECTED,
            "Records rejected (dead-lettered), by reason.",
            "reason",
        );
        let events_skipped = IntCounter::new(
            EVENTS_SKIPPED,
            "Well-formed records that are not activity (e.g. non-final audit stages).",
        )
        .expect("valid metric");
        registry
            .register(Box::new(events_skipped.clone()))
            .expect("unique metric");
        let dead_letters_dropped = IntCounter::new(
            DEAD_LETTERS_DROPPED,
            "Dead-letter copies the broker refused for good (too large, not authorised); \
             the records are still in the input topic at the logged partition and offset.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(dead_letters_dropped.clone()))
            .expect("unique metric");
        let events_duplicate = IntCounter::new(
            EVENTS_DUPLICATE,
            "Events dropped because their event_id was seen recently (redelivery).",
        )
        .expect("valid metric");
        registry
            .register(Box::new(events_duplicate.clone()))
            .expect("unique metric");
        let signals_published = counter_vec(
            &registry,
            SIGNALS_PUBLISHED,
            "Risk signals published, by level.",
            "level",
        );
        let detector_fired = counter_vec(
            &registry,
            DETECTOR_FIRED,
            "Detector contributions to emitted scores, by detector.",
            "detector",
        );
        let identities_tracked =
            IntGauge::new(IDENTITIES_TRACKED, "Identities currently held in state.")
                .expect("valid metric");
        registry
            .register(Box::new(identities_tracked.clone()))
            .expect("unique metric");
        let identities_dormant = IntGauge::new(
            IDENTITIES_DORMANT,
            "Identities evicted for idleness and still remembered, so their return is scored \
             (state.dormant_memory).",
        )
        .expect("valid metric");
        registry
            .register(Box::new(identities_dormant.clone()))
            .expect("unique metric");
        let identities_evicted = IntCounter::new(
            IDENTITIES_EVICTED,
            "Identities evicted by idle TTL or the max_identities cap.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(identities_evicted.clone()))
            .expect("unique metric");
        let event_processing_seconds = histogram(
            &registry,
            EVENT_PROCESSING_SECONDS,
            "Time to decode, update state and score one event.",
            &WORK_BUCKETS,
        );
        let event_to_signal_seconds = histogram(
            &registry,
            EVENT_TO_SIGNAL_SECONDS,
            "Delay from an event's time to the publish of the signal it caused.",
            &DELAY_BUCKETS,
        );
        let lookup_duration_seconds = HistogramVec::new(
            HistogramOpts::new(
                LOOKUP_DURATION_SECONDS,
                "Time to answer a risk lookup, batch or decision in the handler, by endpoint.",
            )
            .buckets(WORK_BUCKETS.to_vec()),
            &["endpoint"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(lookup_duration_seconds.clone()))
            .expect("unique metric");
        // Every endpoint's series exists from the start, so dashboards show zero traffic
        // as zero rather than no data.
        for endpoint in LOOKUP_ENDPOINTS {
            lookup_duration_seconds.with_label_values(&[endpoint]);
        }
        let decisions = counter_vec(
            &registry,
            DECISIONS,
            "Enforcement decisions, by outcome.",
            "decision",
        );
        let consumer_lag = IntGaugeVec::new(
            Opts::new(
                CONSUMER_LAG,
                "Consumer lag by topic and partition (the input topic, and with \
                 kafka.repartition_topic the topic its second stage reads).",
            ),
            &["topic", "partition"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(consumer_lag.clone()))
            .expect("unique metric");
        let state_restore_seconds = prometheus::Gauge::new(
            STATE_RESTORE_SECONDS,
            "Duration of the last state restore from the changelog.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(state_restore_seconds.clone()))
            .expect("unique metric");
        let pipeline_silent_seconds = prometheus::Gauge::new(
            PIPELINE_SILENT_SECONDS,
            "Seconds since the most silent pipeline stage last went round its poll loop \
             (/readyz answers 503 past api.max_pipeline_stall).",
        )
        .expect("valid metric");
        registry
            .register(Box::new(pipeline_silent_seconds.clone()))
            .expect("unique metric");
        let build_info = IntGaugeVec::new(
            Opts::new(
                BUILD_INFO,
                "Always 1; the version label says which build runs.",
            ),
            &["version"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(build_info.clone()))
            .expect("unique metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let api_requests = counter_vec(
            &registry,
            API_REQUESTS,
            "HTTP API responses, by status class (2xx, 4xx, 5xx).",
            "status",
        );

        // Pre-create every fixed label so dashboards show zeros instead of gaps.
        for s in SOURCES {
            events_consumed.with_label_values(&[s]);
        }
        for r in RejectReason::ALL {
            events_rejected.with_label_values(&[r.as_str()]);
        }
        for l in Level::ALL {
            signals_published.with_label_values(&[l.as_str()]);
        }
        for d in DETECTORS {
            detector_fired.with_label_values(&[d]);
        }
        for d in DECISION_KINDS {
            decisions.with_label_values(&[d]);
        }
        for s in ["2xx", "4xx", "5xx"] {
            api_requests.with_label_values(&[s]);
        }

        Metrics {
            registry,
            events_consumed,
            events_rejected,
            events_skipped,
            events_duplicate,
            dead_letters_dropped,
            signals_published,
            detector_fired,
            identities_tracked,
            identities_dormant,
            identities_evicted,
            event_processing_seconds,
            event_to_signal_seconds,
            lookup_duration_seconds,
            decisions,
            consumer_lag,
            state_restore_seconds,
            pipeline_silent_seconds,
            build_info,
            api_requests,
        }
    }

    pub fn rejected(&self, reason: RejectReason) -> IntCounter {
        self.events_rejected.with_label_values(&[reason.as_str()])
    }

    pub fn signal_published(&self, level: Level) {
        self.signals_published
            .with_label_values(&[level.as_str()])
            .inc();
    }

    /// Renders the registry in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(err) = encoder.encode(&self.registry.gather(), &mut buffer) {
            tracing::warn!(%err, "cannot encode metrics");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_metric_is_exported() {
        let text = metrics().render();
        for name in [
            EVENTS_CONSUMED,
            EVENTS_REJECTED,
            SIGNALS_PUBLISHED,
            DETECTOR_FIRED,
            IDENTITIES_TRACKED,
            IDENTITIES_DORMANT,
            IDENTITIES_EVICTED,
            EVENT_PROCESSING_SECONDS,
            EVENT_TO_SIGNAL_SECONDS,
            LOOKUP_DURATION_SECONDS,
            DECISIONS,
            STATE_RESTORE_SECONDS,
            PIPELINE_SILENT_SECONDS,
            BUILD_INFO,
        ] {
            assert!(text.contains(name), "{name} missing from /metrics");
        }
    }
}
