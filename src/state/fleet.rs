//! Fleet-wide change tracking (design §3: "a change seen across many identities at once
//! is weaker evidence than one seen on a single identity").
//!
//! Two small global trackers, bounded and deterministic:
//! - [`FleetNovelty`]: how many *other* active identities met the same generalised
//!   novelty (a new action, destination class or user-agent family) within about a day;
//!   a release adding a route to forty integrations is weak evidence on each of them.
//!   Identities that are themselves alerting do not count: that is a campaign, not a
//!   release. It also remembers, for `score.fleet_peer_memory` (two weeks by default),
//!   who took up each new action ([`FleetNovelty::peers`]): a platform change spreads
//!   team by team over days.
//! - [`FleetPulse`]: per detector, how many distinct identities it fired on in the last
//!   ten minutes, against its own long-run level; a cluster incident that makes every
//!   controller see errors, or a sale day lifting every payment key, is discounted.

use super::hash::StableMap;

/// Default window of [`FleetNovelty`]: a fleet rollout lands within a day or so.
pub const NOVELTY_WINDOW_MS: i64 = 86_400_000;
/// How long a member is remembered for [`FleetNovelty::peers`] unless configured
/// (`score.fleet_peer_memory`): a platform change
/// (Terraform roles starting to create a new kind of resource, one team after another)
/// spreads over days or weeks, not within the day a release takes.
pub const PEER_MEMORY_MS: i64 = 14 * 86_400_000;
/// Most distinct new actions remembered for [`FleetNovelty::peers`] (actions are few
/// next to destinations: a fleet's whole vocabulary is some thousands).
const PEER_CAP: usize = 50_000;
/// Most distinct novelties tracked; stale ones are swept first.
const NOVELTY_CAP: usize = 200_000;
/// Identities remembered per novelty. Beyond this many the change is fleet-wide however
/// many of them are flagged, and the discount is already at its floor.
const MEMBERS_CAP: usize = 12;
/// Most identities remembered as flagged (at `high` or above) at once.
const FLAGGED_CAP: usize = 100_000;

/// One identity meeting a novelty.
#[derive(Debug, Clone, Copy)]
struct Met {
    who: u64,
    at_ms: i64,
}

/// How many *other* identities met the same novelty recently, not counting identities
/// that are themselves alerting.
///
/// Why the exclusion: a release that adds a route to forty integrations leaves each of
/// them otherwise normal, so every one of them is evidence that the change is benign. An
/// attacker running the same playbook with several stolen identities (a campaign) makes
/// each of them alert; counting those as "fleet-wide" would let every extra victim hide
/// the next one. So an identity at `high` or above stops vouching for the novelties it
/// met, until it has been calm for a window.
#[derive(Debug)]
pub struct FleetNovelty {
    members: StableMap<u64, Vec<Met>>,
    /// Who took up each new action, for the peer memory (apart from `members`, whose
    /// sweep and cap stay those of the day window).
    peer_members: StableMap<u64, Vec<Met>>,
    /// Identity hash → last time it was at `high` or above.
    flagged: StableMap<u64, i64>,
    window_ms: i64,
    /// How long peers are kept ([`PEER_MEMORY_MS`] unless configured); no longer than
    /// the window turns peers off.
    memory_ms: i64,
}

impl Default for FleetNovelty {
    fn default() -> Self {
        FleetNovelty::new(NOVELTY_WINDOW_MS)
    }
}

impl FleetNovelty {
    pub fn new(window_ms: i64) -> Self {
        FleetNovelty {
            members: StableMap::default(),
            peer_members: StableMap::default(),
            flagged: StableMap::default(),
            window_ms: window_ms.max(1),
            memory_ms: window_ms.max(PEER_MEMORY_MS),
        }
    }

    /// Peers remembered for `memory_ms` (`score.fleet_peer_memory`); 0, or anything not
    /// longer than the window, turns them off.
    pub fn with_peer_memory(mut self, memory_ms: i64) -> Self {
        self.memory_ms = memory_ms.max(0);
        self
    }

    fn peers_on(&self) -> bool {
        self.memory_ms > self.window_ms
    }

    fn recent(&self, at_ms: i64, now_ms: i64) -> bool {
        now_ms.saturating_sub(at_ms) < self.window_ms
    }

