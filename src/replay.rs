//! `riskd replay`: score files offline, in event-time order, with exactly the engine the
//! service runs (design §9).
//!
//! Inputs are files, directories (walked recursively), `.gz` files, or `-` for stdin.
//! Files whose names carry a time are read in the order of that time, whatever their
//! directory: CloudTrail's S3 layout (`<region>/YYYY/MM/DD/…_20230710T1145Z_….json.gz`)
//! walked in name order would read one region's whole history before the next, and the
//! second region's events would all be older than the reorder window. The rest are read
//! after them in name order (the live `audit.log` after its rotated
//! `audit-2024-07-10T11-45-00.000.log` copies).
//! Each input is read either line by line (NDJSON, one CloudTrail record or audit event
//! per line) or, when it is one multi-line JSON document such as a CloudTrail
//! `{"Records":[...]}` file, as a whole. Lines are read with a bound so a hostile input
//! cannot exhaust memory.
//!
//! Real log files are only roughly sorted (CloudTrail delivers 5-minute files whose
//! records interleave), so decoded events pass through a bounded reorder buffer that
//! releases them in event-time order once they are `decode.max_lateness` behind the
//! newest event seen.
//!
//! A bad record never stops the run or changes the exit code: it is counted by reason
//! and, with `--dead-letter`, written out with its reason and position.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::Config;
use crate::decode::{self, Decoded, Format, Limits, RejectReason, Rejection};
use crate::engine::{Engine, Keyed, PREFETCH_DISTANCE};
use crate::event::ActivityEvent;
use crate::metrics::metrics;
use crate::signal::{Level, Signal};

/// Most events held for reordering; past this the oldest is released early, so memory
/// stays bounded on dense inputs.
const MAX_REORDER_EVENTS: usize = 1_000_000;
/// A whole-document input (CloudTrail envelope) may be this many times `max_record_bytes`.
const DOCUMENT_FACTOR: usize = 64;
/// Raw bytes of a rejected record kept in the dead-letter file.
const MAX_DEAD_LETTER_RAW: usize = 4096;
/// One in this many events is timed for the latency summary (timing costs ~5% otherwise).
const LATENCY_SAMPLE: u64 = 8;

#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub format: Format,
    pub output: Option<PathBuf>,
    pub dead_letter: Option<PathBuf>,
    pub paths: Vec<PathBuf>,
    /// Force the progress bar on or off; `None` shows it when stderr is a terminal.
    pub progress: Option<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read {path}: {source}")]
    Input { path: String, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Output { path: String, source: io::Error },
    #[error("{path}: not a file or directory")]
    NotAFile { path: String },
}

/// What a replay did, printed at the end and returned for tests.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplaySummary {
    /// Records read (lines, or records inside a CloudTrail document).
    pub records: u64,
    pub decoded: u64,
    pub skipped: u64,
    pub rejected: BTreeMap<String, u64>,
    pub identities: usize,
    /// Identities dropped by the cap (`state.max_identities`) or the idle TTL.
    pub evicted: u64,
    pub signals: BTreeMap<String, u64>,
    pub elapsed_seconds: f64,
    pub events_per_second: f64,
    /// Per-event scoring latency (sampled), nanoseconds.
    pub latency_p50_ns: u64,
    pub latency_p99_ns: u64,
    pub latency_p999_ns: u64,
}

impl ReplaySummary {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// Where a record came from, for dead-letter entries.
#[derive(Debug, Clone, Copy)]
struct Position {
    input: u32,
    line: u64,
    /// Index inside a `{"Records":[...]}` document.
    record: Option<u32>,
}

#[derive(Serialize)]
struct DeadLetter<'a> {
    source: &'a str,
    line: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<u32>,
    reason: &'static str,
    detail: &'a str,
    raw: &'a str,
}

struct Pending {
    time_ms: i64,
    seq: u64,
    /// With its prefetch keys, computed once, when the event is read (see
    /// `Engine::prefetch_ahead`).
    event: Keyed<Box<ActivityEvent>>,
    position: Position,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.time_ms, self.seq) == (other.time_ms, other.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.time_ms, self.seq).cmp(&(other.time_ms, other.seq))
    }
}

/// The reorder buffer: pops events in `(time_ms, seq)` order. Most inputs are already
/// in time order, so an event no older than the newest held one is appended to a queue
/// (O(1), instead of sifting a heap that holds the whole `max_lateness` window —
/// thousands of events at the default hour); only out-of-order events go to
/// the heap. Keys are unique (`seq`), so taking the smaller of the two fronts releases
/// exactly the sequence a single heap would.
#[derive(Default)]
struct Reorder {
    in_order: VecDeque<Pending>,
    late: BinaryHeap<Reverse<Pending>>,
}

impl Reorder {
    fn len(&self) -> usize {
        self.in_order.len() + self.late.len()
    }

    fn push(&mut self, pending: Pending) {
        match self.in_order.back() {
            Some(back) if *back > pending => self.late.push(Reverse(pending)),
            _ => self.in_order.push_back(pending),
        }
    }

    /// Event time of the next event `pop` would return.
    fn peek_time(&self) -> Option<i64> {
        match (self.in_order.front(), self.late.peek()) {
            (Some(a), Some(Reverse(b))) => Some(a.min(b).time_ms),
            (Some(a), None) => Some(a.time_ms),
            (None, Some(Reverse(b))) => Some(b.time_ms),
            (None, None) => None,
        }
    }

    fn pop(&mut self) -> Option<Pending> {
        let late_first = match (self.in_order.front(), self.late.peek()) {
            (Some(a), Some(Reverse(b))) => b < a,
            (None, Some(_)) => true,
            _ => false,
        };
        if late_first {
            self.late.pop().map(|Reverse(p)| p)
        } else {
            self.in_order.pop_front()
        }
    }
}

