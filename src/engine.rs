//! The scoring pipeline for one stream of events: identity state → detectors → score →
//! signals. No IO and no wall clock: callers pass events in event-time order and collect
//! the signals, so `replay`, `run` and `demo` share exactly this code and tests need no
//! sleeping.
//!
//! Per event: generalise the fields once ([`crate::state::generalize`]), look at the
//! identity's state *before* the event with every detector, discount fleet-wide changes,
//! fold the event in, update the score and apply the emission rule. Identities with a
//! non-normal score sit in a schedule ordered by when their decay next warrants a signal,
//! so advancing the watermark touches only those. Output is deterministic: maps use a
//! fixed hasher, due signals are ordered by (time, identity), scores have one decimal.

use std::borrow::Borrow;
use std::collections::BTreeSet;

use crate::config::Config;
use crate::decode::{RejectReason, Rejection};
use crate::detect::new_action::obtains_credentials;
use crate::detect::{self, Context, FleetView, Texts};
use crate::event::{ActivityEvent, IdentityKind, Outcome, Sensitivity};
use crate::score::{round1, Scorer};
use crate::signal::{format_time_ms, model_name, IdentityState, Level, Reason, Signal};
use crate::state::dormant::{Dormant, DormantMark, DormantMemory};
use crate::state::fleet::{FleetNovelty, FleetPulse};
use crate::state::generalize::{
    destination_class, generalise_destination_with, source_network, user_agent_family, PrefixMemo,
};
use crate::state::generalize::{is_private_address, SourceClass};
use crate::state::hash::{failure_key, memory_hash, stable_hash, StableMap};
use crate::state::hints;
use crate::state::identity::{round_half_up, DecodeError};
use crate::state::{Identity, IdentityTable, Novelty, Observation, Origin, SeenKind, StateParams};

/// Counters the engine keeps for summaries and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub events: u64,
    pub evicted: u64,
    pub too_late: u64,
    pub too_far_ahead: u64,
    /// Times each detector contributed to a signal, in `metrics::DETECTORS` order.
    pub detector_fired: [u64; 8],
    /// Signals emitted by event processing and by watermark-driven decay.
    pub signals: u64,
    pub decay_signals: u64,
}

/// Seeds separating the hash spaces of the generalised fields (also the fleet keys).
/// Most actions [`Engine::impair_actions`] remembers before starting over.
const IMPAIR_ACTIONS_CACHED: usize = 65_536;
/// The signs a lone refusal weighs less (`score.lone_refusal_weight`): what one refused
/// call says about itself.
const LONE_REFUSAL_SIGNS: [usize; 5] = [
    detect::NEW_ACTION,
    detect::NEW_DESTINATION,
    detect::DESTINATION_BURST,
    detect::FAILURE_BURST,
    detect::OFF_HOURS,
];
/// The signs a visit from inside the organisation's address space may show and stay
/// below `high` (`score.internal_visit_below_high`): somewhere new, doing new things
/// (several at once: a person looks around), at an hour the identity itself does not
/// work.
const INTERNAL_VISIT_SIGNS: [usize; 5] = [
    detect::NEW_SOURCE,
    detect::NEW_ACTION,
    detect::NEW_DESTINATION,
    detect::DESTINATION_BURST,
    detect::OFF_HOURS,
];
/// Said by the `new_source` reason of a session judged a visit from inside
/// (`score.internal_visit_below_high`); read back from the carried sign.
const VISIT_NOTE: &str = "a visit from inside private space (kept below high)";
/// Detail of a sign carried from earlier in the session whose own reason is gone.
const EARLIER_UNKNOWN: &str = "earlier in this session";
const SEED_DEST: u64 = 1;
const SEED_CLASS: u64 = 2;
const SEED_ACTION: u64 = 3;
const SEED_NETWORK: u64 = 4;
const SEED_UA: u64 = 5;
const SEED_ENV: u64 = 6;
const SEED_RAW_CLASS: u64 = 7;
/// Seed of the identity hash that fleet tracking remembers instead of names.
const SEED_IDENTITY: u64 = 8;

/// Event time between passes that let go of dormant identities past
/// `state.dormant_memory` (a scan of the dormant memory).
const DORMANT_EXPIRY_EVERY_MS: i64 = 86_400_000;

/// An identity whose changelog record must change: its state was evicted (cap or
/// idleness), or it is no longer remembered as dormant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eviction {
    pub identity: String,
    /// Where its state lived (the changelog partition).
    pub origin: Origin,
    /// `Some` for an idle identity now dormant: its record becomes a marker. `None`:
    /// a tombstone.
    pub dormant: Option<DormantMark>,
}

/// Detectors whose fleet-wide firing (many identities at once) is discounted.
const PULSED: [usize; 5] = [
    detect::VOLUME_SPIKE,
    detect::DATA_VOLUME_SPIKE,
    detect::DESTINATION_BURST,
    detect::OFF_HOURS,
    detect::FAILURE_BURST,
];
/// Strength at which a firing counts toward the fleet pulse.
const PULSE_MIN_STRENGTH: f64 = 0.3;

/// Events [`Engine::prefetch_ahead`] looks at: one per level of dependent loads.
pub const PREFETCH_DISTANCE: usize = 3;

/// Where an event's state lives, as [`Engine::prefetch_ahead`] needs it: the identity
/// table's hash of its name and its memo positions. Only hints are derived from it, so
/// keys of another event waste a few loads and change nothing; `process` computes its
/// own, and `process_keyed` takes them from a [`Keyed`] event, which cannot hold keys
/// of another.
#[derive(Clone, Copy, Debug)]
pub struct PrefetchKeys {
    identity: u64,
    destination: MemoIndex,
    user_agent: Option<MemoIndex>,
}

impl PrefetchKeys {
    pub fn of(event: &ActivityEvent) -> PrefetchKeys {
        PrefetchKeys {
            identity: IdentityTable::hash(&event.identity),
            destination: Memo::index(&event.destination),
            user_agent: event.user_agent.as_deref().map(Memo::index),
        }
    }
}

/// An event (`ActivityEvent`, or a box of one) with its [`PrefetchKeys`], computed once
/// when a driver takes it in: the driver hands the keys to [`Engine::prefetch_ahead`]
/// while the event waits, and [`Engine::process_keyed`] then reuses them instead of
/// hashing the same names again (~190 instructions per event). The event is only
/// readable while keyed, so the keys always are its own: `process_keyed` finds the
/// identity by them, and keys of another event would miss it and put a new state in
/// place of the real one. So only the event types whose `borrow` is always the same event
/// may be keyed ([`KeyedEvent`], sealed): an outside `Borrow` impl could return another.
#[derive(Debug)]
pub struct Keyed<E> {
    event: E,
    keys: PrefetchKeys,
}

/// An event type [`Keyed`] accepts: owned, boxed or borrowed, each of which always
/// borrows as the same event. Sealed, so no other type can be keyed.
pub trait KeyedEvent: Borrow<ActivityEvent> + sealed::Sealed {}

mod sealed {
    use crate::event::ActivityEvent;

    pub trait Sealed {}
    impl Sealed for ActivityEvent {}
    impl Sealed for Box<ActivityEvent> {}
    impl Sealed for &ActivityEvent {}
}

impl KeyedEvent for ActivityEvent {}
impl KeyedEvent for Box<ActivityEvent> {}
impl KeyedEvent for &ActivityEvent {}

impl<E: KeyedEvent> Keyed<E> {
    pub fn new(event: E) -> Self {
        let keys = PrefetchKeys::of(event.borrow());
        Keyed { event, keys }
    }

    pub fn event(&self) -> &ActivityEvent {
        self.event.borrow()
    }

    pub fn keys(&self) -> PrefetchKeys {
        self.keys
    }

    /// The event back, for reuse.
    pub fn into_inner(self) -> E {
        self.event
    }
}

/// Slots of each generalisation memo (a power of two).
const MEMO_SLOTS: usize = 4096;
/// Seed of the memo index hash (not a persisted hash space).
const SEED_MEMO: u64 = 0x6d656d6f;

/// One remembered generalisation: the raw field, its readable form, and hashes.
#[derive(Default)]
struct MemoSlot {
    filled: bool,
    /// [`Memo::index`]'s full hash of `raw`.
    check: u64,
    raw: String,
    text: String,
    /// Length of the prefix of `text` that is the destination class.
    class_len: usize,
    hash: u64,
    class_hash: u64,
}

/// Position of a raw field in a [`Memo`], and its full hash.
#[derive(Clone, Copy, Debug)]
struct MemoIndex {
    slot: usize,
    check: u64,
}

/// A direct-mapped memo of the generalisation of a raw field (destination or user
/// agent). Real traffic repeats them (the same routes, the same SDK build on every
/// call), and generalising costs far more than hashing and comparing the raw string.
/// A pure cache: a hit returns exactly what computing afresh would, so output does not
/// depend on it. Bounded: `MEMO_SLOTS` entries, a collision overwrites.
struct Memo {
    slots: Vec<MemoSlot>,
}

impl Memo {
    fn new() -> Self {
        Memo {
            slots: (0..MEMO_SLOTS).map(|_| MemoSlot::default()).collect(),
        }
    }

    /// Where `raw` is remembered, if anywhere.
    fn index(raw: &str) -> MemoIndex {
        let hash = memory_hash(SEED_MEMO, raw.as_bytes());
        MemoIndex {
            slot: hash as usize & (MEMO_SLOTS - 1),
            check: hash,
        }
    }

    /// Loads the lines a lookup at `at` will read (the slot, and the start of its raw
    /// and generalised texts), so their cache misses overlap with other work (the
    /// identity's state) instead of coming one after another later.
    fn warm(&self, at: MemoIndex) {
        if let Some(slot) = self.slots.get(at.slot) {
            if slot.check == at.check {
                // The bytes themselves, not references to them: only a read loads a line.
                std::hint::black_box((
                    slot.raw.as_bytes().first().copied(),
                    slot.text.as_bytes().first().copied(),
                ));
            }
        }
    }

    /// Prefetch level 1 of [`Engine::prefetch_ahead`]: the slot itself.
    fn prefetch_slot(&self, at: MemoIndex) {
        if let Some(slot) = self.slots.get(at.slot) {
            hints::prefetch_object(slot, 2);
        }
    }

    /// Level 2: the texts of a slot that likely holds the same raw text (its slot
    /// loaded by level 1).
    fn prefetch_texts(&self, at: MemoIndex) {
        if let Some(slot) = self.slots.get(at.slot) {
            if slot.check == at.check {
                hints::prefetch_slice(slot.raw.as_bytes(), 1);
                hints::prefetch_slice(slot.text.as_bytes(), 1);
            }
        }
    }

    /// The slot for `raw` (found at `at`, its [`Memo::index`]), filled by `fill` unless
    /// it already holds `raw`.
    fn get(
        &mut self,
        raw: &str,
        at: MemoIndex,
        fill: impl FnOnce(&str, &mut MemoSlot),
    ) -> &MemoSlot {
        debug_assert_eq!(at.check, Self::index(raw).check, "index of another text");
        let slot = &mut self.slots[at.slot];
        // The full hash first: a different raw text is told apart without reading its
        // bytes; an equal hash is confirmed on the bytes (a hit must be exact).
        if !(slot.filled && slot.check == at.check && slot.raw == raw) {
            // Empty until filled: a slot half rewritten is never a hit.
            slot.filled = false;
            slot.check = at.check;
            slot.raw.clear();
            slot.raw.push_str(raw);
            fill(raw, slot);
            slot.filled = true;
        }
        slot
    }
}

/// Reasons behind a non-normal score, and when its decay next needs a signal. Kept only
/// for identities above `normal` (a small set), not in the snapshot.
struct Hot {
    due_ms: Option<i64>,
    reasons: Vec<Reason>,
    /// Where a session judged a visit from inside came from: its network and client
    /// family hashes. A call from a known private place elsewhere (the job's own
    /// runner) does not carry the visit's signs; one from the visit's place, or from
    /// anywhere new or public, does. Cleared once the identity reaches `high` otherwise.
    /// In memory only: after a restart the carried signs count in full again (fail
    /// closed).
    visit_place: Option<(Option<u64>, Option<u64>)>,
}

pub struct Engine {
    params: StateParams,
    max_lateness_ms: i64,
    max_lookahead_ms: i64,
    /// Events stamped after this are refused (see [`Engine::refuse_after`]).
    latest_allowed_ms: i64,
    lateness_text: String,
    lookahead_text: String,
    window_label: String,
    /// `score.sustained_window` in hours, and `score.sustained_hour_weight`.
    sustained_hours: u32,
    sustained_hour_weight: f64,
    /// `score.usual_place_read_weight`.
    usual_place_read_weight: f64,
    /// `score.lone_refusal_weight`.
    lone_refusal_weight: f64,
    /// `score.internal_visit_below_high`.
    internal_visit_below_high: bool,
    scorer: Scorer,
    table: IdentityTable,
    fleet_novelty: FleetNovelty,
    /// Per action (its [`Observation::action`] hash): whether any `score.impair_defences`
    /// entry's action glob matches it. Glob matching on every event was 4 % of the hot
    /// path; an estate has thousands of actions, not millions (cleared when full).
    impair_actions: StableMap<u64, bool>,
    /// Whether a destination template and action are a sensitive read (see
    /// [`SensitiveReadMemo`]).
    sensitive_reads: SensitiveReadMemo,
    pulse: FleetPulse,
    schedule: BTreeSet<(i64, Box<str>)>,
    hot: StableMap<Box<str>, Hot>,
    /// Identities changed since the last `take_dirty`, in first-change order (each
    /// identity's `dirty` flag keeps it from being listed twice).
    dirty: Vec<Box<str>>,
    /// Evicted identities not yet handed out for their changelog records (bounded).
    evicted: Vec<Eviction>,
    /// Identities evicted for idleness, remembered so their return is scored.
    dormant: DormantMemory,
    /// Event time of the next expiry pass over `dormant`.
    next_dormant_expiry_ms: i64,
    /// Whether `dirty`/`evicted` are kept at all: only a runtime with a changelog
    /// drains them, and undrained they would grow with every identity ever seen.
    track_changes: bool,
    max_identities: usize,
    watermark_ms: i64,
    /// See [`Engine::restored_until_ms`].
    restored_until_ms: i64,
    stats: EngineStats,
    texts: Texts,
    destinations: Memo,
    /// Generalised ARN prefixes, for the destinations `destinations` misses (ids in
    /// them): their container repeats where the whole text does not.
    destination_prefixes: PrefixMemo,
    user_agents: Memo,
    model: String,
}

impl Engine {
    pub fn new(config: &Config) -> Self {
        Engine {
            params: StateParams::from_config(&config.state),
            max_lateness_ms: config.decode.max_lateness.as_millis_i64(),
            max_lookahead_ms: config.decode.max_lookahead.as_millis_i64(),
            latest_allowed_ms: i64::MAX,
            lateness_text: config.decode.max_lateness.to_string(),
            lookahead_text: config.decode.max_lookahead.to_string(),
            window_label: config.state.window.to_string(),
            // Validated: whole hours from 1 to 15.
            sustained_hours: (config.score.sustained_window.0.as_secs() / 3600) as u32,
            sustained_hour_weight: config.score.sustained_hour_weight,
            usual_place_read_weight: config.score.usual_place_read_weight,
            lone_refusal_weight: config.score.lone_refusal_weight,
            internal_visit_below_high: config.score.internal_visit_below_high,
            scorer: Scorer::new(config),
            table: IdentityTable::new(
                config.state.max_identities,
                config.state.idle_ttl.as_millis_i64(),
            ),
            fleet_novelty: FleetNovelty::new(config.score.fleet_novelty_window.as_millis_i64())
                .with_peer_memory(config.score.fleet_peer_memory.as_millis_i64()),
            impair_actions: StableMap::default(),
            sensitive_reads: SensitiveReadMemo::new(),
            pulse: FleetPulse::new(config.score.fleet_pulse_window.as_millis_i64()),
            schedule: BTreeSet::new(),
            hot: StableMap::default(),
            dirty: Vec::new(),
            evicted: Vec::new(),
            dormant: DormantMemory::new(
                config.state.dormant_memory.as_millis_i64(),
                config.state.max_identities,
            ),
            next_dormant_expiry_ms: i64::MIN,
            track_changes: true,
            max_identities: config.state.max_identities.max(65_536),
            watermark_ms: i64::MIN,
            restored_until_ms: i64::MIN,
            stats: EngineStats::default(),
            texts: Texts::default(),
            destinations: Memo::new(),
            destination_prefixes: PrefixMemo::default(),
            user_agents: Memo::new(),
            model: model_name(),
        }
    }

    /// Hints the cache about the events that come next, `upcoming[0]` being the next
    /// one [`Engine::process`] will see. A driver that holds events in order (replay,
    /// a record with many events) calls this before each `process` with the events
    /// after it, and the state of an event is then already in cache when its turn comes.
    ///
    /// Why three levels: a lookup's loads depend on each other (the index word names
    /// the entry, the entry holds the seen-set's heap pointer), so each level reads
    /// what the level before loaded: the third event ahead gets its index word, the
    /// second its entry's lines, the next its heap blocks. Changes nothing: a hint for
    /// an identity that is then evicted or moved only wastes a load.
    ///
    /// Takes each event's [`PrefetchKeys`], which a driver computes once, when the event
    /// enters its window ([`PrefetchKeys::of`]): every event passes through all three
    /// levels, and hashing its names at each cost more than the levels themselves.
    pub fn prefetch_ahead(&self, upcoming: impl IntoIterator<Item = PrefetchKeys>) {
        for (ahead, keys) in upcoming.into_iter().take(PREFETCH_DISTANCE).enumerate() {
            match ahead {
                0 => self.table.prefetch_heap(keys.identity),
                1 => {
                    self.table.prefetch_entry(keys.identity);
                    self.destinations.prefetch_texts(keys.destination);
                    if let Some(at) = keys.user_agent {
                        self.user_agents.prefetch_texts(at);
                    }
                }
                _ => {
                    self.table.prefetch_index(keys.identity);
                    self.destinations.prefetch_slot(keys.destination);
                    if let Some(at) = keys.user_agent {
                        self.user_agents.prefetch_slot(at);
                    }
                }
            }
        }
    }

    /// For a driver whose events wait long enough to leave the cache (replay's reorder
    /// buffer holds an hour of traffic, megabytes of events written by the reader
    /// thread): loads the event's fields, a few events before
    /// [`Engine::prefetch_event_texts`] reads them. Taking the address reads nothing.
    pub fn prefetch_event_fields(event: &ActivityEvent) {
        hints::prefetch_object(event, 8);
    }

    /// Loads the texts `process` reads of an event whose fields are loaded already
    /// ([`Engine::prefetch_event_fields`]): without it, each event met a cache miss
    /// at every text it compared (the memo's raw destination and user agent, the
    /// identity's name). Only a hint: see [`hints`].
    pub fn prefetch_event_texts(event: &ActivityEvent) {
        hints::prefetch_slice(event.identity.as_bytes(), 2);
        hints::prefetch_slice(event.action.as_bytes(), 1);
        hints::prefetch_slice(event.destination.as_bytes(), 2);
        for text in [&event.user_agent, &event.source_ip, &event.source_network]
            .into_iter()
            .flatten()
        {
            hints::prefetch_slice(text.as_bytes(), 2);
        }
    }

    /// Folds one event into its identity's state and appends any signals to `out`.
    /// Events outside the lateness/lookahead bounds are rejected without touching state.
    pub fn process(
        &mut self,
        event: &ActivityEvent,
        out: &mut Vec<Signal>,
    ) -> Result<(), Rejection> {
        self.process_with(event, PrefetchKeys::of(event), false, out)
    }