    fn is_flagged(&self, who: u64, now_ms: i64) -> bool {
        self.flagged
            .get(&who)
            .is_some_and(|&at| self.recent(at, now_ms))
    }

    /// Identities other than `who` that met `key` within the window and are not
    /// flagged.
    pub fn others(&self, key: u64, who: u64, now_ms: i64) -> u32 {
        let Some(list) = self.members.get(&key) else {
            return 0;
        };
        let n = list
            .iter()
            .filter(|m| {
                m.who != who && self.recent(m.at_ms, now_ms) && !self.is_flagged(m.who, now_ms)
            })
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Identities other than `who` that took up the action `key` (recorded with
    /// [`FleetNovelty::record_peer`]) before the window and within the peer memory,
    /// and are not alerting now (flagged within the window, as for `others`): its peers
    /// already doing the same thing on earlier days. Those within the window are
    /// `others`' and are not counted twice. Weaker evidence of a benign change than a
    /// simultaneous rollout, and meant only for actions that are not sensitive.
    ///
    /// A peer that alerted days ago counts: each team's first use of a new kind of
    /// resource looks like a departure on its own, so the adopters of a platform change
    /// tend to alert one after another, and excluding every one that ever alerted
    /// discarded exactly the evidence that it is a change. A campaign running now (its
    /// victims alerting) vouches for nothing. The cost: a campaign repeating one
    /// non-sensitive new action with stolen identities spread over days is discounted a
    /// little (to 0.7 at most, see `new_action`); its sensitive actions are not.
    pub fn peers(&self, key: u64, who: u64, now_ms: i64) -> u32 {
        if !self.peers_on() {
            return 0;
        }
        let Some(list) = self.peer_members.get(&key) else {
            return 0;
        };
        let n = list
            .iter()
            .filter(|m| {
                let age = now_ms.saturating_sub(m.at_ms);
                m.who != who
                    && age >= self.window_ms
                    && age < self.memory_ms
                    && !self.is_flagged(m.who, now_ms)
            })
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// `who` met `key` at `now_ms`.
    pub fn record(&mut self, key: u64, who: u64, now_ms: i64) {
        insert_member(
            &mut self.members,
            key,
            who,
            now_ms,
            self.window_ms,
            NOVELTY_CAP,
        );
    }

    /// `who` took up the action `key` at `now_ms` (see [`FleetNovelty::peers`]).
    pub fn record_peer(&mut self, key: u64, who: u64, now_ms: i64) {
        if !self.peers_on() {
            return;
        }
        insert_member(
            &mut self.peer_members,
            key,
            who,
            now_ms,
            self.memory_ms,
            PEER_CAP,
        );
    }

    /// `who` is at `high` or above at `now_ms`: its novelties stop counting as benign.
    pub fn flag(&mut self, who: u64, now_ms: i64) {
        if self.flagged.len() >= FLAGGED_CAP && !self.flagged.contains_key(&who) {
            let window = self.window_ms;
            self.flagged
                .retain(|_, at| now_ms.saturating_sub(*at) < window);
            if self.flagged.len() >= FLAGGED_CAP {
                return;
            }
        }
        let at = self.flagged.entry(who).or_insert(now_ms);
        *at = (*at).max(now_ms);
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

/// Adds `who` meeting `key` at `now_ms` to `members`, which keeps members for `keep_ms`
/// and at most `cap` keys: at the cap, keys with no member left in time go first, then
/// keys with a single member; if still full the meeting is not recorded.
fn insert_member(
    members: &mut StableMap<u64, Vec<Met>>,
    key: u64,
    who: u64,
    now_ms: i64,
    keep_ms: i64,
    cap: usize,
) {
    if members.len() >= cap && !members.contains_key(&key) {
        // Deterministic sweep (criteria, not iteration order, decide what goes).
        members.retain(|_, list| {
            list.iter()
                .any(|m| now_ms.saturating_sub(m.at_ms) < keep_ms)
        });
        if members.len() >= cap {
            members.retain(|_, list| list.len() > 1);
        }
        if members.len() >= cap {
            return;
        }
    }
    let list = members.entry(key).or_default();
    list.retain(|m| m.who != who && now_ms.saturating_sub(m.at_ms) < keep_ms);
    if list.len() >= MEMBERS_CAP {
        // Keep the most recent: the oldest leaves the window first anyway.
        if let Some(oldest) = (0..list.len()).min_by_key(|&i| (list[i].at_ms, list[i].who)) {
            list.swap_remove(oldest);
        }
    }
    list.push(Met { who, at_ms: now_ms });
}

/// Default window of [`FleetPulse`].
pub const PULSE_WINDOW_MS: i64 = 600_000;
/// Firings in one window beyond which it is fleet-wide no matter the history.
const PULSE_SLACK: f64 = 3.0;

#[derive(Debug, Clone)]
pub struct FleetPulse {
    epoch: i64,
    current: [u32; 8],
    previous: [u32; 8],
    /// EWMA of distinct identities per window, per detector.
    level: [f64; 8],
    window_ms: i64,
}

impl Default for FleetPulse {
    fn default() -> Self {
        FleetPulse::new(PULSE_WINDOW_MS)
    }
}

/// Shortest pulse window [`FleetPulse::new`] takes, as `score.fleet_pulse_window` is
/// validated: identities keep the window they last counted toward in 32 bits
/// (`Identity::pulse_window`, compared for equality), which wrap after 2^32 windows:
/// 1,361 years at 10 s, but 50 days at 1 ms.
const MIN_PULSE_WINDOW_MS: i64 = 10_000;

impl FleetPulse {
    /// A pulse over windows of `window_ms`, raised to [`MIN_PULSE_WINDOW_MS`] if shorter
    /// (config validation refuses shorter ones; this keeps other callers safe too).
    pub fn new(window_ms: i64) -> Self {
        FleetPulse {
            window_ms: window_ms.max(MIN_PULSE_WINDOW_MS),
            epoch: i64::MIN,
            current: [0; 8],
            previous: [0; 8],
            level: [0.0; 8],
        }
    }

    fn roll(&mut self, now_ms: i64) {
        let epoch = now_ms.div_euclid(self.window_ms);
        if self.epoch == i64::MIN {
            self.epoch = epoch;
            return;
        }
        if epoch <= self.epoch {
            return;
        }
        // Fold closed windows into the long-run level (~144 windows of memory); idle
        // windows count as zero, at most 144 of them.
        let closed = (epoch - self.epoch).min(144);
        for k in 0..closed {
            for d in 0..8 {
                let x = if k == 0 {
                    f64::from(self.current[d])
                } else {
                    0.0
                };
                self.level[d] += 0.007 * (x - self.level[d]);
            }
        }
        self.previous = if epoch - self.epoch == 1 {
            self.current
        } else {
            [0; 8]
        };
        self.current = [0; 8];
        self.epoch = epoch;
    }

    /// Multiplier in (0, 1] for detector `d` now: 1 unless many more identities than
    /// usual fired it recently.
    pub fn factor(&mut self, d: usize, now_ms: i64) -> f64 {
        self.roll(now_ms);
        let recent = f64::from(self.current[d].max(self.previous[d]));
        let expected = PULSE_SLACK + 3.0 * self.level[d];
        if recent > expected {
            expected / recent
        } else {
            1.0
        }
    }

    /// Counts identity firing detector `d`, once per window; `mark` is the identity's
    /// (window, bits) bookkeeping.
    pub fn record(&mut self, d: usize, now_ms: i64, mark: (&mut i32, &mut u8)) {
        self.roll(now_ms);
        let (window, bits) = mark;
        // The identity keeps the window's low 32 bits: equality is all it is used for,
        // and neighbouring windows differ there however small the window.
        let epoch = self.epoch as i32;
        if *window != epoch {
            *window = epoch;
            *bits = 0;
        }
        if *bits & (1 << d) == 0 {
            *bits |= 1 << d;
            self.current[d] = self.current[d].saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn novelty_counts_other_identities_within_window() {
        let mut f = FleetNovelty::default();
        for who in 0..5 {
            f.record(42, who, 1000);
            // Meeting it again does not count twice.
            f.record(42, who, 1500);
        }
        assert_eq!(f.others(42, 99, 2000), 5);
        assert_eq!(
            f.others(42, 3, 2000),
            4,
            "the asking identity is not an other"
        );
        assert_eq!(f.others(42, 99, NOVELTY_WINDOW_MS + 999), 5);
        assert_eq!(f.others(42, 99, NOVELTY_WINDOW_MS + 1500), 0);
        assert_eq!(f.others(7, 99, 2000), 0);
    }

    /// `score.fleet_peer_memory`: a shorter memory forgets sooner, and off keeps none
    /// (nor spends memory on them), while the day window is untouched.
    #[test]
    fn peer_memory_is_configurable_and_can_be_off() {
        let day = NOVELTY_WINDOW_MS;
        let adopt = |f: &mut FleetNovelty| {
            for (who, at) in [(1, 0), (2, 3 * day), (3, 5 * day)] {
                f.record(42, who, at);
                f.record_peer(42, who, at);
            }
        };
        let now = 5 * day + 1000;
        let mut short = FleetNovelty::default().with_peer_memory(4 * day);
        adopt(&mut short);
        // The first adopter is over four days old: only the second counts.
        assert_eq!(short.peers(42, 9, now), 1);
        let mut off = FleetNovelty::default().with_peer_memory(0);
        adopt(&mut off);
        assert_eq!(off.peers(42, 9, now), 0);
        assert!(off.peer_members.is_empty());
        assert_eq!(off.others(42, 9, now), 1);
    }

    #[test]
    fn peers_are_earlier_days_within_two_weeks_and_the_day_window_is_unchanged() {
        let day = NOVELTY_WINDOW_MS;
        let mut f = FleetNovelty::default();
        // Teams a week apart, then two more: a change spreading over two weeks.
        for (who, at) in [(1, 0), (2, 7 * day), (3, 11 * day), (4, 12 * day)] {
            f.record(42, who, at);
            f.record_peer(42, who, at);
        }
        let now = 12 * day + 1000;
        // Only the last one is within the day window: `others`', not a peer too...
        assert_eq!(f.others(42, 9, now), 1);
        // ...the three before it, within two weeks, are peers (not counting the asker).
        assert_eq!(f.peers(42, 9, now), 3);
        assert_eq!(f.peers(42, 2, now), 2);
        // `record` alone keeps no peers (destinations and client families do not).
        f.record(43, 1, 0);
        assert_eq!(f.peers(43, 9, now), 0);
        // A peer that alerted days ago still counts (each adopter of a change tends to
        // alert); one alerting now does not (a campaign).
        f.flag(1, 2 * day);
        assert_eq!(f.peers(42, 9, now), 3);
        f.flag(2, 12 * day);
        assert_eq!(f.peers(42, 9, now), 2);
        // Past two weeks the first one is forgotten (and the flag of the second is old).
        assert_eq!(f.peers(42, 9, PEER_MEMORY_MS + 500), 3);
        assert_eq!(f.peers(7, 9, now), 0);
    }

    #[test]
    fn alerting_identities_do_not_vouch_for_a_novelty() {
        // Four victims of one playbook: each alerts, so the fifth is not discounted.
        let mut f = FleetNovelty::default();
        for who in 0..4 {
            f.record(42, who, 1000 + who as i64);
            f.flag(who, 1100);
        }
        assert_eq!(f.others(42, 99, 2000), 0);
        // A calm one still counts; a flag expires after a window.
        f.record(42, 10, 1200);
        assert_eq!(f.others(42, 99, 2000), 1);
        // A flag expires after a window: identity 0 meets it again later, calm by then.
        f.record(42, 0, NOVELTY_WINDOW_MS);
        assert_eq!(f.others(42, 99, NOVELTY_WINDOW_MS + 1050), 1);
        assert_eq!(f.others(42, 99, NOVELTY_WINDOW_MS + 1150), 2);
    }

    #[test]
    fn members_per_novelty_are_bounded() {
        let mut f = FleetNovelty::default();
        for who in 0..1000 {
            f.record(42, who, who as i64);
        }
        assert_eq!(f.others(42, u64::MAX, 1000), MEMBERS_CAP as u32);
    }

    #[test]
    fn pulse_discounts_fleet_wide_firing() {
        let mut p = FleetPulse::default();
        let mut marks = vec![(i32::MIN, 0u8); 50];
        assert_eq!(p.factor(7, 0), 1.0);
        for (i, m) in marks.iter_mut().enumerate() {
            p.record(7, i as i64, (&mut m.0, &mut m.1));
            // Repeats from the same identity count once.
            p.record(7, i as i64, (&mut m.0, &mut m.1));
        }
        let f = p.factor(7, 100);
        assert!(f < 0.1, "{f}");
        assert_eq!(p.factor(0, 100), 1.0);
    }
}