/// A batch of events for reuse. They travel boxed everywhere else (`Item::Event`,
/// `Pending`), so the batch holds the same boxes: moving one in or out never copies it.
#[allow(clippy::vec_box)]
type Spares = Vec<Box<ActivityEvent>>;

/// What the reader thread hands to the scoring thread, in input order.
enum Item {
    /// Keyed on this thread: hashing the names for the engine is work taken off the
    /// scoring thread, the slower of the two.
    Event(Keyed<Box<ActivityEvent>>, Position),
    Skipped,
    Rejected(Rejection, Position, Vec<u8>),
}

/// Events between the one leaving the reorder buffer and the one whose fields are then
/// prefetched (see `Replay::push`): enough for the loads to complete first.
const FIELDS_PREFETCH_DISTANCE: usize = 8;

/// Items per channel message: large enough that channel overhead vanishes, small enough
/// that the two threads overlap.
const BATCH: usize = 256;
/// Batches in flight between the threads; bounds memory when scoring is the slower side.
/// Scoring is the slower side on this input, so the queue is usually full: a short one
/// keeps the events it reads closer to cache (1024 × 8 measured slightly slower).
const BATCHES_IN_FLIGHT: usize = 4;
/// Batches of scored events on their way back to the reader for reuse. When the channel
/// is full the scoring side just drops them, so this also bounds memory (64 × 256 events;
/// peak RSS on s66 52 -> 60 MB). The events in circulation follow the reorder buffer, which holds
/// `decode.max_lateness` of traffic and so swells and shrinks with the traffic's daily
/// rhythm: with room for 4 batches, 11% of the first million events of a 400-identity
/// fleet were allocated afresh (and dropped later, freed by the other thread); with 64,
/// 2.4%.
const RECYCLE_IN_FLIGHT: usize = 64;
/// Text capacity above which a scored event is dropped, not recycled: a field cut to its
/// limit on the serde path keeps the buffer of its full length (up to a record's size),
/// and thousands of recycled events could hold such buffers long after a surge.
const MAX_RECYCLED_TEXT_BYTES: usize = 16 << 10;

/// Reads and decodes inputs on its own thread, so decoding (about half the per-event
/// cost) overlaps with scoring on the other core.
struct Reader {
    format: Format,
    limits: Limits,
    batch: Vec<Item>,
    scratch: Vec<Decoded>,
    tx: std::sync::mpsc::SyncSender<Vec<Item>>,
    /// Scored events sent back by the scoring side. Decoding native events into them
    /// reuses their string buffers, so the two threads do not pay for ~10 allocations
    /// per event plus frees of memory from the other thread's malloc arena.
    recycled: std::sync::mpsc::Receiver<Spares>,
    spare: Spares,
}

/// The scoring side: engine, reorder buffer, writers and counters.
struct Replay<'a> {
    engine: Engine,
    horizon_ms: i64,
    reorder: Reorder,
    /// Events released by the reorder buffer, in order, not scored yet: held back
    /// [`PREFETCH_DISTANCE`] events so the engine can prefetch their state while it
    /// scores the ones before (`Engine::prefetch_ahead`). Scoring order is unchanged;
    /// an event the engine rejects reaches the dead-letter file that much later, so a
    /// decode rejection read meanwhile may be listed before it (the dead-letter file
    /// was never in input order: the reorder buffer already delays scoring).
    ready: VecDeque<Pending>,
    newest_ms: i64,
    seq: u64,
    out: Box<dyn Write + 'a>,
    output_name: String,
    dead: Option<(BufWriter<File>, String)>,
    sources: Vec<String>,
    summary: ReplaySummary,
    rejected: [u64; RejectReason::ALL.len()],
    signals: [u64; 4],
    detector_fired_before: [u64; 8],
    scratch_signals: Vec<Signal>,
    latency: hdrhistogram::Histogram<u64>,
    output_closed: bool,
    /// Scored events collected for the reader to reuse (see `Reader::recycled`).
    recycle: Spares,
    recycle_tx: std::sync::mpsc::SyncSender<Spares>,
}

