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
use common::kafka::*;
use common::riskd::Riskd;
use riskd::config::Config;
use riskd::decode::{decode, Decoded, Format, Limits};
use riskd::engine::Engine;
use riskd::signal::{Level, Signal};

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
    let mut env = topics.env(&bootstrap);
    // The in-process replay has no wall clock: no idle advance here either.
    env.push(("RISKD__KAFKA__IDLE_ADVANCE".into(), "0s".into()));
    let mut riskd = Riskd::spawn("agree", &env);
    riskd.wait_ready(Duration::from_secs(30));
    topics.wait_input_drained(&bootstrap);
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

#[tokio::test(flavor = "multi_thread")]
async fn unkeyed_input_is_repartitioned_so_two_instances_keep_whole_histories() {
    // Input not keyed by identity (CloudTrail files, audit webhooks) spreads one
    // identity over every partition, and so over every instance: each would keep part
    // of its history. With kafka.repartition_topic, riskd re-keys it first.
    let broker = broker::shared();
    let bootstrap = broker.bootstrap();
    let topics = Topics::new("repartition");
    create_topic(&bootstrap, &topics.input, 4).await;
    let keyed = format!("{}.keyed", topics.input);
    let records = workload("repartition", 30, 20, START_MS);
    let unkeyed: Vec<(Option<String>, Vec<u8>)> =
        records.iter().map(|(_, v)| (None, v.clone())).collect();
    let mut env = topics.env(&bootstrap);
    env.push(("RISKD__KAFKA__REPARTITION_TOPIC".into(), keyed.clone()));

    let mut a = Riskd::spawn("repartition-a", &env);
    a.wait_ready(Duration::from_secs(30));
    let mut b = Riskd::spawn("repartition-b", &env);
    b.wait_ready(Duration::from_secs(30));
    produce(&bootstrap, &topics.input, &unkeyed);
    let spread: usize = end_offsets(&bootstrap, &topics.input)
        .values()
        .filter(|&&end| end > 0)
        .count();
    assert!(spread > 1, "the unkeyed input is spread over partitions");
    let within = Duration::from_secs(60);
    let route_group = format!("{}.repartition", topics.group);
    wait_committed_to_end(&bootstrap, &route_group, &topics.input, within);
    wait_committed_to_end(&bootstrap, &topics.group, &keyed, within);
    for m in read_all(&bootstrap, &keyed) {
        let event: serde_json::Value =
            serde_json::from_slice(m.payload().unwrap_or_default()).expect("native JSON");
        assert_eq!(
            m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            event["identity"].as_str().map(str::to_string),
            "keyed by identity"
        );
    }
    for riskd in [&mut a, &mut b] {
        let status = riskd.terminate(Duration::from_secs(6));
        assert!(status.success(), "exit status {status}");
    }
    assert_no_history_lost(&bootstrap, &topics, &counts(&records));
}

/// Ten identities' ordinary traffic (ten minutes), then the first one's key used from
/// outside: reconnaissance with curl from a public address, after which the input goes
/// quiet. Returns that identity and the records keyed by identity.
fn stolen_key_workload(prefix: &str) -> (String, Vec<(String, Vec<u8>)>) {
    let thief = format!("{prefix}-sa-0000");
    let mut records = workload(prefix, 10, 60, START_MS);
    let after = START_MS + records.len() as i64 * 1000;
    for (k, action) in [
        "sts:GetCallerIdentity",
        "iam:ListRoles",
        "iam:ListUsers",
        "s3:ListBuckets",
        "cloudtrail:StopLogging",
    ]
    .iter()
    .enumerate()
    {
        let event = serde_json::json!({
            "time": after + k as i64 * 1000,
            "identity": thief,
            "action": action,
            "destination": "arn:aws:iam::123456789012:role/admin",
            "event_id": format!("{thief}#attack{k}"),
            "source_ip": "203.0.113.7",
            "user_agent": "curl/8.1.2",
            "outcome": "success",
        });
        records.push((thief.clone(), event.to_string().into_bytes()));
    }
    (thief, records)
}

