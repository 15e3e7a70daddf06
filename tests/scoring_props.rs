//! Property tests of the scoring engine's invariants (design §10): scores stay in
//! 0-100, decay never raises a score when no events arrive, the same events give
//! byte-identical signals, and state stays bounded (identity cap, per-identity size).

use proptest::prelude::*;
use riskd::config::Config;
use riskd::engine::Engine;
use riskd::event::{ActivityEvent, Outcome};
use riskd::signal::Signal;

const T0: i64 = 1_763_942_400_000;

#[derive(Debug, Clone)]
struct Step {
    gap_ms: i64,
    identity: u8,
    action: u8,
    dest: u16,
    ip: u8,
    ua: u8,
    outcome: u8,
    bytes: u32,
}

fn step() -> impl Strategy<Value = Step> {
    (
        prop_oneof![0i64..2_000, 0i64..120_000, 0i64..7_200_000],
        0u8..12,
        0u8..20,
        0u16..400,
        0u8..40,
        0u8..6,
        0u8..10,
        0u32..5_000_000,
    )
        .prop_map(
            |(gap_ms, identity, action, dest, ip, ua, outcome, bytes)| Step {
                gap_ms,
                identity,
                action,
                dest,
                ip,
                ua,
                outcome,
                bytes,
            },
        )
}

fn events(steps: &[Step]) -> Vec<ActivityEvent> {
    let mut t = T0;
    steps
        .iter()
        .map(|s| {
            t += s.gap_ms;
            ActivityEvent {
                time_ms: t,
                identity: format!("id-{}", s.identity),
                action: format!("svc:Action{}", s.action),
                destination: format!("arn:aws:s3:::bucket-{}/key/{}", s.dest % 9, s.dest),
                source_ip: Some(if s.ip < 30 {
                    format!("10.0.{}.{}", s.ip, s.dest % 250)
                } else {
                    format!("198.51.{}.7", s.ip)
                }),
                user_agent: Some(format!("tool{}/1.{}", s.ua, s.dest % 4)),
                outcome: match s.outcome {
                    0 => Outcome::Denied,
                    1 => Outcome::Error,
                    _ => Outcome::Success,
                },
                bytes: Some(u64::from(s.bytes)),
                ..ActivityEvent::default()
            }
        })
        .collect()
}

/// A config where identities become active quickly, so every detector gets exercised.
fn config() -> Config {
    let mut c = Config::default_config().expect("defaults");
    c.state.learning_min_events = 5;
    c.state.learning_min_span = riskd::config::HumanDuration(std::time::Duration::from_secs(600));
    c.state.max_seen_entries = 16;
    c
}

fn run(config: &Config, evs: &[ActivityEvent]) -> (Engine, Vec<Signal>) {
    let mut engine = Engine::new(config);
    let mut out = Vec::new();
    for e in evs {
        let _ = engine.process(e, &mut out);
    }
    (engine, out)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn scores_stay_in_range(steps in prop::collection::vec(step(), 1..400)) {
        let (mut engine, mut out) = run(&config(), &events(&steps));
        let end = engine.watermark_ms() + 48 * 3_600_000;
        engine.advance_to(end, &mut out);
        for s in &out {
            prop_assert!((0.0..=100.0).contains(&s.score), "{s:?}");
            prop_assert!(s.reasons.iter().all(|r| (0.0..=1.0).contains(&r.strength)));
            // One decimal, as published.
            prop_assert!(((s.score * 10.0).round() - s.score * 10.0).abs() < 1e-9);
        }
    }

    #[test]
    fn decay_is_monotone_without_events(steps in prop::collection::vec(step(), 1..300)) {
        let (mut engine, _) = run(&config(), &events(&steps));
        let names: Vec<String> = (0..12).map(|i| format!("id-{i}")).collect();
        let mut previous: Vec<Option<f64>> = names.iter().map(|n| engine.score_of(n)).collect();
        let mut decay = Vec::new();
        let start = engine.watermark_ms();
        for k in 1..=48 {
            engine.advance_to(start + k * 600_000, &mut decay);
            for (i, n) in names.iter().enumerate() {
                let now = engine.score_of(n);
                if let (Some(a), Some(b)) = (previous[i], now) {
                    prop_assert!(b <= a, "{n}: {a} -> {b}");
                }
                previous[i] = now;
            }
        }
        for n in &names {
            let scores: Vec<f64> = decay.iter().filter(|s| &s.identity == n).map(|s| s.score).collect();
            prop_assert!(scores.windows(2).all(|w| w[1] <= w[0]), "{n}: {scores:?}");
        }
        prop_assert_eq!(engine.scheduled(), 0, "8 hours of decay brings everyone to normal");
    }

    #[test]
    fn output_is_deterministic(steps in prop::collection::vec(step(), 1..300)) {
        let evs = events(&steps);
        let render = |out: &[Signal]| -> String {
            out.iter().map(|s| serde_json::to_string(s).expect("serialises") + "\n").collect()
        };
        let (mut a, mut out_a) = run(&config(), &evs);
        let (mut b, mut out_b) = run(&config(), &evs);
        a.advance_to(a.watermark_ms() + 86_400_000, &mut out_a);
        b.advance_to(b.watermark_ms() + 86_400_000, &mut out_b);
        prop_assert_eq!(render(&out_a), render(&out_b));
        prop_assert_eq!(a.take_dirty(), b.take_dirty());
    }

    #[test]
    fn state_is_bounded(steps in prop::collection::vec(step(), 1..400), cap in 1usize..8) {
        let mut c = config();
        c.state.max_identities = cap;
        let (mut engine, _) = run(&c, &events(&steps));
        prop_assert!(engine.identities() <= cap);
        let max_seen = c.state.max_seen_entries;
        for (name, bytes) in engine.take_dirty() {
            // Six seen-sets of 4-byte entries at the bound, sketch, baselines and profile.
            let bound = 6 * max_seen * 4 + 64 + 1024;
            prop_assert!(bytes.len() <= bound, "{name}: {} > {bound}", bytes.len());
        }
    }
}
