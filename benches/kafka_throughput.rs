//! Kafka end-to-end throughput (design §11): riskd's full `run` path against a
//! consume-and-parse-only rdkafka loop, on the same broker in the same process run.
//!
//! 1. Start a loopback Tansu broker (the test harness), or use `RISKD_BENCH_BROKERS`.
//! 2. Produce `RISKD_BENCH_EVENTS` (default 200 000) native events keyed by identity.
//! 3. Baseline: a group consumer that polls every record and decodes it with riskd's
//!    native decoder, nothing else.
//! 4. riskd: `service::run` in-process on the same topic with a fresh group — consume,
//!    decode, dedupe, score, produce signals and the state changelog, store offsets only
//!    when acknowledged — timed from its first consumed record until every offset is
//!    committed.
//!
//! Prints events/s for both and the ratio (goal: riskd ≥ 70% of the baseline).
//! Run: `cargo bench --bench kafka_throughput`.

#![allow(clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::Message;
use tokio_util::sync::CancellationToken;

use common::bench::env_or;
use common::broker::free_port;
use common::kafka::{committed, create_topic, end_offsets, produce_keyed, workload_spaced, Topics};
use riskd::config::Config;
use riskd::decode::{decode, Decoded, Format, Limits};

const START_MS: i64 = 1_795_593_600_000;

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs us too: only measure
    // when asked to bench.
    if !std::env::args().any(|a| a == "--bench") {
        println!("kafka_throughput: run with `cargo bench --bench kafka_throughput`");
        return;
    }
    let events = env_or::<usize>("RISKD_BENCH_EVENTS", 200_000);
    let partitions = env_or::<usize>("RISKD_BENCH_PARTITIONS", 3);
    let identities = env_or::<usize>("RISKD_BENCH_IDENTITIES", 2_000);

    let (_broker, bootstrap) = common::bench::broker();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let topics = Topics::new("bench");
    runtime.block_on(create_topic(
        &bootstrap,
        &topics.input,
        i32::try_from(partitions).unwrap(),
    ));

    let per_identity = events.div_ceil(identities);
    // 10 ms apart: 200k events span 33 minutes of event time, inside the engine's
    // lateness bound however the partitions interleave (nothing is dead-lettered).
    let mut records = workload_spaced("bench", identities, per_identity, START_MS, 10);
    records.truncate(events);
    let produce_started = Instant::now();
    produce_keyed(&bootstrap, &topics.input, &records);
    println!(
        "produced {} events to {} partitions in {:.1?}",
        records.len(),
        partitions,
        produce_started.elapsed()
    );
    let ends = end_offsets(&bootstrap, &topics.input);
    let total: i64 = ends.values().sum();
    assert_eq!(total as usize, records.len());

    let baseline = baseline(&bootstrap, &topics.input, total as u64);
    let riskd = riskd_end_to_end(&runtime, &bootstrap, &topics, total as u64);
    println!(
        "baseline consume+parse: {:>9.0} events/s\nriskd end to end:       {:>9.0} events/s\nratio: {:.0}% (goal >= 70%)",
        baseline,
        riskd,
        100.0 * riskd / baseline
    );
}

/// Consume-and-parse-only: poll every record and decode it, nothing else.
fn baseline(bootstrap: &str, topic: &str, total: u64) -> f64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("bench-baseline-{}", std::process::id()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let limits = Limits::default();
    let mut out: Vec<Decoded> = Vec::with_capacity(4);
    let mut seen = 0u64;
    let mut events = 0u64;
    let mut started = None;
    let deadline = Instant::now() + Duration::from_secs(300);
    while seen < total {
        assert!(Instant::now() < deadline, "baseline timed out at {seen}");
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            started.get_or_insert_with(Instant::now);
            out.clear();
            decode(
                Format::Native,
                m.payload().unwrap_or_default(),
                &limits,
                &mut out,
            );
            events += out
                .iter()
                .filter(|d| matches!(d, Decoded::Event(_)))
                .count() as u64;
            seen += 1;
        }
    }
    let elapsed = started.map_or(Duration::ZERO, |s| s.elapsed());
    assert_eq!(events, total, "every record decodes");
    let rate = total as f64 / elapsed.as_secs_f64();
    println!("baseline: {total} events in {elapsed:.2?}");
    rate
}

/// riskd's whole `run` path, timed from its first consumed record until the group has
/// committed the end of every partition (every effect acknowledged).
fn riskd_end_to_end(
    runtime: &tokio::runtime::Runtime,
    bootstrap: &str,
    topics: &Topics,
    total: u64,
) -> f64 {
    let mut config = Config::default_config().unwrap();
    topics.apply(bootstrap, &mut config);
    config.api.listen = format!("127.0.0.1:{}", free_port());
    config.kafka.session_timeout = riskd::config::HumanDuration(Duration::from_secs(6));
    config.kafka.commit_interval = riskd::config::HumanDuration(Duration::from_millis(100));
    // Offsets trail the state changelog by up to one flush interval; a shorter one keeps
    // that tail from dominating a run of a few seconds (the throughput is the same).
    config.kafka.state_flush_interval = riskd::config::HumanDuration(Duration::from_millis(250));
    let shutdown = CancellationToken::new();
    let service = runtime.spawn(riskd::service::run(config, shutdown.clone()));

    let consumed = || {
        riskd::metrics::metrics()
            .events_consumed
            .with_label_values(&["kafka"])
            .get()
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    while consumed() == 0 {
        assert!(Instant::now() < deadline, "riskd consumed nothing");
        std::thread::sleep(Duration::from_millis(1));
    }
    let started = Instant::now();
    let ends = end_offsets(bootstrap, &topics.input);
    loop {
        assert!(Instant::now() < deadline, "riskd timed out");
        if consumed() >= total {
            let done = committed(bootstrap, &topics.group, &topics.input);
            if ends
                .iter()
                .all(|(p, &end)| done.get(p).is_some_and(|&c| c >= end))
            {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = started.elapsed();
    let m = riskd::metrics::metrics();
    let signals: u64 = riskd::signal::Level::ALL
        .iter()
        .map(|l| m.signals_published.with_label_values(&[l.as_str()]).get())
        .sum();
    let rejected: u64 = riskd::decode::RejectReason::ALL
        .iter()
        .map(|r| m.rejected(*r).get())
        .sum();
    println!(
        "riskd published {signals} signals ({:.1} per 100 events), {} identities, {rejected} rejected",
        100.0 * signals as f64 / total as f64,
        m.identities_tracked.get()
    );
    assert_eq!(rejected, 0, "every event must be scored, not dead-lettered");
    shutdown.cancel();
    let _ = runtime.block_on(service);
    println!(
        "riskd: {total} events in {elapsed:.2?} (first record consumed → all offsets committed)"
    );
    total as f64 / elapsed.as_secs_f64()
}
