//! riskd: behavioural risk scoring for non-human identities.
//!
//! riskd reads activity events of AI agents, service accounts, API keys, CI bots and
//! workloads, keeps a sliding-window baseline per identity, and publishes a live risk
//! score with reasons that enforcement points read at request time (see
//! `../shared/design.md` in the project's shared folder for the full contract).
//!
//! # Layout
//!
//! Split by pipeline stage; the `riskd` binary only parses arguments, loads config and
//! calls in here.
//!
//! - [`config`]: layered configuration, validated into `Config`.
//! - [`event`]: the activity event every decoder produces.
//! - [`decode`]: native JSON, AWS CloudTrail, Kubernetes audit → events (no IO).
//! - [`state`]: per-identity baselines, eviction, snapshot encoding (no IO).
//! - [`detect`]: one file per detector (no IO).
//! - [`score`]: combination, decay, levels and the emission rule.
//! - [`engine`]: state + detectors + score for one event stream (no IO).
//! - [`signal`]: the published risk signal.
//! - [`risk_table`]: latest signal per identity, read by the API.
//! - [`source`] / [`sink`]: files, Kafka and the synthetic fleet generator.
//! - [`replay`]: `riskd replay`, scoring files in event-time order.
//! - [`service`]: `riskd run`, the Kafka service.
//! - [`demo`]: `riskd demo`, everything embedded.
//! - [`eval`]: detection quality against labels.
//! - [`policy`]: enforcement decisions.
//! - [`glob`]: the globs of sensitivity, impair-defences and policy rules.
//! - [`api`]: the HTTP API.
//! - [`metrics`]: every Prometheus metric.
//! - [`shutdown`]: SIGINT/SIGTERM into a cancellation token.

pub mod api;
pub mod config;
pub mod decode;
pub mod demo;
pub mod detect;
pub mod engine;
pub mod eval;
pub mod event;
pub mod glob;
pub mod metrics;
pub mod policy;
pub mod replay;
pub mod risk_table;
pub mod score;
pub mod service;
pub mod shutdown;
pub mod signal;
pub mod sink;
pub mod source;
pub mod state;
