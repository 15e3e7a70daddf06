//! Synthetic, labelled NHI fleet: `riskd generate`, the demo, tests and benchmarks.
//!
//! A [`Fleet`] is an iterator of [`ActivityEvent`]s in non-decreasing event time, fully
//! determined by [`GenerateOptions::seed`]. It streams: memory holds one small state per
//! identity and per planned attack plus a heap of their next event times, never the
//! events themselves, so a month of a large fleet costs no more memory than a day.
//!
//! # Layout
//!
//! - [`archetype`]: fourteen kinds of benign identity and how each behaves (design §3:
//!   high-cardinality destinations, churning sources, fleet-wide change, rhythm, growth).
//! - [`attack`]: the injected attacks and their ground-truth windows.
//! - [`visit`]: benign visits from inside (an engineer on the VPN debugging with a job's
//!   role), unlabelled: normal days that look like novelty.
//! - [`labels`]: the labels file `riskd eval` reads.
//! - `util`: calendar curves and realistic random identifiers.
//!
//! The fleet's calendar (fleet-wide changes) is derived from the seed and the number of
//! days: one SDK/agent upgrade day, one API release day, one ten-minute cluster incident
//! and one sale day, each listed in the labels as `fleet_changes`.

pub mod archetype;
pub mod attack;
pub mod labels;
pub mod publish;
mod util;
pub mod visit;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use serde::Serialize;

use crate::event::ActivityEvent;
use crate::signal::format_time_ms;

pub use archetype::Archetype;
pub use attack::AttackKind;
pub use labels::{AttackLabel, FleetChange, IdentityLabel, Labels, LabelsError};
use util::{between, chance, day_start, is_weekend, mix, DAY, HOUR, MINUTE};

/// 2026-11-02T00:00:00Z, a Monday: the default fleet start.
pub const DEFAULT_START_MS: i64 = 1_793_577_600_000;

/// Working days of history a victim has before it can be attacked: the engine's learning
/// period plus a couple of days of baseline, as in a real deployment. Counted in weekdays
/// because working-hours bots born on a Friday evening are silent until Monday.
const ATTACK_WARMUP_WEEKDAYS: u32 = 3;

/// Midnight after `n` whole weekdays have passed since `t`.
fn after_weekdays(t: i64, n: u32) -> i64 {
    // A day counts only if it is whole: from `t` itself at midnight, else the next one.
    let mut day = if day_start(t) == t {
        t
    } else {
        day_start(t) + DAY
    };
    let mut left = n;
    while left > 0 {
        if !is_weekend(day) {
            left -= 1;
        }
        day += DAY;
    }
    day
}

/// Options of `riskd generate` (and of the demo and test fleets).
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    pub seed: u64,
    pub identities: usize,
    pub days: u32,
    /// Fleet start (event time, epoch milliseconds).
    pub start_ms: i64,
    /// Inject the labelled attacks.
    pub attacks: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            seed: 1,
            identities: 200,
            days: 14,
            start_ms: DEFAULT_START_MS,
            attacks: true,
        }
    }
}

/// Fleet-wide dates derived from the seed.
pub struct Calendar {
    pub start_ms: i64,
    pub end_ms: i64,
    pub days: u32,
    /// Midnight of the day most SDKs and agents are upgraded.
    pub sdk_upgrade_ms: i64,
    /// Midnight of the day a release adds v2 routes to most API keys.
    pub release_ms: i64,
    pub incident_start_ms: i64,
    pub incident_end_ms: i64,
    pub sale_start_ms: i64,
    pub sale_end_ms: i64,
}

impl Calendar {
    fn new(opts: &GenerateOptions, rng: &mut Pcg64Mcg) -> Self {
        let start_ms = opts.start_ms;
        let days = opts.days.max(1);
        let end_ms = start_ms + days as i64 * DAY;
        // A weekday roughly `frac` of the way through the run (changes ship on weekdays).
        let weekday = |frac: f64| {
            let mut d = ((days as f64 * frac) as i64).clamp(0, days as i64 - 1);
            while is_weekend(start_ms + d * DAY) && d + 1 < days as i64 {
                d += 1;
            }
            day_start(start_ms + d * DAY)
        };
        let incident_start_ms = weekday(0.3) + 13 * HOUR + between(rng, 0, 3 * HOUR);
        let sale = weekday(0.8);
        Calendar {
            start_ms,
            end_ms,
            days,
            sdk_upgrade_ms: weekday(0.45),
            release_ms: weekday(0.6),
            incident_start_ms,
            incident_end_ms: incident_start_ms + 10 * MINUTE,
            sale_start_ms: sale,
            sale_end_ms: sale + DAY,
        }
    }