/// Runs a replay with the given options and prints the summary to stderr.
pub fn run(config: &Config, options: &ReplayOptions) -> Result<ReplaySummary, ReplayError> {
    let inputs = expand_inputs(&options.paths)?;
    let total_bytes: u64 = inputs
        .iter()
        .filter_map(|p| {
            (p != Path::new("-"))
                .then(|| std::fs::metadata(p).ok())
                .flatten()
        })
        .map(|m| m.len())
        .sum();
    let show_progress = options
        .progress
        .unwrap_or_else(|| io::stderr().is_terminal());
    let progress = show_progress.then(|| progress_bar(total_bytes));

    let (out, output_name): (Box<dyn Write>, String) = match &options.output {
        Some(path) => {
            let file = File::create(path).map_err(|source| ReplayError::Output {
                path: path.display().to_string(),
                source,
            })?;
            (
                Box::new(BufWriter::with_capacity(1 << 16, file)),
                path.display().to_string(),
            )
        }
        None => (
            Box::new(BufWriter::with_capacity(1 << 16, io::stdout().lock())),
            "stdout".to_string(),
        ),
    };
    let dead = match &options.dead_letter {
        Some(path) => {
            let file = File::create(path).map_err(|source| ReplayError::Output {
                path: path.display().to_string(),
                source,
            })?;
            Some((BufWriter::new(file), path.display().to_string()))
        }
        None => None,
    };

    let (recycle_tx, recycled) = std::sync::mpsc::sync_channel::<Spares>(RECYCLE_IN_FLIGHT);
    // A replay writes no changelog. Past data is scored in its own time, but nothing
    // real comes from the future: that bound is the only clock a replay reads.
    let mut engine = Engine::new(config).without_changelog();
    engine.refuse_after(crate::risk_table::wall_clock_ms());
    let mut replay = Replay {
        engine,
        horizon_ms: config.decode.max_lateness.as_millis_i64(),
        reorder: Reorder::default(),
        ready: VecDeque::with_capacity(PREFETCH_DISTANCE + 1),
        newest_ms: i64::MIN,
        seq: 0,
        out,
        output_name,
        dead,
        sources: inputs.iter().map(|p| p.display().to_string()).collect(),
        summary: ReplaySummary::default(),
        rejected: [0; RejectReason::ALL.len()],
        signals: [0; 4],
        detector_fired_before: [0; 8],
        scratch_signals: Vec::new(),
        // Constant, valid bounds: this cannot fail.
        latency: hdrhistogram::Histogram::new_with_bounds(1, 60_000_000_000, 3)
            .expect("constant histogram bounds are valid"),
        output_closed: false,
        recycle: Vec::with_capacity(BATCH),
        recycle_tx,
    };
    replay.detector_fired_before = replay.engine.stats().detector_fired;

    let started = Instant::now();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Item>>(BATCHES_IN_FLIGHT);
    let format = options.format;
    let limits = Limits::from(&config.decode);
    let reader_progress = progress.clone();
    let reader_inputs = inputs.clone();
    let reader = std::thread::Builder::new()
        .name("riskd-replay-read".into())
        .spawn(move || {
            let mut reader = Reader {
                format,
                limits,
                batch: Vec::with_capacity(BATCH),
                scratch: Vec::new(),
                tx,
                recycled,
                spare: Vec::new(),
            };
            let read_bytes = Arc::new(AtomicU64::new(0));
            for (index, path) in reader_inputs.iter().enumerate() {
                let index = u32::try_from(index).unwrap_or(u32::MAX);
                let input = open_input(path, read_bytes.clone())?;
                if !reader.read_input(index, input, path, &read_bytes, reader_progress.as_ref())? {
                    // The scoring side hung up (closed output): stop reading.
                    return Ok(());
                }
            }
            reader.flush_batch();
            Ok(())
        })
        .map_err(|source| ReplayError::Input {
            path: "<reader thread>".into(),
            source,
        })?;

    let mut scoring_result = Ok(());
    for batch in rx.iter() {
        if let Err(e) = replay.consume(batch) {
            scoring_result = Err(e);
            break;
        }
        if replay.output_closed {
            break;
        }
    }
    // Dropping the receiver unblocks a reader that is still sending.
    drop(rx);
    let reader_result = reader.join().unwrap_or_else(|_| {
        Err(ReplayError::Input {
            path: "<reader thread>".into(),
            source: io::Error::other("reader thread panicked"),
        })
    });
    scoring_result?;
    reader_result?;
    replay.drain_all()?;
    replay.flush()?;
    if let Some(bar) = &progress {
        bar.finish_and_clear();
    }

    let summary = replay.finish(started.elapsed());
    print_summary(&summary);
    Ok(summary)
}