    /// [`Engine::process`] for a driver that keeps events in a window and has run
    /// [`Engine::prefetch_ahead`] with this event's keys while it waited (replay, the
    /// lookahead benchmarks). The keys are not computed again, and the loads `process`
    /// starts to overlap the state's cache misses are skipped: after `prefetch_ahead`
    /// the lines are already there, and those loads cost ~175 instructions per event
    /// for nothing. Without the prefetch it is slower, never different: neither changes
    /// what is computed.
    pub fn process_keyed<E: KeyedEvent>(
        &mut self,
        event: &Keyed<E>,
        out: &mut Vec<Signal>,
    ) -> Result<(), Rejection> {
        debug_assert_eq!(
            event.keys.identity,
            IdentityTable::hash(&event.event().identity),
            "keys of another event"
        );
        self.process_with(event.event(), event.keys, true, out)
    }

    /// `process` with `keys` (the event's own, [`PrefetchKeys::of`]), and `prefetched`
    /// when the driver already loaded the event's state.
    fn process_with(
        &mut self,
        event: &ActivityEvent,
        keys: PrefetchKeys,
        prefetched: bool,
        out: &mut Vec<Signal>,
    ) -> Result<(), Rejection> {
        let t = event.time_ms;
        // Lateness is judged against the identity's own latest event, not the global
        // watermark: with several Kafka partitions (or merged log sources) one stream
        // can run hours ahead of another in event time, and its progress must not turn
        // another stream's valid events into rejects. What lateness protects is the
        // identity's baseline, and only its own history can be poisoned.
        // One table lookup per event for a known identity: the slot stays valid unless
        // something is removed before it is used (eviction while advancing the watermark).
        let hash = keys.identity;
        let memo = (keys.destination, keys.user_agent);
        let found = if prefetched {
            self.table.slot(hash, &event.identity)
        } else {
            // The generalisation memos' slots first, so their cache misses are in flight
            // together with the state's below instead of one after another in `observe`.
            self.destinations.warm(memo.0);
            if let Some(at) = memo.1 {
                self.user_agents.warm(at);
            }
            // Starts every cache miss of this identity's state at once, rather than one
            // at a time as processing reaches each field (`Identity::touch`); only on the
            // event path, not for the table's other callers (API and changelog queries,
            // sweeps).
            self.table.slot_touching(hash, &event.identity)
        };
        let removals = self.table.removals();
        if let Some(last_ms) = found.and_then(|s| self.table.at(s)).map(|s| s.last_ms) {
            if t < last_ms.saturating_sub(self.max_lateness_ms) {
                self.stats.too_late += 1;
                return Err(Rejection::new(
                    RejectReason::TooLate,
                    format!(
                        "event time {} is more than {} behind this identity's latest event",
                        format_time_ms(t),
                        self.lateness_text
                    ),
                ));
            }
        }
        // Not judged against the watermark: a quiet spell in the input (a night on a
        // small account, a weekend) is a jump in event time like any other, and a
        // watermark that refused to follow it would refuse every later event.
        if t > self.latest_allowed_ms {
            self.stats.too_far_ahead += 1;
            return Err(Rejection::new(
                RejectReason::TooFarAhead,
                format!(
                    "event time {} is more than {} ahead of the wall clock",
                    format_time_ms(t),
                    self.lookahead_text
                ),
            ));
        }
        if t > self.watermark_ms {
            self.advance_to(t, out);
        }
        self.stats.events += 1;

        let obs = self.observe(event, memo);
        let found = if self.table.removals() == removals {
            found
        } else {
            self.table.slot(hash, &event.identity)
        };
        let mut returning = None;
        let slot = match found {
            Some(slot) => slot,
            None => {
                let evicted = self.table.make_room();
                self.drop_evicted(evicted);
                returning = self.dormant.take(&event.identity);
                self.table
                    .insert(&event.identity, Identity::new(t, &self.params))
            }
        };
        let Some(state) = self.table.at_mut(slot) else {
            return Ok(());
        };
        state.note_kind(event.identity_kind);

        // Detectors look at the state before the event.
        let met = state.novelty(&obs);
        // A state written by an older generalisation relearns its destinations for a
        // learning span from its first event since (see `Identity::relearn_hours`).
        let relearning =
            state.relearn_hours != 0 && state.relearning(t, self.params.learning_min_span_ms);
        // A call that creates a resource names a destination that did not exist before:
        // that it is new to this identity is no sign (a deployer applying a new module, a
        // controller creating objects). It is remembered as met, so later calls on it are
        // not new either; the action itself is still judged.
        let novelty = if on_behalf(event) {
            // A call a service made for this identity (the `kms:Decrypt` behind a
            // secret read, from `AWS Internal`) follows from a call the identity made,
            // which carries any novelty; judged on its own, every first encrypted read
            // would look like a new action from a new network.
            Novelty::default()
        } else if creates_resource(&event.action) {
            Novelty {
                dest: false,
                class: false,
                ..met
            }
        } else {
            met
        };
        // A targeted `score.impair_defences` entry is judged on the unmasked novelty:
        // relearning must not hide a first deletion of an audit trail (nor mark the
        // entry met without judging it).
        let new_destination_unmasked = novelty.dest;
        let novelty = if relearning {
            Novelty {
                dest: false,
                class: false,
                ..novelty
            }
        } else {
            novelty
        };
        let learning = !state.is_active();
        // Fleet-wide changes hit the *same* container (a release adds one route, an
        // upgrade one bucket), so the fleet key of a class is the raw container name:
        // generalised, every random `cdn-sync-<token>` bucket would look like one.
        let raw_class = (!learning && novelty.class).then(|| {
            stable_hash(
                SEED_RAW_CLASS,
                destination_class(&event.destination).as_bytes(),
            )
        });
        // Only identities meeting something new need their hash (fleet bookkeeping).
        let who = (!learning
            && (novelty.dest || novelty.class || novelty.action || novelty.user_agent))
            .then(|| stable_hash(SEED_IDENTITY, event.identity.as_bytes()));
        let fleet = match who {
            None => FleetView::default(),
            Some(who) => {
                let f = &self.fleet_novelty;
                FleetView {
                    destination: if novelty.dest {
                        f.others(obs.dest, who, t)
                    } else {
                        0
                    },
                    class: raw_class.map_or(0, |h| f.others(h, who, t)),
                    action: if novelty.action {
                        f.others(obs.action, who, t)
                    } else {
                        0
                    },
                    action_peers: if novelty.action {
                        f.peers(obs.action, who, t)
                    } else {
                        0
                    },
                    user_agent: match obs.user_agent {
                        Some(h) if novelty.user_agent => f.others(h, who, t),
                        _ => 0,
                    },
                }
            }
        };
        // Rule matching is the costliest per-event step left; only pay for it when a
        // detector may use it.
        let mut sensitivity: Option<Sensitivity> = (!learning
            && (novelty.dest || novelty.class || novelty.environment))
            .then(|| self.scorer.sensitivity(event));
        // The sensitivity ceiling: what this call's level is, when it meets anything new.
        // Unmasked novelty: a secret the identity created is data it holds. Not a call a
        // service made on its behalf, which follows from the identity's own call: that
        // call is the one to judge (a `kms:Decrypt` logged before the secret read it
        // served must not take the read's "first" away). Learned while learning too, so
        // the ceiling is known when judging starts; each thing is met once, so this is
        // the level of everything the identity ever touched, for one rule lookup per
        // novelty, and none once the ceiling cannot rise (unknown, or restricted).
        let met_level = ((met.dest || met.class || met.action)
            && !on_behalf(event)
            && state.sensitivity_ceiling_can_rise())
        .then(|| sensitivity.unwrap_or_else(|| self.scorer.sensitivity(event)));
        let first_at_level = met_level.filter(|&level| {
            !learning
                && !relearning
                && level >= Sensitivity::Confidential
                && state.above_sensitivity_ceiling(level)
        });
        // Every matching call is looked up, new or not: a routine one marks the entry as
        // met (a state restored from before the memory existed, an entry added to the
        // list, a call made on another's behalf), so a later overflow of its seen-sets
        // cannot make it a "first use". The action-only pre-check is cached.
        let may_impair = match self.impair_actions.get(&obs.action) {
            Some(&may) => may,
            None => {
                if self.impair_actions.len() >= IMPAIR_ACTIONS_CACHED {
                    self.impair_actions.clear();
                }
                let may = self.scorer.may_impair_defences(&event.action);
                self.impair_actions.insert(obs.action, may);
                may
            }
        };
        let impair = if may_impair {
            self.scorer
                .impairs_defences(&event.action, &event.destination)
        } else {
            None
        };
        let (mut findings, window_before) = {
            let ctx = Context {
                event,
                obs: &obs,
                state,
                novelty: &novelty,
                params: &self.params,
                learning,
                impairs_defences: impair.is_some_and(|m| {
                    // New when the seen-sets say so, or when they cannot say: a kind that
                    // overflowed into the sketch may answer "seen" for a call never made.
                    let (new, kinds) = if m.targeted {
                        (
                            novelty.action || new_destination_unmasked,
                            (1 << SeenKind::Action as u8) | (1 << SeenKind::Destination as u8),
                        )
                    } else {
                        (novelty.action, 1 << SeenKind::Action as u8)
                    };
                    !state.has_impaired(m.entry) && (new || state.overflowed & kinds != 0)
                }),
                texts: &self.texts,
                fleet,
                sensitivity: sensitivity.unwrap_or_default(),
                first_at_level,
                window_label: &self.window_label,
                window_totals: std::cell::OnceCell::new(),
            };
            // The window totals, if a detector summed them: the fold reuses them.
            (detect::run_all(&ctx), ctx.window_totals.get().copied())
        };
        // Lingering novelty (low-and-slow exfiltration): a sensitive class or action the
        // identity met on its own is new only on the first call; a thief reading a few
        // records an hour is then never new again. Each later clock hour of use within
        // the sustained window adds evidence (a noisy-OR over the hours). A release is
        // adopted by many identities, and is discounted. Not writes: writing into a
        // sensitive store every hour is a job's new output, not data leaving it.
        let mut lingered = false;
        if !learning
            && !on_behalf(event)
            && (novelty.class || novelty.action || state.lingering != 0)
            && !is_write(&event.action)
        {
            if novelty.class || novelty.action {
                let (hash, others) = if novelty.class {
                    (obs.class, fleet.class)
                } else {
                    (obs.action, fleet.action)
                };
                if others <= 2
                    && *sensitivity.get_or_insert_with(|| {
                        met_level.unwrap_or_else(|| self.scorer.sensitivity(event))
                    }) >= Sensitivity::Confidential
                {
                    state.remember_lingering(hash, t);
                }
            } else if state.lingering != 0 {
                let window = self.sustained_hours;
                let lingering = match state.linger(obs.class, t, window) {
                    Some(used) => Some((used, detect::NEW_DESTINATION)),
                    None => state
                        .linger(obs.action, t, window)
                        .map(|used| (used, detect::NEW_ACTION)),
                };
                if let Some(((since, used), slot)) = lingering {
                    let who = stable_hash(SEED_IDENTITY, event.identity.as_bytes());
                    let (kind, fleet_key, what) = if slot == detect::NEW_DESTINATION {
                        let raw = destination_class(&event.destination);
                        (
                            SeenKind::DestinationClass,
                            stable_hash(SEED_RAW_CLASS, raw.as_bytes()),
                            self.texts.class(),
                        )
                    } else {
                        (SeenKind::Action, obs.action, &*event.action)
                    };
                    let others = self.fleet_novelty.others(fleet_key, who, t);
                    let rate = state.novelty_rate_per_day(kind, t, &self.params);
                    let level = *sensitivity.get_or_insert_with(|| {
                        met_level.unwrap_or_else(|| self.scorer.sensitivity(event))
                    });
                    // Each hour of use is one more independent sign. The identity's own
                    // novelty rate matters less than for a first meeting: persistence is
                    // the evidence here.
                    let strength = (1.0 - (1.0 - LINGERING_HOUR_STRENGTH).powi(used as i32))
                        * detect::rarity(rate).sqrt()
                        * detect::fleet_discount(others);
                    if findings[slot]
                        .as_ref()
                        .map_or(true, |f| f.strength < strength)
                    {
                        if let Some(f) = detect::Finding::lazy(strength, || {
                            format!(
                                "still using {what} ({}) in {used} hours since meeting it \
                                 {since}h ago, alone",
                                level.as_str()
                            )
                        }) {
                            findings[slot] = Some(f);
                            lingered = true;
                        }
                    }
                }
            }
        }
        for d in PULSED {
            let Some(f) = findings[d].as_mut() else {
                continue;
            };
            let factor = self.pulse.factor(d, t);
            if f.strength >= PULSE_MIN_STRENGTH {
                self.pulse
                    .record(d, t, (&mut state.pulse_window, &mut state.pulse_bits));
            }
            if factor < 1.0 {
                f.strength *= factor;
                f.detail.push_str(&format!("; fleet-wide (×{factor:.2})"));
                if f.strength < detect::MIN_STRENGTH {
                    findings[d] = None;
                }
            }
        }
        // After the fleet pulse: a return is neither discounted as fleet-wide nor
        // counted toward the pulse that discounts other identities' off-hours signs.
        if let Some(dormant) = &returning {
            judge_return(dormant, &obs, &self.texts, t, &mut findings);
        }
        if let Some(who) = who {
            let f = &mut self.fleet_novelty;
            if novelty.dest {
                f.record(obs.dest, who, t);
            }
            if let Some(h) = raw_class {
                f.record(h, who, t);
            }
            if novelty.action {
                f.record(obs.action, who, t);
                f.record_peer(obs.action, who, t);
            }
            if let (Some(h), true) = (obs.user_agent, novelty.user_agent) {
                f.record(h, who, t);
            }
        }
        // Judged before the fold, which records this failure.
        // An AI agent chooses its calls: a refusal is a guardrail it ran into, not a grant
        // someone forgot, so its refusals keep their weight.
        let lone_refusal = event.outcome == Outcome::Denied
            && state.kind() != IdentityKind::AiAgent
            && state.is_only_failure_this_hour(&obs)
            && !novelty.network
            && !novelty.user_agent
            && !novelty.environment
            && !findings[detect::NEW_ACTION]
                .as_ref()
                .is_some_and(|f| f.strength >= 1.0);
        state.fold_knowing_window(&obs, &met, &self.params, window_before);
        if let Some(level) = met_level {
            state.raise_sensitivity_ceiling(level);
        }
        if let Some(m) = impair {
            state.mark_impaired(m.entry);
        }

        // An HTTP route action (`GET /v1/balance`) and its destination describe the same
        // call: a new route is one piece of evidence, not two. A new action of a service
        // on a new resource type of that same service is one change too (adopting the
        // service), but a little more than either half: the weaker counts at half.
        if findings[detect::NEW_ACTION].is_some() && findings[detect::NEW_DESTINATION].is_some() {
            let strength = |f: &Option<detect::Finding>| f.as_ref().map_or(0.0, |f| f.strength);
            let a = strength(&findings[detect::NEW_ACTION]);
            let d = strength(&findings[detect::NEW_DESTINATION]);
            let weaker = if a >= d {
                detect::NEW_DESTINATION
            } else {
                detect::NEW_ACTION
            };
            if is_route_action(&event.action) {
                findings[weaker] = None;
            } else if novelty.class && detect::same_service(&event.action, &event.destination) {
                if let Some(f) = findings[weaker].as_mut() {
                    f.strength *= 0.5;
                    f.detail
                        .push_str("; same service as the new action (×0.50)");
                }
            }
        }
        // A successful read of something new from where this identity always works
        // (its network, client family and environment), of data no more than internal,
        // is weaker evidence than the same from anywhere else: it is how a coding agent
        // starts on a repository, or a job meets a new module. New actions, sensitive
        // data, writes, refusals and any new place keep their weight.
        let weight = self.usual_place_read_weight;
        if weight < 1.0
            && (findings[detect::NEW_DESTINATION].is_some()
                || findings[detect::DESTINATION_BURST].is_some())
            && !obs.failure
            && !novelty.network
            && !novelty.user_agent
            && !novelty.environment
            && is_read(&event.action)
            && *sensitivity
                .get_or_insert_with(|| met_level.unwrap_or_else(|| self.scorer.sensitivity(event)))
                <= Sensitivity::Internal
        {
            for d in [detect::NEW_DESTINATION, detect::DESTINATION_BURST] {
                if let Some(f) = findings[d].as_mut() {
                    f.strength *= weight;
                    f.detail
                        .push_str(&format!("; a read from its usual place (×{weight:.2})"));
                }
            }
        }
        // A lone refusal from the identity's usual place: the call did not happen, and
        // one refused call, however often retried, is what a missing grant looks like
        // (a key policy that does not list the role). Trying permissions one does not
        // have is several refusals: a refusal after any other failed call in the hour
        // (refused, erred or throttled) weighs in full, and the session carries the
        // first one's discounted signs into it.
        let weight = self.lone_refusal_weight;
        if lone_refusal && weight < 1.0 {
            for d in LONE_REFUSAL_SIGNS {
                if let Some(f) = findings[d].as_mut() {
                    f.strength *= weight;
                    f.detail.push_str(&format!(
                        "; a lone refusal from its usual place (×{weight:.2})"
                    ));
                }
            }
        }
        // The cron job at the wrong hour writing somewhere new (design §3): this call's
        // own signs, not the session's.
        // Somewhere new enough for the heavier weight: a new container or action (a new
        // object in a known bucket is what a rerun or a backfill writes). `off_hours`
        // judges a thin profile at such a write too, at its own weight only.
        let off_hours_write = findings[detect::OFF_HOURS].is_some()
            && (novelty.class || novelty.action)
            && !obs.failure
            && is_write(&event.action);
        // Session evidence: earlier signs of other detectors, decayed, count with this
        // event's. Most events have none, so the copy is rare.
        // Most identities carry nothing: no `powf` for them (the factor only ever
        // multiplies a zero then).
        let carry = if state.recent.iter().any(|&r| r != 0) {
            self.scorer.decayed(1.0, state.recent_ms, t)
        } else {
            0.0
        };
        let mut session: Option<[Option<detect::Finding>; detect::COUNT]> = None;
        // A session already judged a visit from inside, and now a call from neither the
        // visit's network nor its client family.
        let this_place = (obs.network.map(|n| n.0), obs.user_agent);
        let visit_elsewhere = carry > 0.0
            && self.internal_visit_below_high
            && self.hot.get(&*event.identity).is_some_and(|h| {
                h.visit_place
                    .is_some_and(|(net, ua)| net != this_place.0 && ua != this_place.1)
                    && h.reasons.iter().any(|r| {
                        r.detector == detect::NAMES[detect::NEW_SOURCE]
                            && r.detail.contains(VISIT_NOTE)
                            && !detect::new_source::names_public(&r.detail)
                    })
            });
        // From a private place this identity already knows, network and client family
        // both (its own runner): the job's own work after the visitor (a secrets job
        // reading its usual secrets, an ETL run writing its usual output), not the
        // visitor reaching further. Its own signs count; the visit's carried ones neither
        // join them nor make its new things a "second" sign. Anywhere new, or public
        // (the visitor moving outside), the visit's signs join in full. The visitor's own
        // calls carry them as before. The visit's place is kept in memory with the
        // reasons: after a restart the signs count in full (fail closed).
        let after_visit = visit_elsewhere
            && findings[detect::NEW_SOURCE].is_none()
            && !novelty.network
            && !novelty.user_agent
            && matches!(
                obs.network.map(|n| n.1),
                Some(SourceClass::Named | SourceClass::Private)
            );
        let carry_into_event = if after_visit { 0.0 } else { carry };
        // The sensitivity of the calls whose signs are carried into this one (none
        // carried, or after a visit, whose signs do not join).
        // Only while a carried sign still counts (the 0.05 below which the loop further
        // down drops them): `recent` keeps small residues for busy identities, and an old
        // session's sensitivity must not reach a new one's signs.
        // (No carry, as for most identities, keeps every product at zero.)
        let session_live = carry > 0.0
            && state
                .recent
                .iter()
                .any(|&r| f64::from(r) / 255.0 * carry >= 0.05);
        let session_sensitivity = if session_live {
            state.session_sensitivity()
        } else {
            None
        };
        // The visit's signs do not join this call's (see `after_visit`), nor their scale;
        // they stay carried for the calls after, so the session keeps its sensitivity.
        let carried_sensitivity = if after_visit {
            None
        } else {
            session_sensitivity
        };
        // Findings that hold a carried sign (bit per detector): scaled below by the
        // carried calls' sensitivity when it is the higher.
        let mut holds_carried = 0u16;
        // A second action never used before, in the same session, is a second sign, not
        // the same one again (a stolen key trying `CreateAccessKey`, then
        // `AttachUserPolicy`): it adds to the earlier one at half weight. Other detectors
        // keep the strongest sign (a volume spike fires on every event of the spike).
        if let Some(f) = findings[detect::NEW_ACTION].as_mut() {
            let earlier = f64::from(state.recent[detect::NEW_ACTION]) / 255.0 * carry_into_event;
            if add_second_sign(f, earlier, "; another new action this session") {
                holds_carried |= 1 << detect::NEW_ACTION;
            }
        }
        // Likewise a new container met while an earlier new-destination sign of the
        // session is still carried, when either call reached confidential or restricted
        // data (a secrets operator reading `stripe/` after `payments/`; a coding agent
        // cloning another team's repository after reading a secrets file): one more
        // store reached, not the first one again.
        let sensitive = |s: Option<Sensitivity>| s.is_some_and(|s| s >= Sensitivity::Confidential);
        if novelty.class && (sensitive(sensitivity) || sensitive(carried_sensitivity)) {
            if let Some(f) = findings[detect::NEW_DESTINATION].as_mut() {
                let earlier =
                    f64::from(state.recent[detect::NEW_DESTINATION]) / 255.0 * carry_into_event;
                if add_second_sign(f, earlier, "; another new container this session") {
                    holds_carried |= 1 << detect::NEW_DESTINATION;
                }
            }
        }
        // Whether this call's own sign becomes a carried one (stronger than what is
        // carried for its detector): its sensitivity then joins the session's.
        let mut raises_carried = false;
        // With nothing carried and nothing found (most events) every `earlier` and `now`
        // below is zero: the loop would raise and hold nothing and keep `recent` at zero.
        let carried_or_found =
            state.recent != [0; detect::COUNT] || findings.iter().any(Option::is_some);
        if carried_or_found {
            for i in 0..detect::COUNT {
                let earlier = f64::from(state.recent[i]) / 255.0 * carry;
                let now = findings[i].as_ref().map_or(0.0, |f| f.strength);
                raises_carried |= now > earlier;
                if !after_visit && earlier >= 0.05 && earlier > now {
                    holds_carried |= 1 << i;
                    let combined = session.get_or_insert_with(|| findings.clone());
                    let detail = self
                        .hot
                        .get(&*event.identity)
                        .and_then(|h| h.reasons.iter().find(|r| r.detector == detect::NAMES[i]))
                        .map_or_else(
                            || EARLIER_UNKNOWN.to_string(),
                            |r| format!("earlier: {}", r.detail.trim_start_matches("earlier: ")),
                        );
                    combined[i] = detect::Finding::new(earlier, detail);
                }
                state.recent[i] = round_half_up(earlier.max(now) * 255.0).clamp(0.0, 255.0) as u8;
            }
        }
        state.recent_ms = state.recent_ms.max(t);
        // New evidence on this event (not only earlier signs carried over).
        let fresh = findings.iter().any(Option::is_some);
        // Replaced in place only when there is a session: `unwrap_or` moved the whole
        // array (~256 bytes, a `memcpy`) on every event.
        if let Some(combined) = session {
            findings = combined;
        }

        // Score: max of the instantaneous risk and the decayed previous score.
        let any = findings.iter().any(Option::is_some);
        let mut instant = if any {
            let s = *sensitivity
                .get_or_insert_with(|| met_level.unwrap_or_else(|| self.scorer.sensitivity(event)));
            let scales: [Sensitivity; detect::COUNT] =
                std::array::from_fn(|i| match carried_sensitivity {
                    Some(c) if holds_carried & (1 << i) != 0 && c > s => c,
                    _ => s,
                });
            let session = match session_sensitivity {
                Some(c) if raises_carried => Some(c.max(s)),
                Some(c) => Some(c),
                None => raises_carried.then_some(s),
            };
            state.set_session_sensitivity(session);
            self.scorer
                .combine_scaled(&findings, &scales, off_hours_write)
        } else {
            0.0
        };
        // Below `high`, and below where a published `high` is left too: later calls of
        // the same kind must not keep an identity held at `high`.
        let below_high = {
            let held = published_level(&self.scorer, state).is_some_and(|l| l >= Level::High);
            let hold = if held { self.scorer.level_hold() } else { 0.0 };
            self.scorer.high_threshold() - hold - 0.1
        };
        // Its signs are one fact (a call that did not happen) seen four or five ways: a
        // lone refusal with nothing else to go on stops short of `high`, however they
        // add up (a backup job's refused `kms:Decrypt` at an hour it never works).
        let lone_refusal_cap = lone_refusal
            && self.lone_refusal_weight < 1.0
            && findings
                .iter()
                .enumerate()
                .all(|(d, f)| f.is_none() || LONE_REFUSAL_SIGNS.contains(&d));
        // A visit from inside: the identity's credentials used from a network or client
        // it never used, but inside the organisation's own address space (a private
        // address, on a named network or not), for calls that succeeded and only read
        // data no more than internal. That is an engineer debugging with a job's role
        // from the VPN, not credentials used from outside (design §3): worth seeing, so
        // it stays `elevated`, but not a page. A call of the session that writes, is
        // refused, reads sensitive data, obtains credentials, impairs defences or comes
        // from a public address counts in full, as does a volume or refusal sign. A new
        // place carried from earlier in the session counts only when its detail
        // names where it was met (kept with the reasons): one met at a public address, or
        // one whose origin is no longer known, means the session may come from outside.
        let internal_visit_cap = self.internal_visit_below_high
            && findings[detect::NEW_SOURCE].as_ref().is_some_and(|f| {
                !detect::new_source::names_public(&f.detail) && f.detail != EARLIER_UNKNOWN
            })
            && matches!(
                obs.network.map(|n| n.1),
                Some(SourceClass::Named | SourceClass::Private)
            )
            && event.source_ip.as_deref().is_some_and(is_private_address)
            && !obs.failure
            && is_read(&event.action)
            && !obtains_credentials(&event.action)
            && impair.is_none()
            && findings
                .iter()
                .enumerate()
                .all(|(d, f)| f.is_none() || INTERNAL_VISIT_SIGNS.contains(&d))
            && *sensitivity
                .get_or_insert_with(|| met_level.unwrap_or_else(|| self.scorer.sensitivity(event)))
                <= Sensitivity::Internal;
        // Sustained anomaly: an identity that keeps looking anomalous hour after hour (a
        // low-and-slow exfiltration: every copy at an hour it never works, to a bucket
        // it met yesterday) is more telling than one elevated moment, which the
        // 30-minute half-life otherwise forgets between copies.
        if fresh && counts_as_sustained(&findings) && self.scorer.level(instant) >= Level::Elevated
        {
            let hours = state.mark_elevated(t, self.sustained_hours);
            if hours > 0 {
                instant = sustain(instant, hours, self.sustained_hour_weight);
            }
        }
        // The caps hold after the sustained rule too: a debugging session or a retried
        // refusal that spans a clock hour is still one fact.
        if (lone_refusal_cap || internal_visit_cap) && instant > below_high {
            instant = below_high;
            if internal_visit_cap {
                if let Some(f) = findings[detect::NEW_SOURCE].as_mut() {
                    // Once: a carried sign's detail already says so.
                    if !f.detail.contains(VISIT_NOTE) {
                        f.detail.push_str("; ");
                        f.detail.push_str(VISIT_NOTE);
                    }
                }
            }
        }
        // The score is reckoned as of the engine's clock, not the event's own time: a
        // late event (a CloudTrail record delivered minutes after a gateway's) is
        // evidence that arrives now. Its signal is stamped now (see `stamp_ms` below),
        // and its score decays from now. Reckoned at its own time instead, the next
        // decay (due after the stamp) and the identity's next late event (decayed only
        // to its own time) disagreed by minutes of decay, and the published score
        // flipped between the two on every event. Never before the score's own time: a
        // restart restores scores newer than the first events it reads.
        let now_ms = t.max(self.watermark_ms).max(state.score_ms);
        let previous = round1(
            self.scorer
                .decayed(f64::from(state.score), state.score_ms, now_ms),
        );
        // Earlier signs alone are what the decayed score already says, with one
        // exception: an anomalous session reaching sensitive data weighs more. Otherwise
        // they would re-raise the score on every later event (decayed signs recombined
        // with a noisy-OR sum to more than the decayed score), and an identity at a
        // level's floor flapped across it on every call.
        // Nor do they after a visit from inside, on a call with no sign of its own from
        // neither the visit's network nor its client family: the job's routine call.
        if !fresh
            && (instant < previous + CARRIED_MARGIN
                || sensitivity.is_some_and(|s| s < Sensitivity::Confidential)
                || visit_elsewhere)
        {
            instant = 0.0;
        }
        let score = instant.max(previous);
        state.score = score as f32;
        state.score_ms = now_ms;
        let key: &str = &event.identity;
        // Reasons are kept only while the score is above normal (they explain decay
        // signals and lookups); a weak finding on a normal identity keeps nothing.
        if any && instant >= previous && self.scorer.level(instant) > Level::Normal {
            let reasons = self.scorer.reasons(&findings);
            match self.hot.get_mut(key) {
                Some(h) => h.reasons = reasons,
                None => {
                    self.hot.insert(
                        key.into(),
                        Hot {
                            due_ms: None,
                            reasons,
                            visit_place: None,
                        },
                    );
                }
            }
        }
        let scored = self.scorer.level(score);
        if let Some(h) = self.hot.get_mut(key) {
            if internal_visit_cap {
                h.visit_place = Some(this_place);
            } else if scored >= Level::High {
                // No longer a visit: whatever it became counts in full from now on.
                h.visit_place = None;
            }
        }
        if lingered && scored >= Level::High {
            // Reported: continued use would only raise the same alert again every hour.
            state.forget_lingering();
        }
        if scored >= Level::High && obs.sensitive_read {
            // The same for sensitive reads running above their share: an alert raised at
            // such a read by the share itself, or by the lingering novelty these reads
            // continue while the share's evidence builds, reports the excess under way,
            // which then does not alert again every hour. (Not an unrelated alert still
            // decaying: that would mute a theft starting within its hour.)
            let reported = state
                .sensitive_excess_folded()
                .is_some_and(|x| x.is_finding() || (lingered && x.evidence > 0.0));
            if reported {
                state.sensitive_reads.mark_reported();
            }
        }
        if scored >= Level::High {
            // An alerting identity stops vouching for the novelties it met (a campaign
            // is not a release; see `FleetNovelty`).
            self.fleet_novelty
                .flag(stable_hash(SEED_IDENTITY, key.as_bytes()), t);
        }
        // A signal says how risky the identity is as of the engine's clock: stamped with
        // the watermark when the event is behind it. A late event may follow decay
        // signals of this identity stamped up to the watermark, and readers keep the
        // newest stamp per identity (the API table, a compacted topic's consumers):
        // stamped with its own time, its raised score would be dropped as older than
        // the decay it overrides.
        let stamp_ms = now_ms;
        let level = self
            .scorer
            .held_level(score, published_level(&self.scorer, state));
        let active = state.is_active();
        let emit = state.emitted_level == u8::MAX
            || state.emitted_active != active
            || state.emitted_level != level as u8
            || (score - f64::from(state.emitted_score)).abs() >= self.scorer.emit_step;
        if emit {
            state.emitted_score = score as f32;
            state.emitted_level = level as u8;
            state.emitted_active = active;
            let reasons = if level == Level::Normal && !any {
                Vec::new()
            } else if let Some(h) = self.hot.get(key) {
                h.reasons.clone()
            } else {
                self.scorer.reasons(&findings)
            };
            for r in &reasons {
                if let Some(i) = detect::NAMES.iter().position(|n| *n == r.detector) {
                    self.stats.detector_fired[i] += 1;
                }
            }
            self.stats.signals += 1;
            out.push(Signal {
                identity: event.identity.clone(),
                time: format_time_ms(stamp_ms),
                score,
                level,
                state: lifecycle(state),
                identity_kind: state.kind(),
                events_seen: state.events,
                reasons,
                event_id: event.event_id.clone(),
                model: self.model.clone(),
            });
        }
        let (anchor, anchor_ms, emitted, published) = (
            f64::from(state.score),
            state.score_ms,
            f64::from(state.emitted_score),
            published_level(&self.scorer, state),
        );
        if self.track_changes && !state.dirty {
            state.dirty = true;
            self.dirty.push(key.into());
        }
        // Never due at or before the stamp: a decay signal stamped earlier than this
        // identity's last signal would be dropped by the same readers.
        let due = self
            .scorer
            .next_decay_due(
                anchor,
                anchor_ms,
                emitted,
                published.unwrap_or(Level::Normal),
            )
            .map(|d| d.max(stamp_ms + 1));
        self.reschedule(key, due);
        Ok(())
    }

