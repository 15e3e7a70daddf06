//! Reliability and security hardening: hostile inputs an operator must survive.
//!
//! - Identity spraying: a flood of never-seen identities must not grow memory past the
//!   configured cap (design §3), and evictions must be counted and tombstoned.
//! - Timestamp poisoning: a record stamped far in the future must not move the service's
//!   event-time watermark (and so decay and evict everyone else).
//! - API limits: request bodies, headers and the batch lookup rate are bounded.

mod common;

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::Message;

use common::broker;
use common::kafka::*;
use common::riskd::Riskd;
use riskd::config::Config;
use riskd::engine::Engine;
use riskd::event::ActivityEvent;

/// 2026-11-25T08:00:00Z.
const START_MS: i64 = 1_795_593_600_000;

/// Resident set size of this process in bytes (Linux `/proc/self/statm`, in pages).
fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .expect("statm has a resident field")
        .parse()
        .expect("resident pages");
    pages * 4096
}

fn sprayed(limits: &riskd::decode::Limits, i: usize, time_ms: i64) -> ActivityEvent {
    let line = format!(
        r#"{{"time":{time_ms},"identity":"spray-{i:08}-arn:aws:iam::123456789012:role/x","action":"s3:GetObject","destination":"arn:aws:s3:::bucket/k{i}","source_ip":"203.0.113.{}"}}"#,
        i % 250
    );
    let mut out = Vec::new();
    riskd::decode::decode(
        riskd::decode::Format::Native,
        line.as_bytes(),
        limits,
        &mut out,
    );
    match out.pop() {
        Some(riskd::decode::Decoded::Event(e)) => *e,
        other => panic!("sprayed event did not decode: {other:?}"),
    }
}

#[test]
fn identity_spraying_keeps_the_table_and_memory_bounded() {
    const CAP: usize = 2_000;
    const WARMUP: usize = 50_000;
    const TOTAL: usize = 300_000;
    let mut config = Config::default_config().expect("defaults");
    config.state.max_identities = CAP;
    let mut engine = Engine::new(&config);
    let limits = riskd::decode::Limits::from(&config.decode);
    let mut out = Vec::new();
    let mut rss_after_warmup = 0;
    let mut heap_after_warmup = 0;
    for i in 0..TOTAL {
        let event = sprayed(&limits, i, START_MS + i as i64 * 10);
        engine.process(&event, &mut out).expect("in order");
        out.clear();
        // What `riskd run` does every state flush: write the changed states and the
        // tombstones of the evicted identities.
        if i % 1_000 == 999 {
            drop(engine.take_dirty());
            drop(engine.take_evicted());
        }
        assert!(engine.identities() <= CAP, "cap exceeded at event {i}");
        if i + 1 == WARMUP {
            rss_after_warmup = rss_bytes();
            heap_after_warmup = engine.state_heap_bytes();
        }
    }
    assert_eq!(engine.stats().events, TOTAL as u64);
    assert_eq!(
        engine.stats().evicted,
        (TOTAL - engine.identities()) as u64,
        "every identity not in the table was evicted and counted"
    );
    // The engine's own accounting: the table does not grow once the cap is reached.
    let heap = engine.state_heap_bytes();
    assert!(
        heap <= heap_after_warmup + heap_after_warmup / 4,
        "state heap grew from {heap_after_warmup} to {heap} bytes at a constant cap"
    );
    assert!(
        heap <= CAP * 4096,
        "state heap {heap} bytes for {CAP} identities"
    );
    // The process: 250k more identities sprayed through a full table. Leaking even a
    // name per identity (~50 bytes with its allocation) would add over 12 MB.
    let growth = rss_bytes().saturating_sub(rss_after_warmup);
    assert!(
        growth < 8 << 20,
        "RSS grew by {} KiB while spraying {} identities at a cap of {CAP}",
        growth >> 10,
        TOTAL - WARMUP
    );
}

fn riskd_cli() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_riskd"));
    for (key, _) in std::env::vars() {
        if key.starts_with("RISKD__") {
            cmd.env_remove(key);
        }
    }
    cmd
}