impl Reader {
    /// Reads one input; false when the scoring side has gone away.
    fn read_input(
        &mut self,
        index: u32,
        reader: Box<dyn Read>,
        path: &Path,
        read_bytes: &AtomicU64,
        progress: Option<&indicatif::ProgressBar>,
    ) -> Result<bool, ReplayError> {
        let input_err = |source| ReplayError::Input {
            path: path.display().to_string(),
            source,
        };
        let mut reader = BufReader::with_capacity(1 << 16, reader);
        let document_mode =
            self.format != Format::Native && looks_like_document(&mut reader).map_err(input_err)?;
        if document_mode {
            let cap = self.limits.max_record_bytes.saturating_mul(DOCUMENT_FACTOR);
            let mut buf = Vec::new();
            (&mut reader)
                .take(u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1))
                .read_to_end(&mut buf)
                .map_err(input_err)?;
            let position = Position {
                input: index,
                line: 1,
                record: None,
            };
            if buf.len() > cap {
                let rejection = Rejection::new(
                    RejectReason::TooLarge,
                    format!("document exceeds {cap} bytes ({DOCUMENT_FACTOR} x decode.max_record_bytes)"),
                );
                buf.truncate(MAX_DEAD_LETTER_RAW);
                if !self.push(Item::Rejected(rejection, position, buf)) {
                    return Ok(false);
                }
                // Drain the rest so the byte counter and progress stay honest.
                io::copy(&mut reader, &mut io::sink()).map_err(input_err)?;
            } else if !self.decode_record(&buf, position) {
                return Ok(false);
            }
        } else {
            let mut copied = Vec::with_capacity(1024);
            let mut line_no = 0u64;
            // A compact CloudTrail file is one line holding the whole `{"Records":[…]}`
            // envelope, which the decoder takes up to its envelope limit (each record
            // still checked on its own); capped at one record's size, a file over 1 MiB
            // was lost whole.
            let max = match self.format {
                Format::Cloudtrail | Format::Auto => self
                    .limits
                    .max_record_bytes
                    .saturating_mul(decode::cloudtrail::ENVELOPE_FACTOR),
                Format::Native | Format::K8sAudit => self.limits.max_record_bytes,
            };
            loop {
                // A line that is already whole in the read buffer is decoded in place;
                // only lines that straddle a refill (or overflow) are copied out.
                let buf = match reader.fill_buf() {
                    Ok(buf) => buf,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(input_err(e)),
                };
                // memchr's vector search: a word-at-a-time scan cost ~600 instructions
                // per 400-byte line, a tenth of the reader thread's work.
                let in_buffer = memchr::memchr(b'\n', buf).filter(|&i| i <= max);
                let (line, overflow) = match in_buffer {
                    Some(i) => (&buf[..i], false),
                    None => {
                        copied.clear();
                        let (read, overflow) =
                            read_bounded_line(&mut reader, &mut copied, max).map_err(input_err)?;
                        if read == 0 {
                            break;
                        }
                        (&copied[..], overflow)
                    }
                };
                line_no += 1;
                let position = Position {
                    input: index,
                    line: line_no,
                    record: None,
                };
                let alive = if overflow {
                    let rejection = Rejection::new(
                        RejectReason::TooLarge,
                        format!("line is longer than the limit for this format ({max} bytes)"),
                    );
                    let keep = MAX_DEAD_LETTER_RAW.min(line.len());
                    self.push(Item::Rejected(rejection, position, line[..keep].to_vec()))
                } else {
                    let trimmed = trim_ascii(line);
                    trimmed.is_empty() || self.decode_record(trimmed, position)
                };
                if let Some(i) = in_buffer {
                    reader.consume(i + 1);
                }
                if !alive {
                    return Ok(false);
                }
                if let Some(bar) = progress {
                    if line_no % 4096 == 0 {
                        bar.set_position(read_bytes.load(Ordering::Relaxed));
                    }
                }
            }
        }
        if let Some(bar) = progress {
            bar.set_position(read_bytes.load(Ordering::Relaxed));
        }
        Ok(true)
    }

    /// Decodes one record into items; false when the scoring side has gone away.
    fn decode_record(&mut self, raw: &[u8], position: Position) -> bool {
        if self.format == Format::Native {
            return self.decode_native(raw, position);
        }
        let mut decoded = std::mem::take(&mut self.scratch);
        decoded.clear();
        decode::decode(self.format, raw, &self.limits, &mut decoded);
        let multi = decoded.len() > 1;
        let mut alive = true;
        for (i, item) in decoded.drain(..).enumerate() {
            let position = Position {
                record: multi.then(|| u32::try_from(i).unwrap_or(u32::MAX)),
                ..position
            };
            let item = match item {
                Decoded::Event(event) => Item::Event(Keyed::new(event), position),
                Decoded::Skipped(_) => Item::Skipped,
                Decoded::Rejected(rejection) => {
                    // Inside a document the record's own bytes are not at hand; its
                    // position says where to find it.
                    let raw = if multi { &[][..] } else { raw };
                    let keep = MAX_DEAD_LETTER_RAW.min(raw.len());
                    Item::Rejected(rejection, position, raw[..keep].to_vec())
                }
            };
            alive = alive && self.push(item);
        }
        self.scratch = decoded;
        alive
    }

    /// The native hot path: `decode_native_into` a recycled event. Same items as
    /// `decode::decode` would give (one per record, never inside a document).
    fn decode_native(&mut self, raw: &[u8], position: Position) -> bool {
        let mut event = self.spare_event();
        let item = match decode::decode_native_into(raw, &self.limits, &mut event) {
            Ok(()) => Item::Event(Keyed::new(event), position),
            Err(rejection) => {
                self.spare.push(event);
                let keep = MAX_DEAD_LETTER_RAW.min(raw.len());
                Item::Rejected(rejection, position, raw[..keep].to_vec())
            }
        };
        self.push(item)
    }

    /// An event to decode into: a recycled one when the scoring side has sent some back.
    fn spare_event(&mut self) -> Box<ActivityEvent> {
        if let Some(event) = self.spare.pop() {
            return event;
        }
        if let Ok(batch) = self.recycled.try_recv() {
            self.spare = batch;
            if let Some(event) = self.spare.pop() {
                return event;
            }
        }
        Box::default()
    }

    fn push(&mut self, item: Item) -> bool {
        self.batch.push(item);
        if self.batch.len() >= BATCH {
            return self.flush_batch();
        }
        true
    }

    fn flush_batch(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        self.tx.send(batch).is_ok()
    }
}