    pub fn in_incident(&self, t: i64) -> bool {
        (self.incident_start_ms..self.incident_end_ms).contains(&t)
    }

    pub fn in_sale(&self, t: i64) -> bool {
        (self.sale_start_ms..self.sale_end_ms).contains(&t)
    }

    fn changes(&self) -> Vec<FleetChange> {
        let change = |kind: &str, start: i64, end: i64, description: &str| FleetChange {
            kind: kind.to_string(),
            start: format_time_ms(start),
            end: format_time_ms(end),
            description: description.to_string(),
        };
        vec![
            change(
                "sdk_upgrade",
                self.sdk_upgrade_ms + 7 * HOUR,
                self.sdk_upgrade_ms + 24 * HOUR,
                "rolling SDK/agent upgrade: new user agent on every non-API-key identity",
            ),
            change(
                "release",
                self.release_ms + 9 * HOUR,
                self.release_ms + 18 * HOUR,
                "API release: most payment and partner keys start calling v2 routes",
            ),
            change(
                "incident",
                self.incident_start_ms,
                self.incident_end_ms,
                "cluster incident: every controller sees errors and retries 4x",
            ),
            change(
                "sale_day",
                self.sale_start_ms,
                self.sale_end_ms,
                "sale day: every payment key's traffic triples",
            ),
        ]
    }
}

/// The synthetic fleet: an iterator of events in non-decreasing event time.
pub struct Fleet {
    calendar: Calendar,
    labels: Labels,
    identities: Vec<archetype::IdentitySim>,
    attacks: Vec<attack::AttackSim>,
    visits: Vec<visit::VisitSim>,
    /// Next event time of every live stream; index < identities.len() is an identity,
    /// then the attacks, then the visits. The index breaks ties, so the order is
    /// deterministic.
    heap: BinaryHeap<Reverse<(i64, usize)>>,
    seed: u64,
    emitted: u64,
}

