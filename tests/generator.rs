//! The synthetic fleet generator: deterministic by seed, ordered in event time, covering
//! every archetype and attack kind, and consistent with its own labels.

use std::collections::{BTreeMap, BTreeSet};

use riskd::signal::parse_time_ms;
use riskd::source::generator::{
    generate_to_files, Archetype, AttackKind, Fleet, GenerateOptions, DEFAULT_START_MS,
};

fn small() -> GenerateOptions {
    GenerateOptions {
        seed: 7,
        identities: 60,
        days: 6,
        start_ms: DEFAULT_START_MS,
        attacks: true,
    }
}

#[test]
fn same_seed_gives_byte_identical_files_and_another_seed_does_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |name: &str, seed: u64| {
        let events = dir.path().join(format!("{name}.ndjson"));
        let labels = dir.path().join(format!("{name}.json"));
        let opts = GenerateOptions {
            seed,
            identities: 30,
            days: 5,
            ..small()
        };
        let summary = generate_to_files(&opts, &events, &labels).expect("generate");
        assert!(summary.events > 1000, "{summary:?}");
        (
            std::fs::read(events).expect("events"),
            std::fs::read(labels).expect("labels"),
        )
    };
    let a = run("a", 11);
    let b = run("b", 11);
    let c = run("c", 12);
    assert!(a.0 == b.0, "events differ for the same seed");
    assert!(a.1 == b.1, "labels differ for the same seed");
    assert!(a.0 != c.0, "a different seed gave the same events");
}

#[test]
fn events_are_in_time_order_and_inside_each_identity_span() {
    let fleet = Fleet::new(&small());
    let labels = fleet.labels().clone();
    let (start, end) = labels.fleet_span_ms().expect("fleet span");
    let spans: BTreeMap<String, (i64, i64)> = labels
        .identities
        .iter()
        .map(|i| (i.identity.clone(), i.span_ms().expect("identity span")))
        .collect();
    let mut last = i64::MIN;
    let mut ids = BTreeSet::new();
    let mut seen = BTreeSet::new();
    let mut n = 0u64;
    for e in fleet {
        assert!(e.time_ms >= last, "time went backwards at event {n}");
        last = e.time_ms;
        assert!(e.time_ms >= start && e.time_ms <= end);
        let (first, last_active) = spans
            .get(&e.identity)
            .unwrap_or_else(|| panic!("unlabelled identity {}", e.identity));
        assert!(
            e.time_ms >= *first && e.time_ms <= *last_active,
            "{} active outside its labelled span",
            e.identity
        );
        let id = e.event_id.clone().expect("event id");
        assert!(ids.insert(id), "duplicate event id");
        seen.insert(e.identity.clone());
        n += 1;
    }
    assert!(n > 10_000, "only {n} events");
    // Labelled identities actually show up (a deploy bot born on a Saturday may well
    // stay silent until Monday, so not necessarily all of them).
    let silent: Vec<_> = labels
        .identities
        .iter()
        .filter(|i| !seen.contains(&i.identity))
        .map(|i| i.identity.as_str())
        .collect();
    assert!(
        silent.len() * 10 <= labels.identities.len(),
        "silent: {silent:?}"
    );
}

#[test]
fn every_archetype_and_attack_kind_is_present() {
    let fleet = Fleet::new(&GenerateOptions {
        identities: 150,
        days: 10,
        ..small()
    });
    let labels = fleet.labels();
    let archetypes: BTreeSet<&str> = labels
        .identities
        .iter()
        .map(|i| i.archetype.as_str())
        .collect();
    for a in Archetype::ALL {
        assert!(archetypes.contains(a.name()), "no {}", a.name());
    }
    assert!(Archetype::ALL.len() >= 12);
    let kinds: BTreeSet<&str> = labels.attacks.iter().map(|a| a.kind.as_str()).collect();
    for k in AttackKind::ALL {
        assert!(kinds.contains(k.name()), "no {} attack", k.name());
    }
    // New identities appear mid-run.
    let newcomers = labels
        .identities
        .iter()
        .filter(|i| i.first_active != labels.fleet_start)
        .count();
    assert!(newcomers > 0);
    labels.validate().expect("labels are consistent");
}

#[test]
fn attack_windows_contain_the_victims_malicious_events() {
    let opts = GenerateOptions {
        identities: 150,
        days: 10,
        ..small()
    };
    let fleet = Fleet::new(&opts);
    let labels = fleet.labels().clone();
    let benign: Vec<_> = Fleet::new(&GenerateOptions {
        attacks: false,
        ..opts.clone()
    })
    .labels()
    .identities
    .clone();
    // Turning attacks off leaves the identities untouched.
    assert_eq!(benign, labels.identities);

    let mut per_attack: BTreeMap<&str, u64> = BTreeMap::new();
    let windows: Vec<(&str, &str, i64, i64)> = labels
        .attacks
        .iter()
        .map(|a| {
            let (s, e) = a.span_ms().expect("attack span");
            assert!(s <= e);
            (a.id.as_str(), a.identity.as_str(), s, e)
        })
        .collect();
    let victims: BTreeSet<&str> = windows.iter().map(|w| w.1).collect();
    assert_eq!(victims.len(), windows.len(), "one attack per victim");
    let mut starts_seen = BTreeSet::new();
    for e in Fleet::new(&opts) {
        for (id, who, s, end) in &windows {
            if e.identity == *who && e.time_ms >= *s && e.time_ms <= *end {
                *per_attack.entry(id).or_default() += 1;
                if e.time_ms == *s {
                    starts_seen.insert(*id);
                }
            }
        }
    }
    for (id, ..) in &windows {
        assert!(
            per_attack.get(id).copied().unwrap_or(0) >= 2,
            "{id} has no events"
        );
        assert!(starts_seen.contains(id), "{id}: no event at its start");
    }
}

#[test]
fn fleet_changes_are_labelled() {
    let labels = Fleet::new(&small()).labels().clone();
    let kinds: BTreeSet<&str> = labels
        .fleet_changes
        .iter()
        .map(|c| c.kind.as_str())
        .collect();
    for k in ["sdk_upgrade", "release", "incident", "sale_day"] {
        assert!(kinds.contains(k), "no {k}");
    }
    for c in &labels.fleet_changes {
        assert!(parse_time_ms(&c.start).is_some() && parse_time_ms(&c.end).is_some());
    }
}
