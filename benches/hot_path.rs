//! Hot path benchmark (design §11): decode one native JSON event + `Engine::process`
//! with 100k live identities; goal ≤ 1 µs per event median on one core.
//!
//! Decoding is the native decoder (`decode::decode_native`, the same code the Kafka
//! source uses; `replay` runs `decode_native_into` on recycled events, measured
//! separately); decode and process are also measured on their own, so a regression
//! shows which half it is in. The `lookahead` variants drive the engine as `replay`
//! does, holding events back `PREFETCH_DISTANCE` places so `Engine::prefetch_ahead`
//! loads their state while the one before is processed; the plain ones process each
//! event cold, as the Kafka loop does for a record holding one event. Setup also
//! prints the state size per identity (heap estimate and encoded snapshot), measured on
//! the same realistic fleet.
//!
//! After the criterion group, the lookahead hot path is also timed event by event
//! (1M events) and its distribution printed: the goal is a per-event median, and
//! criterion's estimates are batch means. `RISKD_BENCH_PER_EVENT=0` skips that pass (for
//! callgrind runs, whose per-call counts it would mix with the benchmark's).

use std::collections::VecDeque;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use riskd::config::Config;
use riskd::decode::{decode_native, decode_native_into, Limits};
use riskd::engine::{Engine, Keyed, PREFETCH_DISTANCE};
use riskd::event::ActivityEvent;
use riskd::signal::Signal;
use riskd::source::generator::write_native;

