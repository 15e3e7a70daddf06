//! Restart with many identities (design §11: "restart with 1M identities: serving correct
//! scores within 10 s"), through a real broker and the real binary.
//!
//! 1. Start a loopback Tansu broker (the test harness), or use `RISKD_BENCH_BROKERS`.
//! 2. Realistic identity states: an in-process engine scores three days of the built-in
//!    generator's fleet; the changelog snapshots it leaves are the templates (sizes
//!    like production: several archetypes, learned seen-sets and profiles).
//! 3. Leave the topics as a previous instance would have: `RISKD_BENCH_IDENTITIES`
//!    (default 1 000 000) changelog records in the state topic, one per identity (the
//!    templates, round robin), and each identity's latest signal, with a score of its
//!    own and a fleet's mix of levels and reasons ([`score_of`]), in the signals topic.
//! 4. Start `riskd run` on those topics and time from spawn until `/readyz` answers 200
//!    (state restored and signals followed), then look up a sample of identities and
//!    check each answers with its own score.
//!
//! Prints the time to ready, riskd's own restore time (`riskd_state_restore_seconds`),
//! identities tracked and the process RSS per identity.
//! Run: `cargo bench --bench restart` (`RISKD_BENCH_IDENTITIES=100000` for a quick one).

#![allow(clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::bench::{env_or, rss_kib};
use common::kafka::{create_topic, produce, Topics};
use common::riskd::Riskd;
use riskd::config::Config;
use riskd::engine::Engine;
use riskd::source::generator::{Fleet, GenerateOptions, DEFAULT_START_MS};

/// Changelog values of a generated fleet's identities after three days.
fn template_states() -> Vec<Vec<u8>> {
    let config = Config::default_config().unwrap();
    let mut engine = Engine::new(&config);
    let fleet = Fleet::new(&GenerateOptions {
        seed: 11,
        identities: 60,
        days: 3,
        start_ms: DEFAULT_START_MS,
        attacks: false,
    });
    let mut out = Vec::new();
    for event in fleet {
        let _ = engine.process(&event, &mut out);
        out.clear();
    }
    let dirty = engine.take_dirty();
    // The in-memory size of these states (the state struct and its own heap, without
    // the table's slot and name), to set the process RSS printed at the end against.
    let in_memory: usize = dirty
        .iter()
        .filter_map(|(name, _)| engine.identity(name))
        .map(|s| std::mem::size_of_val(s) + s.heap_bytes())
        .sum();
    eprintln!(
        "template states: {} bytes per identity in memory (state and its heap)",
        in_memory / dirty.len().max(1)
    );
    dirty
        .into_iter()
        .map(|(_, snapshot)| riskd::service::changelog::encode(-1, &snapshot, &[]))
        .collect()
}

fn identity(i: usize) -> String {
    format!("arn:aws:iam::123456789012:role/restart-bench-{i:07}")
}

/// The id of the event behind the signal, shaped like a CloudTrail `eventID` (riskd's
/// signals carry the triggering event's id).
fn event_id(i: usize) -> String {
    let h = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        h >> 32,
        (h >> 16) & 0xffff,
        h & 0xfff,
        (h >> 20) & 0xfff,
        h & 0xffff_ffff_ffff
    )
}

/// A score of its own per identity, so a lookup proves it read *its* signal. The mix
/// is a fleet's: every 50th identity above `normal` (2 %, far more than riskd's false
/// alert rate), every 10th normal with a reason, the rest quiet.
fn score_of(i: usize) -> f64 {
    let tenths = (i % 300) as f64 / 10.0; // 0.0-29.9
    if i % 50 == 0 {
        40.0 + tenths
    } else {
        tenths
    }
}

