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
fn benign_visits_from_inside_are_unlabelled_and_outside_attacks() {
    // Engineers debugging with a job's AWS role from the VPN: a normal day that looks
    // like novelty (a new network and client family, new read calls).
    let opts = GenerateOptions {
        identities: 300,
        days: 10,
        ..small()
    };
    let fleet = Fleet::new(&opts);
    let labels = fleet.labels().clone();
    let victims: BTreeSet<String> = labels.attacks.iter().map(|a| a.identity.clone()).collect();
    let mut visited = BTreeSet::new();
    for e in Fleet::new(&opts) {
        if e.source_network.as_deref() != Some("corp-vpn") {
            continue;
        }
        assert!(e.identity.starts_with("arn:aws:iam::"), "{}", e.identity);
        assert!(!victims.contains(&e.identity), "{} is attacked", e.identity);
        let ip = e.source_ip.as_deref().unwrap_or("");
        assert!(ip.starts_with("10.200."), "{ip}");
        assert!(e.user_agent.as_deref().unwrap_or("").contains("Darwin"));
        visited.insert(e.identity);
    }
    assert!(visited.len() >= 2, "only {} visits", visited.len());
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

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

        /// Any seed and (small) size: time order holds, attacks fit their victims'
        /// spans, and every event belongs to a labelled identity.
        #[test]
        fn any_small_fleet_is_ordered_and_labelled(
            seed in any::<u64>(),
            identities in 0usize..40,
            days in 0u32..6,
            offset_h in 0i64..200,
        ) {
            let opts = GenerateOptions {
                seed,
                identities,
                days,
                start_ms: DEFAULT_START_MS + offset_h * 3_600_000,
                attacks: true,
            };
            let fleet = Fleet::new(&opts);
            let labels = fleet.labels().clone();
            prop_assert!(labels.validate().is_ok());
            let spans: BTreeMap<String, (i64, i64)> = labels
                .identities
                .iter()
                .map(|i| (i.identity.clone(), i.span_ms().expect("span")))
                .collect();
            for a in &labels.attacks {
                let (s, e) = a.span_ms().expect("attack span");
                let (first, last) = spans[&a.identity];
                prop_assert!(first <= s && s <= e && e <= last);
            }
            let mut last = i64::MIN;
            for e in fleet.take(200_000) {
                prop_assert!(e.time_ms >= last);
                last = e.time_ms;
                let (first, end) = spans[&e.identity];
                prop_assert!(e.time_ms >= first && e.time_ms <= end);
            }
        }
    }
}

