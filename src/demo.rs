//! `riskd demo`: the whole pipeline in one process with no external service (design §9).
//!
//! The built-in fleet generator produces a labelled NHI fleet with injected attacks; a
//! pipeline thread feeds its events to the [`Engine`] at a realistic pace (event time
//! starts now and runs `demo.speedup` times faster than the wall clock, at most
//! `demo.max_events_per_second`; `demo.backfill` first replays simulated history up to
//! now at that cap, so baselines exist and attacks appear sooner); signals land in a [`RiskTable`] that the HTTP API
//! serves on `api.listen`. On a terminal a live view redraws the riskiest identities
//! every second; otherwise each identity that turns high or critical is logged, plus a
//! summary every ten seconds.
//!
//! Shutdown, in order: Ctrl-C/SIGTERM (or `demo.duration` elapsing) cancels one token;
//! the pipeline thread sees it between ticks and returns; the API drains in-flight
//! requests; the live view restores the cursor and prints a last summary.

use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiError};
use crate::config::Config;
use crate::engine::Engine;
use crate::event::ActivityEvent;
use crate::risk_table::{wall_clock_ms, RiskTable, SharedRiskTable};
use crate::signal::{format_time_ms, Level, Signal};
use crate::source::generator::{Fleet, GenerateOptions};

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("the demo pipeline stopped unexpectedly: {0}")]
    Pipeline(String),
}

/// How often the pipeline thread wakes to feed the events now due.
const TICK: Duration = Duration::from_millis(50);
/// Interval of the plain-log summary when stdout is not a terminal.
const SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// Counters the pipeline thread publishes for the view (relaxed atomics: display only).
#[derive(Default)]
struct Progress {
    events: AtomicU64,
    signals: AtomicU64,
    rejected: AtomicU64,
    identities: AtomicU64,
    event_time_ms: AtomicI64,
    /// 1 once the generator has nothing more to give.
    exhausted: AtomicU64,
    /// Latest identities that turned high or critical, newest first: at the demo's speed a
    /// score decays within seconds, so the live view keeps these on screen.
    recent_alerts: Mutex<VecDeque<Signal>>,
}

/// Alerts kept for the live view.
const RECENT_ALERTS: usize = 8;

/// Runs the demo until `shutdown` is cancelled or `demo.duration` elapses.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), DemoError> {
    // A child token, so `demo.duration` can stop the demo without cancelling the caller's.
    let stop = shutdown.child_token();
    if !config.demo.duration.0.is_zero() {
        let stop = stop.clone();
        let duration = config.demo.duration.0;
        tokio::spawn(async move {
            tokio::time::sleep(duration).await;
            tracing::info!("demo.duration elapsed, stopping");
            stop.cancel();
        });
    }

    let listener = api::bind(&config).await?;
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| config.api.listen.clone());
    let table = RiskTable::new();
    // Nothing to restore: the demo's state starts empty and is complete from the start.
    table.set_ready(true);

    // The API runs as its own task; if it fails (port taken after bind, policy broken),
    // the select below ends the demo with its error.
    let server = {
        let table = table.clone();
        let config = config.clone();
        let stop = stop.clone();
        tokio::spawn(async move { api::serve(listener, table, &config, stop).await })
    };

    let progress = Arc::new(Progress::default());
    let start_ms = wall_clock_ms();
    progress.event_time_ms.store(start_ms, Ordering::Relaxed);
    let terminal = std::io::stdout().is_terminal();
    let pipeline = {
        let config = config.clone();
        let table = table.clone();
        let progress = progress.clone();
        let stop = stop.clone();
        tokio::task::spawn_blocking(move || {
            // With a backfill the fleet starts in the past; everything before now is due
            // at once and is fed at the events-per-second cap.
            let events = fleet(&config, start_ms - config.demo.backfill.as_millis_i64());
            feed(&config, events, &table, &progress, &stop, !terminal)
        })
    };

    tracing::info!(
        api = %format!("http://{addr}"),
        identities = config.demo.identities,
        speedup = config.demo.speedup,
        "demo running; Ctrl-C to stop"
    );
    let view = View {
        config: &config,
        table: &table,
        progress: &progress,
        addr: &addr,
        terminal,
    };
    let mut server = server;
    let mut pipeline = pipeline;
    // The pipeline ends on its own only when the fleet runs out or it fails (a panic):
    // either way the demo stops rather than serve a frozen table.
    let (server_result, pipeline_result) = tokio::select! {
        result = &mut server => (Some(result), None),
        result = &mut pipeline => (None, Some(result)),
        _ = view.run(&stop) => (None, None),
    };
    // Whatever ended first, stop the rest.
    stop.cancel();
    let server_result = match server_result {
        Some(r) => r,
        None => server.await,
    };
    let pipeline_result = match pipeline_result {
        Some(r) => r,
        None => pipeline.await,
    };
    view.finish();

    match server_result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e.into()),
        Err(e) => return Err(DemoError::Pipeline(format!("API task: {e}"))),
    }
    pipeline_result.map_err(|e| DemoError::Pipeline(e.to_string()))?;
    Ok(())
}