fn signal_json(i: usize) -> Vec<u8> {
    let score = score_of(i);
    let level = match score {
        s if s >= 85.0 => "critical",
        s if s >= 60.0 => "high",
        s if s >= 40.0 => "elevated",
        _ => "normal",
    };
    const REASON: &str = r#"{"detector":"new_action","strength":0.42,"detail":"first use of s3:ListBuckets (discovery/privilege); 0.1 new actions/day usual"}"#;
    const SECOND: &str = r#"{"detector":"new_source","strength":0.5,"detail":"new network net:corp-vpn; new client family `aws-cli python darwin`"}"#;
    let reasons = if i % 50 == 0 {
        format!("{REASON},{SECOND}")
    } else if i % 10 == 0 {
        REASON.to_string()
    } else {
        String::new()
    };
    format!(
        r#"{{"identity":"{}","time":"2026-11-05T00:00:00.000Z","score":{score:.1},"level":"{level}","state":"active","events_seen":{},"reasons":[{reasons}],"event_id":"{}","model":"riskd/0.1.0"}}"#,
        identity(i),
        100 + i % 5000,
        event_id(i)
    )
    .into_bytes()
}

/// CPU seconds (user + system) the process has used so far: on a shared machine the
/// wall time to ready depends on neighbours, this does not.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ") ".
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 (1-based), i.e. 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs us too: only measure
    // when asked to bench.
    if !std::env::args().any(|a| a == "--bench") {
        println!("restart: run with `cargo bench --bench restart`");
        return;
    }
    let identities = env_or::<usize>("RISKD_BENCH_IDENTITIES", 1_000_000);
    let partitions = env_or::<usize>("RISKD_BENCH_PARTITIONS", 6);
    let (_broker, bootstrap) = common::bench::broker();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let topics = Topics::new("restart");
    let p = i32::try_from(partitions).unwrap();
    for topic in [&topics.input, &topics.state, &topics.signals] {
        runtime.block_on(create_topic(&bootstrap, topic, p));
    }

    let templates = template_states();
    let mean = templates.iter().map(Vec::len).sum::<usize>() / templates.len().max(1);
    println!(
        "{} template states, {mean} bytes per changelog value on average",
        templates.len()
    );
    let started = Instant::now();
    let states: Vec<(Option<String>, Vec<u8>)> = (0..identities)
        .map(|i| (Some(identity(i)), templates[i % templates.len()].clone()))
        .collect();
    produce(&bootstrap, &topics.state, &states);
    drop(states);
    let signals: Vec<(Option<String>, Vec<u8>)> = (0..identities)
        .map(|i| (Some(identity(i)), signal_json(i)))
        .collect();
    produce(&bootstrap, &topics.signals, &signals);
    drop(signals);
    println!(
        "left {identities} states and {identities} signals in {partitions} partitions each in {:.1?}",
        started.elapsed()
    );

    let spawned = Instant::now();
    let mut riskd = Riskd::spawn("restart", &topics.env(&bootstrap));
    riskd.wait_ready(Duration::from_secs(600));
    let ready = spawned.elapsed();
    let rss = rss_kib(riskd.pid());
    let cpu = cpu_seconds(riskd.pid());

    // A spread-out sample: each must answer with its own score.
    let sample = 200.min(identities);
    for k in 0..sample {
        let i = k * (identities / sample) + k % 7;
        let i = i.min(identities - 1);
        let (status, body) = riskd
            .get(&format!("/v1/risk/{}", identity(i)))
            .expect("lookup answered");
        assert_eq!(status, 200, "{body}");
        let value: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        let score = value["score"].as_f64().expect("score");
        assert!(
            (score - score_of(i)).abs() < 1e-6,
            "identity {i}: score {score}, expected {}",
            score_of(i)
        );
    }
    let metrics = riskd.get("/metrics").map(|(_, b)| b).unwrap_or_default();
    let metric = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    let restore = metric(riskd::metrics::STATE_RESTORE_SECONDS);
    let tracked = metric(riskd::metrics::IDENTITIES_TRACKED);
    println!(
        "riskd ready (state restored + signals followed) {ready:.2?} after spawn; state \
         restore {restore:.2} s; {tracked} identities tracked; {sample} lookups answered \
         with their own score"
    );
    println!("riskd used {cpu:.2} s of CPU (user + system, all threads) until ready");
    println!(
        "RSS {:.1} MiB = {:.0} bytes per identity (engine state + API table + librdkafka)",
        rss as f64 / 1024.0,
        rss as f64 * 1024.0 / identities as f64
    );
    riskd.terminate(Duration::from_secs(60));
}