    /// Generalises the event's fields into the scratch texts and hashes them.
    /// `memo` is where the destination and user agent are looked up ([`Memo::index`]).
    fn observe(
        &mut self,
        event: &ActivityEvent,
        memo: (MemoIndex, Option<MemoIndex>),
    ) -> Observation {
        let texts = &mut self.texts;
        let prefixes = &mut self.destination_prefixes;
        let d = self
            .destinations
            .get(&event.destination, memo.0, |raw, slot| {
                let class_len = generalise_destination_with(raw, &mut slot.text, prefixes);
                slot.class_len = class_len.unwrap_or_else(|| destination_class(&slot.text).len());
                slot.hash = stable_hash(SEED_DEST, slot.text.as_bytes());
                slot.class_hash = stable_hash(SEED_CLASS, &slot.text.as_bytes()[..slot.class_len]);
            });
        texts.destination.clear();
        texts.destination.push_str(&d.text);
        texts.class_len = d.class_len;
        let (dest, class) = (d.hash, d.class_hash);
        let network = source_network(
            event.source_network.as_deref(),
            event.source_ip.as_deref(),
            &mut texts.network,
        );
        let ua = event.user_agent.as_deref().filter(|u| !u.is_empty());
        texts.user_agent.clear();
        let user_agent = ua.zip(memo.1).map(|(ua, at)| {
            let f = self.user_agents.get(ua, at, |raw, slot| {
                user_agent_family(raw, &mut slot.text);
                slot.hash = stable_hash(SEED_UA, slot.text.as_bytes());
            });
            texts.user_agent.push_str(&f.text);
            f.hash
        });
        let records = event.records.unwrap_or(0).saturating_mul(256);
        let action = stable_hash(SEED_ACTION, event.action.as_bytes());
        let failure = event.outcome.is_failure();
        // Not a call a service made on the identity's behalf (the `kms:Decrypt` behind an
        // encrypted read): the identity's own read is counted already.
        let sensitive_read = !failure
            && !on_behalf(event)
            && match event.sensitivity {
                Some(level) => level >= Sensitivity::Confidential && is_read(&event.action),
                None => {
                    let scorer = &self.scorer;
                    self.sensitive_reads.get(dest, action, || {
                        is_read(&event.action)
                            && scorer.sensitivity(event) >= Sensitivity::Confidential
                    })
                }
            };
        Observation {
            time_ms: event.time_ms,
            dest,
            class,
            action,
            network: network.map(|c| (stable_hash(SEED_NETWORK, texts.network.as_bytes()), c)),
            user_agent,
            environment: event
                .environment
                .as_deref()
                .filter(|e| !e.is_empty())
                .map(|e| stable_hash(SEED_ENV, e.as_bytes())),
            failure,
            failure_key: if failure {
                failure_key(&event.action, &event.destination)
            } else {
                0
            },
            data: event.bytes.unwrap_or(0).saturating_add(records),
            sensitive_read,
        }
    }

    /// Puts `identity` in the decay schedule at `due` (or takes it out).
    fn reschedule(&mut self, identity: &str, due: Option<i64>) {
        match self.hot.get_mut(identity) {
            Some(h) => {
                if h.due_ms == due && due.is_some() {
                    return;
                }
                if let Some(old) = h.due_ms {
                    self.schedule.remove(&(old, Box::from(identity)));
                }
                h.due_ms = due;
                match due {
                    Some(d) => {
                        self.schedule.insert((d, identity.into()));
                    }
                    None => {
                        self.hot.remove(identity);
                    }
                }
            }
            None => {
                if let Some(d) = due {
                    self.hot.insert(
                        identity.into(),
                        Hot {
                            due_ms: Some(d),
                            reasons: Vec::new(),
                            visit_place: None,
                        },
                    );
                    self.schedule.insert((d, identity.into()));
                }
            }
        }
    }

    fn drop_evicted(&mut self, evicted: Vec<(Box<str>, Origin)>) {
        for (name, origin) in evicted {
            self.drop_state(&name);
            self.record_eviction(name, origin, None);
        }
    }

    /// Forgets what the engine keeps beside an evicted identity's state.
    fn drop_state(&mut self, name: &str) {
        self.stats.evicted += 1;
        if let Some(h) = self.hot.remove(name) {
            if let Some(d) = h.due_ms {
                self.schedule.remove(&(d, name.into()));
            }
        }
    }

    /// Lists an eviction for the changelog: a tombstone, or a dormant marker.
    fn record_eviction(&mut self, name: Box<str>, origin: Origin, dormant: Option<DormantMark>) {
        if !self.track_changes {
            return;
        }
        // Bounded: if nobody collects tombstones, forget the oldest names rather
        // than grow without limit (compaction then keeps a stale value, harmless:
        // restore re-applies the cap).
        if self.evicted.len() >= self.max_identities {
            self.evicted.clear();
        }
        self.evicted.push(Eviction {
            identity: name.into(),
            origin,
            dormant,
        });
    }

    /// Evicts identities idle past `state.idle_ttl` into the dormant memory, and lets
    /// go of dormant ones past `state.dormant_memory`.
    fn sweep_idle(&mut self, time_ms: i64) {
        for idle in self.table.sweep_idle(time_ms) {
            self.drop_state(&idle.name);
            if !self.dormant.is_enabled() {
                self.record_eviction(idle.name, idle.origin, None);
                continue;
            }
            let dropped = self.dormant.remember(Dormant {
                name: idle.name.clone(),
                partition: idle.origin.partition,
                mark: idle.mark,
            });
            self.forget_dormant(dropped);
            self.record_eviction(idle.name, idle.origin, Some(idle.mark));
        }
        if self.dormant.is_enabled() && time_ms >= self.next_dormant_expiry_ms {
            self.next_dormant_expiry_ms = time_ms.saturating_add(DORMANT_EXPIRY_EVERY_MS);
            let expired = self.dormant.expire(time_ms);
            self.forget_dormant(expired);
        }
    }

    /// Dormant identities no longer remembered: their changelog markers go.
    fn forget_dormant(&mut self, gone: Vec<Dormant>) {
        for d in gone {
            let origin = Origin {
                partition: d.partition,
                ..Origin::NONE
            };
            self.record_eviction(d.name, origin, None);
        }
    }

    /// Remembers a dormant identity read back from the changelog (its marker record,
    /// which replaces any state restored before it).
    pub fn restore_dormant(&mut self, identity: &str, partition: i32, mark: DormantMark) {
        self.forget(identity);
        let dormant = Dormant {
            name: identity.into(),
            partition,
            mark,
        };
        if self.dormant.is_enabled() {
            let dropped = self.dormant.remember(dormant);
            self.forget_dormant(dropped);
        } else {
            // Written while the memory was on: with it off, the marker goes.
            self.forget_dormant(vec![dormant]);
        }
    }

