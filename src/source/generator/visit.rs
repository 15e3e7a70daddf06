//! Benign visits from inside: an engineer debugging with a job's AWS role from the
//! corporate VPN.
//!
//! Real estates see this all the time (design §3): someone assumes the role a failing
//! job runs as and pokes around with the CLI on their laptop — who am I, what may I do,
//! what did the logs say. Two to five read calls from a network and client family the
//! role never used, in working hours. Nothing is labelled: a detector that pages on it
//! pages on a normal day. (The same role used from a *public* address, with an old tool,
//! is the `stolen_credentials` attack.)

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

use super::archetype::IdentitySim;
use super::util::*;
use crate::event::{ActivityEvent, Outcome};

/// Share of AWS roles that get one visit in the fleet.
pub const VISIT_SHARE: f64 = 0.1;
/// What a person debugging a role asks AWS first.
const DEBUG_CALLS: [&str; 6] = [
    "sts:GetCallerIdentity",
    "logs:FilterLogEvents",
    "iam:SimulatePrincipalPolicy",
    "lambda:GetFunction",
    "s3:ListBuckets",
    "cloudwatch:GetMetricData",
];
const LAPTOP_CLI: &str =
    "aws-cli/2.17.20 Python/3.11.9 Darwin/23.5.0 exe/x86_64 prompt/off command/sts.get-caller-identity";

/// One planned visit to `victim`'s role.
pub struct VisitSim {
    pub victim: usize,
    times: Vec<i64>,
    calls: Vec<&'static str>,
    ip: String,
    pos: usize,
}

impl VisitSim {
    /// A visit to `victim` on a weekday between `earliest` and `latest`, in working
    /// hours (UTC), or `None` when it does not fit.
    pub fn plan(victim_index: usize, earliest: i64, latest: i64, seed: u64) -> Option<VisitSim> {
        let mut rng = Pcg64Mcg::seed_from_u64(seed);
        let first_day = day_start(earliest) + DAY;
        let days = (latest - first_day) / DAY;
        if days < 1 {
            return None;
        }
        let mut day = first_day + rng.gen_range(0..days) * DAY;
        while is_weekend(day) {
            day += DAY;
        }
        let mut t = day + rng.gen_range(10..17) * HOUR + rng.gen_range(0..HOUR);
        let n = rng.gen_range(2..6);
        let mut times = Vec::with_capacity(n);
        let mut calls = Vec::with_capacity(n);
        for _ in 0..n {
            t += between(&mut rng, 5 * SECOND, 2 * MINUTE);
            times.push(t);
            calls.push(DEBUG_CALLS[rng.gen_range(0..DEBUG_CALLS.len())]);
        }
        if t > latest {
            return None;
        }
        // The VPN's pool, apart from every archetype's own ranges.
        let ip = format!("10.200.{}.{}", rng.gen_range(0..16), rng.gen_range(2..251));
        Some(VisitSim {
            victim: victim_index,
            times,
            calls,
            ip,
            pos: 0,
        })
    }

    pub fn next_time(&self) -> Option<i64> {
        self.times.get(self.pos).copied()
    }

    pub fn emit(&mut self, victim: &IdentitySim) -> ActivityEvent {
        let pos = self.pos.min(self.times.len() - 1);
        self.pos += 1;
        let action = self.calls[pos];
        let service = action.split(':').next().unwrap_or(action);
        ActivityEvent {
            time_ms: self.times[pos],
            identity: victim.name.clone(),
            action: action.to_string(),
            destination: format!("{service}.us-east-1.amazonaws.com"),
            event_id: None,
            identity_kind: victim.kind,
            environment: Some(victim.env.clone()),
            source_ip: Some(self.ip.clone()),
            source_network: Some("corp-vpn".to_string()),
            user_agent: Some(LAPTOP_CLI.to_string()),
            outcome: Outcome::Success,
            bytes: None,
            records: None,
            sensitivity: None,
            attributes: BTreeMap::new(),
        }
    }
}
