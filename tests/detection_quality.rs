//! Detection quality regression: a fixed-seed synthetic fleet with injected attacks, run
//! through the engine exactly as `riskd replay` does, must be caught with recall ≥ 0.95
//! at ≤ 2 false alerts per 1,000 identity-days (see `riskd::eval` for the rules). The
//! naive first-seen baseline is printed next to it to show the noise riskd removes.

use riskd::config::Config;
use riskd::engine::Engine;
use riskd::eval::{evaluate, evaluate_naive, render};
use riskd::source::generator::{Fleet, GenerateOptions, DEFAULT_START_MS};

fn options() -> GenerateOptions {
    // Sized to run in seconds in a debug build while still holding two attacks of each
    // kind, every archetype and every fleet-wide change.
    GenerateOptions {
        seed: 2026,
        identities: 150,
        days: 10,
        start_ms: DEFAULT_START_MS,
        attacks: true,
    }
}

#[test]
fn riskd_catches_the_attacks_without_paging_on_normal_fleet_behaviour() {
    let config = Config::default_config().expect("default config");
    let mut engine = Engine::new(&config);
    let fleet = Fleet::new(&options());
    let labels = fleet.labels().clone();
    let (_, fleet_end) = labels.fleet_span_ms().expect("labels");

    let mut signals = Vec::new();
    let mut rejected = 0u64;
    let mut events = 0u64;
    for event in fleet {
        events += 1;
        if engine.process(&event, &mut signals).is_err() {
            rejected += 1;
        }
    }
    engine.advance_to(fleet_end, &mut signals);
    assert_eq!(rejected, 0, "the generator's events are in order");

    let report = evaluate(&labels, signals.into_iter());
    println!("{events} events, {} attacks", labels.attacks.len());
    println!("{}", render(&report));

    let naive = evaluate_naive(&labels, Fleet::new(&options()));
    println!("{}", render(&naive));

    assert!(
        report.overall.attacks >= 16,
        "{} attacks",
        report.overall.attacks
    );
    assert!(
        report.overall.recall >= 0.95,
        "recall {:.3} < 0.95",
        report.overall.recall
    );
    assert!(
        report.false_alerts_per_1000_identity_days <= 2.0,
        "{:.2} false alerts per 1,000 identity-days > 2",
        report.false_alerts_per_1000_identity_days
    );
}