    /// Dormant identities remembered.
    pub fn dormant(&self) -> usize {
        self.dormant.len()
    }

    /// Stops keeping the lists `take_dirty` and `take_evicted` drain. For pipelines
    /// without a changelog (replay, demo): nothing would ever drain them.
    pub fn without_changelog(mut self) -> Self {
        self.track_changes = false;
        self.dirty = Vec::new();
        self.evicted = Vec::new();
        self
    }

    /// Drains identities evicted (TTL or cap) or no longer remembered as dormant since
    /// the last call, with the origin each had, so the runtime can write their
    /// changelog records: a tombstone, or a dormant marker.
    pub fn take_evicted(&mut self) -> Vec<Eviction> {
        std::mem::take(&mut self.evicted)
    }

    /// Advances the event-time watermark with no event (end of input, idle stream) and
    /// appends decay signals for identities whose decay is due, in (time, identity) order.
    pub fn advance_to(&mut self, time_ms: i64, out: &mut Vec<Signal>) {
        if time_ms <= self.watermark_ms {
            return;
        }
        self.watermark_ms = time_ms;
        while let Some((due, name)) = self.schedule.first().cloned() {
            if due > time_ms {
                break;
            }
            self.schedule.remove(&(due, name.clone()));
            let Some(state) = self.table.get_mut(&name) else {
                self.hot.remove(&name);
                continue;
            };
            let score = round1(
                self.scorer
                    .decayed(f64::from(state.score), state.score_ms, due),
            );
            let level = self
                .scorer
                .held_level(score, published_level(&self.scorer, state));
            state.emitted_score = score as f32;
            state.emitted_level = level as u8;
            let reasons = if level == Level::Normal {
                Vec::new()
            } else {
                self.hot
                    .get(&name)
                    .map(|h| h.reasons.clone())
                    .unwrap_or_default()
            };
            self.stats.signals += 1;
            self.stats.decay_signals += 1;
            out.push(Signal {
                identity: name.to_string(),
                time: format_time_ms(due),
                score,
                level,
                state: lifecycle(state),
                identity_kind: state.kind(),
                events_seen: state.events,
                reasons,
                event_id: None,
                model: self.model.clone(),
            });
            let next = self.scorer.next_decay_due(
                f64::from(state.score),
                state.score_ms,
                f64::from(state.emitted_score),
                level,
            );
            if let Some(h) = self.hot.get_mut(&name) {
                h.due_ms = None;
            }
            self.reschedule(&name, next.map(|n| n.max(due + 1)));
            if self.hot.get(&name).is_some_and(|h| h.due_ms.is_none()) {
                self.hot.remove(&name);
            }
            if let Some(state) = self.table.get_mut(&name) {
                if self.track_changes && !state.dirty {
                    state.dirty = true;
                    self.dirty.push(name);
                }
            }
        }
        self.sweep_idle(time_ms);
    }

    pub fn watermark_ms(&self) -> i64 {
        self.watermark_ms
    }

    pub fn identities(&self) -> usize {
        self.table.len()
    }

    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// Drains the identities whose state changed since the last call, with their state
    /// encoded for the changelog topic (key = identity, value = these bytes), in the
    /// order they first changed.
    pub fn take_dirty(&mut self) -> Vec<(String, Vec<u8>)> {
        let mut changed = Vec::with_capacity(self.dirty.len());
        for identity in std::mem::take(&mut self.dirty) {
            // Names of evicted or forgotten identities (or duplicates after a re-create)
            // are skipped: only a state still marked dirty is written, once.
            if let Some(state) = self.table.get_mut(&identity) {
                if state.dirty {
                    state.dirty = false;
                    changed.push((identity.to_string(), state.encode()));
                }
            }
        }
        changed
    }

    /// Installs an identity's state from the changelog (restore on partition assignment).
    pub fn restore(&mut self, identity: &str, bytes: &[u8]) -> Result<(), SnapshotError> {
        let state = Identity::decode(bytes, &self.params).map_err(SnapshotError::from)?;
        // A state written after a dormant marker: the identity came back.
        self.dormant.take(identity);
        if self.table.get(identity).is_none() {
            let evicted = self.table.make_room();
            self.drop_evicted(evicted);
        }
        let due = self.scorer.next_decay_due(
            f64::from(state.score),
            state.score_ms,
            f64::from(state.emitted_score),
            published_level(&self.scorer, &state).unwrap_or(Level::Normal),
        );
        self.restored_until_ms = self.restored_until_ms.max(state.last_ms);
        self.table.insert(identity, state);
        self.reschedule(identity, due);
        Ok(())
    }

    /// The latest event time among restored states (`i64::MIN` when none was): where
    /// event time stood when they were written, for a runtime that moves time on while
    /// no new event arrives.
    pub fn restored_until_ms(&self) -> i64 {
        self.restored_until_ms
    }

    /// Reasons behind an identity's current (above normal) score, as its signals carry
    /// them; empty when it is normal. Written to the changelog with the state.
    pub fn reasons_of(&self, identity: &str) -> &[Reason] {
        self.hot.get(identity).map_or(&[], |h| h.reasons.as_slice())
    }

    /// Installs the reasons restored from the changelog with [`Engine::restore`], so
    /// the signals this instance emits for a restored identity (decay included) keep
    /// explaining it. Only an identity with a decay still scheduled keeps them: one
    /// whose score has settled emits nothing until its next event, which brings its
    /// own reasons.
    pub fn restore_reasons(&mut self, identity: &str, reasons: Vec<Reason>) {
        if let Some(h) = self.hot.get_mut(identity) {
            if h.due_ms.is_some() {
                h.reasons = reasons;
            }
        }
    }

    /// Where a tracked identity's state stands in the input (set by the Kafka runtime).
    pub fn origin(&self, identity: &str) -> Option<Origin> {
        self.table.origin(identity)
    }

    pub fn origin_mut(&mut self, identity: &str) -> Option<&mut Origin> {
        self.table.origin_mut(identity)
    }

    /// Drops the state of every identity whose origin matches `drop` (its partitions
    /// were revoked); returns how many.
    pub fn forget_where(&mut self, drop: impl Fn(Origin) -> bool) -> Vec<Box<str>> {
        self.dormant.forget_partitions(|partition| {
            drop(Origin {
                partition,
                ..Origin::NONE
            })
        });
        let names = self.table.names_with_origin(drop);
        for name in &names {
            self.forget(name);
        }
        names
    }

    /// The last signal a tracked identity's state says was published (its emitted
    /// score, level and reasons), stamped with the time of its score; `None` before its
    /// first signal. For a runtime that does not read the signals topic back and must
    /// still answer lookups for the identities it restored.
    pub fn last_signal(&self, identity: &str) -> Option<Signal> {
        let state = self.table.get(identity)?;
        if state.emitted_level == u8::MAX {
            return None;
        }
        let score = round1(f64::from(state.emitted_score));
        let level = published_level(&self.scorer, state).unwrap_or(Level::Normal);
        Some(Signal {
            identity: identity.to_string(),
            time: format_time_ms(state.score_ms),
            score,
            level,
            state: lifecycle(state),
            identity_kind: state.kind(),
            events_seen: state.events,
            reasons: if level == Level::Normal {
                Vec::new()
            } else {
                self.reasons_of(identity).to_vec()
            },
            event_id: None,
            model: self.model.clone(),
        })
    }

    /// Refuses events stamped more than `decode.max_lookahead` after `now_ms` (the wall
    /// clock when the caller starts): real events cannot come from the future, and one
    /// bogus far-future record would move the watermark for every identity (every score
    /// decays at once, the idle sweep evicts every baseline). The engine itself reads no
    /// clock, so a replay of past data gives the same output whenever it runs.
    pub fn refuse_after(&mut self, now_ms: i64) {
        self.latest_allowed_ms = now_ms.saturating_add(self.max_lookahead_ms);
    }

    /// Drops an identity's state (partition revoked: another instance owns it now).
    pub fn forget(&mut self, identity: &str) -> bool {
        self.reschedule(identity, None);
        self.hot.remove(identity);
        self.dormant.take(identity);
        self.table.remove(identity).is_some()
    }

    /// Events folded into this identity's state so far, if tracked.
    pub fn events_seen(&self, identity: &str) -> Option<u64> {
        self.table.get(identity).map(|e| e.events)
    }

    /// Lifecycle of a tracked identity (`learning` or `active`).
    pub fn snapshot_state(&self, identity: &str) -> Option<IdentityState> {
        self.table.get(identity).map(lifecycle)
    }

    /// Current (decayed to the watermark) score of a tracked identity.
    pub fn score_of(&self, identity: &str) -> Option<f64> {
        self.table.get(identity).map(|s| {
            round1(self.scorer.decayed(
                f64::from(s.score),
                s.score_ms,
                self.watermark_ms.max(s.score_ms),
            ))
        })
    }

    /// The identity's state, for inspection and tests.
    pub fn identity(&self, identity: &str) -> Option<&Identity> {
        self.table.get(identity)
    }

    /// Estimated heap bytes held by identity state (table, keys, per-identity data).
    pub fn state_heap_bytes(&self) -> usize {
        self.table.heap_bytes() + self.dormant.heap_bytes()
    }

    /// Identities waiting for a decay signal (non-normal scores).
    pub fn scheduled(&self) -> usize {
        self.schedule.len()
    }
}

/// Points by which earlier signs alone, recombined on a later event, must exceed the
/// decayed score to raise it (well above the rounding of `recent` and of scores).
const CARRIED_MARGIN: f64 = 1.0;

/// Weight of each clock hour in which an identity used a sensitive novelty it met on its
/// own (noisy-OR over the hours, before its own novelty rate and the fleet discount). At
/// `new_destination`'s weight and confidential scale, four hours of use are `elevated`
/// (59) and five `high` (65); restricted data gets there an hour sooner.
const LINGERING_HOUR_STRENGTH: f64 = 0.3;

/// Most other elevated hours the sustained-anomaly rule counts.
const SUSTAINED_MAX_COUNTED: u32 = 8;

/// The instant score of an event when the identity was already elevated in `hours`
/// other recent hours: each such hour counts as `hour_weight` of an independent repeat
/// (`score.sustained_hour_weight`).
fn sustain(instant: f64, hours: u32, hour_weight: f64) -> f64 {
    let keep = 1.0 - instant / 100.0;
    let exponent = 1.0 + hour_weight * f64::from(hours.min(SUSTAINED_MAX_COUNTED));
    round1((1.0 - keep.powf(exponent)) * 100.0).clamp(0.0, 100.0)
}

/// Whether the sustained-anomaly rule counts an elevated moment with these findings.
/// Volume alone does not: its detectors already weigh the last hour against the
/// identity's hourly maxima, and a heavy day (an analyst's big job, a backfill) is
/// elevated hour after hour without being an attack.
fn counts_as_sustained(findings: &[Option<detect::Finding>; detect::COUNT]) -> bool {
    findings
        .iter()
        .enumerate()
        .any(|(i, f)| f.is_some() && i != detect::VOLUME_SPIKE && i != detect::DATA_VOLUME_SPIKE)
}

/// Findings for the first event of an identity that returns from dormancy: the
/// return itself (as `off_hours`: it acts at a time its history says it never
/// does, weeks into a silence), and a public network it never used before going
/// quiet (as `new_source`). Its new state is learning, so the other novelty
/// detectors are muted: these are what riskd knows against it.
fn judge_return(
    dormant: &Dormant,
    obs: &Observation,
    texts: &Texts,
    t: i64,
    findings: &mut [Option<detect::Finding>; detect::COUNT],
) {
    let gap_ms = t.saturating_sub(dormant.mark.last_ms).max(0);
    let hours = gap_ms / 3_600_000;
    let gap = if hours >= 48 {
        format!("{} days", hours / 24)
    } else if hours >= 2 {
        format!("{hours} hours")
    } else {
        format!("{} minutes", gap_ms / 60_000)
    };
    let last = format_time_ms(dormant.mark.last_ms);
    let back = detect::Finding::new(
        1.0,
        format!(
            "active again after {gap} without an event (last {})",
            last.get(..10).unwrap_or(&last)
        ),
    );
    if findings[detect::OFF_HOURS]
        .as_ref()
        .map_or(true, |f| f.strength < 1.0)
    {
        findings[detect::OFF_HOURS] = back;
    }
    if !dormant.mark.public && matches!(obs.network, Some((_, SourceClass::Public))) {
        findings[detect::NEW_SOURCE] = detect::Finding::new(
            0.9,
            format!(
                "first {} {}: before going quiet it only called from \
                 private or named networks",
                detect::new_source::PUBLIC_WORDS,
                texts.network
            ),
        );
    }
}

/// A second sign of the same kind in a session (`earlier`: the carried one, decayed)
/// adds to the stronger at half weight, and `note` says so; nothing when the carried
/// sign has faded.
/// Adds a carried sign to `f` at half weight; whether there was one to add.
fn add_second_sign(f: &mut detect::Finding, earlier: f64, note: &str) -> bool {
    if earlier < 0.05 {
        return false;
    }
    f.strength = 1.0 - (1.0 - f.strength.max(earlier)) * (1.0 - 0.5 * f.strength.min(earlier));
    f.detail.push_str(note);
    true
}

/// Whether a service made this call on the identity's behalf (the CloudTrail decoder's
/// `attributes["invoked_by"]`).
fn on_behalf(event: &ActivityEvent) -> bool {
    !event.attributes.is_empty() && event.attributes.contains_key("invoked_by")
}

/// The level last published for `state`, if any (`None` before its first signal).
/// A stored value that names no level (a corrupt snapshot) counts as the plain level
/// of the published score, so the identity still decays.
fn published_level(scorer: &Scorer, state: &Identity) -> Option<Level> {
    match state.emitted_level {
        u8::MAX => None,
        stored => Some(
            Level::ALL
                .get(usize::from(stored))
                .copied()
                .unwrap_or_else(|| scorer.level(f64::from(state.emitted_score))),
        ),
    }
}

/// What a signal says of an identity's lifecycle.
fn lifecycle(state: &Identity) -> IdentityState {
    if state.is_active() {
        IdentityState::Active
    } else {
        IdentityState::Learning
    }
}

/// Verbs of calls that only read: AWS `Get…`/`List…`/`Describe…`/`Head…`, the queries
/// `logs:FilterLogEvents`, `cloudtrail:LookupEvents`, `dynamodb:Scan`/`BatchGetItem`,
/// `s3:SelectObjectContent` and `iam:SimulatePrincipalPolicy` (which evaluates a policy
/// and changes nothing), HTTP `GET` and `HEAD`, Kubernetes `get`/`list`/`watch`, git
/// `clone`/`fetch`/`pull`, and agent tools such as `tool:fs.read` or
/// `tool:crm.get_customer`.
const READ_VERBS: [&str; 17] = [
    "get", "list", "describe", "head", "watch", "clone", "fetch", "pull", "read", "search",
    "query", "filter", "lookup", "scan", "batchget", "select", "simulate",
];

/// Whether `action` only reads (see [`READ_VERBS`]): its verb (after any `service:`
/// prefix, the HTTP method or Kubernetes verb before a space, a tool's method after its
/// last `.`) starts with one.
pub(crate) fn is_read(action: &str) -> bool {
    let verb = action.rsplit(':').next().unwrap_or(action);
    let verb = verb.split(' ').next().unwrap_or(verb);
    // A tool's namespace is no verb (`tool:scanner.delete_finding` deletes).
    let verb = verb.rsplit('.').next().unwrap_or(verb);
    starts_with_any(verb, &READ_VERBS)
}

/// Whether `word` starts with one of `verbs`, ignoring ASCII case.
fn starts_with_any(word: &str, verbs: &[&str]) -> bool {
    verbs.iter().any(|v| {
        word.len() >= v.len() && word.as_bytes()[..v.len()].eq_ignore_ascii_case(v.as_bytes())
    })
}

/// Verbs of calls that put data or configuration into their destination rather than
/// take it out: AWS `Put…`/`Create…`/`Update…`/`Delete…`/…, Kubernetes `create`/
/// `update`/`patch`/`delete`, HTTP `PUT`/`PATCH`/`DELETE`, git `push`, publishing
/// (`lambda:PublishVersion`, `sns:Publish`), tools such as `tool:fs.write`. (`POST` is
/// not among them: GraphQL and search APIs read with it.)
const WRITE_VERBS: [&str; 15] = [
    "put", "create", "update", "delete", "upload", "write", "attach", "tag", "set", "modify",
    "patch", "push", "apply", "remove", "publish",
];

/// Whether `action` writes (see [`WRITE_VERBS`]): its verb (after any `service:`
/// prefix, the HTTP method or Kubernetes verb before a space, a tool's method after its
/// last `.`) starts with one.
pub(crate) fn is_write(action: &str) -> bool {
    let verb = action.rsplit(':').next().unwrap_or(action);
    let verb = verb.split(' ').next().unwrap_or(verb);
    // A tool's namespace is no verb (`tool:settings.read` reads).
    let verb = verb.rsplit('.').next().unwrap_or(verb);
    starts_with_any(verb, &WRITE_VERBS)
}

/// Entries of [`SensitiveReadMemo`] (a power of two).
const SENSITIVE_READS_CACHED: usize = 4096;

/// Whether a call is a read of confidential or restricted data, per destination
/// template and action, so the sensitivity rules are not matched on every call (the
/// share of sensitive reads is counted on every one). Direct-mapped on the hashes:
/// bounded, deterministic, a lost entry is only looked up again. Judged on the
/// generalised destination: a rule that matches only an id's text (not the path around
/// it) is decided by the first id of the template seen; events that state their
/// sensitivity are not looked up.
struct SensitiveReadMemo {
    /// `(key, answer)`; key 0 is empty (keys are made odd).
    slots: Box<[(u64, bool)]>,
}

impl SensitiveReadMemo {
    fn new() -> Self {
        SensitiveReadMemo {
            slots: vec![(0, false); SENSITIVE_READS_CACHED].into_boxed_slice(),
        }
    }

    fn get(&mut self, dest: u64, action: u64, judge: impl FnOnce() -> bool) -> bool {
        let key = (dest ^ action.rotate_left(29)) | 1;
        // The hashes are well mixed: their top bits index the table.
        let at = (key >> (64 - SENSITIVE_READS_CACHED.trailing_zeros())) as usize;
        let slot = &mut self.slots[at];
        if slot.0 != key {
            *slot = (key, judge());
        }
        slot.1
    }
}

/// Whether `action` creates the resource it names: `<service>:Create…` and
/// `ec2:RunInstances` in cloud audit logs, `create <resource>` in Kubernetes. Not the
/// sensitive ones (`iam:CreateAccessKey` names the user it creates a key for; `create
/// pods/exec` opens a shell): their destination is an existing resource, and meeting it
/// is evidence.
fn creates_resource(action: &str) -> bool {
    // The verb after the first `:`, found by a byte search: this runs on every event,
    // and `split_once(':')` (a char searcher) cost ~100 instructions here. A `:` is
    // ASCII, so the byte after it starts a character and `get` always succeeds.
    let verb = action
        .bytes()
        .position(|b| b == b':')
        .and_then(|at| action.get(at + 1..));
    let creates = match verb {
        Some(verb) => {
            verb.strip_prefix("Create").is_some_and(|rest| {
                rest.starts_with(|c: char| c.is_ascii_uppercase()) && !copies_existing(rest)
            }) || verb == "RunInstances"
        }
        None => action.starts_with("create "),
    };
    creates && !detect::new_action::is_sensitive(action)
}

/// What a `Create…` call makes is a copy of something that exists (`CreateSnapshot`,
/// `CreateDBSnapshot`, `CreateImage`, `CreateExportTask`, `CreateBackup…`), and the
/// decoder names that source as the destination: a snapshot of a database this identity
/// never touched is a new destination, the first step of a copy-out.
fn copies_existing(created: &str) -> bool {
    ["Snapshot", "Image", "Export", "Backup", "Replica", "Copy"]
        .iter()
        .any(|k| created.contains(k))
}

