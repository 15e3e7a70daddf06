//! Small deterministic helpers the archetypes and attacks share: event-time arithmetic,
//! daily/weekly activity curves, and random identifiers that look like the ones real
//! producers emit (base62 ids, git hashes, pod suffixes, private and public addresses).
//!
//! Everything takes an explicit `Pcg64Mcg` so a fleet is a pure function of its seed.

use rand::Rng;
use rand_pcg::Pcg64Mcg;

pub const SECOND: i64 = 1_000;
pub const MINUTE: i64 = 60 * SECOND;
pub const HOUR: i64 = 60 * MINUTE;
pub const DAY: i64 = 24 * HOUR;

/// Hour of day (UTC, the fleet's one time zone) of an event time.
pub fn hour_of_day(t: i64) -> usize {
    (t.rem_euclid(DAY) / HOUR) as usize
}

/// Day of week, Monday = 0. 1970-01-01 was a Thursday.
pub fn day_of_week(t: i64) -> usize {
    (t.div_euclid(DAY) + 3).rem_euclid(7) as usize
}

pub fn is_weekend(t: i64) -> bool {
    day_of_week(t) >= 5
}

/// Midnight (UTC) of the day containing `t`.
pub fn day_start(t: i64) -> i64 {
    t.div_euclid(DAY) * DAY
}

/// `YYYY-MM-DD` of an event time; used in partitioned object keys (`dt=...`).
pub fn date_str(t: i64) -> String {
    use chrono::{TimeZone, Utc};
    match Utc.timestamp_millis_opt(t) {
        chrono::LocalResult::Single(d) => d.format("%Y-%m-%d").to_string(),
        _ => "1970-01-01".to_string(),
    }
}

/// Office activity per hour of day: agents and humans-in-the-loop idle at night, a lunch
/// dip, nearly nothing at weekends.
const OFFICE: [f64; 24] = [
    0.02, 0.01, 0.01, 0.01, 0.01, 0.02, 0.05, 0.2, 0.6, 0.9, 1.0, 1.0, 0.7, 0.9, 1.0, 1.0, 0.9,
    0.6, 0.3, 0.15, 0.08, 0.05, 0.03, 0.02,
];

/// Consumer-facing traffic (payments, shop backends): never zero, evening peak.
const CONSUMER: [f64; 24] = [
    0.35, 0.25, 0.18, 0.15, 0.15, 0.18, 0.3, 0.45, 0.6, 0.7, 0.75, 0.8, 0.85, 0.8, 0.75, 0.75, 0.8,
    0.85, 0.95, 1.0, 1.0, 0.9, 0.7, 0.5,
];

/// Relative activity of office-hours identities, in [0, 1].
pub fn office(t: i64) -> f64 {
    let base = OFFICE[hour_of_day(t)];
    if is_weekend(t) {
        base * 0.06
    } else {
        base
    }
}

/// Strictly working hours (CI, deploy pipelines): weekdays 08:00-19:00 only.
pub fn working_hours(t: i64) -> f64 {
    let h = hour_of_day(t);
    if is_weekend(t) || !(8..19).contains(&h) {
        0.0
    } else {
        OFFICE[h]
    }
}

/// Relative activity of consumer-facing identities, in [0, 1].
pub fn consumer(t: i64) -> f64 {
    let base = CONSUMER[hour_of_day(t)];
    if is_weekend(t) {
        base
    } else {
        base * 0.9
    }
}

/// Gap to the next event of a Poisson process with `rate_per_min`, at least 1 ms so that
/// a stream never schedules two events at the same instant out of order.
pub fn exp_gap_ms(rng: &mut Pcg64Mcg, rate_per_min: f64) -> i64 {
    let u: f64 = rng.gen::<f64>();
    let gap = -(1.0 - u).ln() / rate_per_min.max(1e-9) * MINUTE as f64;
    (gap.min(1e15) as i64).max(1)
}

/// Uniform duration in `[lo, hi)` milliseconds.
pub fn between(rng: &mut Pcg64Mcg, lo: i64, hi: i64) -> i64 {
    if hi <= lo {
        lo
    } else {
        rng.gen_range(lo..hi)
    }
}

/// Log-uniform value in `[lo, hi)`: rates and sizes spread over orders of magnitude.
pub fn log_uniform(rng: &mut Pcg64Mcg, lo: f64, hi: f64) -> f64 {
    let (a, b) = (lo.ln(), hi.ln());
    (a + (b - a) * rng.gen::<f64>()).exp()
}

