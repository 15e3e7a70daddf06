//! Integration tests of `riskd run` against a real Kafka-protocol broker (Tansu, started
//! by `common::broker` on a loopback port; design §10). Each test uses its own topics and
//! consumer group; the broker-outage test has a broker of its own.
//!
//! What is checked is what an operator relies on: signals agree with an in-process
//! replay, bad records reach the dead-letter topic with their reason, no event is lost or
//! double counted across `kill -9`, a second instance takes over a dead one's partitions
//! with their state, and a frozen broker delays work without losing any.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::Message;

use common::broker::{self, Broker};
#[allow(unused_imports)]
use common::kafka::*;
use common::riskd::Riskd;
use riskd::config::Config;
use riskd::decode::{decode, Decoded, Format, Limits};
use riskd::engine::Engine;
use riskd::signal::Signal;

/// 2026-11-25T08:00:00Z.
const START_MS: i64 = 1_795_593_600_000;

/// The config riskd children run with, for in-process comparisons: only Kafka and API
/// settings differ from the defaults, and those do not affect scoring.
fn scoring_config() -> Config {
    Config::default_config().expect("defaults")
}

#[tokio::test(flavor = "multi_thread")]
async fn signals_agree_with_in_process_replay_and_bad_records_are_dead_lettered() {
    let broker = broker::shared();
    let bootstrap = broker.bootstrap();
    let topics = Topics::new("agree");
    // One input partition: the consumption order is then exactly the production order,
    // so an in-process replay in that order must produce the very same signals (the
    // engine also keeps fleet-wide state, which depends on the order across identities).
    create_topic(&bootstrap, &topics.input, 1).await;

    let mut records: Vec<(Option<String>, Vec<u8>)> = workload("agree", 40, 25, START_MS)
        .into_iter()
        .map(|(k, v)| (Some(k), v))
        .collect();
    let bad: Vec<(usize, &[u8])> = vec![
        (3, b"this is not json"),
        (50, br#"{"identity":"agree-sa-0001","action":"x"}"#),
        (120, b"[1,2,3]"),
        (
            400,
            br#"{"time":"yesterday","identity":"a","action":"b","destination":"c"}"#,
        ),
    ];
    for (at, bytes) in &bad {
        records.insert(*at, (Some("bad-key".into()), bytes.to_vec()));
    }
    // Far behind the watermark: decodes fine, then the engine refuses it (too_late).
    let late = native_event(
        "agree-sa-0002",
        START_MS - 3 * 3_600_000,
        9999,
        "GET /",
        "x",
        "success",
    );
    records.push((Some("agree-sa-0002".into()), late.clone()));

    // The in-process reference: the same bytes through the same decoder and engine.
    let config = scoring_config();
    let mut engine = Engine::new(&config);
    let limits = Limits::from(&config.decode);
    let mut expected: HashMap<String, Signal> = HashMap::new();
    let mut expected_reasons: Vec<String> = Vec::new();
    let mut out = Vec::new();
    let mut signals = Vec::new();
    for (_, bytes) in &records {
        out.clear();
        decode(Format::Native, bytes, &limits, &mut out);
        for d in out.drain(..) {
            match d {
                Decoded::Event(event) => {
                    signals.clear();
                    match engine.process(&event, &mut signals) {
                        Ok(()) => {
                            for s in signals.drain(..) {
                                expected.insert(s.identity.clone(), s);
                            }
                        }
                        Err(r) => expected_reasons.push(r.reason.as_str().to_string()),
                    }
                }
                Decoded::Rejected(r) => expected_reasons.push(r.reason.as_str().to_string()),
                Decoded::Skipped(_) => {}
            }
        }
    }
    assert!(expected.len() >= 40, "every identity signals at least once");
    assert_eq!(expected_reasons.len(), bad.len() + 1);

    produce(&bootstrap, &topics.input, &records);
    let started = Instant::now();
    let mut riskd = Riskd::spawn("agree", &topics.env(&bootstrap));
    riskd.wait_ready(Duration::from_secs(30));
    wait_committed_to_end(
        &bootstrap,
        &topics.group,
        &topics.input,
        Duration::from_secs(60),
    );
    eprintln!(
        "agree: {} records processed in {:?}",
        records.len(),
        started.elapsed()
    );

    // Signals: the last one per identity equals the in-process replay's.
    let actual = last_signals(&bootstrap, &topics.signals);

    let mut missing: Vec<&String> = expected
        .keys()
        .filter(|k| !actual.contains_key(*k))
        .collect();
    missing.sort();
    assert!(
        missing.is_empty(),
        "no signal for {missing:?} (got {} identities)",
        actual.len()
    );
    assert_eq!(actual.len(), expected.len(), "identities with signals");
    for (identity, want) in &expected {
        let got = actual
            .get(identity)
            .unwrap_or_else(|| panic!("no signal for {identity}"));
        assert_eq!(got, want, "final signal of {identity}");
    }

    // Dead letters: original bytes, reason and origin headers.
    let dead = read_all(&bootstrap, &topics.dead_letter);
    let mut got_reasons: Vec<String> = dead
        .iter()
        .map(|m| header(m, "riskd-reason").expect("riskd-reason header"))
        .collect();
    got_reasons.sort();
    expected_reasons.sort();
    assert_eq!(got_reasons, expected_reasons);
    for m in &dead {
        let offset: i64 = header(m, "riskd-source-offset")
            .expect("offset")
            .parse()
            .expect("number");
        let original = &records[usize::try_from(offset).expect("offset")].1;
        assert_eq!(
            m.payload(),
            Some(original.as_slice()),
            "original bytes kept"
        );
        assert_eq!(
            header(m, "riskd-source-topic").as_deref(),
            Some(topics.input.as_str())
        );
        assert_eq!(header(m, "riskd-source-partition").as_deref(), Some("0"));
        assert!(header(m, "riskd-detail").is_some_and(|d| !d.is_empty()));
    }
    assert!(dead.iter().any(|m| m.payload() == Some(late.as_slice())));

    // The API answers from the same signals, and metrics count by reason.
    let (status, metrics) = riskd.get("/metrics").expect("metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("riskd_events_rejected_total{reason=\"invalid_json\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("riskd_state_restore_seconds"));

    // SIGTERM drains and exits cleanly within the session timeout.
    let status = riskd.terminate(Duration::from_secs(6));
    assert!(status.success(), "exit status {status}:\n{}", riskd.log());
}