impl Replay<'_> {
    fn consume(&mut self, batch: Vec<Item>) -> Result<(), ReplayError> {
        for item in batch {
            self.summary.records += 1;
            match item {
                Item::Event(event, position) => {
                    self.summary.decoded += 1;
                    self.push(event, position)?;
                }
                Item::Skipped => self.summary.skipped += 1,
                Item::Rejected(rejection, position, raw) => {
                    self.reject(&rejection, position, &raw)?;
                }
            }
            if self.output_closed {
                break;
            }
        }
        Ok(())
    }

    /// Adds an event to the reorder buffer and releases what is now safely in order.
    fn push(
        &mut self,
        event: Keyed<Box<ActivityEvent>>,
        position: Position,
    ) -> Result<(), ReplayError> {
        let time_ms = event.event().time_ms;
        self.newest_ms = self.newest_ms.max(time_ms);
        self.seq += 1;
        self.reorder.push(Pending {
            time_ms,
            seq: self.seq,
            event,
            position,
        });
        let release_before = self.newest_ms.saturating_sub(self.horizon_ms);
        while let Some(top_ms) = self.reorder.peek_time() {
            if top_ms < release_before || self.reorder.len() > MAX_REORDER_EVENTS {
                if let Some(pending) = self.reorder.pop() {
                    // Two stages, as for the state: the fields of an event further
                    // back, then the texts of this one (its fields loaded by then), three
                    // events before it is scored.
                    if let Some(later) = self.reorder.in_order.get(FIELDS_PREFETCH_DISTANCE) {
                        Engine::prefetch_event_fields(later.event.event());
                    }
                    Engine::prefetch_event_texts(pending.event.event());
                    self.ready.push_back(pending);
                    if self.ready.len() > PREFETCH_DISTANCE {
                        self.score_next()?;
                    }
                }
            } else {
                break;
            }
        }
        Ok(())
    }

    fn drain_all(&mut self) -> Result<(), ReplayError> {
        while let Some(pending) = self.reorder.pop() {
            self.ready.push_back(pending);
        }
        while !self.ready.is_empty() {
            self.score_next()?;
        }
        let mut signals = std::mem::take(&mut self.scratch_signals);
        signals.clear();
        if self.newest_ms != i64::MIN {
            self.engine.advance_to(self.newest_ms, &mut signals);
        }
        for signal in signals.drain(..) {
            self.emit(&signal)?;
        }
        self.scratch_signals = signals;
        Ok(())
    }

    /// Scores the oldest ready event, after hinting the cache about the ones behind it.
    fn score_next(&mut self) -> Result<(), ReplayError> {
        let Some(pending) = self.ready.pop_front() else {
            return Ok(());
        };
        // Outside the sampled scoring latency, which times `process` alone.
        self.engine
            .prefetch_ahead(self.ready.iter().map(|p| p.event.keys()));
        self.score(pending)
    }

    fn score(&mut self, pending: Pending) -> Result<(), ReplayError> {
        let mut signals = std::mem::take(&mut self.scratch_signals);
        signals.clear();
        let timed = pending.seq % LATENCY_SAMPLE == 0;
        let started = timed.then(Instant::now);
        let result = self.engine.process_keyed(&pending.event, &mut signals);
        if let Some(started) = started {
            let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            let _ = self.latency.record(nanos.max(1));
        }
        if let Err(rejection) = result {
            let raw = serde_json::to_vec(pending.event.event()).unwrap_or_default();
            self.reject(&rejection, pending.position, &raw)?;
        }
        for signal in signals.drain(..) {
            self.emit(&signal)?;
        }
        self.scratch_signals = signals;
        let event = pending.event.into_inner();
        if text_capacity(&event) <= MAX_RECYCLED_TEXT_BYTES {
            self.recycle.push(event);
        }
        if self.recycle.len() >= BATCH {
            let batch = std::mem::replace(&mut self.recycle, Vec::with_capacity(BATCH));
            // A full channel (reader has enough spares) or a finished reader: the
            // events are simply dropped here, as they were before recycling.
            let _ = self.recycle_tx.try_send(batch);
        }
        Ok(())
    }

    fn emit(&mut self, signal: &Signal) -> Result<(), ReplayError> {
        self.signals[signal.level as usize] += 1;
        if self.output_closed {
            return Ok(());
        }
        let result = serde_json::to_writer(&mut self.out, signal)
            .map_err(io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"));
        self.output_result(result)
    }

    /// A closed pipe (`riskd replay ... | head`) ends the output quietly; any other
    /// write error is fatal because signals would be lost.
    fn output_result(&mut self, result: io::Result<()>) -> Result<(), ReplayError> {
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.output_closed = true;
                Ok(())
            }
            Err(source) => Err(ReplayError::Output {
                path: self.output_name.clone(),
                source,
            }),
        }
    }

    fn reject(
        &mut self,
        rejection: &Rejection,
        position: Position,
        raw: &[u8],
    ) -> Result<(), ReplayError> {
        if let Some(slot) = RejectReason::ALL
            .iter()
            .position(|r| *r == rejection.reason)
        {
            self.rejected[slot] += 1;
        }
        let Some((writer, name)) = &mut self.dead else {
            return Ok(());
        };
        let source = self
            .sources
            .get(position.input as usize)
            .map(String::as_str)
            .unwrap_or("?");
        let raw_text = String::from_utf8_lossy(raw);
        let entry = DeadLetter {
            source,
            line: position.line,
            record: position.record,
            reason: rejection.reason.as_str(),
            detail: &rejection.detail,
            raw: &raw_text,
        };
        serde_json::to_writer(&mut *writer, &entry)
            .map_err(io::Error::from)
            .and_then(|()| writer.write_all(b"\n"))
            .map_err(|source| ReplayError::Output {
                path: name.clone(),
                source,
            })
    }

    fn flush(&mut self) -> Result<(), ReplayError> {
        let result = self.out.flush();
        self.output_result(result)?;
        if let Some((writer, name)) = &mut self.dead {
            writer.flush().map_err(|source| ReplayError::Output {
                path: name.clone(),
                source,
            })?;
        }
        Ok(())
    }

    fn finish(mut self, elapsed: Duration) -> ReplaySummary {
        let m = metrics();
        m.events_consumed
            .with_label_values(&["replay"])
            .inc_by(self.summary.records);
        for (slot, reason) in RejectReason::ALL.iter().enumerate() {
            if self.rejected[slot] > 0 {
                m.rejected(*reason).inc_by(self.rejected[slot]);
                self.summary
                    .rejected
                    .insert(reason.as_str().to_string(), self.rejected[slot]);
            }
        }
        for level in Level::ALL {
            let n = self.signals[level as usize];
            m.signals_published
                .with_label_values(&[level.as_str()])
                .inc_by(n);
            self.summary.signals.insert(level.as_str().to_string(), n);
        }
        let fired = self.engine.stats().detector_fired;
        for (i, name) in crate::metrics::DETECTORS.iter().enumerate() {
            let delta = fired[i].saturating_sub(self.detector_fired_before[i]);
            m.detector_fired.with_label_values(&[name]).inc_by(delta);
        }
        m.identities_tracked
            .set(i64::try_from(self.engine.identities()).unwrap_or(i64::MAX));
        m.identities_dormant
            .set(i64::try_from(self.engine.dormant()).unwrap_or(i64::MAX));
        self.summary.evicted = self.engine.stats().evicted;
        m.identities_evicted.inc_by(self.summary.evicted);
        self.summary.identities = self.engine.identities();
        self.summary.elapsed_seconds = elapsed.as_secs_f64();
        self.summary.events_per_second = if elapsed.as_secs_f64() > 0.0 {
            self.summary.decoded as f64 / elapsed.as_secs_f64()
        } else {
            0.0
        };
        if !self.latency.is_empty() {
            self.summary.latency_p50_ns = self.latency.value_at_quantile(0.5);
            self.summary.latency_p99_ns = self.latency.value_at_quantile(0.99);
            self.summary.latency_p999_ns = self.latency.value_at_quantile(0.999);
        }
        self.summary
    }
}

