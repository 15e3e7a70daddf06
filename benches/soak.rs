//! Soak: bounded-time load through a loopback Tansu broker into a `riskd run` child,
//! with concurrent API lookups, sampling riskd's memory and error counters; ends with a
//! table and a verdict (memory flat within a tolerance, no errors, nothing left behind).
//!
//! Traffic: `RISKD_SOAK_RATE` events/s (default 2000) stamped with the wall clock, from a
//! stable pool of `RISKD_SOAK_IDENTITIES` (default 10 000) plus `RISKD_SOAK_CHURN_PERCENT`
//! (default 5) of events from never-seen identities, against a cap of
//! `RISKD_SOAK_MAX_IDENTITIES` (default 15 000): once the cap is reached the churn keeps
//! evicting, so a leak anywhere per identity shows up as growth. Lookups: ~200 single
//! lookups/s and 5 batches of 100/s, from one client task each.
//!
//! Memory verdict: the largest VmRSS after the warm-up (`RISKD_SOAK_WARMUP_SECONDS`,
//! default the first third of the run: the cap and the bounded dedupe windows fill) is
//! within `RISKD_SOAK_RSS_TOLERANCE_PERCENT` (default 10) of the RSS at the end of the
//! warm-up. Errors: no rejected events, no 5xx, no failed lookups, and every produced
//! event consumed by the end.
//!
//! Run: `scripts/soak.sh [SECONDS]` or `cargo bench --bench soak` (runs only with
//! `--bench`; `RISKD_SOAK_SECONDS`, default 600). Loopback only.

#![allow(clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use common::bench::{env_or, rss_kib};
use common::broker::Broker;
use common::kafka::{create_topic, Topics};
use common::riskd::Riskd;

fn wall_ms() -> i64 {
    riskd::risk_table::wall_clock_ms()
}

/// Sum of every sample of metric `name` (all label sets) in a Prometheus exposition.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    at_s: u64,
    rss_kib: u64,
    produced: u64,
    consumed: f64,
    rejected: f64,
    api_5xx: f64,
    tracked: f64,
    evicted: f64,
    lookups: u64,
    lookup_errors: u64,
}

#[derive(Default)]
struct Counters {
    produced: AtomicU64,
    lookups: AtomicU64,
    lookup_errors: AtomicU64,
    limited: AtomicU64,
}

fn event(rng: &mut rand_pcg::Pcg64, identity: &str, seq: u64) -> Vec<u8> {
    let n: u32 = rng.gen_range(0..100);
    let (action, destination) = match n {
        0..=59 => (
            "s3:GetObject",
            format!("arn:aws:s3:::data-{}/obj/{seq}", seq % 7),
        ),
        60..=84 => (
            "GET /v1/items",
            format!("api.internal/v1/items/{}", seq % 13),
        ),
        85..=97 => (
            "sqs:SendMessage",
            "arn:aws:sqs:eu-west-1:1:jobs".to_string(),
        ),
        _ => ("iam:ListRoles", "iam".to_string()),
    };
    let outcome = if rng.gen_range(0..50) == 0 {
        "denied"
    } else {
        "success"
    };
    serde_json::json!({
        "time": wall_ms(),
        "identity": identity,
        "action": action,
        "destination": destination,
        "event_id": format!("{identity}#{seq}"),
        "identity_kind": "service_account",
        "source_network": format!("vpc-{}", seq % 3),
        "user_agent": "aws-sdk-go/1.44",
        "outcome": outcome,
        "bytes": rng.gen_range(100..100_000u64),
    })
    .to_string()
    .into_bytes()
}

fn produce_loop(
    bootstrap: String,
    topic: String,
    rate: u64,
    pool: u64,
    churn_percent: u64,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "200000")
        .create()
        .unwrap();
    let mut rng = rand_pcg::Pcg64::seed_from_u64(7);
    let started = Instant::now();
    let mut sent = 0u64;
    let mut churned = 0u64;
    while !stop.load(Ordering::Relaxed) {
        // Paced against the start, so a slow tick is made up for, not lost.
        let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
        while sent < due {
            let identity = if rng.gen_range(0..100) < churn_percent {
                churned += 1;
                format!("churn-{churned:09}")
            } else {
                format!("pool-{:06}", rng.gen_range(0..pool))
            };
            let payload = event(&mut rng, &identity, sent);
            let mut record = BaseRecord::to(&topic)
                .key(identity.as_bytes())
                .payload(&payload);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((_, back)) => {
                        record = back;
                        producer.poll(Duration::from_millis(10));
                    }
                }
            }
            sent += 1;
        }
        counters.produced.store(sent, Ordering::Relaxed);
        producer.poll(Duration::from_millis(5));
        std::thread::sleep(Duration::from_millis(10));
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    counters.produced.store(sent, Ordering::Relaxed);
}

