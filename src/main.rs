//! The `riskd` binary: parses the command line, loads config, and calls the library.
//! Nothing here knows how scoring works (design §9 fixes this command line).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use riskd::config::Config;
use riskd::decode::Format;

#[derive(Parser)]
#[command(
    name = "riskd",
    version,
    about = "Behavioural risk scoring for non-human identities"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The service: Kafka in, signals out, HTTP API and metrics.
    Run {
        /// Config file layered over the defaults (then RISKD__* variables).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Everything embedded, no external service: generated fleet, pipeline, API, live view.
    Demo {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Score files in event-time order; signals as NDJSON.
    Replay {
        /// Input format of the records.
        #[arg(long, default_value = "auto")]
        format: Format,
        #[arg(long)]
        config: Option<PathBuf>,
        /// Write signals here instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Write each rejected record, with its reason and position, here (NDJSON).
        #[arg(long)]
        dead_letter: Option<PathBuf>,
        /// Files, directories, `.gz` files, or `-` for stdin.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Write a labelled synthetic NHI fleet: events (NDJSON) and labels (JSON).
    Generate {
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 200)]
        identities: usize,
        #[arg(long, default_value_t = 14)]
        days: u32,
        /// Fleet start (RFC 3339); event times run from here for `--days`.
        #[arg(long, default_value = "2026-11-02T00:00:00Z")]
        start: String,
        /// Generate only benign traffic (no labelled attacks).
        #[arg(long)]
        no_attacks: bool,
        /// Events file (NDJSON).
        #[arg(long, default_value = "events.ndjson", conflicts_with = "kafka")]
        events: PathBuf,
        /// Labels file (JSON).
        #[arg(long, default_value = "labels.json")]
        labels: PathBuf,
        /// Produce the events to Kafka (keyed by identity) instead of a file: brokers,
        /// TLS/SASL properties and the topic come from the `[kafka]` config section.
        #[arg(long)]
        kafka: bool,
        /// Topic for `--kafka` (default: `kafka.input_topic`).
        #[arg(long, requires = "kafka")]
        topic: Option<String>,
        /// Most events per second for `--kafka`, to look like a live feed; 0: unpaced.
        #[arg(long, default_value_t = 0.0, requires = "kafka")]
        rate: f64,
        /// Config file for `--kafka` (RISKD__KAFKA__* environment variables apply too).
        #[arg(long, requires = "kafka")]
        config: Option<PathBuf>,
    },
    /// Detection quality of a signals file against generator labels: recall, false alerts
    /// per 1,000 identity-days, time to detect; optionally against a naive first-seen rule.
    Eval {
        /// Labels JSON written by `riskd generate`.
        #[arg(long)]
        labels: PathBuf,
        /// Also score the naive first-seen baseline on `--events`, for comparison.
        #[arg(long, requires = "events")]
        naive: bool,
        /// Events NDJSON (native) the signals were computed from; used by `--naive`.
        #[arg(long)]
        events: Option<PathBuf>,
        /// Grace period after an attack's end in which a signal still counts.
        #[arg(long, default_value = "1h")]
        grace: String,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Signals NDJSON as written by `riskd replay`.
        #[arg(required_unless_present = "naive")]
        signals: Option<PathBuf>,
    },
    /// Validate a config file and print the effective values.
    CheckConfig { file: PathBuf },
    /// Liveness probe for container runtimes: GET /healthz on this host's API (over TLS
    /// when `api.tls_cert` is set); exit 0 on 200, 1 otherwise.
    Healthcheck {
        /// The config `riskd run` was given (RISKD__* variables apply too).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Give up after this long (connect, and each read or write).
        #[arg(long, default_value = "3s")]
        timeout: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("riskd: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Logs to stderr, filtered by `RISKD_LOG` (else `default`): the services log at
/// `info`; the one-shot commands at `warn`, so their own summary on stderr stays readable
/// while a broker error during `generate --kafka` or a bad record's warning still shows.
fn init_logging(default: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("RISKD_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let json = std::env::var("RISKD_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run { config } => {
            init_logging("info");
            let config = Config::load(config.as_deref())?;
            runtime()?.block_on(async {
                let shutdown = riskd::shutdown::on_signals();
                riskd::service::run(config, shutdown).await
            })?;
        }
        Command::Demo { config } => {
            init_logging("info");
            let config = Config::load(config.as_deref())?;
            runtime()?.block_on(async {
                let shutdown = riskd::shutdown::on_signals();
                riskd::demo::run(config, shutdown).await
            })?;
        }
        Command::Replay {
            format,
            config,
            output,
            dead_letter,
            paths,
        } => {
            init_logging("warn");
            let config = Config::load(config.as_deref())?;
            let options = riskd::replay::ReplayOptions {
                format,
                output,
                dead_letter,
                paths,
                progress: None,
            };
            riskd::replay::run(&config, &options)?;
        }
        Command::Generate {
            seed,
            identities,
            days,
            start,
            no_attacks,
            events,
            labels,
            kafka,
            topic,
            rate,
            config,
        } => {
            init_logging("warn");
            let start_ms = riskd::signal::parse_time_ms(&start)
                .with_context(|| format!("--start `{start}` is not an RFC 3339 time"))?;
            let options = riskd::source::generator::GenerateOptions {
                seed,
                identities,
                days,
                start_ms,
                attacks: !no_attacks,
            };
            if kafka {
                if !rate.is_finite() || rate < 0.0 {
                    anyhow::bail!("--rate {rate} must be a number of events per second, >= 0");
                }
                let config = Config::load(config.as_deref())?;
                let topic = topic.unwrap_or_else(|| config.kafka.input_topic.clone());
                let summary =
                    runtime()?.block_on(riskd::source::generator::publish::generate_to_kafka(
                        &options,
                        &config.kafka,
                        &topic,
                        rate,
                        &labels,
                    ))?;
                eprintln!(
                    "riskd generate: {} events ({:.1} MB) for {} identities over {} days, {} \
                     attacks, acknowledged by the broker in {:.2} s; topic {topic}, labels in {}",
                    summary.events,
                    summary.bytes as f64 / 1e6,
                    summary.identities,
                    days,
                    summary.attacks,
                    summary.elapsed.as_secs_f64(),
                    labels.display()
                );
                return Ok(ExitCode::SUCCESS);
            }
            let summary = riskd::source::generator::generate_to_files(&options, &events, &labels)?;
            eprintln!(
                "riskd generate: {} events ({:.1} MB) for {} identities over {} days, {} attacks, \
                 in {:.2} s ({:.0} events/s); events in {}, labels in {}",
                summary.events,
                summary.bytes as f64 / 1e6,
                summary.identities,
                days,
                summary.attacks,
                summary.elapsed.as_secs_f64(),
                summary.events_per_second(),
                events.display(),
                labels.display()
            );
        }
        Command::Eval {
            labels,
            naive,
            events,
            grace,
            json,
            signals,
        } => {
            init_logging("warn");
            let grace = humantime::parse_duration(&grace)
                .with_context(|| format!("--grace `{grace}` is not a duration like 1h or 30m"))?;
            riskd::eval::run_cli(&riskd::eval::EvalCli {
                labels,
                signals,
                events,
                naive,
                json,
                grace_ms: Some(i64::try_from(grace.as_millis()).unwrap_or(i64::MAX)),
            })?;
        }
        Command::Healthcheck { config, timeout } => {
            // Every failure exits 1, as container runtimes expect of a probe (2 is
            // reserved in Docker's HEALTHCHECK).
            let timeout = match humantime::parse_duration(&timeout) {
                Ok(t) if !t.is_zero() => t,
                _ => {
                    eprintln!("riskd healthcheck: --timeout `{timeout}` is not a duration like 3s");
                    return Ok(ExitCode::from(1));
                }
            };
            let checked = Config::load(config.as_deref())
                .map_err(|e| e.to_string())
                .and_then(|config| {
                    riskd::api::probe::check(&config, timeout).map_err(|e| e.to_string())
                });
            if let Err(err) = checked {
                eprintln!("riskd healthcheck: {err}");
                return Ok(ExitCode::from(1));
            }
            println!("ok");
        }
        Command::CheckConfig { file } => match Config::load(Some(&file)) {
            Ok(config) => print!("{}", config.to_toml()),
            Err(err) => {
                eprintln!("riskd: {}: {err}", file.display());
                return Ok(ExitCode::from(1));
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}
