//! Lookup latency under load while ingesting (design §11: handler p99 ≤ 100 µs; client
//! p99 ≤ 2 ms at 10k req/s). Loopback only, bounded in count and time.
//!
//! ```text
//! cargo bench --bench lookup_load -- [--rate 10000] [--seconds 10] [--identities 100000]
//!                                    [--ingest 20000] [--workers 32]
//! ```
//!
//! In one process: the real API (`riskd::api::serve`) on 127.0.0.1:0 over a table of
//! `--identities` signals; a thread that keeps applying `--ingest` signals/s to that table
//! (the pipeline's write load); and an open-loop client of `--workers` keep-alive
//! connections issuing `GET /v1/risk/{identity}` for random identities at `--rate` in
//! total. Each worker has a fixed schedule, so a slow server does not slow the offered
//! load. Reported:
//! - client latency from the moment a request is sent to its body being read;
//! - the same measured from its *scheduled* start (includes queueing behind a slow
//!   response, and tokio's 1 ms timer granularity, so it is an upper bound);
//! - handler latency p50/p99/p999 as the server itself records it (`/v1/stats`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use riskd::config::Config;
use riskd::risk_table::RiskTable;
use riskd::signal::{format_time_ms, model_name, IdentityState, Level, Reason, Signal};
use tokio_util::sync::CancellationToken;

struct Options {
    rate: u64,
    seconds: u64,
    identities: usize,
    ingest: u64,
    workers: usize,
}

fn options() -> Options {
    let mut o = Options {
        rate: 10_000,
        seconds: 10,
        identities: 100_000,
        ingest: 20_000,
        workers: 32,
    };
    let args: Vec<String> = std::env::args().collect();
    // `cargo test --all-targets` runs benches without `--bench`: then only smoke-test the
    // harness briefly (a debug build cannot offer 10k req/s anyway).
    if !args.iter().any(|a| a == "--bench") {
        o.rate = 500;
        o.seconds = 1;
        o.identities = 1_000;
        o.ingest = 1_000;
        o.workers = 4;
    }
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    if let Some(v) = value("--rate") {
        o.rate = v.clamp(1, 200_000);
    }
    if let Some(v) = value("--seconds") {
        o.seconds = v.clamp(1, 300);
    }
    if let Some(v) = value("--identities") {
        o.identities = (v as usize).clamp(1, 5_000_000);
    }
    if let Some(v) = value("--ingest") {
        o.ingest = v.min(1_000_000);
    }
    if let Some(v) = value("--workers") {
        o.workers = (v as usize).clamp(1, 1024);
    }
    o
}

fn identity(i: usize) -> String {
    format!("arn:aws:iam::123456789012:role/svc-{i:07}")
}