/// `GET /path`-style actions: HTTP routes whose path repeats the destination.
fn is_route_action(action: &str) -> bool {
    let Some((method, rest)) = action.split_once(' ') else {
        return false;
    };
    rest.starts_with('/')
        && matches!(
            method,
            "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS"
        )
}

/// A changelog value that cannot be decoded into identity state.
#[derive(Debug, thiserror::Error)]
#[error("corrupt identity state: {0}")]
pub struct SnapshotError(pub String);

impl From<DecodeError> for SnapshotError {
    fn from(e: DecodeError) -> Self {
        SnapshotError(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::testkit::{event, T0};
    use crate::event::IdentityKind;

    fn engine() -> Engine {
        Engine::new(&Config::default_config().expect("defaults"))
    }

    /// Prefetching changes nothing: a generated fleet with attacks, scored with
    /// `prefetch_ahead` before every event (as replay does) and without, and with
    /// `process_keyed` (the keys computed once, the state's loads skipped) or `process`,
    /// gives the same signals, rejections and persisted states, under a cap small enough
    /// that identities are evicted between a hint and their turn.
    #[test]
    fn prefetching_ahead_changes_no_output() {
        use crate::source::generator::{Fleet, GenerateOptions};
        let events: Vec<ActivityEvent> = Fleet::new(&GenerateOptions {
            seed: 5,
            identities: 60,
            days: 3,
            ..GenerateOptions::default()
        })
        .collect();
        assert!(events.len() > 10_000, "{} events", events.len());
        let mut config = Config::default_config().expect("defaults");
        config.state.max_identities = 40;
        let keyed: Vec<Keyed<&ActivityEvent>> = events.iter().map(Keyed::new).collect();
        let run = |ahead: bool, reuse_keys: bool| {
            let mut e = Engine::new(&config);
            let mut out = Vec::new();
            let mut rejected = 0;
            for (i, ev) in events.iter().enumerate() {
                if ahead {
                    e.prefetch_ahead(
                        events[i + 1..]
                            .iter()
                            .take(PREFETCH_DISTANCE)
                            .map(PrefetchKeys::of),
                    );
                }
                let result = if reuse_keys {
                    e.process_keyed(&keyed[i], &mut out)
                } else {
                    e.process(ev, &mut out)
                };
                rejected += usize::from(result.is_err());
            }
            let states = e.take_dirty();
            assert!(e.stats.evicted > 0, "the cap evicts");
            (
                serde_json::to_string(&out).expect("signals encode"),
                rejected,
                states,
            )
        };
        let plain = run(false, false);
        assert!(plain.0.len() > 1_000, "some signals to compare");
        assert!(!plain.2.is_empty(), "some states to compare");
        for (ahead, reuse_keys) in [(true, false), (true, true), (false, true)] {
            let other = run(ahead, reuse_keys);
            assert_eq!(plain.0, other.0, "signals, {ahead} {reuse_keys}");
            assert_eq!(plain.1, other.1, "rejections, {ahead} {reuse_keys}");
            assert_eq!(plain.2, other.2, "persisted states, {ahead} {reuse_keys}");
        }
    }

    /// Ten days of a quiet service account: a few calls every 10 minutes, private IPs.
    fn history(e: &mut Engine, out: &mut Vec<Signal>) -> i64 {
        let mut t = T0;
        for k in 0..(10 * 144) {
            t = T0 + k * 600_000;
            let mut ev = event(
                t,
                "s3:GetObject",
                &format!("arn:aws:s3:::orders/{k}.json"),
                &format!("10.1.{}.{}", k % 200, k % 250),
                "aws-sdk-go/1.44",
            );
            ev.identity = "svc".into();
            e.process(&ev, out).expect("in order");
        }
        t
    }

    /// An event of `svc` from its usual network and client, `after_ms` past `t`.
    fn svc_call(t: i64, after_ms: i64, action: &str, destination: &str) -> ActivityEvent {
        let mut ev = event(
            t + after_ms,
            action,
            destination,
            "10.1.2.3",
            "aws-sdk-go/1.44",
        );
        ev.identity = "svc".into();
        ev
    }

    /// An engine capped at `max` identities.
    fn capped(max: usize) -> Engine {
        let mut config = Config::default_config().expect("defaults");
        config.state.max_identities = max;
        Engine::new(&config)
    }

    /// A call from identity `name` at `t`.
    fn call_as(e: &mut Engine, name: String, t: i64, out: &mut Vec<Signal>) {
        let mut ev = event(t, "a", "b", "10.0.0.1", "x");
        ev.identity = name;
        e.process(&ev, out).expect("ok");
    }

    #[test]
    fn signals_carry_the_kind_the_events_named() {
        let mut e = engine();
        let mut out = Vec::new();
        let mut ev = event(T0, "tool:search", "docs/x", "10.0.0.1", "agent/1");
        ev.identity = "copilot".into();
        ev.identity_kind = IdentityKind::AiAgent;
        e.process(&ev, &mut out).expect("ok");
        assert_eq!(
            out.last().map(|s| s.identity_kind),
            Some(IdentityKind::AiAgent)
        );
        // A later event naming no kind keeps it, here and in what a restart restores.
        ev.identity_kind = IdentityKind::Unknown;
        ev.time_ms += 1000;
        e.process(&ev, &mut out).expect("ok");
        assert_eq!(
            e.last_signal("copilot").map(|s| s.identity_kind),
            Some(IdentityKind::AiAgent)
        );
    }

    /// A stolen key's first look around.
    const RECON: [&str; 3] = ["sts:GetCallerIdentity", "iam:ListRoles", "s3:ListBuckets"];

    /// A stolen key used on `svc` a minute after `t`: public IP, curl, recon `actions`.
    fn stolen_key_recon(e: &mut Engine, t: i64, actions: &[&str], out: &mut Vec<Signal>) {
        for (k, action) in actions.iter().enumerate() {
            let mut ev = event(
                t + 60_000 + k as i64 * 1000,
                action,
                "arn:aws:iam::1:role/x",
                "203.0.113.7",
                "curl/8.1",
            );
            ev.identity = "svc".into();
            e.process(&ev, out).expect("in order");
        }
    }

    /// The same quiet history for several identities at once.
    fn fleet_history(e: &mut Engine, names: &[&str], out: &mut Vec<Signal>) -> i64 {
        let mut t = T0;
        for k in 0..(3 * 144) {
            t = T0 + k * 600_000;
            for name in names {
                let mut ev = event(
                    t,
                    "s3:GetObject",
                    &format!("arn:aws:s3:::orders/{k}.json"),
                    "10.1.2.3",
                    "aws-sdk-go/1.44",
                );
                ev.identity = (*name).into();
                e.process(&ev, out).expect("in order");
            }
        }
        t
    }

    /// Identities `a` and `b` take up a new plain action a day apart (or not), then `c`
    /// two days after `b`; returns `c`'s `new_action` reason ("strength detail").
    fn taken_up_after_peers(peers_first: bool) -> String {
        taken_up_after_peers_with(peers_first, engine())
    }

    /// [`taken_up_after_peers`] on a given engine (its config).
    fn taken_up_after_peers_with(peers_first: bool, mut e: Engine) -> String {
        const NEW_ACTION: &str = "elasticache:CreateReplicationGroup";
        const DAY: i64 = 86_400_000;
        let mut out = Vec::new();
        let t = fleet_history(&mut e, &["a", "b", "c"], &mut out);
        let adopt = |e: &mut Engine, who: &str, at: i64, out: &mut Vec<Signal>| {
            let mut ev = event(
                at,
                NEW_ACTION,
                &format!("arn:aws:elasticache:us-east-1:1:replicationgroup:{who}-cache"),
                "10.1.2.3",
                "aws-sdk-go/1.44",
            );
            ev.identity = who.into();
            e.process(&ev, out).expect("in order");
        };
        if peers_first {
            adopt(&mut e, "a", t + 60_000, &mut out);
            adopt(&mut e, "b", t + DAY, &mut out);
        }
        out.clear();
        adopt(&mut e, "c", t + 3 * DAY, &mut out);
        // (Decay signals of the others come first.)
        out.iter()
            .filter(|s| &*s.identity == "c")
            .flat_map(|s| &s.reasons)
            .find(|r| r.detector == "new_action")
            .map(|r| format!("{} {}", r.strength, r.detail))
            .unwrap_or_default()
    }

    #[test]
    fn a_plain_action_peers_took_up_on_earlier_days_weighs_less() {
        let alone = taken_up_after_peers(false);
        let after = taken_up_after_peers(true);
        assert!(!alone.contains("other identities"), "{alone}");
        assert!(
            after.contains("taken up on earlier days by 2 other identities"),
            "{after}"
        );
        let strength = |r: &str| r.split(' ').next().and_then(|x| x.parse::<f64>().ok());
        assert!(strength(&after) < strength(&alone), "{after} vs {alone}");
        // `score.fleet_peer_memory = "0s"` reaches the engine: the same adopters count
        // for nothing.
        let mut config = Config::default_config().expect("defaults");
        config.score.fleet_peer_memory = crate::config::HumanDuration(std::time::Duration::ZERO);
        let off = taken_up_after_peers_with(true, Engine::new(&config));
        assert!(!off.contains("other identities"), "{off}");
        assert_eq!(strength(&off), strength(&alone), "{off} vs {alone}");
    }

    /// Five identities start using one new action, either all otherwise normal (a
    /// release) or each from outside with an odd client (a campaign), then identity
    /// `last` uses it too; returns `last`'s `new_action` reason ("strength detail").
    fn new_action_after(campaign: bool) -> String {
        const NEW_ACTION: &str = "s3:GetObjectTagging";
        const UA: &str = "aws-sdk-go/1.44";
        let names = ["a", "b", "c", "d", "e", "last"];
        let mut e = engine();
        let mut out = Vec::new();
        let t = fleet_history(&mut e, &names, &mut out);
        for (i, name) in names[..5].iter().enumerate() {
            let at = t + 60_000 + i as i64 * 1000;
            let mut ev = event(at, NEW_ACTION, "arn:aws:s3:::orders/1.json", "10.1.2.3", UA);
            ev.identity = (*name).into();
            if campaign {
                // Stolen keys: the new action comes from outside with an odd client.
                ev.source_ip = Some("203.0.113.7".into());
                ev.user_agent = Some("curl/8.1".into());
            }
            e.process(&ev, &mut out).expect("in order");
        }
        let top = |who: &str, out: &[Signal]| {
            out.iter()
                .filter(|s| &*s.identity == who)
                .map(|s| s.score)
                .fold(0.0, f64::max)
        };
        assert_eq!(top("a", &out) >= 60.0, campaign, "{out:#?}");
        out.clear();
        let mut ev = event(
            t + 120_000,
            NEW_ACTION,
            "arn:aws:s3:::orders/2.json",
            "10.1.2.3",
            UA,
        );
        ev.identity = "last".into();
        e.process(&ev, &mut out).expect("in order");
        out.iter()
            .flat_map(|s| &s.reasons)
            .find(|r| r.detector == "new_action")
            .map(|r| format!("{} {}", r.strength, r.detail))
            .unwrap_or_default()
    }

    #[test]
    fn a_call_a_service_made_on_the_identitys_behalf_is_no_novelty() {
        let run = |on_behalf: bool| {
            let mut e = engine();
            let mut out = Vec::new();
            let t = history(&mut e, &mut out);
            out.clear();
            let mut ev = svc_call(
                t,
                60_000,
                "kms:Decrypt",
                "arn:aws:kms:us-east-1:1:key/0d5e1c2a-1b2c-4d5e-8f90-123456789abc",
            );
            if on_behalf {
                ev.source_ip = None;
                ev.source_network = Some("AWS Internal".into());
                ev.attributes
                    .insert("invoked_by".into(), "AWS Internal".into());
            }
            e.process(&ev, &mut out).expect("in order");
            let seen = e.events_seen("svc");
            (e.score_of("svc").unwrap_or_default(), seen)
        };
        let (own, _) = run(false);
        let (behalf, seen) = run(true);
        assert!(
            own >= 30.0,
            "the identity's own first Decrypt is a sign: {own}"
        );
        assert!(behalf < 1.0, "on its behalf it is not: {behalf}");
        assert_eq!(seen, Some(10 * 144 + 1), "but it is still counted");
    }

    #[test]
    fn creating_calls_are_told_from_calls_on_existing_resources() {
        for action in [
            "sns:CreateTopic",
            "s3:CreateBucket",
            "ec2:RunInstances",
            "create configmaps",
        ] {
            assert!(creates_resource(action), "{action}");
        }
        for action in [
            "iam:CreateAccessKey",
            "iam:CreateLoginProfile",
            "create pods/exec",
            "create clusterrolebindings",
            "s3:GetObject",
            "ec2:Create",
            "POST /v1/orders",
            "logs:Createx",
            // A copy of something that exists, which the decoder names as the
            // destination: the database snapshotted is the place touched.
            "rds:CreateDBSnapshot",
            "ec2:CreateSnapshot",
            "ec2:CreateImage",
            "logs:CreateExportTask",
        ] {
            assert!(!creates_resource(action), "{action}");
        }
    }

    #[test]
    fn a_new_bucket_it_creates_is_no_new_destination_sign() {
        let run = |action: &str| {
            let mut e = engine();
            let mut out = Vec::new();
            let t = history(&mut e, &mut out);
            out.clear();
            let ev = svc_call(t, 60_000, action, "arn:aws:s3:::brand-new-bucket");
            e.process(&ev, &mut out).expect("in order");
            out.iter()
                .flat_map(|s| &s.reasons)
                .any(|r| r.detector == "new_destination")
        };
        assert!(
            run("s3:GetBucketVersioning"),
            "a bucket it never touched is a sign"
        );
        assert!(!run("s3:CreateBucket"), "a bucket it creates is not");
    }

    #[test]
    fn writes_by_their_verb() {
        for write in [
            "s3:PutObject",
            "iam:CreateRole",
            "create pods",
            "patch deployments",
            "PUT /v1/items/{id}",
            "DELETE /v1/items/{id}",
            "git:push",
            "tool:fs.write_file",
            "ec2:ModifyInstanceAttribute",
            "lambda:PublishVersion",
        ] {
            assert!(is_write(write), "{write}");
        }
        for not_write in [
            "s3:GetObject",
            "dynamodb:Scan",
            "kms:Decrypt",
            "POST /graphql",
            "GET /v1/customers/{id}",
            "get secrets",
            "tool:crm.get_customer",
            "tool:drive.export",
            "sqs:ReceiveMessage",
            "tool:settings.read",
        ] {
            assert!(!is_write(not_write), "{not_write}");
        }
    }

    #[test]
    fn reads_only_by_their_verb() {
        for action in [
            "s3:GetObject",
            "ec2:DescribeInstances",
            "GET /v1/items/{id}",
            "list pods",
            "git:clone",
            "tool:fs.read",
            "tool:crm.get_customer",
            "logs:FilterLogEvents",
            "cloudtrail:LookupEvents",
            "dynamodb:BatchGetItem",
            "iam:SimulatePrincipalPolicy",
            "dynamodb:Scan",
            "s3:SelectObjectContent",
        ] {
            assert!(is_read(action), "{action}");
        }
        for action in [
            "s3:PutObject",
            "POST /v1/payments",
            "delete daemonsets",
            "git:push",
            "tool:shell.exec",
            "kms:Decrypt",
            "tool:scanner.delete_finding",
            "tool:selection.update",
        ] {
            assert!(!is_read(action), "{action}");
        }
    }

    #[test]
    fn a_new_internal_read_from_the_usual_place_weighs_less() {
        // The strongest new-destination sign of `action` on a new bucket, from svc's
        // usual place, or from a new network.
        let strongest = |config: &Config, action: &str, ip: &str| {
            let mut e = Engine::new(config);
            let mut out = Vec::new();
            let t = history(&mut e, &mut out);
            out.clear();
            let mut ev = svc_call(t, 60_000, action, "arn:aws:s3:::inventory/x.json");
            ev.source_ip = Some(ip.into());
            e.process(&ev, &mut out).expect("in order");
            out.iter()
                .flat_map(|s| &s.reasons)
                .filter(|r| r.detector == "new_destination")
                .map(|r| (r.strength, r.detail.contains("usual place")))
                .fold((0.0, false), |a, b| if b.0 > a.0 { b } else { a })
        };
        let defaults = Config::default_config().expect("defaults");
        let mut off = defaults.clone();
        off.score.usual_place_read_weight = 1.0;
        let usual = "10.1.2.3";
        let (read, marked) = strongest(&defaults, "s3:GetObject", usual);
        let (full, unmarked) = strongest(&off, "s3:GetObject", usual);
        assert!(marked && !unmarked);
        assert!(read < full * 0.7, "{read} vs {full}");
        // A write, or the same read from a new network, keeps its full weight.
        assert!(!strongest(&defaults, "s3:PutObject", usual).1);
        assert!(!strongest(&defaults, "s3:GetObject", "10.99.0.1").1);
    }

    #[test]
    fn a_lone_refusal_from_the_usual_place_is_elevated_and_probing_is_high() {
        // The highest level `svc` reaches over `calls` refused calls (action, key),
        // a minute apart, after its history; `tweak` changes each call.
        let worst = |calls: &[(&str, &str)], tweak: &dyn Fn(&mut ActivityEvent)| {
            let mut e = engine();
            let mut out = Vec::new();
            let t = history(&mut e, &mut out);
            out.clear();
            for (k, (action, destination)) in calls.iter().enumerate() {
                let mut ev = svc_call(t, 60_000 * (k as i64 + 1), action, destination);
                ev.outcome = Outcome::Denied;
                tweak(&mut ev);
                e.process(&ev, &mut out).expect("in order");
            }
            let lone = out
                .iter()
                .flat_map(|s| &s.reasons)
                .any(|r| r.detail.contains("lone refusal"));
            (out.iter().map(|s| s.level).max(), lone)
        };
        let key = (
            "kms:Decrypt",
            "arn:aws:kms:us-east-1:1:key/0b5e6c1e-6d7a-4c8e-9f0a-1b2c3d4e5f60",
        );
        let same = |_: &mut ActivityEvent| {};
        // A key policy that does not list the role: one call, retried twenty times.
        let (level, lone) = worst(&[key; 20], &same);
        assert_eq!(level, Some(Level::Elevated));
        assert!(lone);
        // A second, different refusal in the hour is probing.
        let (level, _) = worst(&[key, ("iam:ListRoles", "arn:aws:iam::1:role")], &same);
        assert!(level >= Some(Level::High), "{level:?}");
        // So is the same lone refusal from a network svc never used ...
        let (level, lone) = worst(&[key], &|ev| ev.source_ip = Some("192.0.2.7".into()));
        assert!(level >= Some(Level::High) && !lone, "{level:?}");
        // ... or by an AI agent, which chose the call.
        let agent = |ev: &mut ActivityEvent| ev.identity_kind = IdentityKind::AiAgent;
        let (level, lone) = worst(&[key], &agent);
        assert!(level >= Some(Level::High) && !lone, "{level:?}");
        // At 0.9 its signs would add up to `high` (66.6), but one call that did not
        // happen stops short of it; at 1 a lone refusal is judged like any other.
        let lone_at = |weight: f64| {
            let mut config = Config::default_config().expect("defaults");
            config.score.lone_refusal_weight = weight;
            let mut e = Engine::new(&config);
            let mut out = Vec::new();
            let t = history(&mut e, &mut out);
            out.clear();
            let mut ev = svc_call(t, 60_000, key.0, key.1);
            ev.outcome = Outcome::Denied;
            e.process(&ev, &mut out).expect("in order");
            out.iter()
                .map(|s| (s.level, s.score))
                .fold((Level::Normal, 0.0), |a, b| if b.1 > a.1 { b } else { a })
        };
        assert_eq!(lone_at(0.9), (Level::Elevated, 59.9));
        assert!(lone_at(1.0).0 >= Level::High);
    }

    #[test]
    fn a_visit_from_inside_is_elevated_and_from_outside_high() {
        // The highest level `svc` reaches when someone uses its credentials for a few
        // calls a minute apart, from `ip` on `network` with a laptop's CLI, after its
        // history; `last` replaces the last call.
        let worst = |config: &Config, ip: &str, network: Option<&str>, last: (&str, &str)| {
            let mut e = Engine::new(config);
            let mut out = Vec::new();
            let t = history(&mut e, &mut out);
            out.clear();
            let calls = [
                ("sts:GetCallerIdentity", "sts.us-east-1.amazonaws.com"),
                ("logs:FilterLogEvents", "logs.us-east-1.amazonaws.com"),
                ("iam:SimulatePrincipalPolicy", "iam.us-east-1.amazonaws.com"),
                last,
            ];
            for (k, (action, destination)) in calls.into_iter().enumerate() {
                let mut ev = svc_call(t, 60_000 * (k as i64 + 1), action, destination);
                ev.source_ip = Some(ip.into());
                ev.source_network = network.map(Into::into);
                ev.user_agent = Some("aws-cli/2.17.20 Python/3.11.9 Darwin/23.5.0".into());
                e.process(&ev, &mut out).expect("in order");
            }
            out.iter().map(|s| s.level).max()
        };
        let config = Config::default_config().expect("defaults");
        let read = ("lambda:GetFunction", "lambda.us-east-1.amazonaws.com");
        let vpn = Some("corp-vpn");
        // From the VPN, or an unnamed private range: seen, not paged.
        assert_eq!(worst(&config, "10.8.3.4", vpn, read), Some(Level::Elevated));
        assert_eq!(
            worst(&config, "172.20.3.4", None, read),
            Some(Level::Elevated)
        );
        // The same calls from a public address are credentials used from outside.
        let level = worst(&config, "198.51.100.7", None, read);
        assert!(level >= Some(Level::High), "{level:?}");
        // From inside, a write or restricted data counts in full.
        let write = ("s3:PutObject", "arn:aws:s3:::orders/x.json");
        let level = worst(&config, "10.8.3.4", vpn, write);
        assert!(level >= Some(Level::High), "{level:?}");
        let secret = (
            "secretsmanager:GetSecretValue",
            "arn:aws:secretsmanager:us-east-1:1:secret:prod/db-AbCdEf",
        );
        let level = worst(&config, "10.8.3.4", vpn, secret);
        assert!(level >= Some(Level::High), "{level:?}");
        // Turned off, such a visit is scored like any other.
        let mut off = config.clone();
        off.score.internal_visit_below_high = false;
        let level = worst(&off, "10.8.3.4", vpn, read);
        assert!(level >= Some(Level::High), "{level:?}");

        // `calls` (minutes after the history, source address, action) by `svc` with its
        // usual client: the highest level reached.
        let session = |calls: &[(i64, &str, &str)]| {
            let mut e = engine();
            let mut out = Vec::new();
            let t = history(&mut e, &mut out);
            out.clear();
            for &(minute, ip, action) in calls {
                let mut ev = svc_call(t, minute * 60_000, action, "arn:aws:s3:::orders/1.json");
                ev.source_ip = Some(ip.into());
                if ip.starts_with("10.8.") {
                    ev.source_network = Some("corp-vpn".into());
                    ev.user_agent = Some("aws-cli/2.17.20 Python/3.11.9 Darwin/23.5.0".into());
                }
                e.process(&ev, &mut out).expect("in order");
            }
            out.iter().map(|s| s.level).max()
        };
        // A visit that spans a clock hour (23:55 to 00:10) is still one visit.
        let vpn_calls = [
            (5, "10.8.3.4", "sts:GetCallerIdentity"),
            (10, "10.8.3.4", "logs:FilterLogEvents"),
            (15, "10.8.3.4", "iam:SimulatePrincipalPolicy"),
            (20, "10.8.3.4", "lambda:GetFunction"),
        ];
        assert_eq!(session(&vpn_calls), Some(Level::Elevated));
        // `svc`'s history, then the visit: the engine, the signals since the history and
        // the history's end.
        let visited = || {
            let mut e = engine();
            let mut out = Vec::new();
            let t = history(&mut e, &mut out);
            out.clear();
            for &(minute, ip, action) in &vpn_calls {
                let mut ev = svc_call(t, minute * 60_000, action, "arn:aws:s3:::orders/1.json");
                ev.source_ip = Some(ip.into());
                ev.source_network = Some("corp-vpn".into());
                ev.user_agent = Some("aws-cli/2.17.20 Python/3.11.9 Darwin/23.5.0".into());
                e.process(&ev, &mut out).expect("in order");
            }
            (e, out, t)
        };
        // The job's own routine call right after, from its runner, of data its producer
        // marks restricted: the job, not the visitor reaching further.
        let (mut e, mut out, t) = visited();
        let mut routine = svc_call(t, 21 * 60_000, "s3:GetObject", "arn:aws:s3:::orders/7.json");
        routine.sensitivity = Some(Sensitivity::Restricted);
        let mut visitor = routine.clone();
        e.process(&routine, &mut out).expect("in order");
        let level = out.iter().map(|s| s.level).max();
        assert_eq!(level, Some(Level::Elevated), "{out:?}");
        // The same read from the visit's own laptop is the visitor reaching restricted
        // data: it counts in full.
        visitor.time_ms += 60_000;
        visitor.source_ip = Some("10.8.3.4".into());
        visitor.source_network = Some("corp-vpn".into());
        visitor.user_agent = Some("aws-cli/2.17.20 Python/3.11.9 Darwin/23.5.0".into());
        e.process(&visitor, &mut out).expect("in order");
        let level = out.iter().map(|s| s.level).max();
        assert!(level >= Some(Level::High), "{out:?}");
        // Nor does the job's own call from its runner that shows a weak sign of its own
        // (a first read under a new prefix of its usual bucket): its own sign counts,
        // the visit's carried ones do not join it.
        let (mut e, mut out, t) = visited();
        out.clear();
        let mut own = svc_call(
            t,
            21 * 60_000,
            "s3:GetObject",
            "arn:aws:s3:::orders/archive/7.json",
        );
        own.sensitivity = Some(Sensitivity::Restricted);
        let mut outside = own.clone();
        e.process(&own, &mut out).expect("in order");
        assert!(
            out.iter().all(|s| s.level < Level::High),
            "the job's own call re-raised the visit: {out:?}"
        );
        // The same read from a public address it never used is the visitor moving
        // outside: the visit's signs join it in full.
        outside.time_ms += 60_000;
        outside.destination = "arn:aws:s3:::orders/1.json".into();
        outside.source_ip = Some("198.51.100.7".into());
        outside.sensitivity = None;
        out.clear();
        e.process(&outside, &mut out).expect("in order");
        let level = out.iter().map(|s| s.level).max();
        assert!(level >= Some(Level::High), "{out:?}");
        // A read that hands out credentials is no mere read.
        let mut token = vpn_calls;
        token[3].2 = "sts:GetSessionToken";
        let level = session(&token);
        assert!(level >= Some(Level::High), "{level:?}");
        // A session that met a public address first is not a visit from inside, even
        // when its next call comes from the usual network.
        let outside_first = [
            (5, "198.51.100.7", "s3:GetObject"),
            (6, "10.1.2.3", "sts:GetCallerIdentity"),
        ];
        let level = session(&outside_first);
        assert!(level >= Some(Level::High), "{level:?}");
    }

    #[test]
    fn a_write_somewhere_new_at_an_hour_it_never_works_is_high() {
        // A deploy job that uploads or fetches a build every ten minutes from 09:00 to
        // 17:00 UTC for ten days, and publishes to one new bucket a day (so a new bucket
        // is only half a surprise), then makes one `action` on `target` at `hour` (UTC)
        // of day eleven: the highest score it reaches.
        let buckets = [
            "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
            "juliet",
        ];
        let worst = |config: &Config, hour: i64, action: &str, target: &str| {
            let mut e = Engine::new(config);
            let mut out = Vec::new();
            let call = |t: i64, action: &str, destination: &str| {
                let mut ev = event(t, action, destination, "10.1.2.3", "aws-sdk-go/1.44");
                ev.identity = "deployer".into();
                ev
            };
            for (day, bucket) in (0..10).zip(buckets) {
                for k in 0..48 {
                    let t = T0 + day * 86_400_000 + 9 * 3_600_000 + k * 600_000;
                    let destination = if k == 24 {
                        format!("arn:aws:s3:::site-{bucket}/index.html")
                    } else {
                        format!("arn:aws:s3:::artifacts/builds/{}.zip", day * 48 + k)
                    };
                    let action = if k % 2 == 0 {
                        "s3:PutObject"
                    } else {
                        "s3:GetObject"
                    };
                    e.process(&call(t, action, &destination), &mut out)
                        .expect("in order");
                }
            }
            out.clear();
            let t = T0 + 10 * 86_400_000 + hour * 3_600_000;
            e.process(&call(t, action, target), &mut out)
                .expect("in order");
            out.iter().map(|s| s.score).fold(0.0, f64::max)
        };
        let config = Config::default_config().expect("defaults");
        let high = config.score.high;
        let new_bucket = "arn:aws:s3:::cdn-assets/js/checkout.js";
        // At 03:00 the write is design §3's job at the wrong hour writing somewhere new.
        let night_write = worst(&config, 3, "s3:PutObject", new_bucket);
        assert!(night_write >= high, "{night_write}");
        // The same write in working hours, or a read at night, is not.
        let day_write = worst(&config, 11, "s3:PutObject", new_bucket);
        assert!(day_write < high, "{day_write}");
        let night_read = worst(&config, 3, "s3:GetObject", new_bucket);
        assert!(night_read < high, "{night_read}");
        // Nor is a night write of a new object in its own bucket (a rerun, a backfill).
        let rerun = "arn:aws:s3:::artifacts/releases/latest/bootstrap.sh";
        let night_rerun = worst(&config, 3, "s3:PutObject", rerun);
        assert!(night_rerun < high, "{night_rerun}");
        // At the detector's own weight the night write stays below `high` too.
        let mut plain = config.clone();
        plain.score.off_hours_write_weight = 0.0;
        let plain_night_write = worst(&plain, 3, "s3:PutObject", new_bucket);
        assert!(plain_night_write < high, "{plain_night_write}");
    }

    /// `svc` keeps its usual calls and reads `bucket` three times an hour for `hours`
    /// hours; returns the hour of the first `high` signal, and how often it entered high.
    fn reads_for_hours(bucket: &str, hours: i64) -> (Option<i64>, usize) {
        calls_for_hours("s3:GetObject", bucket, hours)
    }

    /// Entries into `high` over a run of calls: how many, and the hour and reasons of the
    /// first.
    #[derive(Default)]
    struct HighEntries {
        entered: usize,
        first: Option<(i64, String)>,
        was_high: bool,
    }

    impl HighEntries {
        fn see(&mut self, signals: &[Signal], hour: i64) {
            for s in signals {
                let high = s.level >= Level::High;
                if high && !self.was_high {
                    self.entered += 1;
                    self.first
                        .get_or_insert_with(|| (hour, format!("{:?}", s.reasons)));
                }
                self.was_high = high;
            }
        }
    }

    /// `svc`'s usual reads, and every 20 minutes an `action` on `bucket`, for `hours`:
    /// the hour it first reached `high`, and how often it entered `high`.
    fn calls_for_hours(action: &str, bucket: &str, hours: i64) -> (Option<i64>, usize) {
        let mut e = engine();
        let mut out = Vec::new();
        let start = history(&mut e, &mut out);
        out.clear();
        let mut highs = HighEntries::default();
        for minute in (10..hours * 60).step_by(10) {
            let mut calls = vec![svc_call(
                start,
                minute * 60_000,
                "s3:GetObject",
                &format!("arn:aws:s3:::orders/{minute}.json"),
            )];
            if minute % 20 == 0 {
                calls.push(svc_call(
                    start,
                    minute * 60_000 + 1_000,
                    action,
                    &format!("arn:aws:s3:::{bucket}/ledger/{minute}.csv"),
                ));
            }
            for ev in calls {
                out.clear();
                e.process(&ev, &mut out).expect("in order");
                highs.see(&out, minute / 60);
            }
        }
        (highs.first.map(|(hour, _)| hour), highs.entered)
    }

    #[test]
    fn the_sensitive_read_memo_judges_each_template_and_action_once() {
        let mut memo = SensitiveReadMemo::new();
        let mut asked = 0;
        let mut ask = |memo: &mut SensitiveReadMemo, dest: u64, action: u64, answer: bool| {
            memo.get(dest, action, || {
                asked += 1;
                answer
            })
        };
        assert!(ask(&mut memo, 11, 22, true));
        // Remembered: the second question is not judged again, whatever it would say.
        assert!(ask(&mut memo, 11, 22, false));
        // Another action on the same template is another question.
        assert!(!ask(&mut memo, 11, 23, false));
        assert_eq!(asked, 2);
    }

    /// `partner`: ten days of a call every 10 minutes, every fourth a customer record
    /// (confidential by the default rules); then for `hours` hours an `extra` call
    /// between each of its usual ones (on a customer record if the route has an id).
    /// The hour it first reached `high`, how often it entered `high`, and the first
    /// high signal's reasons.
    fn customer_calls_for_hours(extra: &str, hours: i64) -> (Option<i64>, usize, String) {
        let mut e = engine();
        let mut out = Vec::new();
        let call = |t: i64, action: &str, dest: String| {
            let mut ev = event(t, action, &dest, "203.0.113.9", "okhttp/4.12.0");
            ev.identity = "partner".into();
            ev
        };
        let usual = |t: i64, k: i64| {
            if k % 4 == 0 {
                call(
                    t,
                    "GET /v1/customers/{id}",
                    format!("api.example.com/v1/customers/cus_{k:08}"),
                )
            } else {
                call(
                    t,
                    "POST /v1/payments",
                    "api.example.com/v1/payments".to_string(),
                )
            }
        };
        for k in 0..10 * 144 {
            e.process(&usual(T0 + k * 600_000, k), &mut out)
                .expect("in order");
        }
        let start = T0 + 10 * 144 * 600_000;
        let mut highs = HighEntries::default();
        for k in 0..hours * 6 {
            let t = start + k * 600_000;
            let calls = [
                usual(t, k),
                match extra.split_once("{id}") {
                    Some(_) => call(
                        t + 300_000,
                        extra,
                        format!("api.example.com/v1/customers/cus_x{k:07}"),
                    ),
                    None => call(
                        t + 300_000,
                        extra,
                        "api.example.com/v1/payments".to_string(),
                    ),
                },
            ];
            for ev in calls {
                out.clear();
                e.process(&ev, &mut out).expect("in order");
                highs.see(&out, k / 6);
            }
        }
        let (first_high, reasons) = highs.first.unzip();
        (first_high, highs.entered, reasons.unwrap_or_default())
    }

    #[test]
    fn a_key_reading_its_usual_customer_records_hour_after_hour_is_reported_once() {
        // Low-and-slow exfiltration with nothing new: a customer record between each of
        // the key's usual calls (12 calls an hour, far below any volume floor). The
        // rules make the reads confidential.
        let (first_high, entered, reasons) = customer_calls_for_hours("GET /v1/customers/{id}", 12);
        let hour = first_high.expect("hours of it reach high");
        assert!((3..=8).contains(&hour), "high in hour {hour}");
        assert!(reasons.contains("sensitive reads are"), "{reasons}");
        assert_eq!(entered, 1, "reported once, not every hour");
        // Twice its usual payments instead: more calls, the same kinds, a smaller share.
        let (first_high, _, reasons) = customer_calls_for_hours("POST /v1/payments", 12);
        assert_eq!(first_high, None, "{reasons}");
    }

    #[test]
    fn sensitive_data_read_hour_after_hour_since_meeting_it_alone_is_reported_once() {
        // Low-and-slow exfiltration: a few reads an hour of a confidential bucket the
        // identity never touched. The first read alone is not high; continued use is.
        let (first_high, entered) = reads_for_hours("finance-exports", 10);
        let hour = first_high.expect("continued reads reach high");
        assert!((2..=6).contains(&hour), "high in hour {hour}");
        assert_eq!(entered, 1, "reported once, not every hour");
        // The same reads of a bucket of no particular sensitivity stay below high: a
        // job adopting a new bucket is routine.
        assert_eq!(reads_for_hours("analytics-scratch", 10), (None, 0));
        // Writing into a new confidential bucket hour after hour is a job's new output
        // (data flowing into the protected store), not data leaving it.
        assert_eq!(
            calls_for_hours("s3:PutObject", "finance-exports", 10),
            (None, 0)
        );
    }

    #[test]
    fn a_second_new_sensitive_container_in_a_session_adds_to_the_first() {
        // `svc` reads objects `keys` of buckets it never used, from
        // its usual place: its score after the last one, and whether a reason says a
        // second store was reached.
        let run = |keys: &[&str]| {
            let mut e = engine();
            let mut out = Vec::new();
            let t = history(&mut e, &mut out);
            for (k, key) in keys.iter().enumerate() {
                let destination = format!("arn:aws:s3:::{key}");
                // Two minutes apart, inside one clock hour (no sustained rule).
                let ev = svc_call(t, 60_000 + k as i64 * 120_000, "s3:GetObject", &destination);
                e.process(&ev, &mut out).expect("in order");
            }
            let score = e.score_of("svc").unwrap_or_default();
            let second = out
                .iter()
                .flat_map(|s| &s.reasons)
                .any(|r| r.detail.contains("another new container"));
            (score, second)
        };
        // Restricted by the default rules (`*payroll*`, `*credential*`).
        let (one, _) = run(&["payroll-exports/2025-10.csv"]);
        let (two, second) = run(&["payroll-exports/2025-10.csv", "ci-credentials/deploy.json"]);
        assert!(second && two > one + 2.0, "{one} then {two}");
        // Another object of the same bucket is no second store ...
        let (same, second) = run(&["payroll-exports/2025-10.csv", "payroll-exports/bonus.csv"]);
        assert!(!second && same < two, "{same} vs {two}");
        // ... and neither is a second new bucket of internal data ...
        let (internal, second) = run(&["reports/a.csv", "invoices/b.csv"]);
        assert!(!second);
        // ... unless the first was restricted: a new store reached after a restricted
        // one (a coding agent cloning another team's repository after reading a secrets
        // file), and the carried restricted sign keeps its scale.
        // (Its signal is not emitted: the level stays `elevated`. The score says it.)
        let (after_restricted, _) = run(&["payroll-exports/2025-10.csv", "reports/a.csv"]);
        assert!(
            after_restricted > one + 2.0 && after_restricted > internal,
            "{one} then {after_restricted} (internal pair {internal})"
        );
    }

    #[test]
    fn a_sensitive_call_hours_ago_does_not_lift_a_new_session() {
        // Two new internal buckets two minutes apart, six hours (twelve half-lives)
        // after a restricted read, or with no such read: no higher with it (lower, if
        // anything: the read was one more new container, so new ones are less rare). The
        // restricted read's sensitivity belongs to its own session only.
        let run = |restricted_first: bool| {
            let mut e = engine();
            let mut out = Vec::new();
            let t = history(&mut e, &mut out);
            if restricted_first {
                let read = svc_call(
                    t,
                    60_000,
                    "s3:GetObject",
                    "arn:aws:s3:::payroll-exports/a.csv",
                );
                e.process(&read, &mut out).expect("in order");
            }
            let later = 6 * 3_600_000;
            for (k, bucket) in ["reports", "invoices"].iter().enumerate() {
                let dest = format!("arn:aws:s3:::{bucket}/x.csv");
                let ev = svc_call(t, later + k as i64 * 120_000, "s3:GetObject", &dest);
                e.process(&ev, &mut out).expect("in order");
            }
            e.score_of("svc").unwrap_or_default()
        };
        let (fresh, after_restricted) = (run(false), run(true));
        assert!(
            after_restricted <= fresh + 1.0,
            "{fresh} without the restricted read, {after_restricted} with it"
        );
    }

    #[test]
    fn a_second_new_action_in_a_session_adds_to_the_first() {
        // From the usual network and client, so only the actions are new. Returns the
        // score after the last event.
        let run = |actions: &[&str]| {
            let mut e = engine();
            let mut out = Vec::new();
            let t = history(&mut e, &mut out);
            for (k, action) in actions.iter().enumerate() {
                let after_ms = 60_000 + k as i64 * 20_000;
                let ev = svc_call(t, after_ms, action, "arn:aws:s3:::orders/1.json");
                e.process(&ev, &mut out).expect("in order");
            }
            e.score_of("svc").unwrap_or_default()
        };
        // Both internal (`iam:CreateAccessKey` is restricted by the default rules).
        let one = run(&["iam:ListUsers"]);
        let two = run(&["iam:ListUsers", "iam:AttachUserPolicy"]);
        assert!(one > 40.0 && two > one + 2.0, "{one} then {two}");
        // The same action again is not a second sign.
        let again = run(&["iam:ListUsers", "iam:ListUsers"]);
        assert!(again <= one, "{one} then {again}");
        // A restricted first sign (minting a key) then an internal second one: the
        // carried sign keeps its restricted scale, so the second still adds to it.
        let minted = run(&["iam:CreateAccessKey"]);
        let then_policy = run(&["iam:CreateAccessKey", "iam:AttachUserPolicy"]);
        assert!(minted > one, "restricted {minted} vs internal {one}");
        assert!(then_policy > minted + 2.0, "{minted} then {then_policy}");
    }

    #[test]
    fn a_first_minted_key_counts_without_the_identitys_novelty_rate() {
        // `svc` never made a restricted call: minting a key is its first, and is judged
        // as rare (a cron role's first `CreateAccessKey` had been weighed against its 0.7
        // new actions a day).
        let mut e = engine();
        let mut out = Vec::new();
        let t = history(&mut e, &mut out);
        let ev = svc_call(
            t,
            60_000,
            "iam:CreateAccessKey",
            "arn:aws:s3:::orders/1.json",
        );
        e.process(&ev, &mut out).expect("in order");
        assert!(
            e.reasons_of("svc")
                .iter()
                .any(|r| r.detector == "new_action"
                    && r.detail.contains("but never anything restricted before")),
            "{:?}",
            e.reasons_of("svc")
        );
    }

    #[test]
    fn the_sensitivity_ceiling_is_learned_while_learning() {
        // A secrets job that read a secret while it learned: a new secret once it is
        // active is not its first, and says nothing of the kind.
        let mut e = engine();
        let mut out = Vec::new();
        let mut t = T0;
        for k in 0..(10 * 144) {
            t = T0 + k * 600_000;
            let dest = if k == 3 {
                "arn:aws:s3:::app-secrets/a".to_string()
            } else {
                format!("arn:aws:s3:::orders/{k}.json")
            };
            let ev = svc_call(t, 0, "s3:GetObject", &dest);
            if k == 3 {
                e.process(&ev, &mut out).expect("in order");
                let state = e.identity("svc").expect("tracked");
                assert!(!state.is_active(), "still learning at its 4th event");
                assert!(!state.above_sensitivity_ceiling(Sensitivity::Restricted));
            } else {
                e.process(&ev, &mut out).expect("in order");
            }
        }
        let ev = svc_call(t, 60_000, "s3:GetObject", "arn:aws:s3:::vault-secrets/b");
        e.process(&ev, &mut out).expect("in order");
        assert!(
            !e.reasons_of("svc")
                .iter()
                .any(|r| r.detail.contains("never anything restricted")),
            "{:?}",
            e.reasons_of("svc")
        );
    }

    #[test]
    fn a_first_secret_counts_without_the_identitys_novelty_rate() {
        // `svc` reads a new bucket every few hours (a sync job): a new bucket is
        // routine at its novelty rate. The first secret it ever reads is judged as rare
        // all the same; a job that read a secret before is judged at its rate.
        let new_secret = |secret_before: bool| {
            let mut e = engine();
            let mut out = Vec::new();
            let mut t = T0;
            for k in 0..(10 * 144) {
                t = T0 + k * 600_000;
                let bucket = if secret_before && k == 700 {
                    "app-secrets".to_string()
                } else {
                    // Bucket names made of syllables, kept as words by generalisation.
                    let n = (k / 18) as usize;
                    let syllable = |i: usize| {
                        let c = b"bdfgklmnprstvz"[i % 14] as char;
                        let v = b"aeiou"[(i / 14) % 5] as char;
                        format!("{c}{v}")
                    };
                    format!("sync-{}{}", syllable(n), syllable(n / 70 + 3))
                };
                let dest = format!("arn:aws:s3:::{bucket}/{k}.json");
                let ev = svc_call(t, 0, "s3:GetObject", &dest);
                e.process(&ev, &mut out).expect("in order");
            }
            let ev = svc_call(t, 60_000, "s3:GetObject", "arn:aws:s3:::vault-secrets/b");
            out.clear();
            e.process(&ev, &mut out).expect("in order");
            // This call's signal (decay signals of others may come first).
            let reason = out
                .last()
                .filter(|s| s.event_id == ev.event_id)
                .and_then(|s| s.reasons.iter().find(|r| r.detector == "new_destination"))
                .map(|r| (r.strength, r.detail.clone()));
            (e.score_of("svc").unwrap_or_default(), reason)
        };
        let (first, first_reason) = new_secret(false);
        let (again, again_reason) = new_secret(true);
        let (strength, detail) = first_reason.expect("the first secret is a sign");
        assert!(
            detail.contains("but never anything restricted before"),
            "{detail}"
        );
        let (again_strength, again_detail) = again_reason.unwrap_or_default();
        assert!(
            again_strength < strength / 2.0,
            "{again_strength} vs {strength}: {again_detail} / {detail}"
        );
        assert!(
            !again_detail.contains("never anything restricted"),
            "not its first secret: {again_detail}"
        );
        assert!(first > again + 10.0, "{first} vs {again}");
    }

    #[test]
    fn a_campaign_is_not_discounted_as_a_fleet_wide_change() {
        // Regression: five identities alerting on the same new action (one playbook,
        // several stolen keys) made it "fleet-wide" and hid the sixth victim.
        let release = new_action_after(false);
        let campaign = new_action_after(true);
        assert!(release.contains("5 other identities"), "{release}");
        assert!(!campaign.contains("other identities"), "{campaign}");
        let strength = |r: &str| r.split(' ').next().and_then(|x| x.parse::<f64>().ok());
        assert!(
            strength(&campaign) > strength(&release),
            "{campaign} vs {release}"
        );
    }

    #[test]
    fn sustained_counts_other_elevated_hours_within_twelve() {
        const HOUR_MS: i64 = 3_600_000;
        let params = StateParams::from_config(&Config::default_config().expect("defaults").state);
        let mut s = Identity::new(T0, &params);
        let mut other = Identity::new(T0, &params);
        let h = |n: i64| T0 + n * HOUR_MS;
        assert_eq!(s.mark_elevated(h(0), 12), 0);
        assert_eq!(
            s.mark_elevated(h(0) + 60_000, 12),
            0,
            "the same hour counts once"
        );
        assert_eq!(s.mark_elevated(h(1), 12), 1);
        assert_eq!(s.mark_elevated(h(3), 12), 2);
        assert_eq!(other.mark_elevated(h(3), 12), 0, "per identity");
        // Twelve hours later the first hours have left the window.
        assert_eq!(s.mark_elevated(h(12), 12), 2);
        // A snapshot keeps the memory (a restart must give the same answers).
        let mut restored = Identity::decode(&s.encode(), &params).expect("round trip");
        assert_eq!(restored.mark_elevated(h(14), 12), 2);
        assert_eq!(s.mark_elevated(h(14), 12), 2);
        assert_eq!(s.mark_elevated(h(40), 12), 0);
    }

    #[test]
    fn volume_alone_is_no_sustained_anomaly() {
        let sign = || detect::Finding::new(0.6, String::new());
        let mut findings: [Option<detect::Finding>; detect::COUNT] = Default::default();
        assert!(!counts_as_sustained(&findings));
        findings[detect::VOLUME_SPIKE] = sign();
        findings[detect::DATA_VOLUME_SPIKE] = sign();
        assert!(!counts_as_sustained(&findings), "a heavy day");
        findings[detect::NEW_DESTINATION] = sign();
        assert!(counts_as_sustained(&findings), "a heavy day somewhere new");
    }

    #[test]
    fn sustain_raises_a_repeated_elevated_score_and_nothing_else() {
        assert_eq!(sustain(45.0, 0, 0.25), 45.0);
        let once = sustain(45.0, 1, 0.25);
        let thrice = sustain(45.0, 3, 0.25);
        assert!(
            45.0 < once && once < thrice && thrice >= 60.0,
            "{once} {thrice}"
        );
        assert!(sustain(45.0, 100, 0.25) <= 100.0);
        assert_eq!(sustain(0.0, 5, 0.25), 0.0);
        // `score.sustained_hour_weight = 0` turns the rule off.
        assert_eq!(sustain(45.0, 3, 0.0), 45.0);
    }

    #[test]
    fn adopting_a_service_is_one_change_not_two() {
        // Regression: a cron job that started publishing metrics (a new action on a new
        // resource type of the same service) scored as two independent signs, 62.8.
        let mut e = engine();
        let mut out = Vec::new();
        let t = history(&mut e, &mut out);
        out.clear();
        let mut ev = event(
            t + 60_000,
            "cloudwatch:PutMetricData",
            "cloudwatch",
            "10.1.7.7",
            "aws-sdk-go/1.44",
        );
        ev.identity = "svc".into();
        e.process(&ev, &mut out).expect("in order");
        let signal = out.last().expect("a signal");
        assert!(signal.score > 30.0 && signal.score < 60.0, "{signal:#?}");
        assert!(
            signal
                .reasons
                .iter()
                .any(|r| r.detail.contains("same service as the new action")),
            "{signal:#?}"
        );
    }

    #[test]
    fn quiet_history_then_attack_reaches_high_then_decays() {
        let mut e = engine();
        let mut out = Vec::new();
        let t = history(&mut e, &mut out);
        assert!(
            out.iter().all(|s| s.level == Level::Normal),
            "{:?}",
            out.last()
        );
        assert_eq!(e.snapshot_state("svc"), Some(IdentityState::Active));
        out.clear();
        stolen_key_recon(&mut e, t, &RECON, &mut out);
        let top = out.iter().map(|s| s.score).fold(0.0, f64::max);
        assert!(top >= 60.0, "{out:#?}");
        let last = out.last().expect("signals").clone();
        assert!(!last.reasons.is_empty());
        out.clear();
        e.advance_to(t + 24 * 3_600_000, &mut out);
        assert!(!out.is_empty());
        let scores: Vec<f64> = out.iter().map(|s| s.score).collect();
        assert!(scores.windows(2).all(|w| w[1] <= w[0]), "{scores:?}");
        assert_eq!(out.last().map(|s| s.level), Some(Level::Normal));
        assert_eq!(e.scheduled(), 0);
    }

    #[test]
    fn a_decaying_alert_holds_high_until_five_points_below_and_restores_as_published() {
        let mut e = engine();
        let mut out = Vec::new();
        let t = history(&mut e, &mut out);
        out.clear();
        stolen_key_recon(&mut e, t, &RECON, &mut out);
        assert!(out.iter().any(|s| s.level >= Level::High), "{out:#?}");
        // Step by step through the decay: a signal between 55 and 60 still says high,
        // the first one below 55 says elevated, and nothing re-enters high.
        let mut held = None;
        let mut clock = t;
        while clock < t + 24 * 3_600_000 {
            clock += 60_000;
            out.clear();
            e.advance_to(clock, &mut out);
            for s in &out {
                if (55.0..60.0).contains(&s.score) {
                    assert_eq!(s.level, Level::High, "{s:?}");
                    // What a restart would put in the API table says the same.
                    let restored = e.last_signal("svc").expect("published");
                    assert_eq!((restored.score, restored.level), (s.score, Level::High));
                    held = Some(s.score);
                } else if s.score < 55.0 && s.score >= 25.0 {
                    assert!(s.level <= Level::Elevated, "{s:?}");
                }
            }
        }
        assert!(held.is_some(), "a decay signal in the held band");
        assert_eq!(e.last_signal("svc").map(|s| s.level), Some(Level::Normal));
    }

    #[test]
    fn ordinary_calls_after_an_anomaly_let_the_score_decay() {
        let mut e = engine();
        let mut out = Vec::new();
        let t = history(&mut e, &mut out);
        stolen_key_recon(&mut e, t, &RECON, &mut out);
        let score = |e: &Engine| e.identity("svc").map_or(0.0, |s| f64::from(s.score));
        let mut last = score(&e);
        assert!(last >= 60.0, "{last}");
        // The service carries on as usual: its earlier signs are still in the session,
        // but nothing new happens, so the score decays at its half-life (the earlier
        // signs used to re-raise it on every call, and it flapped across a level's
        // floor).
        for k in 1..=12 {
            let ev = svc_call(
                t,
                120_000 + k * 300_000,
                "s3:GetObject",
                "arn:aws:s3:::orders/1.json",
            );
            e.process(&ev, &mut out).expect("in order");
            let now = score(&e);
            // Five minutes of a 30-minute half-life, give or take the rounding.
            let decayed = last * 0.5f64.powf(5.0 / 30.0);
            assert!(
                now <= decayed + 0.1,
                "call {k}: {last} -> {now}, not {decayed:.1}"
            );
            last = now;
        }
        assert!(last < 40.0, "an hour later: {last}");
    }

    #[test]
    fn late_and_early_events_are_rejected_without_state() {
        let mut e = engine();
        let mut out = Vec::new();
        e.process(&event(T0, "a", "b", "10.0.0.1", "x"), &mut out)
            .expect("first");
        let err = e
            .process(
                &event(T0 - 2 * 3_600_000, "a", "b", "10.0.0.1", "x"),
                &mut out,
            )
            .expect_err("late");
        assert_eq!(err.reason, RejectReason::TooLate);
        // An hour of silence is no reason to refuse what follows.
        e.process(&event(T0 + 3_600_000, "a", "b", "10.0.0.1", "x"), &mut out)
            .expect("after a quiet hour");
        // Beyond the wall clock (plus `decode.max_lookahead`) is.
        e.refuse_after(T0 + 3_600_000);
        let err = e
            .process(&event(T0 + 5_400_000, "a", "b", "10.0.0.1", "x"), &mut out)
            .expect_err("from the future");
        assert_eq!(err.reason, RejectReason::TooFarAhead);
        assert_eq!(e.events_seen("test-identity"), Some(2));
    }

    #[test]
    fn without_changelog_keeps_no_change_lists() {
        // Regression: replay and demo never drain take_dirty/take_evicted, so an input
        // of many distinct identities grew those lists for ever.
        let mut config = Config::default_config().expect("defaults");
        config.state.max_identities = 10;
        let mut e = Engine::new(&config).without_changelog();
        let mut out = Vec::new();
        for i in 0..1000 {
            let mut ev = event(T0 + i, "a", "b", "10.0.0.1", "x");
            ev.identity = format!("spray-{i}");
            e.process(&ev, &mut out).expect("in order");
        }
        assert!(e.identities() <= 10);
        assert!(e.stats().evicted >= 990);
        assert!(e.take_dirty().is_empty());
        assert!(e.take_evicted().is_empty());
    }

    #[test]
    fn a_stream_running_ahead_does_not_make_another_identity_late() {
        // Regression: one global watermark made a lagging Kafka partition's valid
        // events too_late once another partition's backlog ran hours ahead.
        let mut e = engine();
        let mut out = Vec::new();
        let start = T0 - 3 * 3_600_000;
        let mut behind = event(start, "a", "b", "10.0.0.1", "x");
        behind.identity = "behind".into();
        e.process(&behind, &mut out).expect("behind, first");
        // The other stream's backlog advances the watermark by three hours.
        for k in 1..=18 {
            let mut ahead = event(start + k * 600_000, "a", "b", "10.0.0.1", "x");
            ahead.identity = "ahead".into();
            e.process(&ahead, &mut out).expect("ahead");
        }
        behind.time_ms += 60_000;
        e.process(&behind, &mut out)
            .expect("behind's own history is in order, so it is not late");
        assert_eq!(e.events_seen("behind"), Some(2));
    }

    #[test]
    fn a_late_event_is_not_stamped_before_its_identitys_decay() {
        // Regression: another stream moved the watermark on and emitted svc's decay;
        // svc's own late event (within its lateness) then raised the score with a
        // signal stamped earlier than that decay, and the API table, which keeps the
        // newest stamp, dropped it: the enforcement point saw the decayed score.
        let mut e = engine();
        let mut out = Vec::new();
        let t = history(&mut e, &mut out);
        stolen_key_recon(&mut e, t, &RECON, &mut out);
        for k in 2..=50 {
            call_as(&mut e, "other".into(), t + k * 60_000, &mut out);
        }
        assert!(
            out.iter()
                .any(|s| s.identity == "svc" && s.event_id.is_none()),
            "the watermark emitted svc's decay"
        );
        let mut late = svc_call(t, 5 * 60_000, "cloudtrail:StopLogging", "trail/main");
        late.source_ip = Some("203.0.113.7".into());
        late.user_agent = Some("curl/8.1".into());
        e.process(&late, &mut out)
            .expect("within svc's own lateness");
        let table = crate::risk_table::RiskTable::new();
        let mut last = None;
        for signal in out.drain(..).filter(|s| s.identity == "svc") {
            last = Some(signal.clone());
            table.apply(signal);
        }
        let last = last.expect("svc signals");
        assert!(last.level >= Level::High, "the late event alerts: {last:?}");
        let shown = table.get("svc").expect("svc in the table");
        assert_eq!(
            shown.signal.score, last.score,
            "the table shows the late alert"
        );

        // More late calls of svc, ordinary ones, while the other stream goes on. Each
        // reckoned at its own time, they disagreed with the decay signals in between,
        // and the published score went down and up again on every call.
        for k in 1..=6 {
            call_as(&mut e, "other".into(), t + (50 + k) * 60_000, &mut out);
            let ordinary = svc_call(
                t,
                (5 + k) * 60_000,
                "s3:GetObject",
                "arn:aws:s3:::orders/1.json",
            );
            e.process(&ordinary, &mut out).expect("in svc's lateness");
        }
        let later: Vec<f64> = out
            .iter()
            .filter(|s| s.identity == "svc")
            .map(|s| s.score)
            .collect();
        assert!(!later.is_empty(), "the score decays meanwhile");
        assert!(
            std::iter::once(last.score)
                .chain(later.iter().copied())
                .collect::<Vec<_>>()
                .windows(2)
                .all(|w| w[1] < w[0]),
            "svc's score only decays with no new evidence: {} then {later:?}",
            last.score
        );
    }

    #[test]
    fn snapshot_round_trip_restores_same_behaviour() {
        let mut a = engine();
        let mut out = Vec::new();
        let t = history(&mut a, &mut out);
        let dirty = a.take_dirty();
        assert_eq!(dirty.len(), 1);
        let mut b = engine();
        for (k, v) in &dirty {
            b.restore(k, v).expect("restores");
        }
        assert_eq!(a.identity("svc"), b.identity("svc"));
        assert!(a.take_dirty().is_empty());
        assert!(b.restore("x", &[1, 2, 3]).is_err());
        assert!(b.forget("svc"));
        assert_eq!(b.events_seen("svc"), None);
        let _ = t;
    }

    #[test]
    fn a_state_from_an_older_generalisation_relearns_its_destinations_for_a_day() {
        let mut a = engine();
        let mut out = Vec::new();
        let t = history(&mut a, &mut out);
        let (_, snapshot) = a.take_dirty().pop().expect("dirty state");
        // The same state as version 6 wrote it: without what versions 7 and 8 appended
        // (the relearning hours; the last two hours' active buckets and the carried
        // signs' sensitivity: a byte each).
        // (and version 9's sensitive reads, here unlearned: six zero bytes).
        let mut unlearned = Identity::decode(&snapshot, &a.params).expect("decodes");
        unlearned.sensitive_reads = Default::default();
        let mut v6 = unlearned.encode();
        // Version 9's six bytes, version 8's three, version 7's one.
        v6.truncate(v6.len() - (6 + 3 + 1));
        v6[0] = 6;
        let call = |e: &mut Engine, after_ms: i64, action: &str, dest: &str| {
            let mut out = Vec::new();
            e.process(&svc_call(t, after_ms, action, dest), &mut out)
                .expect("in order");
            out.into_iter().flat_map(|s| s.reasons).collect::<Vec<_>>()
        };
        let read = |e: &mut Engine, after_ms: i64, bucket: &str| {
            let dest = format!("arn:aws:s3:::{bucket}/x.json");
            call(e, after_ms, "s3:GetObject", &dest)
                .iter()
                .any(|r| r.detector == "new_destination" && !r.detail.starts_with("earlier"))
        };
        let day = 86_400_000;
        // Written by this generalisation: a new bucket is judged at once.
        let mut current = engine();
        current.restore("svc", &snapshot).expect("restores");
        assert!(read(&mut current, 600_000, "payroll-exports"));
        // Written by the older one, first called on five days after the restored time
        // (an idle identity): remembered, not judged, for a day from that call.
        let mut upgraded = engine();
        upgraded.restore("svc", &v6).expect("restores");
        assert!(!read(&mut upgraded, 5 * day, "payroll-exports"));
        // A restart inside that day keeps the same span: not restarted, not forgotten.
        let (_, mid) = upgraded.take_dirty().pop().expect("dirty state");
        assert_eq!(mid[0], crate::state::identity::SNAPSHOT_VERSION);
        let mut restarted = engine();
        restarted.restore("svc", &mid).expect("restores");
        assert!(!read(&mut restarted, 5 * day + 3_600_000, "ledger-exports"));
        // Relearning never hides a first deletion of an audit trail's logs, even by an
        // identity that deletes other log groups.
        call(
            &mut restarted,
            5 * day + 2 * 3_600_000 - 60_000,
            "logs:DeleteLogGroup",
            "arn:aws:logs:us-east-1:1:log-group:/aws/lambda/old-job",
        );
        let impair = call(
            &mut restarted,
            5 * day + 2 * 3_600_000,
            "logs:DeleteLogGroup",
            "arn:aws:logs:us-east-1:1:log-group:/aws/cloudtrail/org",
        );
        assert!(
            impair.iter().any(|r| r.detail.contains("impairs logging")),
            "{impair:?}"
        );
        // After the day: judged again, and what it met stays met.
        assert!(!read(&mut restarted, 7 * day, "payroll-exports"));
        assert!(read(&mut restarted, 7 * day + 600_000, "audit-exports"));
    }

    #[test]
    fn restored_reasons_explain_the_decay_after_a_restart() {
        // Regression: reasons were not in the changelog, so an instance that restored
        // an elevated identity emitted its decay signals with no reasons at all.
        let mut a = engine();
        let mut out = Vec::new();
        let t = history(&mut a, &mut out);
        stolen_key_recon(
            &mut a,
            t,
            &["sts:GetCallerIdentity", "iam:ListRoles"],
            &mut out,
        );
        let reasons = a.reasons_of("svc").to_vec();
        assert!(!reasons.is_empty());
        let (_, snapshot) = a.take_dirty().pop().expect("dirty state");

        let decay_reasons = |restore_reasons: bool| {
            let mut b = engine();
            b.restore("svc", &snapshot).expect("restores");
            if restore_reasons {
                b.restore_reasons("svc", reasons.clone());
            }
            let mut out = Vec::new();
            b.advance_to(t + 3_600_000, &mut out);
            assert!(!out.is_empty(), "a decay signal");
            out.into_iter().flat_map(|s| s.reasons).collect::<Vec<_>>()
        };
        assert!(
            decay_reasons(false).is_empty(),
            "the bug this guards against"
        );
        let restored = decay_reasons(true);
        assert!(
            restored.iter().any(|r| r.detector == "new_source"),
            "{restored:?}"
        );
    }

    #[test]
    fn a_new_identity_stopping_the_audit_trail_alerts_while_still_learning() {
        let mut e = engine();
        let mut out = Vec::new();
        let t = 1_700_000_000_000;
        let mut call = |action: &str, t: i64, out: &mut Vec<Signal>| {
            let mut ev = ActivityEvent {
                time_ms: t,
                identity: "arn:aws:iam::1:role/fresh".into(),
                action: action.into(),
                destination: "arn:aws:cloudtrail:us-east-1:1:trail/org".into(),
                ..ActivityEvent::default()
            };
            ev.source_ip = Some("198.51.100.7".into());
            e.process(&ev, out).expect("in bounds");
        };
        call("cloudtrail:DescribeTrails", t, &mut out);
        assert!(out.iter().all(|s| s.level == Level::Normal), "{out:?}");
        out.clear();
        call("cloudtrail:StopLogging", t + 60_000, &mut out);
        let s = out.last().expect("a signal");
        assert_eq!(s.state, IdentityState::Learning);
        assert!(s.level >= Level::High, "{s:?}");
        assert_eq!(s.reasons[0].detector, "new_action");
    }

    #[test]
    fn a_broad_identity_is_not_blind_to_its_first_stop_logging() {
        // A controller that meets hundreds of actions overflows its exact action set
        // into the shared sketch, which then answers "seen" for nearly anything.
        let mut e = engine();
        let mut out = Vec::new();
        let mut t = T0;
        for day in 0..6i64 {
            for k in 0..400i64 {
                t = T0 + day * 86_400_000 + k * 200_000;
                let action = format!("svc{}:Op{}", k % 50, (k * 7 + day) % 400);
                let destination = format!("arn:aws:svc:us-east-1:1:thing/t{}", k % 300);
                e.process(&svc_call(t, 0, &action, &destination), &mut out)
                    .expect("in order");
            }
        }
        let state = e.identity("svc").expect("tracked");
        assert_ne!(
            state.overflowed & (1 << SeenKind::Action as u8),
            0,
            "the action set overflowed"
        );
        out.clear();
        let stop = svc_call(
            t,
            60_000,
            "cloudtrail:StopLogging",
            "arn:aws:cloudtrail:us-east-1:1:trail/org",
        );
        e.process(&stop, &mut out).expect("in order");
        let first = out.iter().map(|s| s.score).fold(0.0, f64::max);
        assert!(first >= 60.0, "first StopLogging: {out:?}");
        assert!(out.iter().any(|s| s
            .reasons
            .iter()
            .any(|r| r.detail.contains("impairs logging"))));
        // Once made, it is remembered exactly: a week later the second is not "first"
        // again (the last signal is the one for that event; the others are decays).
        out.clear();
        let later = svc_call(
            t,
            7 * 86_400_000,
            "cloudtrail:StopLogging",
            "arn:aws:cloudtrail:us-east-1:1:trail/org",
        );
        e.process(&later, &mut out).expect("in order");
        let last = out.last().expect("a signal");
        assert_eq!(last.time, format_time_ms(later.time_ms));
        assert!(last.reasons.is_empty(), "{last:?}");
    }

    #[test]
    fn removing_kubernetes_admission_webhooks_impairs_defences() {
        for (action, destination) in [
            (
                "delete validatingwebhookconfigurations",
                "validatingwebhookconfigurations/gatekeeper-validating-webhook-configuration",
            ),
            (
                "delete mutatingwebhookconfigurations",
                "mutatingwebhookconfigurations/kyverno",
            ),
        ] {
            let mut e = engine();
            let mut out = Vec::new();
            let t = history(&mut e, &mut out);
            out.clear();
            e.process(&svc_call(t, 60_000, action, destination), &mut out)
                .expect("in order");
            let top = out.iter().map(|s| s.score).fold(0.0, f64::max);
            assert!(top >= 60.0, "{action}: {out:?}");
        }
    }

    #[test]
    fn deleting_a_security_agents_daemonset_impairs_defences_but_other_deletions_do_not() {
        let mut e = engine();
        let mut out = Vec::new();
        let t = history(&mut e, &mut out);
        // A DaemonSet deletion of something else is a plain new action.
        out.clear();
        e.process(
            &svc_call(
                t,
                60_000,
                "delete daemonsets",
                "monitoring/daemonsets/node-exporter",
            ),
            &mut out,
        )
        .expect("in order");
        let top = out.iter().map(|s| s.score).fold(0.0, f64::max);
        assert!(top < 60.0, "{out:?}");
        // The same, now known, action on Falco's DaemonSet: the destination is new.
        out.clear();
        e.process(
            &svc_call(t, 120_000, "delete daemonsets", "falco/daemonsets/falco"),
            &mut out,
        )
        .expect("in order");
        let alert = out.iter().find(|s| s.score >= 60.0).expect("alerts");
        assert!(
            alert.reasons[0]
                .detail
                .contains("first delete daemonsets of falco/daemonsets/falco"),
            "{alert:?}"
        );
    }

    #[test]
    fn deleting_the_audit_trails_log_group_impairs_defences_but_an_apps_does_not() {
        // ATT&CK T1562.008: the log group CloudTrail delivers to, deleted by an identity
        // that deletes log groups as part of its job.
        let mut e = engine();
        let mut out = Vec::new();
        let t = history(&mut e, &mut out);
        let group = |name: &str| format!("arn:aws:logs:us-east-1:123456789012:log-group:{name}");
        let mut call = |after_ms: i64, name: &str| {
            let mut out = Vec::new();
            let ev = svc_call(t, after_ms, "logs:DeleteLogGroup", &group(name));
            e.process(&ev, &mut out).expect("in order");
            out
        };
        // A first delete is a new sensitive action either way, but no impairment.
        let first = call(60_000, "/aws/lambda/orders-api");
        assert!(
            first
                .iter()
                .flat_map(|s| &s.reasons)
                .all(|r| !r.detail.contains("impairs logging")),
            "{first:?}"
        );
        // Once the action is known, another application's group is routine...
        let routine = call(7_200_000, "/aws/lambda/cart-api");
        // (The signals before it are the first alert's decay, due on the way.)
        let own = routine.last().expect("a signal for the call");
        assert!(own.level < Level::High, "{own:?}");
        // ... and the audit trail's is not.
        let trail = call(7_260_000, "/aws/cloudtrail/org");
        let alert = trail.iter().find(|s| s.score >= 60.0).expect("alerts");
        assert!(
            alert.reasons[0].detail.contains("impairs logging"),
            "{alert:?}"
        );
    }

    #[test]
    fn impair_defences_can_be_emptied() {
        let config =
            Config::from_toml_str("[score]\nimpair_defences = []\n").expect("valid config");
        let mut e = Engine::new(&config);
        let mut out = Vec::new();
        let ev = ActivityEvent {
            time_ms: 1_700_000_000_000,
            identity: "arn:aws:iam::1:role/fresh".into(),
            action: "cloudtrail:StopLogging".into(),
            destination: "arn:aws:cloudtrail:us-east-1:1:trail/org".into(),
            ..ActivityEvent::default()
        };
        e.process(&ev, &mut out).expect("in bounds");
        assert!(out.iter().all(|s| s.level == Level::Normal), "{out:?}");
    }

    #[test]
    fn cap_is_enforced_and_counted() {
        let mut e = capped(100);
        let mut out = Vec::new();
        for i in 0..1000 {
            call_as(&mut e, format!("id-{i}"), T0 + i, &mut out);
        }
        assert!(e.identities() <= 100);
        assert_eq!(e.stats().evicted, 900);
        assert_eq!(e.take_evicted().len(), 900);
        assert!(e.take_evicted().is_empty());
    }

    #[test]
    fn origins_go_with_evictions_and_select_what_to_forget() {
        let mut e = capped(100);
        let mut out = Vec::new();
        for i in 0..100 {
            let name = format!("id-{i:03}");
            call_as(&mut e, name.clone(), T0 + i, &mut out);
            if let Some(o) = e.origin_mut(&name) {
                o.partition = (i % 4) as i32;
                o.offset = i;
            }
        }
        // Partition 3's identities are revoked.
        assert_eq!(e.forget_where(|o| o.partition == 3).len(), 25);
        assert_eq!(e.identities(), 75);
        assert!(e.origin("id-003").is_none() && e.origin("id-002").is_some());
        // Fill to the cap and one more: the least recently active (id-000) goes, with
        // the origin it had, so its tombstone can reach its changelog partition.
        for i in 100..126 {
            call_as(&mut e, format!("id-{i:03}"), T0 + i, &mut out);
        }
        let evicted = e.take_evicted();
        let first = evicted.iter().find(|ev| ev.identity == "id-000");
        assert_eq!(
            first.map(|ev| (ev.origin.partition, ev.origin.offset, ev.dormant)),
            Some((0, 0, None)),
            "evicted for the cap: a tombstone; {evicted:?}"
        );
    }

    const DAY: i64 = 86_400_000;

    /// `svc`'s ten quiet days, then 60 days in which only `other` calls (moving event
    /// time on, so `svc` is evicted as idle), then `svc` again from `ip`.
    fn dormant_return(e: &mut Engine, ip: &str) -> (i64, Vec<Signal>) {
        let mut out = Vec::new();
        let last = history(e, &mut out);
        let mut t = last;
        while t < last + 60 * DAY {
            t += 6 * 3_600_000;
            call_as(e, "other".into(), t, &mut out);
        }
        out.clear();
        let mut back = svc_call(t, 60_000, "s3:GetObject", "arn:aws:s3:::orders/1.json");
        back.source_ip = Some(ip.into());
        e.process(&back, &mut out).expect("in order");
        (last, out)
    }

    fn reason<'a>(signal: &'a Signal, detector: &str) -> Option<&'a str> {
        signal
            .reasons
            .iter()
            .find(|r| r.detector == detector)
            .map(|r| r.detail.as_str())
    }