/// The level `GET /v1/risk/{identity}` reports, or the whole answer when it has none.
fn api_level(riskd: &Riskd, identity: &str) -> Result<Level, String> {
    let (status, body) = riskd
        .get(&format!("/v1/risk/{identity}"))
        .ok_or_else(|| "no answer".to_string())?;
    let value: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    value
        .get("level")
        .and_then(|l| l.as_str())
        .and_then(Level::parse)
        .ok_or_else(|| format!("{status} {body}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn without_following_signals_a_restart_still_answers_for_restored_identities() {
    // Regression: with kafka.follow_signals off, the API table was filled only by new
    // signals, so after a restart every restored identity answered `unknown`.
    let broker = broker::shared();
    let bootstrap = broker.bootstrap();
    let topics = Topics::new("nofollow");
    create_topic(&bootstrap, &topics.input, 1).await;
    let (thief, records) = stolen_key_workload("nofollow");
    produce_keyed(&bootstrap, &topics.input, &records);
    let mut env = topics.env(&bootstrap);
    env.push(("RISKD__KAFKA__FOLLOW_SIGNALS".into(), "false".into()));
    env.push(("RISKD__STATE__LEARNING_MIN_SPAN".into(), "5m".into()));

    let mut riskd = Riskd::spawn("nofollow-a", &env);
    riskd.wait_ready(Duration::from_secs(30));
    topics.wait_input_drained(&bootstrap);
    let before = api_level(&riskd, &thief).expect("a level before the restart");
    assert!(before >= Level::High, "{before:?}");
    let status = riskd.terminate(Duration::from_secs(6));
    assert!(status.success(), "exit status {status}");

    let mut riskd = Riskd::spawn("nofollow-b", &env);
    riskd.wait_ready(Duration::from_secs(30));
    assert_eq!(api_level(&riskd, &thief), Ok(before), "{}", riskd.log());
    assert_eq!(
        api_level(&riskd, "nofollow-sa-0003").map(|l| l < Level::High),
        Ok(true),
        "an ordinary identity is known too"
    );
    let status = riskd.terminate(Duration::from_secs(6));
    assert!(status.success(), "exit status {status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn scores_decay_while_the_input_is_idle_even_after_a_restart() {
    // Event time comes from the events: without the idle advance, an identity that
    // alerted and then went quiet stayed `high` until the next record arrived, and a
    // restart into a quiet input restored it at `high` for good.
    let broker = broker::shared();
    let bootstrap = broker.bootstrap();
    let topics = Topics::new("idle");
    create_topic(&bootstrap, &topics.input, 1).await;
    let (thief, records) = stolen_key_workload("idle");
    let thief = thief.as_str();
    let env = |idle_advance: &str| {
        let mut env = topics.env(&bootstrap);
        for (key, value) in [
            // Seconds instead of hours, so the test sees the whole decay.
            ("RISKD__SCORE__HALF_LIFE", "5s"),
            ("RISKD__KAFKA__IDLE_ADVANCE", idle_advance),
            ("RISKD__STATE__LEARNING_MIN_SPAN", "5m"),
        ] {
            env.push((key.to_string(), value.to_string()));
        }
        env
    };
    let thief_signals = || -> Vec<Signal> {
        read_all(&bootstrap, &topics.signals)
            .iter()
            .filter_map(|m| {
                m.payload()
                    .map(|p| serde_json::from_slice(p).expect("signal"))
            })
            .filter(|s: &Signal| s.identity == thief)
            .collect()
    };
    let first_alert = |signals: &[Signal]| signals.iter().find(|s| s.level >= Level::High).cloned();
    let decay_after = |signals: &[Signal], alert: &Signal| {
        signals
            .iter()
            .find(|s| s.level == Level::Normal && s.time > alert.time)
            .cloned()
    };
    produce_keyed(&bootstrap, &topics.input, &records);

    // Without the idle advance, the alert stands as long as no record arrives.
    let mut riskd = Riskd::spawn("idle-off", &env("0s"));
    riskd.wait_ready(Duration::from_secs(30));
    topics.wait_input_drained(&bootstrap);
    let deadline = Instant::now() + Duration::from_secs(30);
    let alert = loop {
        if let Some(alert) = first_alert(&thief_signals()) {
            break alert;
        }
        assert!(
            Instant::now() < deadline,
            "no alert for {thief}\n{}",
            riskd.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(!alert.reasons.is_empty());
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(decay_after(&thief_signals(), &alert), None);
    let status = riskd.terminate(Duration::from_secs(6));
    assert!(status.success(), "exit status {status}");

    // Restarted with it into the same quiet input: the restored alert decays.
    let mut riskd = Riskd::spawn("idle-on", &env("1s"));
    riskd.wait_ready(Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(60);
    let decayed = loop {
        if let Some(decayed) = decay_after(&thief_signals(), &alert) {
            break decayed;
        }
        assert!(
            Instant::now() < deadline,
            "no decay to normal while the input was idle after a restart\n{}",
            riskd.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(decayed.event_id.is_none(), "a decay signal: {decayed:?}");
    // The API answers from the same signals.
    let (status, body) = riskd.get(&format!("/v1/risk/{thief}")).expect("lookup");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"level\":\"normal\""), "{body}");
    let status = riskd.terminate(Duration::from_secs(6));
    assert!(status.success(), "exit status {status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dormant_identity_is_remembered_across_a_restart_and_its_return_scored() {
    // Idle past `state.idle_ttl`, an identity is evicted; the changelog keeps a dormant
    // marker instead of a tombstone, so a restarted instance still knows the identity
    // went quiet, and scores its return from outside instead of learning it quietly.
    let broker = broker::shared();
    let bootstrap = broker.bootstrap();
    let topics = Topics::new("dormant");
    create_topic(&bootstrap, &topics.input, 1).await;
    let sleeper = "dormant-sa-0000";
    let mut records = workload("dormant", 3, 40, START_MS);
    // Two hours later (event time) another identity moves the clock past the TTL.
    let later = START_MS + 2 * 3_600_000;
    for k in 0..3 {
        let event = serde_json::json!({
            "time": later + k * 1000, "identity": "dormant-clock", "action": "GET /v1/items",
            "destination": "svc-0.internal/api/1", "event_id": format!("clock#{k}"),
            "source_ip": "10.9.0.1", "outcome": "success",
        });
        records.push(("dormant-clock".into(), event.to_string().into_bytes()));
    }
    produce_keyed(&bootstrap, &topics.input, &records);
    let mut env = topics.env(&bootstrap);
    env.push(("RISKD__STATE__IDLE_TTL".into(), "20m".into()));
    env.push(("RISKD__STATE__DORMANT_MEMORY".into(), "30d".into()));

    let mut riskd = Riskd::spawn("dormant-a", &env);
    riskd.wait_ready(Duration::from_secs(30));
    topics.wait_input_drained(&bootstrap);
    let marker = |bootstrap: &str| {
        read_all(bootstrap, &topics.state)
            .iter()
            .rfind(|m| m.key() == Some(sleeper.as_bytes()))
            .and_then(|m| m.payload().map(<[u8]>::to_vec))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if marker(&bootstrap).is_some_and(|v| v.first() == Some(&3)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no dormant marker for {sleeper} in the state topic (last record {:?})\n{}",
            marker(&bootstrap),
            riskd.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = riskd.terminate(Duration::from_secs(6));
    assert!(status.success(), "exit status {status}");

    let mut riskd = Riskd::spawn("dormant-b", &env);
    riskd.wait_ready(Duration::from_secs(30));
    let back = serde_json::json!({
        "time": later + 3_600_000, "identity": sleeper, "action": "GET /v1/items",
        "destination": "svc-0.internal/api/1", "event_id": "sleeper#back",
        "source_ip": "203.0.113.9", "user_agent": "curl/8.1.2", "outcome": "success",
    });
    produce_keyed(
        &bootstrap,
        &topics.input,
        &[(sleeper.to_string(), back.to_string().into_bytes())],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let alert = loop {
        let signals: Vec<Signal> = read_all(&bootstrap, &topics.signals)
            .iter()
            .filter_map(|m| m.payload().and_then(|p| serde_json::from_slice(p).ok()))
            .filter(|s: &Signal| {
                s.identity == sleeper && s.event_id.as_deref() == Some("sleeper#back")
            })
            .collect();
        if let Some(s) = signals.into_iter().next() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "no signal for the returning {sleeper}\n{}",
            riskd.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(alert.level >= Level::High, "{alert:?}");
    let returned = alert
        .reasons
        .iter()
        .find(|r| r.detector == "off_hours")
        .map(|r| r.detail.clone())
        .unwrap_or_default();
    assert!(returned.contains("active again after"), "{alert:?}");
    // The other two stay dormant, and the clock identity, idle for the hour before the
    // return, went dormant too: the returning identity is the only one tracked.
    let metrics = || {
        riskd
            .get("/metrics")
            .map(|(_, body)| body)
            .unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(metrics().contains("\nriskd_identities_dormant 3\n")
        && metrics().contains("\nriskd_identities_tracked 1\n"))
    {
        assert!(Instant::now() < deadline, "{}\n{}", metrics(), riskd.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = riskd.terminate(Duration::from_secs(6));
    assert!(status.success(), "exit status {status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_bad_record_is_dead_lettered_cut_and_commits_go_on() {
    // Regression: the dead-letter copy of a bad record over the producer's
    // message.max.bytes (1,000,000; riskd reads records up to 1 MiB, CloudTrail
    // envelopes larger) was refused, retried for ever, and held back every commit and
    // state write of the instance.
    let broker = broker::shared();
    let bootstrap = broker.bootstrap();
    let topics = Topics::new("oversized");
    create_topic(&bootstrap, &topics.input, 1).await;
    let mut records: Vec<(Option<String>, Vec<u8>)> = workload("oversized", 4, 10, START_MS)
        .into_iter()
        .map(|(k, v)| (Some(k), v))
        .collect();
    let mut bad = br#"{"identity":"oversized-sa-0000","note":""#.to_vec();
    bad.resize(1_010_000, b'x');
    let at = records.len() / 2;
    records.insert(at, (Some("oversized-sa-0000".into()), bad.clone()));
    produce(&bootstrap, &topics.input, &records);

    let mut riskd = Riskd::spawn("oversized", &topics.env(&bootstrap));
    riskd.wait_ready(Duration::from_secs(30));
    wait_committed_to_end(
        &bootstrap,
        &topics.group,
        &topics.input,
        Duration::from_secs(60),
    );
    let dead = read_all(&bootstrap, &topics.dead_letter);
    assert_eq!(dead.len(), 1, "one dead letter");
    let copy = &dead[0];
    assert_eq!(
        header(copy, "riskd-reason").as_deref(),
        Some("invalid_json")
    );
    assert_eq!(
        header(copy, "riskd-original-bytes").as_deref(),
        Some("1010000")
    );
    assert_eq!(
        header(copy, "riskd-source-offset").as_deref(),
        Some(at.to_string().as_str())
    );
    let payload = copy.payload().unwrap_or_default();
    assert!(payload.len() < 1_000_000 && bad.starts_with(payload));
    let status = riskd.terminate(Duration::from_secs(6));
    assert!(status.success(), "exit status {status}");
}

/// Every identity's restored state counts exactly the events produced for it.
fn assert_no_history_lost(bootstrap: &str, topics: &Topics, produced: &HashMap<String, u64>) {
    let seen = changelog_events_seen(bootstrap, &topics.state, &scoring_config());
    // Nothing may have been rejected either (a rejected event is not history).
    let dead: Vec<String> = read_all(bootstrap, &topics.dead_letter)
        .iter()
        .map(|m| header(m, "riskd-reason").unwrap_or_default())
        .collect();
    assert!(
        dead.is_empty(),
        "{} dead letters: {:?}",
        dead.len(),
        &dead[..dead.len().min(5)]
    );
    for (identity, &want) in produced {
        let got = seen.get(identity).copied().unwrap_or(0);
        assert_eq!(got, want, "events_seen of {identity} in the restored state");
    }
    // The last signals never claim more than happened (no double counting) ...
    let signals = last_signals(bootstrap, &topics.signals);
    for (identity, signal) in &signals {
        let want = produced.get(identity).copied().unwrap_or(0);
        assert!(
            signal.events_seen <= want,
            "{identity}: signal says {} events, {want} produced",
            signal.events_seen
        );
    }
    // ... and every identity has been published.
    assert_eq!(signals.len(), produced.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_and_restart_loses_no_history() {
    let broker = broker::shared();
    let bootstrap = broker.bootstrap();
    let topics = Topics::new("kill9");
    create_topic(&bootstrap, &topics.input, 3).await;
    let records = workload_spaced("kill9", 60, 60, START_MS, 250);
    let (first, second) = records.split_at(records.len() / 2);

    let mut a = Riskd::spawn("kill9-a", &topics.env(&bootstrap));
    a.wait_ready(Duration::from_secs(30));
    produce_keyed(&bootstrap, &topics.input, first);
    // Kill as soon as some work is committed: state and offsets are then at some
    // arbitrary point between two flushes, which is the point of the test.
    let deadline = Instant::now() + Duration::from_secs(30);
    while committed(&bootstrap, &topics.group, &topics.input)
        .values()
        .all(|&c| c <= 0)
    {
        assert!(Instant::now() < deadline, "no progress:\n{}", a.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    a.kill9();
    produce_keyed(&bootstrap, &topics.input, second);

    // The restarted instance restores the changelog, skips what it already holds and
    // processes the rest. Its group session is new, so Tansu first waits out the dead
    // member's session.
    let mut b = Riskd::spawn("kill9-b", &topics.env(&bootstrap));
    b.wait_ready(Duration::from_secs(40));
    topics.wait_input_drained(&bootstrap);
    let status = b.terminate(Duration::from_secs(6));
    assert!(status.success(), "exit status {status}");
    assert_no_history_lost(&bootstrap, &topics, &counts(&records));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_split_partitions_and_one_takes_over() {
    let broker = broker::shared();
    let bootstrap = broker.bootstrap();
    let topics = Topics::new("scale");
    create_topic(&bootstrap, &topics.input, 4).await;
    let records = workload("scale", 40, 40, START_MS);
    let (first, second) = records.split_at(records.len() / 2);

    let mut a = Riskd::spawn("scale-a", &topics.env(&bootstrap));
    a.wait_ready(Duration::from_secs(30));
    let mut b = Riskd::spawn("scale-b", &topics.env(&bootstrap));
    b.wait_ready(Duration::from_secs(30));
    // Both in the group: the partitions are split between them.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (pa, pb) = (
            a.assigned().unwrap_or_default(),
            b.assigned().unwrap_or_default(),
        );
        if !pa.is_empty() && !pb.is_empty() && pa.len() + pb.len() == 4 {
            let mut all: Vec<i32> = pa.iter().chain(&pb).copied().collect();
            all.sort();
            assert_eq!(all, vec![0, 1, 2, 3], "a {pa:?} b {pb:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no split: a {pa:?} b {pb:?}\n{}\n{}",
            a.log(),
            b.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    produce_keyed(&bootstrap, &topics.input, first);
    topics.wait_input_drained(&bootstrap);

    // Both instances are ready: each restored its partitions and read the signals
    // topic to its end, so either can answer for every identity.
    assert_eq!(a.get("/readyz").map(|r| r.0), Some(200));
    assert_eq!(b.get("/readyz").map(|r| r.0), Some(200));
    // Their pipelines beat: `/readyz` would turn 503 if one stopped going round.
    for instance in [&a, &b] {
        let (_, body) = instance.get("/v1/stats").expect("stats");
        let stats: serde_json::Value = serde_json::from_str(&body).expect("stats JSON");
        let silent = stats["pipeline_silent_seconds"].as_f64();
        assert!(silent.is_some_and(|s| s < 5.0), "{stats}");
        assert_eq!(stats["pipeline_stalled"], false);
    }

    // b dies without a word; after its session times out, a owns all four partitions,
    // restores b's state from the changelog and goes on.
    b.kill9();
    produce_keyed(&bootstrap, &topics.input, second);
    topics.wait_input_drained(&bootstrap);
    assert_eq!(a.assigned().map(|p| p.len()), Some(4), "{}", a.log());
    let status = a.terminate(Duration::from_secs(6));
    assert!(status.success(), "exit status {status}");
    assert_no_history_lost(&bootstrap, &topics, &counts(&records));
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_paused_for_20s_then_resumed_loses_nothing() {
    // A broker of its own: freezing the shared one would stall the other tests.
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let topics = Topics::new("pause");
    create_topic(&bootstrap, &topics.input, 2).await;
    let records = workload_spaced("pause", 50, 200, START_MS, 100);
    let (first, second) = records.split_at(records.len() / 2);

    let mut env = topics.env(&bootstrap);
    // A session longer than the freeze: the outage is then one the group itself
    // survives, and riskd must carry on where it stopped. (With a session shorter than
    // the freeze, Tansu keeps the member id librdkafka abandoned as group leader and the
    // group does not settle again; see docs/kafka.md.)
    env.push(("RISKD__KAFKA__SESSION_TIMEOUT".into(), "30s".into()));
    let mut riskd = Riskd::spawn("pause", &env);
    riskd.wait_ready(Duration::from_secs(30));
    produce_keyed(&bootstrap, &topics.input, first);
    // Freeze the broker while riskd is busy with the first half: its connections stay
    // open and nothing answers, for longer than the session timeout.
    broker.pause();
    // What riskd had committed when the broker froze (read after the thaw): normally
    // only part of the first half, so work was in flight during the outage.
    std::thread::sleep(Duration::from_secs(20));
    assert!(
        riskd.is_running(),
        "riskd died while the broker was paused:\n{}",
        riskd.log()
    );
    broker.resume();
    let at_thaw: i64 = committed(&bootstrap, &topics.group, &topics.input)
        .values()
        .map(|&c| c.max(0))
        .sum();
    eprintln!(
        "pause: {at_thaw} of {} first-half records committed right after the freeze",
        first.len()
    );
    produce_keyed(&bootstrap, &topics.input, second);
    wait_committed_to_end(
        &bootstrap,
        &topics.group,
        &topics.input,
        Duration::from_secs(90),
    );
    assert!(riskd.is_running());
    let status = riskd.terminate(Duration::from_secs(6));
    assert!(status.success(), "exit status {status}");
    assert_no_history_lost(&bootstrap, &topics, &counts(&records));
}

#[test]
fn generate_to_kafka_produces_the_same_fleet_as_the_file_keyed_by_identity() {
    let broker = broker::shared();
    let bootstrap = broker.bootstrap();
    let topic = format!("generated-{}", std::process::id());
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = env!("CARGO_BIN_EXE_riskd");
    let args = [
        "generate",
        "--seed",
        "5",
        "--identities",
        "20",
        "--days",
        "1",
    ];

    let file = std::process::Command::new(bin)
        .args(args)
        .arg("--events")
        .arg(dir.path().join("events.ndjson"))
        .arg("--labels")
        .arg(dir.path().join("labels-file.json"))
        .output()
        .expect("run riskd generate");
    assert!(file.status.success(), "{file:?}");
    let to_kafka = std::process::Command::new(bin)
        .args(args)
        .args(["--kafka", "--topic", &topic])
        .arg("--labels")
        .arg(dir.path().join("labels-kafka.json"))
        .env("RISKD__KAFKA__BROKERS", &bootstrap)
        .env("RISKD__KAFKA__TOPIC_PARTITIONS", "3")
        .output()
        .expect("run riskd generate --kafka");
    let stderr = String::from_utf8_lossy(&to_kafka.stderr);
    assert!(to_kafka.status.success(), "{stderr}");
    assert!(stderr.contains("acknowledged by the broker"), "{stderr}");

    let lines: Vec<String> = std::fs::read_to_string(dir.path().join("events.ndjson"))
        .expect("events file")
        .lines()
        .map(str::to_string)
        .collect();
    assert!(lines.len() > 100, "{} events", lines.len());
    let records = read_all(&bootstrap, &topic);
    assert_eq!(
        records.len(),
        lines.len(),
        "every generated event reaches the topic"
    );
    assert_eq!(
        partitions(&bootstrap, &topic).len(),
        3,
        "topic created as configured"
    );
    // Same events (order across partitions is not defined, so compare as sets), each
    // keyed by its identity, and per identity in the file's (event-time) order.
    let mut per_identity: HashMap<String, Vec<String>> = HashMap::new();
    for m in &records {
        let key = String::from_utf8_lossy(m.key().expect("keyed")).into_owned();
        let payload = String::from_utf8_lossy(m.payload().expect("payload")).into_owned();
        let event: serde_json::Value = serde_json::from_str(&payload).expect("native JSON");
        assert_eq!(event["identity"].as_str(), Some(key.as_str()));
        per_identity.entry(key).or_default().push(payload);
    }
    let mut expected: HashMap<String, Vec<String>> = HashMap::new();
    for line in lines {
        let event: serde_json::Value = serde_json::from_str(&line).expect("native JSON");
        let id = event["identity"].as_str().expect("identity").to_string();
        expected.entry(id).or_default().push(line);
    }
    assert_eq!(per_identity, expected);
    assert_eq!(
        std::fs::read(dir.path().join("labels-file.json")).expect("labels"),
        std::fs::read(dir.path().join("labels-kafka.json")).expect("labels"),
    );
}
