//! Handler latency for `/v1/stats` (HDR histograms, exact quantiles) and Prometheus
//! (`riskd_lookup_duration_seconds`, fixed buckets).
//!
//! Prometheus buckets are too coarse to check a 100 µs p99 goal, hence the HDR copy. A
//! mutex per endpoint family is enough: recording is ~20 ns and the lock is held for
//! nothing else.

use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Endpoint families with separate latency distributions: a batch of 1000 is not a
/// lookup, and decisions add policy evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /v1/risk/{identity}`.
    Lookup,
    /// `POST /v1/risk:batch`.
    Batch,
    /// `POST /v1/decide` and `/ext_authz/*`.
    Decide,
}

impl Endpoint {
    /// The `endpoint` label of `riskd_lookup_duration_seconds`
    /// ([`crate::metrics::LOOKUP_ENDPOINTS`]).
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::Lookup => "lookup",
            Endpoint::Batch => "batch",
            Endpoint::Decide => "decide",
        }
    }
}

pub struct ApiStats {
    lookup: Mutex<Histogram<u64>>,
    batch: Mutex<Histogram<u64>>,
    decide: Mutex<Histogram<u64>>,
}

/// Quantiles of one family, in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

fn new_histogram() -> Mutex<Histogram<u64>> {
    // 1 ns .. 60 s at 3 significant digits. The bounds are constants (a programmer error,
    // not input, could break them) and the unit test below builds one.
    let h = Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds");
    Mutex::new(h)
}

impl Default for ApiStats {
    fn default() -> Self {
        ApiStats {
            lookup: new_histogram(),
            batch: new_histogram(),
            decide: new_histogram(),
        }
    }
}

impl ApiStats {
    fn cell(&self, endpoint: Endpoint) -> &Mutex<Histogram<u64>> {
        match endpoint {
            Endpoint::Lookup => &self.lookup,
            Endpoint::Batch => &self.batch,
            Endpoint::Decide => &self.decide,
        }
    }

    pub fn record(&self, endpoint: Endpoint, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX).max(1);
        // A poisoned lock only means another request panicked mid-record; the counts are
        // still usable.
        let mut h = self
            .cell(endpoint)
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        h.saturating_record(nanos);
        drop(h);
        crate::metrics::metrics()
            .lookup_duration_seconds
            .with_label_values(&[endpoint.label()])
            .observe(elapsed.as_secs_f64());
    }

    pub fn summary(&self, endpoint: Endpoint) -> LatencySummary {
        let h = self
            .cell(endpoint)
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let us = |ns: u64| (ns as f64 / 10.0).round() / 100.0;
        LatencySummary {
            count: h.len(),
            p50: us(h.value_at_quantile(0.5)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_in_microseconds() {
        let stats = ApiStats::default();
        for us in 1..=100u64 {
            stats.record(Endpoint::Lookup, Duration::from_micros(us));
        }
        let s = stats.summary(Endpoint::Lookup);
        assert_eq!(s.count, 100);
        assert!((s.p50 - 50.0).abs() < 0.5, "{s:?}");
        assert!((s.p99 - 99.0).abs() < 0.5, "{s:?}");
        assert_eq!(stats.summary(Endpoint::Batch).count, 0);
    }
}