    #[test]
    fn a_dormant_identity_acting_again_is_elevated_and_high_from_outside() {
        let mut e = engine();
        let (last, out) = dormant_return(&mut e, "10.1.2.3");
        let signal = out.iter().find(|s| s.identity == "svc").expect("a signal");
        assert_eq!(signal.level, Level::Elevated, "{signal:?}");
        assert_eq!(
            signal.state,
            IdentityState::Learning,
            "its baseline is gone"
        );
        let detail = reason(signal, "off_hours").expect("the return is the reason");
        assert!(detail.contains("after 60 days"), "{detail}");
        assert!(detail.contains(&format_time_ms(last)[..10]), "{detail}");
        assert_eq!(e.dormant(), 0, "it is live again");

        // The same return from a public network it never used is an alert.
        let mut e = engine();
        let (_, out) = dormant_return(&mut e, "203.0.113.50");
        let signal = out.iter().find(|s| s.identity == "svc").expect("a signal");
        assert!(signal.level >= Level::High, "{signal:?}");
        let detail = reason(signal, "new_source").expect("the network is a reason");
        assert!(detail.contains("first public network"), "{detail}");
    }

    #[test]
    fn with_no_dormant_memory_a_return_learns_quietly() {
        let mut config = Config::default_config().expect("defaults");
        config.state.dormant_memory = crate::config::HumanDuration(std::time::Duration::ZERO);
        let mut e = Engine::new(&config);
        let (_, out) = dormant_return(&mut e, "203.0.113.50");
        assert!(
            out.iter()
                .filter(|s| s.identity == "svc")
                .all(|s| s.score == 0.0),
            "{out:?}"
        );
    }