impl Fleet {
    pub fn new(opts: &GenerateOptions) -> Fleet {
        let mut rng = Pcg64Mcg::seed_from_u64(mix(opts.seed));
        let calendar = Calendar::new(opts, &mut rng);
        let (start, end) = (calendar.start_ms, calendar.end_ms);
        let total_weight: u32 = Archetype::ALL.iter().map(|a| a.weight()).sum();
        let mut identities = Vec::with_capacity(opts.identities);
        for index in 0..opts.identities {
            // The first fourteen cover every archetype; the rest follow the fleet mix.
            let arch = if index < Archetype::ALL.len() {
                Archetype::ALL[index]
            } else {
                let mut r = rng.gen_range(0..total_weight);
                let mut chosen = Archetype::ALL[0];
                for a in Archetype::ALL {
                    if r < a.weight() {
                        chosen = a;
                        break;
                    }
                    r -= a.weight();
                }
                chosen
            };
            let mut first = start;
            let mut last = end;
            if index >= Archetype::ALL.len() && opts.days >= 3 {
                // New identities keep appearing; a few are retired before the end.
                if chance(&mut rng, 0.12) {
                    first = start + between(&mut rng, DAY, (opts.days as i64 - 1) * DAY);
                } else if chance(&mut rng, 0.04) {
                    last = start
                        + between(
                            &mut rng,
                            opts.days as i64 * DAY / 2,
                            (opts.days as i64 - 1) * DAY,
                        );
                }
            }
            identities.push(archetype::IdentitySim::new(
                index, arch, opts.seed, &calendar, first, last,
            ));
        }

        let mut attacks = Vec::new();
        if opts.attacks {
            // Scale with fleet size so recall is measured on more than one example.
            let per_kind =
                ((opts.identities as u64 * opts.days as u64).div_ceil(1200)).clamp(1, 20) as usize;
            let mut attacked = vec![false; identities.len()];
            for kind in AttackKind::ALL {
                let mut candidates: Vec<usize> = (0..identities.len())
                    .filter(|&i| kind.victims().contains(&identities[i].arch))
                    .collect();
                // Deterministic shuffle.
                for i in (1..candidates.len()).rev() {
                    candidates.swap(i, rng.gen_range(0..=i));
                }
                let mut planned = 0;
                for victim in candidates {
                    if planned == per_kind {
                        break;
                    }
                    if attacked[victim] {
                        continue;
                    }
                    let v = &identities[victim];
                    let earliest = after_weekdays(v.first_ms.max(start), ATTACK_WARMUP_WEEKDAYS);
                    let latest_end = v.last_ms.min(end) - HOUR;
                    let id = format!("atk-{:02}", attacks.len() + 1);
                    let seed = mix(opts.seed ^ mix(0x00a7_7ac4 + attacks.len() as u64));
                    if let Some(a) =
                        attack::AttackSim::plan(id, kind, victim, v, earliest, latest_end, seed)
                    {
                        attacked[victim] = true;
                        attacks.push(a);
                        planned += 1;
                    }
                }
            }
        }

        // Benign visits from inside to some AWS roles that are not attacked (so a visit
        // never lands in an attack's window). Their own RNG: the identities' and attacks'
        // events are the same with or without them (event ids, a fleet-wide counter,
        // shift).
        let mut visits = Vec::new();
        {
            let mut vrng = Pcg64Mcg::seed_from_u64(mix(opts.seed ^ 0x0015_17ed));
            let attacked: Vec<usize> = attacks.iter().map(|a| a.victim).collect();
            for (i, v) in identities.iter().enumerate() {
                if !v.name.starts_with("arn:aws:iam::") || attacked.contains(&i) {
                    continue;
                }
                if !chance(&mut vrng, visit::VISIT_SHARE) {
                    continue;
                }
                // After the role has learned its habits.
                let earliest = after_weekdays(v.first_ms.max(start), ATTACK_WARMUP_WEEKDAYS);
                let latest = v.last_ms.min(end) - HOUR;
                let seed = mix(opts.seed ^ mix(0x0015_17ed + i as u64));
                if let Some(visit) = visit::VisitSim::plan(i, earliest, latest, seed) {
                    visits.push(visit);
                }
            }
        }

        let labels = Labels {
            generator: format!("riskd-generator/{}", env!("CARGO_PKG_VERSION")),
            seed: opts.seed,
            fleet_start: format_time_ms(start),
            fleet_end: format_time_ms(end),
            fleet_changes: calendar.changes(),
            identities: identities
                .iter()
                .map(|i| IdentityLabel {
                    identity: i.name.clone(),
                    archetype: i.arch.name().to_string(),
                    kind: i.kind.as_str().to_string(),
                    first_active: format_time_ms(i.first_ms),
                    last_active: format_time_ms(i.last_ms),
                })
                .collect(),
            attacks: attacks
                .iter()
                .map(|a| AttackLabel {
                    id: a.id.clone(),
                    kind: a.kind.name().to_string(),
                    identity: identities[a.victim].name.clone(),
                    start: format_time_ms(a.start_ms()),
                    end: format_time_ms(a.end_ms()),
                    description: a.description.clone(),
                })
                .collect(),
        };

        let mut heap = BinaryHeap::with_capacity(identities.len() + attacks.len() + visits.len());
        for (i, sim) in identities.iter_mut().enumerate() {
            if let Some(t) = sim.next_after(sim.first_ms - 1, &calendar) {
                heap.push(Reverse((t, i)));
            }
        }
        for (j, a) in attacks.iter().enumerate() {
            if let Some(t) = a.next_time() {
                heap.push(Reverse((t, identities.len() + j)));
            }
        }
        for (j, v) in visits.iter().enumerate() {
            if let Some(t) = v.next_time() {
                heap.push(Reverse((t, identities.len() + attacks.len() + j)));
            }
        }
        Fleet {
            calendar,
            labels,
            identities,
            attacks,
            visits,
            heap,
            seed: opts.seed,
            emitted: 0,
        }
    }

    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    /// Events emitted so far.
    pub fn emitted(&self) -> u64 {
        self.emitted
    }
}

impl Iterator for Fleet {
    type Item = ActivityEvent;