/// Live identities; `RISKD_BENCH_IDENTITIES` overrides it to separate compute from
/// memory latency (a small table fits in cache).
fn identities() -> usize {
    std::env::var("RISKD_BENCH_IDENTITIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}
const WARM_EVENTS_PER_IDENTITY: usize = 60;
const T0: i64 = 1_763_942_400_000;

/// One identity's habits: a few actions, a few destination templates with ids in them,
/// a private range its pods churn through, an SDK family whose version moves.
struct Habit {
    name: String,
    actions: Vec<String>,
    buckets: Vec<String>,
    net: u8,
    sdk: &'static str,
}

fn fleet(rng: &mut Pcg64) -> Vec<Habit> {
    const VERBS: [&str; 12] = [
        "s3:GetObject",
        "s3:PutObject",
        "s3:ListBucket",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "sqs:SendMessage",
        "sqs:ReceiveMessage",
        "kms:Decrypt",
        "GET /v1/orders",
        "POST /v1/payments",
        "get pods",
        "list configmaps",
    ];
    const SDKS: [&str; 4] = ["aws-sdk-go", "Boto3", "aws-sdk-java", "kubectl"];
    (0..identities())
        .map(|i| {
            let n_actions = rng.gen_range(2..7);
            Habit {
                name: format!("arn:aws:iam::123456789012:role/svc-{i:06}"),
                actions: (0..n_actions)
                    .map(|_| VERBS[rng.gen_range(0..VERBS.len())].to_string())
                    .collect(),
                buckets: (0..rng.gen_range(1..4))
                    .map(|_| format!("team-{}-data", rng.gen_range(0..500)))
                    .collect(),
                net: rng.gen_range(0..200),
                sdk: SDKS[rng.gen_range(0..SDKS.len())],
            }
        })
        .collect()
}

fn event(h: &Habit, t: i64, rng: &mut Pcg64) -> ActivityEvent {
    ActivityEvent {
        time_ms: t,
        identity: h.name.clone(),
        action: h.actions[rng.gen_range(0..h.actions.len())].clone(),
        destination: format!(
            "arn:aws:s3:::{}/records/{}/{:x}.json",
            h.buckets[rng.gen_range(0..h.buckets.len())],
            rng.gen_range(0..1_000_000u32),
            rng.gen::<u64>()
        ),
        source_ip: Some(format!(
            "10.{}.{}.{}",
            h.net,
            rng.gen_range(0..256),
            rng.gen_range(1..255)
        )),
        user_agent: Some(format!(
            "{}/1.{}.{} linux/amd64",
            h.sdk,
            rng.gen_range(40..45),
            rng.gen_range(0..9)
        )),
        bytes: Some(rng.gen_range(200..20_000)),
        event_id: Some(format!("{:016x}", rng.gen::<u64>())),
        ..ActivityEvent::default()
    }
}

/// The native decoder with default limits, as `replay` runs it.
fn decode(line: &str) -> Option<ActivityEvent> {
    decode_native(line.as_bytes(), &Limits::default()).ok()
}

fn bench(c: &mut Criterion) {
    let mut rng = Pcg64::seed_from_u64(7);
    let habits = fleet(&mut rng);
    let config = Config::default_config().expect("defaults");
    let mut engine = Engine::new(&config);
    let mut out = Vec::new();
    let mut alerts = 0usize;
    // Warm-up: two days of traffic, in time order, every identity active.
    let n = identities();
    let total = n * WARM_EVENTS_PER_IDENTITY;
    let span = 2 * 86_400_000i64;
    for k in 0..total {
        let t = T0 + (k as i64) * span / total as i64;
        let h = &habits[rng.gen_range(0..n)];
        let _ = engine.process(&event(h, t, &mut rng), &mut out);
        alerts += out.iter().filter(|s| s.level.is_alert()).count();
        out.clear();
    }
    let heap = engine.state_heap_bytes();
    let dirty = engine.take_dirty();
    let encoded: usize = dirty.iter().map(|(_, v)| v.len()).sum();
    eprintln!(
        "fleet: {} identities, {} events; state heap ≈ {} B/identity (incl. key and table slot); encoded snapshot {} B/identity; {} active; {alerts} high/critical signals on this benign fleet",
        engine.identities(),
        total,
        heap / engine.identities().max(1),
        encoded / dirty.len().max(1),
        dirty
            .iter()
            .filter(|(k, _)| engine.snapshot_state(k) == Some(riskd::signal::IdentityState::Active))
            .count()
    );
    // Measured traffic continues at the warm-up's rate, so each identity sees the same
    // steady state it learned (a faster clock would make every identity spike).
    let step = (span / total as i64).max(1);
    let mut t = T0 + span;
    let lines: Vec<String> = (0..50_000)
        .map(|_| {
            let h = &habits[rng.gen_range(0..n)];
            // The native wire format, as producers and `riskd generate` write it.
            let mut line = Vec::new();
            write_native(&mut line, &event(h, t, &mut rng)).expect("writes to memory");
            String::from_utf8(line)
                .expect("JSON is UTF-8")
                .trim_end()
                .to_string()
        })
        .collect();
    let mut i = 0usize;
    let mut group = c.benchmark_group("hot_path");
    group.bench_function("decode_native", |b| {
        b.iter(|| {
            i = (i + 1) % lines.len();
            black_box(decode(&lines[i]))
        })
    });
    // As `replay` decodes: into a recycled event, so its string buffers are reused.
    let limits = Limits::default();
    let mut reused = ActivityEvent::default();
    group.bench_function("decode_native_into_reused_event", |b| {
        b.iter(|| {
            i = (i + 1) % lines.len();
            black_box(decode_native_into(
                lines[i].as_bytes(),
                &limits,
                &mut reused,
            ))
            .ok();
        })
    });
    let decoded: Vec<ActivityEvent> = lines.iter().filter_map(|l| decode(l)).collect();
    // A line the decoder rejects would make the combined benchmark measure nothing.
    assert_eq!(decoded.len(), lines.len(), "every bench line decodes");
    // The event is cloned in setup and dropped after the routine returns, outside the
    // timing: in the pipeline the decoder hands over an owned event, so neither the
    // clone nor its drop is part of processing. Batches are small (256 events, ~100 KB)
    // so each event is still in cache when processed, as a just-decoded event is; with
    // criterion's `SmallInput` a batch held ~10% of all iterations (tens of MB), and
    // reading the event's own strings back from memory added ~4 cache misses per event
    // that the pipeline does not have.
    let mut next_event = || {
        i = (i + 1) % decoded.len();
        t += step;
        let mut e = decoded[i].clone();
        e.time_ms = t;
        e
    };
    group.bench_function("process_100k_identities", |b| {
        b.iter_batched(
            &mut next_event,
            |e| {
                out.clear();
                let _ = black_box(engine.process(&e, &mut out));
                e
            },
            BatchSize::NumIterations(256),
        )
    });
    // As `replay` scores: events held back `PREFETCH_DISTANCE` places, the engine
    // prefetching their state while it processes the one before (`prefetch_ahead`).
    // Each iteration adds one event at the back of the window and processes the front
    // one, so every event is measured with a full window ahead of it. Each event's
    // prefetch keys are computed once, as it enters the window (inside the timing), and
    // `process_keyed` reuses them, as replay does.
    let mut window: VecDeque<Keyed<ActivityEvent>> = VecDeque::with_capacity(PREFETCH_DISTANCE + 1);
    group.bench_function("process_lookahead_100k_identities", |b| {
        b.iter_batched(
            &mut next_event,
            |e| {
                window.push_back(Keyed::new(e));
                // Only while the window fills (the first three iterations) is nothing
                // processed.
                if window.len() <= PREFETCH_DISTANCE {
                    return None;
                }
                let front = window.pop_front()?;
                engine.prefetch_ahead(window.iter().map(Keyed::keys));
                out.clear();
                let _ = black_box(engine.process_keyed(&front, &mut out));
                Some(front.into_inner())
            },
            BatchSize::NumIterations(256),
        )
    });
    window.clear();
    // The whole hot path as `replay` runs it: decode into a recycled event, then score.
    group.bench_function("decode_into_and_process_100k_identities", |b| {
        b.iter(|| {
            i = (i + 1) % lines.len();
            t += step;
            if decode_native_into(lines[i].as_bytes(), &limits, &mut reused).is_ok() {
                reused.time_ms = t;
                out.clear();
                let _ = black_box(engine.process(&reused, &mut out));
            }
        })
    });
    // The whole hot path as `replay` runs it, with the lookahead above: decode into a
    // recycled event at the back of the window, score the front one.
    let mut lookahead = Lookahead::new();
    group.bench_function("decode_into_and_process_lookahead_100k_identities", |b| {
        b.iter(|| {
            i = (i + 1) % lines.len();
            t += step;
            lookahead.step(&lines[i], t, &limits, &mut engine, &mut out);
        })
    });
    group.bench_function("decode_and_process_100k_identities", |b| {
        b.iter(|| {
            i = (i + 1) % lines.len();
            t += step;
            if let Some(mut e) = decode(&lines[i]) {
                e.time_ms = t;
                out.clear();
                let _ = black_box(engine.process(&e, &mut out));
            }
        })
    });
    group.finish();
    // The goal is a per-event median, which criterion does not report: its estimates are
    // means over batches, and a batch's mean carries every rare costly event in it (an
    // hour's close, a sweep, a signal). So the whole hot path, as the lookahead benchmark
    // above runs it, is also timed event by event. Only when benchmarking: `cargo test
    // --all-targets` runs this file unoptimised as a smoke test.
    let benchmarking = std::env::args().any(|a| a == "--bench");
    if benchmarking && std::env::var("RISKD_BENCH_PER_EVENT").as_deref() != Ok("0") {
        // The window still holds events stamped before the benchmarks after it moved the
        // clock on; start it afresh.
        lookahead.clear();
        let mut one_event = || {
            i = (i + 1) % lines.len();
            t += step;
            lookahead.step(&lines[i], t, &limits, &mut engine, &mut out);
        };
        per_event_latency(&mut one_event, PER_EVENT_SAMPLES);
    }
}

/// The lookahead driver `replay` runs: each step decodes a line into a recycled event at
/// the back of a window of `PREFETCH_DISTANCE` events, prefetches the window's state, and
/// processes the front one. Events are boxed, as `replay` holds them: moving an event
/// through the window then moves a pointer, not the ~300-byte event.
struct Lookahead {
    window: VecDeque<Keyed<Box<ActivityEvent>>>,
    // Boxed on purpose: a spare moves into the window as it is, a pointer.
    #[allow(clippy::vec_box)]
    spares: Vec<Box<ActivityEvent>>,
}

impl Lookahead {
    fn new() -> Self {
        Lookahead {
            window: VecDeque::with_capacity(PREFETCH_DISTANCE + 1),
            spares: (0..=PREFETCH_DISTANCE)
                .map(|_| Box::<ActivityEvent>::default())
                .collect(),
        }
    }

    /// Drops the events waiting in the window (their buffers back to the spares).
    fn clear(&mut self) {
        self.spares
            .extend(self.window.drain(..).map(Keyed::into_inner));
    }

    fn step(
        &mut self,
        line: &str,
        t: i64,
        limits: &Limits,
        engine: &mut Engine,
        out: &mut Vec<Signal>,
    ) {
        let mut e = self.spares.pop().unwrap_or_default();
        if decode_native_into(line.as_bytes(), limits, &mut e).is_ok() {
            e.time_ms = t;
            self.window.push_back(Keyed::new(e));
        } else {
            self.spares.push(e);
        }
        if self.window.len() > PREFETCH_DISTANCE {
            if let Some(front) = self.window.pop_front() {
                engine.prefetch_ahead(self.window.iter().map(Keyed::keys));
                out.clear();
                let _ = black_box(engine.process_keyed(&front, out));
                self.spares.push(front.into_inner());
            }
        }
    }
}

/// Events timed one by one by [`per_event_latency`] (a few seconds of work: enough for
/// a stable median and p99).
const PER_EVENT_SAMPLES: usize = 1_000_000;

/// Times `step` (one event through the hot path) `samples` times, one clock read before
/// and after each, and prints the distribution. A pair of clock reads is timed the same
/// way and printed beside it: the reads' own cost, included in every figure.
fn per_event_latency(step: &mut impl FnMut(), samples: usize) {
    use hdrhistogram::Histogram;
    use std::time::Instant;
    let new = || Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).expect("valid bounds");
    let (mut events, mut clock) = (new(), new());
    // One warm-up pass of a tenth, unrecorded, so the first events do not pay for the
    // switch from the benchmark before.
    for _ in 0..samples / 10 {
        step();
    }
    for _ in 0..samples {
        let start = Instant::now();
        step();
        let ns = start.elapsed().as_nanos();
        events.saturating_record(u64::try_from(ns).unwrap_or(u64::MAX));
        let start = Instant::now();
        let ns = black_box(start).elapsed().as_nanos();
        clock.saturating_record(u64::try_from(ns).unwrap_or(u64::MAX));
    }
    let us = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    eprintln!(
        "hot_path per event (decode + process with lookahead, {samples} events timed one by one): \
         median {:.3} µs, p90 {:.3} µs, p99 {:.3} µs, p99.9 {:.3} µs, mean {:.3} µs; \
         a pair of clock reads alone: median {:.3} µs",
        us(&events, 0.5),
        us(&events, 0.9),
        us(&events, 0.99),
        us(&events, 0.999),
        events.mean() / 1000.0,
        us(&clock, 0.5),
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