    #[test]
    fn idle_evictions_become_dormant_markers_and_expire_into_tombstones() {
        let mut e = engine();
        let mut out = Vec::new();
        let last = history(&mut e, &mut out);
        if let Some(o) = e.origin_mut("svc") {
            o.partition = 2;
        }
        drop(e.take_evicted());
        let mut t = last;
        let mut marked = None;
        let mut deleted = None;
        while t < last + 420 * DAY {
            t += DAY / 2;
            call_as(&mut e, "other".into(), t, &mut out);
            for ev in e.take_evicted() {
                assert_eq!((ev.identity.as_str(), ev.origin.partition), ("svc", 2));
                match ev.dormant {
                    Some(mark) => marked = Some((t, mark)),
                    None => deleted = Some(t),
                }
            }
        }
        let (marked_at, mark) = marked.expect("a dormant marker");
        assert_eq!(
            mark,
            DormantMark {
                last_ms: last,
                public: false,
                events: 1440,
            }
        );
        assert!(marked_at >= last + 40 * DAY && marked_at < last + 44 * DAY);
        let deleted = deleted.expect("a tombstone once the memory passed");
        assert!(deleted >= last + 400 * DAY && deleted < last + 402 * DAY);
        assert_eq!(e.dormant(), 0);
    }

    #[test]
    fn revocation_and_tombstones_forget_dormant_identities() {
        let mark = DormantMark {
            last_ms: T0 - 90 * DAY,
            public: false,
            events: 50,
        };
        let mut e = engine();
        e.restore_dormant("on-2", 2, mark);
        e.restore_dormant("on-3", 3, mark);
        // Partition 3 is revoked: its dormant identity is the next owner's now.
        e.forget_where(|o| o.partition == 3);
        assert_eq!(e.dormant(), 1);
        // A tombstone read after a marker (the memory expired elsewhere) forgets it.
        e.forget("on-2");
        assert_eq!(e.dormant(), 0);
        assert!(e.take_evicted().is_empty(), "forgetting writes nothing");
        // With the memory off, a restored marker is not kept, and is deleted.
        let mut config = Config::default_config().expect("defaults");
        config.state.dormant_memory = crate::config::HumanDuration(std::time::Duration::ZERO);
        let mut off = Engine::new(&config);
        off.restore_dormant("on-2", 2, mark);
        assert_eq!(off.dormant(), 0);
        let evicted = off.take_evicted();
        assert_eq!(evicted.len(), 1);
        assert_eq!(
            (
                evicted[0].identity.as_str(),
                evicted[0].origin.partition,
                evicted[0].dormant
            ),
            ("on-2", 2, None)
        );
    }