#[test]
fn replay_reports_evictions_under_a_small_cap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("spray.ndjson");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
    for i in 0..5_000 {
        writeln!(
            file,
            r#"{{"time":{},"identity":"spray-{i}","action":"s3:GetObject","destination":"b/{i}"}}"#,
            START_MS + i * 100
        )
        .expect("write");
    }
    drop(file);
    let out = riskd_cli()
        .args(["replay", "--format", "native", "--output", "/dev/null"])
        .arg(&path)
        .env("RISKD__STATE__MAX_IDENTITIES", "100")
        .output()
        .expect("riskd runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains(" identities ("))
        .unwrap_or_else(|| panic!("no identity line in the summary:\n{stderr}"));
    // make_room evicts 1% of the cap at a time, so between 99 and 100 stay tracked.
    let identities: u64 = line
        .trim_start_matches("replay: ")
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!((99..=100).contains(&identities), "{line}");
    assert!(
        line.contains(&format!("({} evicted)", 5_000 - identities)),
        "{line}"
    );
}

/// Value of an unlabelled metric in a Prometheus text exposition.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn service_counts_evictions_and_writes_their_tombstones() {
    let broker = broker::shared();
    let bootstrap = broker.bootstrap();
    let topics = Topics::new("spray");
    create_topic(&bootstrap, &topics.input, 1).await;
    const SPRAYED: usize = 600;
    let records: Vec<(Option<String>, Vec<u8>)> = (0..SPRAYED)
        .map(|i| {
            let identity = format!("spray-{i:04}");
            let event = native_event(
                &identity,
                START_MS + i as i64 * 1000,
                i,
                "GET /v1/items",
                "svc.internal/api/items",
                "success",
            );
            (Some(identity), event)
        })
        .collect();
    produce(&bootstrap, &topics.input, &records);
    let mut env = topics.env(&bootstrap);
    env.push(("RISKD__STATE__MAX_IDENTITIES".into(), "100".into()));
    let mut riskd = Riskd::spawn("spray", &env);
    riskd.wait_ready(Duration::from_secs(30));
    topics.wait_input_drained(&bootstrap);

    // The counter is exported per state flush (200 ms in tests).
    let deadline = Instant::now() + Duration::from_secs(10);
    let (evicted, tracked) = loop {
        let (_, text) = riskd.get("/metrics").expect("metrics");
        let evicted = metric(&text, "riskd_identities_evicted_total").unwrap_or(0.0);
        let tracked = metric(&text, "riskd_identities_tracked").unwrap_or(-1.0);
        if evicted + tracked >= SPRAYED as f64 || Instant::now() > deadline {
            break (evicted, tracked);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(tracked <= 100.0, "tracked {tracked}");
    assert_eq!(evicted + tracked, SPRAYED as f64, "evicted {evicted}");
    // The read side forgot the evicted (least recently active) identities too: the API
    // holds no more than the engine does, and says `unknown` for the evicted.
    let (status, body) = riskd.get("/v1/risk/spray-0000").expect("lookup");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"state\":\"unknown\""), "{body}");
    let (_, body) = riskd
        .get(&format!("/v1/risk/spray-{:04}", SPRAYED - 1))
        .expect("lookup");
    assert!(!body.contains("\"state\":\"unknown\""), "{body}");

    // Every evicted identity has a tombstone after its last state record, so a restart
    // restores only what the cap kept.
    let status = riskd.terminate(Duration::from_secs(6));
    assert!(status.success(), "exit status {status}:\n{}", riskd.log());
    let mut last: std::collections::HashMap<String, bool> = Default::default();
    for m in read_all(&bootstrap, &topics.state) {
        let key = String::from_utf8_lossy(m.key().expect("keyed")).into_owned();
        last.insert(key, m.payload().is_some());
    }
    let live = last.values().filter(|&&v| v).count();
    let tombstoned = last.values().filter(|&&v| !v).count();
    assert_eq!(last.len(), SPRAYED, "every identity reached the changelog");
    assert!(live <= 100, "{live} identities would be restored");
    assert_eq!(tombstoned as f64, evicted, "one tombstone per eviction");
    // And on the signals topic, so every instance following it forgets them as well.
    let mut last_signal: std::collections::HashMap<String, bool> = Default::default();
    for m in read_all(&bootstrap, &topics.signals) {
        let key = String::from_utf8_lossy(m.key().expect("keyed")).into_owned();
        last_signal.insert(key, m.payload().is_some());
    }
    let forgotten = last_signal.values().filter(|&&v| !v).count();
    assert_eq!(
        forgotten as f64, evicted,
        "one signals tombstone per eviction"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn service_refuses_events_from_the_future_before_they_move_the_watermark() {
    let broker = broker::shared();
    let bootstrap = broker.bootstrap();
    let topics = Topics::new("future");
    create_topic(&bootstrap, &topics.input, 1).await;
    let now_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis(),
    )
    .expect("fits");
    // The poison arrives first: a year ahead. Honest traffic of the last minutes follows;
    // had the poison set the watermark, every score would have decayed at once and the
    // next idle sweep would have evicted every identity.
    let poison = native_event(
        "poison",
        now_ms + 365 * 86_400_000,
        0,
        "GET /",
        "x",
        "success",
    );
    let mut records = vec![(Some("poison".to_string()), poison.clone())];
    // Then a quiet spell: traffic three hours ago, nothing until ten minutes ago. The
    // engine once judged lookahead against its own watermark, so everything after the
    // spell was refused as `too_far_ahead`; it must all be scored.
    for (k, v) in workload("night", 2, 3, now_ms - 3 * 3_600_000) {
        records.push((Some(k), v));
    }
    for (k, v) in workload("honest", 5, 4, now_ms - 10 * 60_000) {
        records.push((Some(k), v));
    }
    // Just inside the lookahead (15 m by default): accepted.
    records.push((
        Some("early".to_string()),
        native_event("early", now_ms + 5 * 60_000, 0, "GET /", "x", "success"),
    ));
    produce(&bootstrap, &topics.input, &records);
    let mut riskd = Riskd::spawn("future", &topics.env(&bootstrap));
    riskd.wait_ready(Duration::from_secs(30));
    topics.wait_input_drained(&bootstrap);
    let dead = read_all(&bootstrap, &topics.dead_letter);
    let reasons: Vec<String> = dead
        .iter()
        .map(|m| header(m, "riskd-reason").unwrap_or_default())
        .collect();
    assert_eq!(reasons, vec!["too_far_ahead".to_string()]);
    assert_eq!(dead[0].payload(), Some(poison.as_slice()));
    assert!(header(&dead[0], "riskd-detail").is_some_and(|d| d.contains("wall clock")));
    let signals = last_signals(&bootstrap, &topics.signals);
    assert!(!signals.contains_key("poison"));
    assert!(signals.contains_key("early"));
    assert!(signals.contains_key("night-sa-0000") && signals.contains_key("honest-sa-0004"));
    let (_, text) = riskd.get("/metrics").expect("metrics");
    assert!(
        text.contains("riskd_events_rejected_total{reason=\"too_far_ahead\"} 1"),
        "{text}"
    );
    let status = riskd.terminate(Duration::from_secs(6));
    assert!(status.success(), "exit status {status}:\n{}", riskd.log());
    let seen = changelog_events_seen(
        &bootstrap,
        &topics.state,
        &Config::default_config().expect("defaults"),
    );
    for i in 0..5 {
        let id = format!("honest-sa-{i:04}");
        assert_eq!(seen.get(&id), Some(&4), "{id}: every honest event scored");
    }
    assert!(!seen.contains_key("poison"));
}

/// An in-process API server on a loopback port with a configured `Config`.
async fn api_server(
    configure: impl FnOnce(&mut Config),
) -> (String, tokio_util::sync::CancellationToken) {
    let mut config = Config::default_config().expect("defaults");
    config.api.listen = "127.0.0.1:0".into();
    configure(&mut config);
    let listener = riskd::api::bind(&config).await.expect("bind loopback");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let table = riskd::risk_table::RiskTable::new();
    table.set_ready(true);
    let shutdown = tokio_util::sync::CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move { riskd::api::serve(listener, table, &config, shutdown).await }
    });
    (base, shutdown)
}