fn print_summary(s: &ReplaySummary) {
    let rejected: Vec<String> = s.rejected.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let signals: Vec<String> = Level::ALL
        .iter()
        .map(|l| format!("{} {}", l.as_str(), s.signals.get(l.as_str()).unwrap_or(&0)))
        .collect();
    eprintln!(
        "replay: {} records read, {} decoded, {} rejected{}, {} skipped",
        s.records,
        s.decoded,
        s.rejected_total(),
        if rejected.is_empty() {
            String::new()
        } else {
            format!(" ({})", rejected.join(", "))
        },
        s.skipped
    );
    eprintln!(
        "replay: {} identities ({} evicted), {} signals ({})",
        s.identities,
        s.evicted,
        s.signals.values().sum::<u64>(),
        signals.join(", ")
    );
    eprintln!(
        "replay: {:.2} s, {:.0} events/s; scoring latency p50 {:.2} µs, p99 {:.2} µs, p999 {:.2} µs",
        s.elapsed_seconds,
        s.events_per_second,
        s.latency_p50_ns as f64 / 1000.0,
        s.latency_p99_ns as f64 / 1000.0,
        s.latency_p999_ns as f64 / 1000.0
    );
}

fn progress_bar(total_bytes: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total_bytes),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
    ) {
        bar.set_style(style);
    }
    bar
}

/// Expands directories (recursively, sorted by name for a stable order) and checks that
/// every path is readable before any work starts: an unusable path is the one thing that
/// fails a replay, and it should fail before output is half written.
fn expand_inputs(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ReplayError> {
    let mut out = Vec::new();
    for path in paths {
        if path == Path::new("-") {
            out.push(path.clone());
            continue;
        }
        let meta = std::fs::metadata(path).map_err(|source| ReplayError::Input {
            path: path.display().to_string(),
            source,
        })?;
        if meta.is_dir() {
            walk_dir(path, &mut out)?;
        } else if meta.is_file() {
            File::open(path).map_err(|source| ReplayError::Input {
                path: path.display().to_string(),
                source,
            })?;
            out.push(path.clone());
        } else {
            return Err(ReplayError::NotAFile {
                path: path.display().to_string(),
            });
        }
    }
    // Stable: files with the same time, or none, keep their name order.
    out.sort_by_key(|p| name_time(p).unwrap_or(u64::MAX));
    Ok(out)
}

/// The time a log file's name carries, as the number `YYYYMMDDHHMM` (so ordering the
/// numbers orders the times): CloudTrail's `_20230710T1145Z_`, or an ISO-style
/// `2023-07-10T11-45` / `2023-07-10T11:45` (kube-apiserver's rotated audit logs). The
/// last such time in the name wins (a directory part may hold another date). `None`
/// for a name without one, and for stdin.
fn name_time(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?.as_bytes();
    let digits = |b: &[u8]| -> Option<u64> {
        b.iter().try_fold(0u64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u64::from(c - b'0'))
        })
    };
    let valid = |y: u64, mo: u64, d: u64, h: u64, mi: u64| {
        (1970..=9999).contains(&y)
            && (1..=12).contains(&mo)
            && (1..=31).contains(&d)
            && h < 24
            && mi < 60
    };
    let mut found = None;
    for start in 0..name.len() {
        let rest = &name[start..];
        // Basic form: YYYYMMDDTHHMM.
        if rest.len() >= 13 && rest[8] == b'T' {
            if let (Some(date), Some(time)) = (digits(&rest[..8]), digits(&rest[9..13])) {
                let (y, mo, d) = (date / 10_000, date / 100 % 100, date % 100);
                if valid(y, mo, d, time / 100, time % 100) {
                    found = Some(date * 10_000 + time);
                }
            }
        }
        // Extended form: YYYY-MM-DDTHH-MM or YYYY-MM-DDTHH:MM.
        if rest.len() >= 16
            && rest[4] == b'-'
            && rest[7] == b'-'
            && rest[10] == b'T'
            && matches!(rest[13], b'-' | b':')
        {
            let parts = (
                digits(&rest[..4]),
                digits(&rest[5..7]),
                digits(&rest[8..10]),
                digits(&rest[11..13]),
                digits(&rest[14..16]),
            );
            if let (Some(y), Some(mo), Some(d), Some(h), Some(mi)) = parts {
                if valid(y, mo, d, h, mi) {
                    found = Some(((y * 100 + mo) * 100 + d) * 10_000 + h * 100 + mi);
                }
            }
        }
    }
    found
}