    #[test]
    fn restored_markers_are_remembered_and_states_after_them_win() {
        let mut e = engine();
        let mut out = Vec::new();
        // A marker from the changelog, then the identity returns from outside.
        e.restore_dormant(
            "svc",
            1,
            DormantMark {
                last_ms: T0 - 90 * DAY,
                public: false,
                events: 500,
            },
        );
        assert_eq!(e.dormant(), 1);
        let mut back = svc_call(T0, 0, "s3:GetObject", "arn:aws:s3:::orders/1.json");
        back.source_ip = Some("203.0.113.50".into());
        e.process(&back, &mut out).expect("first event");
        let signal = out.iter().find(|s| s.identity == "svc").expect("a signal");
        assert!(signal.level >= Level::High, "{signal:?}");
        assert!(reason(signal, "off_hours").is_some_and(|d| d.contains("after 90 days")));

        // A state written after the marker: the identity came back, it is not dormant.
        let mut e2 = engine();
        e2.restore_dormant(
            "svc",
            1,
            DormantMark {
                last_ms: T0 - 90 * DAY,
                public: false,
                events: 500,
            },
        );
        let dirty = e.take_dirty();
        let (_, snapshot) = dirty
            .iter()
            .find(|(k, _)| k == "svc")
            .expect("svc has state");
        e2.restore("svc", snapshot).expect("restores");
        assert_eq!(e2.dormant(), 0);
        // And a marker after a state replaces it.
        e2.restore_dormant(
            "svc",
            1,
            DormantMark {
                last_ms: T0,
                public: true,
                events: 3,
            },
        );
        assert_eq!((e2.identities(), e2.dormant()), (0, 1));
    }
}