#[tokio::test]
async fn batch_lookups_are_rate_limited_with_a_reason() {
    let (base, shutdown) = api_server(|c| c.api.batch_rate_per_second = 5.0).await;
    let client = reqwest::Client::new();
    let batch = || {
        client
            .post(format!("{base}/v1/risk:batch"))
            .json(&serde_json::json!({"identities": ["a", "b"]}))
            .send()
    };
    let mut ok = 0;
    let mut limited = Vec::new();
    for _ in 0..20 {
        let resp = batch().await.expect("request");
        match resp.status() {
            reqwest::StatusCode::OK => ok += 1,
            reqwest::StatusCode::TOO_MANY_REQUESTS => limited.push(resp),
            other => panic!("unexpected status {other}"),
        }
    }
    // A burst of one second's worth (5), plus at most one more if the loop took 200 ms.
    assert!((5..=6).contains(&ok), "{ok} admitted");
    let resp = limited.pop().expect("some refused");
    let retry: u64 = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert_eq!(retry, 1);
    let body: serde_json::Value = resp.json().await.expect("JSON body");
    let reason = body["error"].as_str().expect("error reason");
    assert!(reason.contains("api.batch_rate_per_second"), "{reason}");
    // Single lookups are not limited by it.
    for _ in 0..20 {
        let resp = client
            .get(format!("{base}/v1/risk/a"))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), reqwest::StatusCode::OK);
    }
    // The rate refills.
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(batch().await.expect("request").status(), 200);
    shutdown.cancel();

    // 0 switches it off.
    let (base, shutdown) = api_server(|c| c.api.batch_rate_per_second = 0.0).await;
    for _ in 0..50 {
        let resp = client
            .post(format!("{base}/v1/risk:batch"))
            .json(&serde_json::json!({"identities": ["a"]}))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 200);
    }
    shutdown.cancel();
}