fn walk_dir(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ReplayError> {
    let read_err = |source| ReplayError::Input {
        path: dir.display().to_string(),
        source,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read_err)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(read_err)?;
    entries.sort();
    for entry in entries {
        let name = entry.file_name().and_then(|n| n.to_str()).unwrap_or("");
        // Hidden files are editor droppings and licence notes are not logs.
        if name.starts_with('.') {
            continue;
        }
        if entry.is_dir() {
            walk_dir(&entry, out)?;
        } else if is_log_file(name) {
            out.push(entry);
        }
    }
    Ok(())
}

/// In a directory, only files that look like logs are read (an explicit file argument
/// is always read).
fn is_log_file(name: &str) -> bool {
    let name = name.strip_suffix(".gz").unwrap_or(name);
    [".json", ".ndjson", ".jsonl", ".log"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

/// Counts bytes as they are read from the underlying file (before gunzip), for the
/// progress bar.
struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

fn open_input(path: &Path, count: Arc<AtomicU64>) -> Result<Box<dyn Read>, ReplayError> {
    let raw: Box<dyn Read> = if path == Path::new("-") {
        Box::new(io::stdin().lock())
    } else {
        Box::new(File::open(path).map_err(|source| ReplayError::Input {
            path: path.display().to_string(),
            source,
        })?)
    };
    let counted = CountingReader { inner: raw, count };
    let mut buffered = BufReader::new(counted);
    // Sniff the gzip magic rather than trusting the extension: stdin has none.
    let is_gzip = buffered
        .fill_buf()
        .map(|b| b.starts_with(&[0x1f, 0x8b]))
        .map_err(|source| ReplayError::Input {
            path: path.display().to_string(),
            source,
        })?;
    if is_gzip {
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(buffered)))
    } else {
        Ok(Box::new(buffered))
    }
}

/// True when the input is one multi-line JSON document (a pretty-printed CloudTrail
/// file) rather than one record per line: it starts with `{` or `[` and its first line
/// is not a complete JSON value.
fn looks_like_document<R: BufRead>(reader: &mut R) -> io::Result<bool> {
    let buf = reader.fill_buf()?;
    let start = match buf.iter().position(|b| !b.is_ascii_whitespace()) {
        Some(i) => i,
        None => return Ok(false),
    };
    if buf[start] != b'{' && buf[start] != b'[' {
        return Ok(false);
    }
    let first_line = match buf[start..].iter().position(|&b| b == b'\n') {
        Some(end) => &buf[start..start + end],
        // One buffer without a newline: a single long line or a compact document;
        // either way the line reader hands it to the decoder whole.
        None => return Ok(false),
    };
    Ok(serde_json::from_slice::<serde::de::IgnoredAny>(first_line).is_err())
}

/// Reads one line (without the newline) into `line`, keeping at most `limit` bytes and
/// discarding the rest of an overlong line. Returns bytes consumed and whether the line
/// was cut.
fn read_bounded_line<R: BufRead>(
    reader: &mut R,
    line: &mut Vec<u8>,
    limit: usize,
) -> io::Result<(usize, bool)> {
    let mut consumed = 0;
    let mut overflow = false;
    loop {
        let buf = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok((consumed, overflow));
        }
        let (chunk, found) = match memchr::memchr(b'\n', buf) {
            Some(i) => (&buf[..i], Some(i)),
            None => (buf, None),
        };
        let room = limit.saturating_sub(line.len());
        if chunk.len() > room {
            overflow = true;
            line.extend_from_slice(&chunk[..room]);
        } else {
            line.extend_from_slice(chunk);
        }
        let used = found.map_or(buf.len(), |i| i + 1);
        reader.consume(used);
        consumed += used;
        if found.is_some() {
            return Ok((consumed, overflow));
        }
    }
}

/// Bytes the event's text fields hold allocated (attributes aside: few and short, and
/// rebuilt when their keys change).
fn text_capacity(event: &ActivityEvent) -> usize {
    let optional = [
        &event.event_id,
        &event.environment,
        &event.source_ip,
        &event.source_network,
        &event.user_agent,
    ];
    event.identity.capacity()
        + event.action.capacity()
        + event.destination.capacity()
        + optional
            .into_iter()
            .flatten()
            .map(String::capacity)
            .sum::<usize>()
}

