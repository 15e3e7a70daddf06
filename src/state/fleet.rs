//! Fleet-wide change tracking (design §3: "a change seen across many identities at once
//! is weaker evidence than one seen on a single identity").
//!
//! Two small global trackers, bounded and deterministic:
//! - [`FleetNovelty`]: how many *other* active identities met the same generalised
//!   novelty (a new action, destination class or user-agent family) within about a day;
//!   a release adding a route to forty integrations is weak evidence on each of them.
//! - [`FleetPulse`]: per detector, how many distinct identities it fired on in the last
//!   ten minutes, against its own long-run level; a cluster incident that makes every
//!   controller see errors, or a sale day lifting every payment key, is discounted.

use super::hash::StableMap;

/// Window of [`FleetNovelty`]: a fleet rollout lands within a day or so.
pub const NOVELTY_WINDOW_MS: i64 = 86_400_000;
/// Most distinct novelties tracked; stale ones are swept first.
const NOVELTY_CAP: usize = 200_000;

#[derive(Debug, Clone, Copy)]
struct Count {
    epoch: i64,
    current: u32,
    previous: u32,
}

#[derive(Debug, Default)]
pub struct FleetNovelty {
    counts: StableMap<u64, Count>,
}

impl FleetNovelty {
    /// Identities that met `key` in this or the previous window.
    pub fn others(&self, key: u64, now_ms: i64) -> u32 {
        let epoch = now_ms.div_euclid(NOVELTY_WINDOW_MS);
        match self.counts.get(&key) {
            Some(c) if c.epoch == epoch => c.current + c.previous,
            Some(c) if c.epoch == epoch - 1 => c.current,
            _ => 0,
        }
    }

    pub fn record(&mut self, key: u64, now_ms: i64) {
        let epoch = now_ms.div_euclid(NOVELTY_WINDOW_MS);
        if self.counts.len() >= NOVELTY_CAP && !self.counts.contains_key(&key) {
            // Deterministic sweep (criteria, not iteration order, decide what goes).
            self.counts.retain(|_, c| c.epoch >= epoch - 1);
            if self.counts.len() >= NOVELTY_CAP {
                self.counts.retain(|_, c| c.current + c.previous > 1);
            }
            if self.counts.len() >= NOVELTY_CAP {
                return;
            }
        }
        let c = self.counts.entry(key).or_insert(Count {
            epoch,
            current: 0,
            previous: 0,
        });
        if c.epoch < epoch {
            c.previous = if c.epoch == epoch - 1 { c.current } else { 0 };
            c.current = 0;
            c.epoch = epoch;
        }
        c.current = c.current.saturating_add(1);
    }

    pub fn len(&self) -> usize {
        self.counts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

/// Window of [`FleetPulse`].
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
}

impl Default for FleetPulse {
    fn default() -> Self {
        FleetPulse {
            epoch: i64::MIN,
            current: [0; 8],
            previous: [0; 8],
            level: [0.0; 8],
        }
    }
}

impl FleetPulse {
    fn roll(&mut self, now_ms: i64) {
        let epoch = now_ms.div_euclid(PULSE_WINDOW_MS);
        if self.epoch == i64::MIN {
            self.epoch = epoch;
            return;
        }
        if epoch <= self.epoch {
            return;
        }
        // Fold closed windows into the long-run level (~a day of memory); idle windows
        // count as zero, at most a day of them.
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
    pub fn record(&mut self, d: usize, now_ms: i64, mark: (&mut i64, &mut u8)) {
        self.roll(now_ms);
        let (window, bits) = mark;
        if *window != self.epoch {
            *window = self.epoch;
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
    fn novelty_counts_within_window() {
        let mut f = FleetNovelty::default();
        for _ in 0..5 {
            f.record(42, 1000);
        }
        assert_eq!(f.others(42, 2000), 5);
        assert_eq!(f.others(42, NOVELTY_WINDOW_MS + 5), 5);
        assert_eq!(f.others(42, 3 * NOVELTY_WINDOW_MS), 0);
        assert_eq!(f.others(7, 2000), 0);
    }

    #[test]
    fn pulse_discounts_fleet_wide_firing() {
        let mut p = FleetPulse::default();
        let mut marks = vec![(i64::MIN, 0u8); 50];
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