/// The event source: the built-in generator with attacks, its event time starting at
/// `start_ms`.
fn fleet(config: &Config, start_ms: i64) -> Box<dyn Iterator<Item = ActivityEvent> + Send> {
    let fleet = Fleet::new(&GenerateOptions {
        seed: config.demo.seed,
        identities: config.demo.identities,
        days: config.demo.days,
        start_ms,
        attacks: true,
    });
    let labels = fleet.labels();
    tracing::info!(
        identities = labels.identities.len(),
        attacks = labels.attacks.len(),
        fleet_end = %labels.fleet_end,
        "demo fleet generated"
    );
    Box::new(fleet)
}

/// The pipeline thread: feeds due events, applies signals, publishes progress.
fn feed(
    config: &Config,
    mut events: Box<dyn Iterator<Item = ActivityEvent> + Send>,
    table: &SharedRiskTable,
    progress: &Progress,
    stop: &CancellationToken,
    log_alerts: bool,
) {
    let metrics = crate::metrics::metrics();
    let consumed = metrics.events_consumed.with_label_values(&["demo"]);
    // The demo keeps no changelog.
    let mut engine = Engine::new(config).without_changelog();
    let start_ms = progress.event_time_ms.load(Ordering::Relaxed);
    let speedup = config.demo.speedup;
    let max_eps = config.demo.max_events_per_second as f64;
    let started = Instant::now();
    let mut last_tick = started;
    let mut pending: Option<ActivityEvent> = None;
    let mut exhausted = false;
    let mut out: Vec<Signal> = Vec::new();
    // Fractional event budget carried between ticks, so a low cap is still honoured.
    let mut budget = 0.0f64;
    // Engine counters already exported, so each tick adds only the difference.
    let mut fired_exported = [0u64; 8];
    let mut evicted_exported = 0u64;
    let fired: Vec<_> = crate::metrics::DETECTORS
        .iter()
        .map(|d| metrics.detector_fired.with_label_values(&[d]))
        .collect();

    while !stop.is_cancelled() {
        let now = Instant::now();
        let target_ms = start_ms
            .saturating_add((now.duration_since(started).as_secs_f64() * speedup * 1000.0) as i64);
        // At most one second's worth of budget, so a stall does not become a burst.
        budget = (budget + now.duration_since(last_tick).as_secs_f64() * max_eps).min(max_eps);
        last_tick = now;

        let mut fed = 0u64;
        let mut lagging = false;
        while !exhausted {
            if budget < 1.0 {
                lagging = true;
                break;
            }
            let Some(event) = pending.take().or_else(|| events.next()) else {
                exhausted = true;
                progress.exhausted.store(1, Ordering::Relaxed);
                tracing::info!("the demo fleet has no more events; the API keeps serving");
                break;
            };
            if event.time_ms > target_ms {
                pending = Some(event);
                break;
            }
            budget -= 1.0;
            fed += 1;
            if let Err(rejection) = engine.process(&event, &mut out) {
                metrics.rejected(rejection.reason).inc();
                progress.rejected.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Only move the watermark to "now" when caught up: advancing past events still
        // queued would make them too late.
        if !lagging {
            engine.advance_to(target_ms, &mut out);
        }
        consumed.inc_by(fed);
        let signals = out.len() as u64;
        for signal in out.drain(..) {
            metrics.signal_published(signal.level);
            if signal.level.is_alert() {
                // Only crossings into high/critical, not every step of a decaying score.
                let was_alert = table
                    .get(&signal.identity)
                    .is_some_and(|e| e.signal.level.is_alert());
                if !was_alert {
                    if log_alerts {
                        log_alert(&signal);
                    }
                    let mut recent = progress
                        .recent_alerts
                        .lock()
                        .unwrap_or_else(|p| p.into_inner());
                    recent.push_front(signal.clone());
                    recent.truncate(RECENT_ALERTS);
                }
            }
            table.apply(signal);
        }
        metrics.identities_tracked.set(engine.identities() as i64);
        let evicted = engine.stats().evicted;
        metrics
            .identities_evicted
            .inc_by(evicted.saturating_sub(evicted_exported));
        evicted_exported = evicted;
        let now_fired = engine.stats().detector_fired;
        for (i, counter) in fired.iter().enumerate() {
            counter.inc_by(now_fired[i].saturating_sub(fired_exported[i]));
        }
        fired_exported = now_fired;
        progress.events.fetch_add(fed, Ordering::Relaxed);
        progress.signals.fetch_add(signals, Ordering::Relaxed);
        progress
            .identities
            .store(engine.identities() as u64, Ordering::Relaxed);
        let shown_ms = if lagging && engine.watermark_ms() != i64::MIN {
            // Behind schedule (backfill, or the events-per-second cap): show where the
            // pipeline really is.
            engine.watermark_ms()
        } else if lagging {
            start_ms
        } else {
            target_ms
        };
        progress.event_time_ms.store(shown_ms, Ordering::Relaxed);

        std::thread::sleep(TICK.saturating_sub(now.elapsed()));
    }
}

fn log_alert(signal: &Signal) {
    let reasons: Vec<String> = signal
        .reasons
        .iter()
        .take(3)
        .map(|r| format!("{} {:.2}: {}", r.detector, r.strength, r.detail))
        .collect();
    tracing::info!(
        identity = %signal.identity,
        level = signal.level.as_str(),
        score = signal.score,
        time = %signal.time,
        reasons = %reasons.join("; "),
        "identity turned {}",
        signal.level.as_str()
    );
}

/// The terminal live view, or periodic log summaries when stdout is not a terminal.
struct View<'a> {
    config: &'a Config,
    table: &'a RiskTable,
    progress: &'a Progress,
    addr: &'a str,
    terminal: bool,
}

impl View<'_> {
    async fn run(&self, stop: &CancellationToken) {
        let every = if self.terminal {
            Duration::from_secs(1)
        } else {
            SUMMARY_EVERY
        };
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut last_events = 0u64;
        let mut last_at = Instant::now();
        if self.terminal {
            // Hide the cursor while redrawing; `finish` shows it again.
            print!("\x1b[?25l");
        }
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = interval.tick() => {}
            }
            let events = self.progress.events.load(Ordering::Relaxed);
            let elapsed = last_at.elapsed().as_secs_f64().max(1e-3);
            let rate = (events - last_events) as f64 / elapsed;
            last_events = events;
            last_at = Instant::now();
            if self.terminal {
                self.draw(rate);
            } else if events > 0 {
                self.summary(rate);
            }
        }
    }

    fn summary(&self, rate: f64) {
        let counts = self.table.level_counts();
        tracing::info!(
            event_time = %format_time_ms(self.progress.event_time_ms.load(Ordering::Relaxed)),
            events = self.progress.events.load(Ordering::Relaxed),
            events_per_second = rate.round(),
            signals = self.progress.signals.load(Ordering::Relaxed),
            identities = self.progress.identities.load(Ordering::Relaxed),
            normal = counts[0],
            elevated = counts[1],
            high = counts[2],
            critical = counts[3],
            "demo summary"
        );
    }

    fn draw(&self, rate: f64) {
        let width: usize = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(120)
            .max(80);
        let counts = self.table.level_counts();
        let p = self.progress;
        let mut s = String::with_capacity(4096);
        s.push_str("\x1b[H\x1b[2J");
        s.push_str(&format!(
            "\x1b[1mriskd demo\x1b[0m  API http://{}  (Ctrl-C to stop)\n",
            self.addr
        ));
        s.push_str(&format!(
            "event time {}  ({}x)  events {}  ({:.0}/s)  signals {}  identities {}{}\n",
            format_time_ms(p.event_time_ms.load(Ordering::Relaxed)),
            self.config.demo.speedup,
            p.events.load(Ordering::Relaxed),
            rate,
            p.signals.load(Ordering::Relaxed),
            p.identities.load(Ordering::Relaxed),
            if p.exhausted.load(Ordering::Relaxed) == 1 {
                "  (fleet finished)"
            } else {
                ""
            }
        ));
        s.push_str(&format!(
            "levels  {}normal {}\x1b[0m  {}elevated {}\x1b[0m  {}high {}\x1b[0m  {}critical {}\x1b[0m\n\n",
            color(Level::Normal),
            counts[0],
            color(Level::Elevated),
            counts[1],
            color(Level::High),
            counts[2],
            color(Level::Critical),
            counts[3]
        ));
        // Identities are long (ARNs, SPIFFE ids): give them half of what is left.
        let id_width = (width.saturating_sub(40) / 2).clamp(30, 72);
        s.push_str(&format!(
            "\x1b[1m{:<9} {:>5}  {:<8}  {:<id_width$}  TOP REASONS\x1b[0m\n",
            "LEVEL", "SCORE", "STATE", "IDENTITY"
        ));
        let reasons_width = width.saturating_sub(9 + 1 + 5 + 2 + 8 + 2 + id_width + 2);
        for entry in self.table.top(Level::Normal, self.config.demo.top) {
            let sig = &entry.signal;
            let mut reasons: Vec<&crate::signal::Reason> = sig.reasons.iter().collect();
            reasons.sort_by(|a, b| b.strength.total_cmp(&a.strength));
            let text: Vec<String> = reasons
                .iter()
                .take(3)
                .map(|r| format!("{} {:.2}", r.detector, r.strength))
                .collect();
            s.push_str(&format!(
                "{}{:<9}\x1b[0m {:>5.1}  {:<8}  {:<id_width$}  {}\n",
                color(sig.level),
                sig.level.as_str(),
                sig.score,
                sig.state.as_str(),
                truncate_left(&sig.identity, id_width),
                truncate(&text.join(", "), reasons_width)
            ));
        }
        let recent: Vec<Signal> = p
            .recent_alerts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        if !recent.is_empty() {
            s.push_str(
                "\n\x1b[1mRECENT ALERTS (event time, level, score, identity, top reason)\x1b[0m\n",
            );
        }
        for sig in &recent {
            let top = sig
                .reasons
                .iter()
                .max_by(|a, b| a.strength.total_cmp(&b.strength))
                .map(|r| format!("{}: {}", r.detector, r.detail))
                .unwrap_or_default();
            s.push_str(&format!(
                "{}  {}{:<8}\x1b[0m {:>5.1}  {:<id_width$}  {}\n",
                sig.time,
                color(sig.level),
                sig.level.as_str(),
                sig.score,
                truncate_left(&sig.identity, id_width),
                truncate(
                    &top,
                    width.saturating_sub(24 + 2 + 8 + 1 + 5 + 2 + id_width + 2)
                )
            ));
        }
        let mut stdout = std::io::stdout().lock();
        // A closed stdout (piped into `head`) is not worth stopping the demo for.
        let _ = stdout.write_all(s.as_bytes());
        let _ = stdout.flush();
    }

    fn finish(&self) {
        if self.terminal {
            print!("\x1b[?25h");
            let _ = std::io::stdout().flush();
        }
        let counts = self.table.level_counts();
        tracing::info!(
            events = self.progress.events.load(Ordering::Relaxed),
            signals = self.progress.signals.load(Ordering::Relaxed),
            rejected = self.progress.rejected.load(Ordering::Relaxed),
            high = counts[2],
            critical = counts[3],
            "demo stopped"
        );
    }
}

fn color(level: Level) -> &'static str {
    match level {
        Level::Normal => "\x1b[32m",
        Level::Elevated => "\x1b[33m",
        Level::High => "\x1b[31m",
        Level::Critical => "\x1b[1;41;97m",
    }
}

/// Cuts `text` to `width` characters with an ellipsis (by chars, not bytes: identities
/// can be any UTF-8).
fn truncate(text: &str, width: usize) -> String {
    let count = text.chars().count();
    if count <= width {
        return text.to_string();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Like [`truncate`] but keeps the end: ARNs and SPIFFE ids differ in their last part.
fn truncate_left(text: &str, width: usize) -> String {
    let count = text.chars().count();
    if count <= width {
        return text.to_string();
    }
    let mut out = String::from("…");
    out.extend(text.chars().skip(count - width.saturating_sub(1)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_width_in_chars() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate_left("abcdef", 4), "…def");
        assert_eq!(truncate_left("abc", 4), "abc");
        assert_eq!(truncate_left("ééééé", 3).chars().count(), 3);
    }
}