fn trim_ascii(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_holding_large_buffers_are_not_recycled() {
        let mut event = ActivityEvent {
            identity: "ci-bot".into(),
            user_agent: Some("aws-cli/2".into()),
            ..ActivityEvent::default()
        };
        assert!(text_capacity(&event) <= MAX_RECYCLED_TEXT_BYTES);
        // A field cut to its limit keeps the buffer of its full length.
        let mut cut = String::with_capacity(1 << 20);
        cut.push_str("aws-cli/2");
        event.user_agent = Some(cut);
        assert!(text_capacity(&event) > MAX_RECYCLED_TEXT_BYTES);
    }

    #[test]
    fn reorder_releases_like_a_single_heap() {
        // Mostly ascending with late arrivals and ties, as real log files are.
        let times = [5, 7, 7, 3, 8, 8, 1, 9, 12, 10, 12, 4, 15, 15, 2];
        let mut reorder = Reorder::default();
        let mut heap = BinaryHeap::new();
        let pending = |seq: usize, time_ms: i64| Pending {
            time_ms,
            seq: seq as u64,
            event: Keyed::new(Box::default()),
            position: Position {
                input: 0,
                line: seq as u64,
                record: None,
            },
        };
        let mut released = Vec::new();
        let mut expected = Vec::new();
        for (seq, &t) in times.iter().enumerate() {
            reorder.push(pending(seq, t));
            heap.push(Reverse(pending(seq, t)));
            // Interleave pops with pushes, as `Replay::push` does.
            if seq % 3 == 2 {
                assert_eq!(reorder.peek_time(), heap.peek().map(|Reverse(p)| p.time_ms));
                released.extend(reorder.pop().map(|p| p.seq));
                expected.extend(heap.pop().map(|Reverse(p)| p.seq));
            }
            assert_eq!(reorder.len(), heap.len());
        }
        while let Some(p) = reorder.pop() {
            released.push(p.seq);
        }
        while let Some(Reverse(p)) = heap.pop() {
            expected.push(p.seq);
        }
        assert_eq!(released, expected);
    }

    #[test]
    fn bounded_line_cuts_and_skips_overlong_lines() {
        let data = b"short\nthis line is far too long\nok\n";
        let mut reader = BufReader::with_capacity(4, &data[..]);
        let mut line = Vec::new();
        assert_eq!(
            read_bounded_line(&mut reader, &mut line, 8).ok(),
            Some((6, false))
        );
        assert_eq!(line, b"short");
        line.clear();
        let (_, overflow) = read_bounded_line(&mut reader, &mut line, 8).expect("read");
        assert!(overflow);
        assert_eq!(line.len(), 8);
        line.clear();
        assert_eq!(
            read_bounded_line(&mut reader, &mut line, 8).ok(),
            Some((3, false))
        );
        assert_eq!(line, b"ok");
    }

    #[test]
    fn lines_across_buffer_refills_and_overlong_lines_keep_their_numbers() {
        // ~180 KB of lines: many straddle the 64 KiB read buffer, and line 500 is over
        // the record limit, so both the in-buffer and the copying path run.
        let dir = tempfile::tempdir().expect("tempdir");
        let mut text = String::new();
        for n in 1..=2000u64 {
            match n {
                500 => text.push_str(&format!("{{\"pad\":\"{}\"}}\n", "x".repeat(2000))),
                700 => text.push_str("{not json\n"),
                800 => text.push_str("   \n"),
                _ => text.push_str(&format!(
                    "{{\"time\":{},\"identity\":\"svc-{}\",\"action\":\"read\",\"destination\":\"bucket/{n}\",\"event_id\":\"{n:040}\"}}\n",
                    1_700_000_000_000 + n * 1000,
                    n % 7
                )),
            }
        }
        text.push_str(
            r#"{"time":1700002001000,"identity":"last","action":"a","destination":"no newline"}"#,
        );
        let input = dir.path().join("events.ndjson");
        std::fs::write(&input, &text).expect("write input");
        let dead = dir.path().join("dead.ndjson");
        let mut config = Config::default_config().expect("defaults");
        config.decode.max_record_bytes = 1024;
        let options = ReplayOptions {
            format: Format::Native,
            output: Some(dir.path().join("signals.ndjson")),
            dead_letter: Some(dead.clone()),
            paths: vec![input],
            progress: Some(false),
        };
        let summary = run(&config, &options).expect("replay");
        // 2001 lines, one blank (not a record).
        assert_eq!(summary.records, 2000);
        assert_eq!(summary.decoded, 1998);
        let dead = std::fs::read_to_string(dead).expect("dead letters");
        let lines: Vec<(u64, String)> = dead
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("json");
                (v["line"].as_u64().unwrap_or(0), v["reason"].to_string())
            })
            .collect();
        assert_eq!(
            lines,
            vec![
                (500, "\"too_large\"".to_string()),
                (700, "\"invalid_json\"".to_string())
            ]
        );
    }

    #[test]
    fn pretty_printed_document_is_detected() {
        let pretty = b"{\n  \"Records\": []\n}\n";
        assert!(looks_like_document(&mut &pretty[..]).expect("read"));
        let ndjson = b"{\"identity\":\"a\"}\n{\"identity\":\"b\"}\n";
        assert!(!looks_like_document(&mut &ndjson[..]).expect("read"));
        let garbage = b"not json\n";
        assert!(!looks_like_document(&mut &garbage[..]).expect("read"));
    }

    #[test]
    fn times_in_file_names_are_read() {
        let t = |n: &str| name_time(Path::new(n));
        assert_eq!(
            t("AWSLogs/1/CloudTrail/us-east-1/2023/07/10/218007301253_CloudTrail_us-east-1_20230710T1145Z_7xgo.json.gz"),
            Some(202307101145)
        );
        assert_eq!(t("audit-2024-01-31T23-05-00.000.log"), Some(202401312305));
        assert_eq!(t("k8s-2024-01-31T23:05:00Z.ndjson"), Some(202401312305));
        // No time, or something that only looks like one.
        assert_eq!(t("audit.log"), None);
        assert_eq!(t("events.ndjson"), None);
        assert_eq!(t("x_20231310T1145Z_y.json"), None, "month 13");
        assert_eq!(t("x_20230710T2461Z_y.json"), None, "24:61");
        assert_eq!(t("-"), None);
    }

    #[test]
    fn files_are_read_in_the_time_their_names_carry_across_directories() {
        let dir = tempfile::tempdir().expect("temp dir");
        let make = |rel: &str| {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
            std::fs::write(&path, b"{}\n").expect("write");
        };
        // Two regions: in name order every us-east-1 file comes before us-west-2's.
        make("us-east-1/2023/07/10/1_CloudTrail_us-east-1_20230710T1150Z_b.json");
        make("us-east-1/2023/07/10/1_CloudTrail_us-east-1_20230710T1200Z_a.json");
        make("us-west-2/2023/07/10/1_CloudTrail_us-west-2_20230710T1145Z_c.json");
        make("us-west-2/2023/07/10/1_CloudTrail_us-west-2_20230710T1155Z_d.json");
        // A live audit log beside its rotated copy: after it.
        make("k8s/audit.log");
        make("k8s/audit-2023-07-10T11-00-00.000.log");
        let files = expand_inputs(&[dir.path().to_path_buf()]).expect("expand");
        let names: Vec<String> = files
            .iter()
            .map(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("")
                    .to_string()
            })
            .collect();
        assert_eq!(
            names,
            [
                "audit-2023-07-10T11-00-00.000.log",
                "1_CloudTrail_us-west-2_20230710T1145Z_c.json",
                "1_CloudTrail_us-east-1_20230710T1150Z_b.json",
                "1_CloudTrail_us-west-2_20230710T1155Z_d.json",
                "1_CloudTrail_us-east-1_20230710T1200Z_a.json",
                "audit.log",
            ]
        );
    }

    #[test]
    fn only_log_files_are_taken_from_directories() {
        assert!(is_log_file("a.json") && is_log_file("a.json.gz") && is_log_file("x.ndjson"));
        assert!(!is_log_file("LICENSE") && !is_log_file("SOURCE_COMMIT"));
    }
}