    fn next(&mut self) -> Option<ActivityEvent> {
        let Reverse((t, stream)) = self.heap.pop()?;
        let n = self.identities.len();
        let mut event = if stream < n {
            let sim = &mut self.identities[stream];
            let event = sim.emit(t, &self.calendar);
            if let Some(next) = sim.next_after(t, &self.calendar) {
                self.heap.push(Reverse((next, stream)));
            }
            event
        } else if stream < n + self.attacks.len() {
            let a = &mut self.attacks[stream - n];
            let event = a.emit(&mut self.identities[a.victim]);
            if let Some(next) = a.next_time() {
                self.heap.push(Reverse((next, stream)));
            }
            event
        } else {
            let v = &mut self.visits[stream - n - self.attacks.len()];
            let event = v.emit(&self.identities[v.victim]);
            if let Some(next) = v.next_time() {
                self.heap.push(Reverse((next, stream)));
            }
            event
        };
        // A bijective mix of (seed, counter): unique within a fleet, random-looking.
        event.event_id = Some(format!(
            "evt_{:016x}",
            mix(self.seed.rotate_left(32) ^ self.emitted)
        ));
        self.emitted += 1;
        Some(event)
    }
}

/// What `generate_to_files` wrote.
#[derive(Debug, Clone)]
pub struct GenerateSummary {
    pub events: u64,
    pub identities: usize,
    pub attacks: usize,
    pub bytes: u64,
    pub elapsed: Duration,
}

impl GenerateSummary {
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_counts_weekdays() {
        // Monday 00:00 -> Mon, Tue, Wed pass -> Thursday 00:00.
        assert_eq!(
            after_weekdays(DEFAULT_START_MS, 3),
            DEFAULT_START_MS + 3 * DAY
        );
        // Friday 19:43 -> Mon, Tue, Wed (weekend skipped) -> Thursday 00:00.
        let friday_evening = DEFAULT_START_MS + 4 * DAY + 19 * HOUR;
        assert_eq!(
            after_weekdays(friday_evening, 3),
            DEFAULT_START_MS + 10 * DAY
        );
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot encode labels: {0}")]
    Labels(#[from] serde_json::Error),
}

/// The native wire shape of design §2 (`time` as RFC 3339, absent fields omitted), which
/// differs from `ActivityEvent`'s own serde shape (`time_ms`).
#[derive(Serialize)]
struct Wire<'a> {
    time: String,
    identity: &'a str,
    action: &'a str,
    destination: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<&'a str>,
    identity_kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    environment: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_ip: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_network: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<&'a str>,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    records: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sensitivity: Option<&'static str>,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    attributes: &'a std::collections::BTreeMap<String, String>,
}

/// Writes `event` as one native NDJSON line (design §2), newline included.
pub fn write_native<W: Write>(out: &mut W, event: &ActivityEvent) -> std::io::Result<()> {
    let wire = Wire {
        time: format_time_ms(event.time_ms),
        identity: &event.identity,
        action: &event.action,
        destination: &event.destination,
        event_id: event.event_id.as_deref(),
        identity_kind: event.identity_kind.as_str(),
        environment: event.environment.as_deref(),
        source_ip: event.source_ip.as_deref(),
        source_network: event.source_network.as_deref(),
        user_agent: event.user_agent.as_deref(),
        outcome: event.outcome.as_str(),
        bytes: event.bytes,
        records: event.records,
        sensitivity: event.sensitivity.map(|s| s.as_str()),
        attributes: &event.attributes,
    };
    serde_json::to_writer(&mut *out, &wire).map_err(std::io::Error::from)?;
    out.write_all(b"\n")
}

/// Generates the fleet into `events` (native NDJSON) and `labels` (pretty JSON).
pub fn generate_to_files(
    opts: &GenerateOptions,
    events: &Path,
    labels: &Path,
) -> Result<GenerateSummary, GenerateError> {
    let started = Instant::now();
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| GenerateError::Write { path, source }
    };
    let mut fleet = Fleet::new(opts);
    let label_json = serde_json::to_vec_pretty(fleet.labels())?;
    std::fs::write(labels, label_json).map_err(write_err(labels))?;

    let file = File::create(events).map_err(write_err(events))?;
    let mut out = CountingWriter {
        inner: BufWriter::with_capacity(1 << 20, file),
        bytes: 0,
    };
    let mut count = 0u64;
    for event in fleet.by_ref() {
        write_native(&mut out, &event).map_err(write_err(events))?;
        count += 1;
    }
    out.flush().map_err(write_err(events))?;
    Ok(GenerateSummary {
        events: count,
        identities: fleet.labels.identities.len(),
        attacks: fleet.labels.attacks.len(),
        bytes: out.bytes,
        elapsed: started.elapsed(),
    })
}

struct CountingWriter<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