pub fn chance(rng: &mut Pcg64Mcg, p: f64) -> bool {
    rng.gen::<f64>() < p
}

pub fn pick<'a, T>(rng: &mut Pcg64Mcg, items: &'a [T]) -> &'a T {
    &items[rng.gen_range(0..items.len())]
}

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const LOWER_ALNUM: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Stripe-style object id body (`cus_` + this).
pub fn base62(rng: &mut Pcg64Mcg, n: usize) -> String {
    (0..n)
        .map(|_| BASE62[rng.gen_range(0..BASE62.len())] as char)
        .collect()
}

pub fn hex(rng: &mut Pcg64Mcg, n: usize) -> String {
    const HEX: &[u8] = b"0123456789abcdef";
    (0..n).map(|_| HEX[rng.gen_range(0..16)] as char).collect()
}

/// The random suffix Kubernetes appends to pod and replica-set names.
pub fn pod_suffix(rng: &mut Pcg64Mcg, n: usize) -> String {
    (0..n)
        .map(|_| LOWER_ALNUM[rng.gen_range(0..LOWER_ALNUM.len())] as char)
        .collect()
}

/// SplitMix64 finaliser: derives independent seeds and stable pseudo-random names from
/// numbers without consuming any stream's state.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// FNV-1a of a string: a stable (seed-independent, platform-independent) hash, unlike
/// `std`'s randomly keyed hasher.
pub fn hash_str(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Deterministic lowercase token of `n` characters from a hash: replica-set hashes that
/// stay the same for the life of a rollout.
pub fn token_of(mut h: u64, n: usize) -> String {
    let mut s = String::with_capacity(n);
    for _ in 0..n {
        s.push(LOWER_ALNUM[(h % LOWER_ALNUM.len() as u64) as usize] as char);
        h = mix(h);
    }
    s
}

/// Address in a private range `10.<second>.<third_lo..=third_hi>.x`, as handed out to
/// pods and CI runners (a fresh one on every start).
pub fn private_ip(rng: &mut Pcg64Mcg, second: u8, third_lo: u8, third_hi: u8) -> String {
    let third = rng.gen_range(third_lo..=third_hi);
    format!("10.{second}.{third}.{}", rng.gen_range(1..255))
}

/// First octets of public address space attackers (VPS, proxies) commonly come from.
const PUBLIC_FIRST: [u8; 14] = [5, 23, 37, 45, 62, 77, 89, 91, 103, 146, 178, 185, 193, 212];

/// A public IPv4 address outside every range the fleet uses.
pub fn public_ip(rng: &mut Pcg64Mcg) -> String {
    format!(
        "{}.{}.{}.{}",
        pick(rng, &PUBLIC_FIRST),
        rng.gen_range(0..256),
        rng.gen_range(0..256),
        rng.gen_range(1..255)
    )
}

/// A stable cloud egress address (merchant or partner NAT gateway).
pub fn cloud_egress_ip(rng: &mut Pcg64Mcg) -> String {
    const FIRST: [u8; 5] = [3, 18, 34, 35, 52];
    format!(
        "{}.{}.{}.{}",
        pick(rng, &FIRST),
        rng.gen_range(0..256),
        rng.gen_range(0..256),
        rng.gen_range(1..255)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn calendar_helpers() {
        // 2026-11-02T00:00:00Z is a Monday.
        let monday = 1_793_577_600_000;
        assert_eq!(day_of_week(monday), 0);
        assert_eq!(day_of_week(monday + 5 * DAY), 5);
        assert!(is_weekend(monday + 6 * DAY + HOUR));
        assert_eq!(hour_of_day(monday + 13 * HOUR + 59 * MINUTE), 13);
        assert_eq!(date_str(monday + DAY), "2026-11-03");
        assert_eq!(working_hours(monday + 3 * HOUR), 0.0);
        assert!(working_hours(monday + 10 * HOUR) > 0.0);
    }

    #[test]
    fn private_ip_is_in_its_range() {
        let mut rng = Pcg64Mcg::seed_from_u64(7);
        for _ in 0..100 {
            let ip = private_ip(&mut rng, 64, 0, 15);
            let parts: Vec<u32> = ip.split('.').map(|p| p.parse().expect("octet")).collect();
            assert_eq!(parts.len(), 4);
            assert_eq!((parts[0], parts[1]), (10, 64));
            assert!(parts[2] <= 15 && (1..255).contains(&parts[3]));
        }
    }
}