#[test]
fn negative_or_nan_batch_rate_is_a_config_error() {
    let mut config = Config::default_config().expect("defaults");
    config.api.batch_rate_per_second = -1.0;
    let err = config.validate().expect_err("refused").to_string();
    assert!(err.contains("api.batch_rate_per_second"), "{err}");
}

/// Sends raw bytes on a fresh connection and returns what the server answered.
fn raw_http(base: &str, request: &[u8]) -> String {
    use std::io::Read;
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    // The server may answer and close before reading everything: a write error then is
    // part of the expected outcome, the answer is what counts.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_headers_are_refused_before_any_handler() {
    let (base, shutdown) = api_server(|_| {}).await;
    let b = base.clone();
    let (many, huge, normal) = tokio::task::spawn_blocking(move || {
        let mut many = String::from("GET /v1/risk/a HTTP/1.1\r\nHost: x\r\n");
        for i in 0..150 {
            many.push_str(&format!("x-h{i}: v\r\n"));
        }
        many.push_str("\r\n");
        let huge = format!(
            "GET /v1/risk/a HTTP/1.1\r\nHost: x\r\nx-big: {}\r\n\r\n",
            "a".repeat(1 << 20)
        );
        let normal = "GET /v1/risk/a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        (
            raw_http(&b, many.as_bytes()),
            raw_http(&b, huge.as_bytes()),
            raw_http(&b, normal.as_bytes()),
        )
    })
    .await
    .expect("client thread");
    assert!(normal.starts_with("HTTP/1.1 200"), "{normal}");
    assert!(many.starts_with("HTTP/1.1 431"), "150 headers: {many:?}");
    // A megabyte of header: refused (431) or the connection closed, never served.
    assert!(
        huge.is_empty() || huge.starts_with("HTTP/1.1 431"),
        "1 MiB header: {huge:?}"
    );
    shutdown.cancel();
}