async fn lookup_loop(base: String, pool: u64, stop: Arc<AtomicBool>, counters: Arc<Counters>) {
    let client = reqwest::Client::new();
    let mut rng = rand_pcg::Pcg64::seed_from_u64(11);
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        n += 1;
        let result = if n % 40 == 0 {
            let ids: Vec<String> = (0..100)
                .map(|_| format!("pool-{:06}", rng.gen_range(0..pool)))
                .collect();
            client
                .post(format!("{base}/v1/risk:batch"))
                .json(&serde_json::json!({ "identities": ids }))
                .send()
                .await
        } else {
            let id = format!("pool-{:06}", rng.gen_range(0..pool));
            client.get(format!("{base}/v1/risk/{id}")).send().await
        };
        counters.lookups.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(resp) if resp.status().is_success() => {}
            Ok(resp) if resp.status() == reqwest::StatusCode::TOO_MANY_REQUESTS => {
                counters.limited.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                counters.lookup_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn sample(riskd: &Riskd, started: Instant, counters: &Counters) -> Sample {
    let text = riskd.get("/metrics").map(|(_, t)| t).unwrap_or_default();
    Sample {
        at_s: started.elapsed().as_secs(),
        rss_kib: rss_kib(riskd.pid()),
        produced: counters.produced.load(Ordering::Relaxed),
        consumed: metric_sum(&text, "riskd_events_consumed_total"),
        rejected: metric_sum(&text, "riskd_events_rejected_total"),
        api_5xx: text
            .lines()
            .filter(|l| l.starts_with("riskd_api_requests_total{status=\"5xx\"}"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum(),
        tracked: metric_sum(&text, "riskd_identities_tracked"),
        evicted: metric_sum(&text, "riskd_identities_evicted_total"),
        lookups: counters.lookups.load(Ordering::Relaxed),
        lookup_errors: counters.lookup_errors.load(Ordering::Relaxed),
    }
}

fn print_row(s: &Sample) {
    println!(
        "{:>6} {:>10} {:>10} {:>10} {:>8} {:>6} {:>8} {:>8} {:>9} {:>7}",
        s.at_s,
        s.rss_kib,
        s.produced,
        s.consumed as u64,
        s.rejected as u64,
        s.api_5xx as u64,
        s.tracked as u64,
        s.evicted as u64,
        s.lookups,
        s.lookup_errors
    );
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("soak: run with `scripts/soak.sh` or `cargo bench --bench soak`");
        return;
    }
    let seconds = env_or::<u64>("RISKD_SOAK_SECONDS", 600);
    let rate = env_or::<u64>("RISKD_SOAK_RATE", 2000);
    let pool = env_or::<u64>("RISKD_SOAK_IDENTITIES", 10_000).max(1);
    let churn = env_or::<u64>("RISKD_SOAK_CHURN_PERCENT", 5).min(100);
    let cap = env_or::<u64>("RISKD_SOAK_MAX_IDENTITIES", 15_000);
    let every = Duration::from_secs(env_or::<u64>("RISKD_SOAK_SAMPLE_SECONDS", 15).max(1));
    let tolerance = env_or::<u64>("RISKD_SOAK_RSS_TOLERANCE_PERCENT", 10) as f64 / 100.0;

    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let topics = Topics::new("soak");
    runtime.block_on(create_topic(&bootstrap, &topics.input, 3));
    let mut env = topics.env(&bootstrap);
    env.push(("RISKD__STATE__MAX_IDENTITIES".into(), cap.to_string()));
    // Production settings for the flush, not the tests' fast ones.
    env.push(("RISKD__KAFKA__STATE_FLUSH_INTERVAL".into(), "1s".into()));
    env.push(("RISKD__KAFKA__COMMIT_INTERVAL".into(), "1s".into()));
    env.push(("RISKD_LOG".into(), "warn".into()));
    let mut riskd = Riskd::spawn("soak", &env);
    riskd.wait_ready(Duration::from_secs(60));
    let base = format!("http://127.0.0.1:{}", riskd.api_port);
    println!(
        "soak: {seconds} s, {rate} events/s, pool {pool}, churn {churn}%, cap {cap}, riskd pid {}, broker {bootstrap}",
        riskd.pid()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let producer = std::thread::spawn({
        let (stop, counters) = (Arc::clone(&stop), Arc::clone(&counters));
        let (bootstrap, topic) = (bootstrap.clone(), topics.input.clone());
        move || produce_loop(bootstrap, topic, rate, pool, churn, stop, counters)
    });
    let lookups = runtime.spawn(lookup_loop(
        base,
        pool,
        Arc::clone(&stop),
        Arc::clone(&counters),
    ));

    println!(
        "{:>6} {:>10} {:>10} {:>10} {:>8} {:>6} {:>8} {:>8} {:>9} {:>7}",
        "t_s",
        "rss_kib",
        "produced",
        "consumed",
        "rejected",
        "5xx",
        "tracked",
        "evicted",
        "lookups",
        "lk_err"
    );
    let started = Instant::now();
    let mut samples = vec![sample(&riskd, started, &counters)];
    print_row(&samples[0]);
    let end = started + Duration::from_secs(seconds);
    while Instant::now() < end {
        std::thread::sleep(every.min(end.saturating_duration_since(Instant::now())));
        let s = sample(&riskd, started, &counters);
        print_row(&s);
        samples.push(s);
        if !riskd.is_running() {
            println!("soak: riskd exited early:\n{}", riskd.log());
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    producer.join().unwrap();
    runtime.block_on(lookups).unwrap();
    // Let riskd finish what was produced (bounded).
    let produced = counters.produced.load(Ordering::Relaxed);
    let drain_until = Instant::now() + Duration::from_secs(60);
    let mut last = sample(&riskd, started, &counters);
    while (last.consumed as u64) < produced && Instant::now() < drain_until {
        std::thread::sleep(Duration::from_secs(1));
        last = sample(&riskd, started, &counters);
    }
    print_row(&last);
    samples.push(last);

    // Verdict.
    let warm_at = env_or::<u64>("RISKD_SOAK_WARMUP_SECONDS", seconds / 3);
    let warm = samples
        .iter()
        .find(|s| s.at_s >= warm_at)
        .copied()
        .unwrap_or(last);
    let max_after = samples
        .iter()
        .filter(|s| s.at_s >= warm.at_s)
        .map(|s| s.rss_kib)
        .max()
        .unwrap_or(0);
    let max_all = samples.iter().map(|s| s.rss_kib).max().unwrap_or(0);
    let first = samples[0];
    let growth = max_after as f64 / warm.rss_kib.max(1) as f64 - 1.0;
    let memory_ok = growth <= tolerance;
    let rejected = last.rejected - first.rejected;
    // 5xx before the load starts are the harness's own readiness probes (503 while
    // state is restored); only those during the run count.
    let api_5xx = last.api_5xx - first.api_5xx;
    let errors_ok = rejected == 0.0 && api_5xx == 0.0 && last.lookup_errors == 0;
    let drained_ok = last.consumed as u64 >= produced;
    println!();
    println!(
        "RSS: start {} KiB, after warm-up ({} s) {} KiB, end {} KiB, max {} KiB; growth after warm-up {:+.1}% (tolerance {:.0}%)",
        first.rss_kib,
        warm.at_s,
        warm.rss_kib,
        last.rss_kib,
        max_all,
        growth * 100.0,
        tolerance * 100.0
    );
    println!(
        "events: produced {produced}, consumed {}, rejected {rejected}; identities tracked {}, evicted {}",
        last.consumed as u64, last.tracked as u64, last.evicted as u64
    );
    println!(
        "lookups: {} ({} failed, {} rate-limited), API 5xx during the run {}",
        last.lookups,
        last.lookup_errors,
        counters.limited.load(Ordering::Relaxed),
        api_5xx as u64
    );
    let status = riskd.terminate(Duration::from_secs(30));
    println!("riskd exit: {status}");
    let verdict = memory_ok && errors_ok && drained_ok && status.success();
    println!(
        "verdict: {} (memory {}, errors {}, drained {}, clean exit {})",
        if verdict { "PASS" } else { "FAIL" },
        if memory_ok { "flat" } else { "GREW" },
        if errors_ok { "none" } else { "SEEN" },
        if drained_ok { "yes" } else { "NO" },
        status.success()
    );
    drop(broker);
    if !verdict {
        std::process::exit(1);
    }
}