/// Design §3, property by property: the benign fleet really has the traits that make
/// naive first-seen rules useless (otherwise the quality test would prove nothing).
#[test]
fn benign_fleet_shows_every_real_world_trait_of_design_section_3() {
    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;
    const DAY: i64 = 24 * HOUR;
    let opts = GenerateOptions {
        seed: 3,
        identities: 90,
        days: 14,
        start_ms: DEFAULT_START_MS,
        attacks: false,
    };
    let fleet = Fleet::new(&opts);
    let labels = fleet.labels().clone();
    let (start, _) = labels.fleet_span_ms().expect("span");
    let change = |kind: &str| {
        let c = labels
            .fleet_changes
            .iter()
            .find(|c| c.kind == kind)
            .expect("change");
        (
            parse_time_ms(&c.start).expect("start"),
            parse_time_ms(&c.end).expect("end"),
        )
    };
    let (incident_start, incident_end) = change("incident");
    let (sale_start, sale_end) = change("sale_day");
    let (release_start, _) = change("release");
    let archetype: BTreeMap<&str, &str> = labels
        .identities
        .iter()
        .map(|i| (i.identity.as_str(), i.archetype.as_str()))
        .collect();
    let first_active: BTreeMap<&str, i64> = labels
        .identities
        .iter()
        .map(|i| (i.identity.as_str(), i.span_ms().expect("span").0))
        .collect();

    let mut uas: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut v2_first: BTreeMap<String, i64> = BTreeMap::new();
    let (mut incident_err, mut incident_n, mut other_err) = (0u64, 0u64, 0u64);
    let mut payments_per_day = [0u64; 14];
    let mut all_per_day = [0u64; 14];
    // Traffic of long-lived, demand-driven identities (scheduled jobs do not grow).
    let mut organic_per_day = [0u64; 14];
    let whole_run: BTreeSet<&str> = labels
        .identities
        .iter()
        .filter(|i| i.first_active == labels.fleet_start && i.last_active == labels.fleet_end)
        .map(|i| i.identity.as_str())
        .collect();
    let mut cron_offsets: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    let mut ci_ips: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
    let (mut customer_reads, mut customers) = (0u64, BTreeSet::new());
    let mut first_event: BTreeMap<String, i64> = BTreeMap::new();
    for e in fleet {
        let a = archetype[e.identity.as_str()];
        let day = ((e.time_ms - start) / DAY) as usize;
        all_per_day[day] += 1;
        if whole_run.contains(e.identity.as_str())
            && matches!(
                a,
                "support_copilot" | "k8s_workload" | "payment_api_key" | "research_agent"
            )
        {
            organic_per_day[day] += 1;
        }
        first_event.entry(e.identity.clone()).or_insert(e.time_ms);
        uas.entry(e.identity.clone())
            .or_default()
            .insert(e.user_agent.clone().unwrap_or_default());
        let hour = (e.time_ms.rem_euclid(DAY)) / HOUR;
        let weekday = ((e.time_ms.div_euclid(DAY) + 3).rem_euclid(7)) < 5;
        match a {
            "k8s_controller" => {
                let failed = e.outcome.is_failure();
                if (incident_start..incident_end).contains(&e.time_ms) {
                    incident_n += 1;
                    incident_err += failed as u64;
                } else {
                    other_err += failed as u64;
                }
            }
            "payment_api_key" | "partner_api_key" => {
                if a == "payment_api_key" {
                    payments_per_day[day] += 1;
                }
                if e.action.contains("/v2/") {
                    v2_first.entry(e.identity.clone()).or_insert(e.time_ms);
                }
            }
            "cron_job" => {
                cron_offsets
                    .entry(e.identity.clone())
                    .or_default()
                    .insert(e.time_ms.rem_euclid(15 * MIN) / MIN);
            }
            "ci_bot" => {
                assert!(
                    weekday && (8..20).contains(&hour),
                    "CI outside working hours"
                );
                let entry = ci_ips.entry(e.identity.clone()).or_default();
                entry.0.insert(e.source_ip.clone().unwrap_or_default());
                entry
                    .1
                    .insert(e.attributes.get("run_id").cloned().unwrap_or_default());
            }
            "support_copilot" if e.action == "GET /v1/customers/{id}" => {
                customer_reads += 1;
                customers.insert(e.destination.clone());
            }
            _ => {}
        }
    }

    // Fleet-wide SDK/agent upgrade: nearly every long-lived non-key identity changes UA.
    let upgraded = uas
        .iter()
        .filter(|(id, _)| !archetype[id.as_str()].ends_with("api_key"))
        .filter(|(id, _)| first_active[id.as_str()] == start)
        .map(|(_, set)| set.len() >= 2)
        .fold((0, 0), |(u, n), up| (u + up as u32, n + 1));
    assert!(upgraded.0 * 10 >= upgraded.1 * 9, "upgraded {upgraded:?}");
    // Release: most keys adopt the v2 routes, none before the release.
    let keys = archetype
        .values()
        .filter(|a| a.ends_with("api_key"))
        .count();
    assert!(
        v2_first.len() * 10 >= keys * 6,
        "{} of {keys} keys on v2",
        v2_first.len()
    );
    assert!(v2_first.values().all(|&t| t >= release_start));
    // Cluster incident: controllers fail for those ten minutes and only then.
    assert!(incident_n > 0 && incident_err * 2 > incident_n);
    assert_eq!(other_err, 0);
    // Sale day triples payments against the same weekday a week earlier.
    let sale_day = ((sale_start - start) / DAY) as usize;
    assert_eq!(sale_end - sale_start, DAY);
    assert!(sale_day >= 7, "sale day {sale_day}");
    let ratio = payments_per_day[sale_day] as f64 / payments_per_day[sale_day - 7] as f64;
    assert!((2.4..4.5).contains(&ratio), "sale-day ratio {ratio}");
    // Cron jobs fire at one fixed minute.
    for (id, offsets) in &cron_offsets {
        assert_eq!(offsets.len(), 1, "{id} runs at minutes {offsets:?}");
    }
    // CI runners: a fresh address for (nearly) every build.
    for (id, (ips, runs)) in &ci_ips {
        assert!(
            ips.len() * 10 >= runs.len() * 9,
            "{id}: {} ips, {} runs",
            ips.len(),
            runs.len()
        );
    }
    // High-cardinality destinations: a different customer per read.
    assert!(customer_reads > 1000 && customers.len() as u64 * 100 >= customer_reads * 99);
    // New identities appear mid-run, not at the start.
    let newcomers: Vec<_> = first_active.iter().filter(|(_, &t)| t > start).collect();
    assert!(!newcomers.is_empty());
    for (id, t) in newcomers {
        if let Some(first) = first_event.get(*id) {
            assert!(first >= t);
        }
    }
    // Weekly rhythm and slow growth: weekends are quieter than weekdays, and the second
    // week of demand-driven identities (sale day aside) carries more than the first.
    let weekend = (all_per_day[5] + all_per_day[6]) as f64 / 2.0;
    let weekdays = all_per_day[..5].iter().sum::<u64>() as f64 / 5.0;
    assert!(
        weekend < 0.8 * weekdays,
        "weekend {weekend} vs weekday {weekdays}"
    );
    let week = |d: std::ops::Range<usize>| -> u64 {
        d.filter(|&d| d % 7 != sale_day % 7)
            .map(|d| organic_per_day[d])
            .sum()
    };
    let growth = week(7..14) as f64 / week(0..7) as f64;
    assert!(
        (1.02..1.3).contains(&growth),
        "growth {growth}: {organic_per_day:?}"
    );
}