/// xorshift64*: enough randomness for picking identities, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn signal(i: usize, time_ms: i64, rng: &mut Rng) -> Signal {
    let score = (rng.next() % 1000) as f64 / 10.0;
    let level = match score {
        s if s >= 85.0 => Level::Critical,
        s if s >= 60.0 => Level::High,
        s if s >= 30.0 => Level::Elevated,
        _ => Level::Normal,
    };
    Signal {
        identity: identity(i),
        time: format_time_ms(time_ms),
        score,
        level,
        state: IdentityState::Active,
        identity_kind: riskd::event::IdentityKind::Unknown,
        events_seen: rng.next() % 100_000,
        reasons: vec![
            Reason {
                detector: "new_destination".into(),
                strength: 0.81,
                detail: "first access to arn:aws:s3:::payroll-exports (restricted)".into(),
            },
            Reason {
                detector: "volume_spike".into(),
                strength: 0.55,
                detail: "312 events/5m vs baseline 40±9".into(),
            },
        ],
        event_id: None,
        model: model_name(),
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn quantiles_us(h: &Histogram<u64>) -> String {
    let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    format!(
        "p50 {:>8.1} µs  p99 {:>8.1} µs  p999 {:>8.1} µs  max {:>8.1} µs  (n = {})",
        us(0.5),
        us(0.99),
        us(0.999),
        h.max() as f64 / 1000.0,
        h.len()
    )
}

fn main() {
    let o = options();
    println!(
        "lookup_load: rate {} req/s for {} s, {} identities, ingest {} signals/s, {} workers, {} cores",
        o.rate,
        o.seconds,
        o.identities,
        o.ingest,
        o.workers,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    // Server and client on separate runtimes, as they would be separate processes.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("server runtime");
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("client runtime");

    let table = RiskTable::new();
    let base_ms = 1_795_000_000_000i64;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for i in 0..o.identities {
        table.apply(signal(i, base_ms, &mut rng));
    }
    table.set_ready(true);

    let mut config = Config::default_config().expect("defaults");
    config.api.listen = "127.0.0.1:0".into();
    let shutdown = CancellationToken::new();
    let listener = server_rt
        .block_on(riskd::api::bind(&config))
        .expect("bind loopback");
    let addr = listener.local_addr().expect("addr");
    let server = {
        let table = table.clone();
        let shutdown = shutdown.clone();
        server_rt.spawn(async move { riskd::api::serve(listener, table, &config, shutdown).await })
    };

    // Ingest: the pipeline's writes, spread over each millisecond.
    let ingesting = Arc::new(AtomicBool::new(true));
    let ingested = Arc::new(AtomicU64::new(0));
    let ingest_thread = {
        let table = table.clone();
        let ingesting = ingesting.clone();
        let ingested = ingested.clone();
        let per_ms = o.ingest as f64 / 1000.0;
        let n = o.identities;
        std::thread::spawn(move || {
            let mut rng = Rng(0xD1B5_4A32_D192_ED03);
            let started = Instant::now();
            let mut done = 0u64;
            let mut t = base_ms;
            while ingesting.load(Ordering::Relaxed) {
                let due = (started.elapsed().as_secs_f64() * 1000.0 * per_ms) as u64;
                while done < due {
                    t += 1;
                    let i = (rng.next() % n as u64) as usize;
                    table.apply(signal(i, t, &mut rng));
                    done += 1;
                }
                ingested.store(done, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };

    let base = format!("http://{addr}");
    let urls: Arc<Vec<String>> = Arc::new(
        (0..o.identities.min(200_000))
            .map(|i| format!("{base}/v1/risk/{}", encode(&identity(i))))
            .collect(),
    );
    let total = o.rate * o.seconds;
    let (service, corrected, errors, sent, wall) = client_rt.block_on(async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(o.workers)
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client");
        // Warm the connections and the server's first allocations.
        for _ in 0..(o.workers * 4) {
            let _ = client.get(&urls[0]).send().await;
        }
        let period = Duration::from_secs_f64(o.workers as f64 / o.rate as f64);
        let per_worker = total / o.workers as u64;
        let deadline = Instant::now() + Duration::from_secs(o.seconds + 5);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..o.workers {
            let client = client.clone();
            let urls = urls.clone();
            tasks.push(tokio::spawn(async move {
                let mut service =
                    Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram");
                let mut corrected = service.clone();
                let mut errors = 0u64;
                let mut sent = 0u64;
                let mut rng = Rng(0xA076_1D64_78BD_642F ^ (w as u64 + 1));
                // Stagger workers across one period so requests are spread evenly.
                let offset = period.mul_f64(w as f64 / o.workers as f64);
                let first = tokio::time::Instant::now() + offset;
                for k in 0..per_worker {
                    let scheduled = first + period.mul_f64(k as f64);
                    tokio::time::sleep_until(scheduled).await;
                    if Instant::now() > deadline {
                        break;
                    }
                    let url = &urls[(rng.next() % urls.len() as u64) as usize];
                    let sent_at = tokio::time::Instant::now();
                    let ok = match client.get(url).send().await {
                        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    let done = tokio::time::Instant::now();
                    sent += 1;
                    if !ok {
                        errors += 1;
                        continue;
                    }
                    service.saturating_record(done.duration_since(sent_at).as_nanos() as u64);
                    corrected.saturating_record(done.duration_since(scheduled).as_nanos() as u64);
                }
                (service, corrected, errors, sent)
            }));
        }
        let mut service = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("h");
        let mut corrected = service.clone();
        let mut errors = 0;
        let mut sent = 0;
        for t in tasks {
            let (s, c, e, n) = t.await.expect("worker");
            service.add(&s).expect("merge");
            corrected.add(&c).expect("merge");
            errors += e;
            sent += n;
        }
        (service, corrected, errors, sent, started.elapsed())
    });

    let stats: serde_json::Value = client_rt.block_on(async {
        reqwest::get(format!("{base}/v1/stats"))
            .await
            .expect("stats")
            .json()
            .await
            .expect("stats JSON")
    });
    ingesting.store(false, Ordering::Relaxed);
    ingest_thread.join().expect("ingest thread");
    shutdown.cancel();
    let _ = server_rt.block_on(server);

    let achieved = sent as f64 / wall.as_secs_f64();
    let lookup = &stats["handler_latency_us"]["lookup"];
    println!(
        "sent {sent} requests in {:.2} s = {achieved:.0} req/s (target {}), errors {errors}",
        wall.as_secs_f64(),
        o.rate
    );
    println!(
        "ingested {} signals while measuring",
        ingested.load(Ordering::Relaxed)
    );
    println!(
        "client latency (from send):      {}",
        quantiles_us(&service)
    );
    println!(
        "client latency (from schedule):  {}",
        quantiles_us(&corrected)
    );
    println!(
        "handler latency (/v1/stats):     p50 {:>8} µs  p99 {:>8} µs  p999 {:>8} µs  max {:>8} µs  (n = {})",
        lookup["p50"], lookup["p99"], lookup["p999"], lookup["max"], lookup["count"]
    );
    let handler_p99 = lookup["p99"].as_f64().unwrap_or(f64::MAX);
    let client_p99 = service.value_at_quantile(0.99) as f64 / 1000.0;
    println!(
        "goals: handler p99 ≤ 100 µs: {}; client p99 ≤ 2 ms at {} req/s: {}",
        if handler_p99 <= 100.0 {
            "met"
        } else {
            "MISSED"
        },
        o.rate,
        if client_p99 <= 2000.0 && errors == 0 {
            "met"
        } else {
            "MISSED"
        }
    );
}
