//! What the broker-backed benches (`kafka_throughput`, `restart`, `soak`) share: numeric
//! settings from the environment, and a broker (an external one named by
//! `RISKD_BENCH_BROKERS`, else a loopback Tansu started here).

#![allow(dead_code)]

use std::str::FromStr;

use super::broker::Broker;

/// `name` parsed from the environment, else `default`.
pub fn env_or<T: FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The broker to bench against and its bootstrap address. Keep the returned `Broker`
/// alive for the bench: dropping it stops the process.
pub fn broker() -> (Option<Broker>, String) {
    match std::env::var("RISKD_BENCH_BROKERS") {
        Ok(b) => (None, b),
        Err(_) => {
            let broker = Broker::start();
            let b = broker.bootstrap();
            (Some(broker), b)
        }
    }
}

/// VmRSS of `pid` in KiB (0 if unreadable).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
