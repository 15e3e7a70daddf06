//! Configuration (design §8): `config/default.toml` (embedded in the binary) is layered
//! under an optional `--config FILE` and then `RISKD__SECTION__KEY` environment variables.
//!
//! Two phases, as in ripgrep: serde parses what the user gave into these structs (unknown
//! keys refused), then [`Config::validate`] checks cross-field rules and names the
//! offending key. Everything downstream receives a validated `Config`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use figment::providers::{Env, Format as _, Toml};
use figment::Figment;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::decode::Format;
use crate::event::Sensitivity;
use crate::glob::Glob;

/// The defaults, compiled in so `riskd` works with no files around it.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Environment prefix; `RISKD__KAFKA__BROKERS` sets `kafka.brokers`.
pub const ENV_PREFIX: &str = "RISKD__";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Syntax errors, unknown keys and type mismatches; figment's message names the key
    /// and the source (file or environment variable).
    #[error("{0}")]
    Parse(#[from] Box<figment::Error>),
    #[error("invalid value for `{key}`: {message}")]
    Invalid { key: String, message: String },
    #[error("cannot read config file {path}: {message}")]
    Unreadable { path: String, message: String },
}

impl ConfigError {
    fn invalid(key: &str, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.to_string(),
            message: message.into(),
        }
    }
}

/// A duration written as a human string (`"250ms"`, `"5m"`, `"30d"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub fn as_millis_i64(self) -> i64 {
        i64::try_from(self.0.as_millis()).unwrap_or(i64::MAX)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(text.trim())
            .map(HumanDuration)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "`{text}` is not a duration ({e}); write e.g. \"500ms\", \"5m\", \"24h\""
                ))
            })
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// Environment variables are parsed as TOML-ish values, so `RISKD__API__TOKEN=123456`
/// arrives as an integer; string keys accept any scalar and keep its text.
fn lenient_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(LenientString::deserialize(deserializer)?.0)
}

fn lenient_map<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let raw = BTreeMap::<String, LenientString>::deserialize(deserializer)?;
    Ok(raw.into_iter().map(|(k, v)| (k, v.0)).collect())
}

struct LenientString(String);

impl<'de> Deserialize<'de> for LenientString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = LenientString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(LenientString(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(LenientString(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(LenientString(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(LenientString(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(LenientString(v.to_string()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Top-level configuration. Every key has a default in `config/default.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub kafka: KafkaConfig,
    pub api: ApiConfig,
    pub decode: DecodeConfig,
    pub state: StateConfig,
    pub score: ScoreConfig,
    pub detectors: DetectorsConfig,
    pub sensitivity: SensitivityConfig,
    pub demo: DemoConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma separated.
    #[serde(deserialize_with = "lenient_string")]
    pub brokers: String,
    #[serde(deserialize_with = "lenient_string")]
    pub group_id: String,
    /// Static group membership id (`group.instance.id`), unique per instance (e.g. the
    /// pod name); empty for dynamic membership.
    #[serde(deserialize_with = "lenient_string")]
    pub group_instance_id: String,
    #[serde(deserialize_with = "lenient_string")]
    pub input_topic: String,
    #[serde(deserialize_with = "lenient_string")]
    pub signals_topic: String,
    #[serde(deserialize_with = "lenient_string")]
    pub state_topic: String,
    #[serde(deserialize_with = "lenient_string")]
    pub dead_letter_topic: String,
    /// Empty: the input is keyed by identity. Set: riskd decodes the input topic and
    /// re-produces each event, keyed by identity, to this topic, and scores from it.
    #[serde(deserialize_with = "lenient_string")]
    pub repartition_topic: String,
    /// Format of records on the input topic.
    pub input_format: Format,
    /// Consumer group session timeout; SIGTERM drains within it.
    pub session_timeout: HumanDuration,
    /// How often changed identity state is flushed to the changelog topic.
    pub state_flush_interval: HumanDuration,
    /// After this long without an input record, event time moves on at the pace of the
    /// wall clock (scores decay, idle identities are evicted); zero: only events move it.
    pub idle_advance: HumanDuration,
    /// Follow the signals topic so lookups answer for identities other instances own.
    pub follow_signals: bool,
    /// How many recent `event_id`s per partition are remembered to drop redeliveries.
    pub dedupe_window: usize,
    /// How often stored (fully acknowledged) input offsets are committed.
    pub commit_interval: HumanDuration,
    /// Most records the producer may hold unacknowledged; when full, consumption waits.
    pub producer_queue: usize,
    /// Partitions used when riskd creates a missing topic.
    pub topic_partitions: i32,
    pub topic_replication: i32,
    /// Passed verbatim to librdkafka (TLS, SASL, tuning): e.g.
    /// `"security.protocol" = "SASL_SSL"`. Values are never logged.
    pub properties: KafkaProperties,
}

/// librdkafka properties passed through verbatim. They often hold credentials
/// (`sasl.password`, `ssl.key.password`), so `Debug` and the printed config show the
/// keys only.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
pub struct KafkaProperties(#[serde(deserialize_with = "lenient_map")] pub BTreeMap<String, String>);

impl std::ops::Deref for KafkaProperties {
    type Target = BTreeMap<String, String>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for KafkaProperties {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl<'a> IntoIterator for &'a KafkaProperties {
    type Item = (&'a String, &'a String);
    type IntoIter = std::collections::btree_map::Iter<'a, String, String>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Debug for KafkaProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, "<redacted>")))
            .finish()
    }
}

impl Serialize for KafkaProperties {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for key in self.0.keys() {
            map.serialize_entry(key, "<redacted>")?;
        }
        map.end()
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Address the HTTP API and `/metrics` listen on.
    pub listen: String,
    /// Bearer token required on `/v1` and `/ext_authz`; empty disables auth.
    #[serde(
        serialize_with = "serialize_redacted",
        deserialize_with = "lenient_string"
    )]
    pub token: String,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Most identities in one `POST /v1/risk:batch`.
    pub max_batch: usize,
    /// `/readyz` answers 503 once a pipeline stage has not gone round its loop for this
    /// long; 0 turns the check off.
    pub max_pipeline_stall: HumanDuration,
    /// Most `POST /v1/risk:batch` calls per second, across all clients (a burst of one
    /// second's worth is allowed); 0 disables the limit.
    pub batch_rate_per_second: f64,
    /// Header carrying the identity on Envoy `ext_authz` checks.
    #[serde(deserialize_with = "lenient_string")]
    pub identity_header: String,
    /// Decision policy file (TOML); empty means allow unless the level is critical.
    #[serde(deserialize_with = "lenient_string")]
    pub policy_file: String,
    /// PEM certificate chain (leaf first) for TLS on the API; with `tls_key`. Both empty
    /// (the default) serve plain HTTP.
    #[serde(deserialize_with = "lenient_string")]
    pub tls_cert: String,
    /// PEM private key for `tls_cert` (PKCS#8, PKCS#1 or SEC1).
    #[serde(deserialize_with = "lenient_string")]
    pub tls_key: String,
}

impl ApiConfig {
    /// The certificate and key paths when TLS is configured (both set; `validate`
    /// refuses exactly one).
    pub fn tls_files(&self) -> Option<(&str, &str)> {
        let (cert, key) = (self.tls_cert.trim(), self.tls_key.trim());
        (!cert.is_empty() && !key.is_empty()).then_some((cert, key))
    }
}

impl fmt::Debug for ApiConfig {
    // Hand-written so the token never reaches a log line through `{:?}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiConfig")
            .field("listen", &self.listen)
            .field(
                "token",
                &if self.token.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_batch", &self.max_batch)
            .field("max_pipeline_stall", &self.max_pipeline_stall)
            .field("batch_rate_per_second", &self.batch_rate_per_second)
            .field("identity_header", &self.identity_header)
            .field("policy_file", &self.policy_file)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .finish()
    }
}

fn serialize_redacted<S: Serializer>(value: &str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(if value.is_empty() { "" } else { "<redacted>" })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecodeConfig {
    /// Records larger than this are rejected unparsed (`too_large`).
    pub max_record_bytes: usize,
    /// Records nested deeper than this are rejected unparsed (`too_deep`).
    pub max_depth: usize,
    /// Events older than the watermark by more than this are rejected (`too_late`).
    pub max_lateness: HumanDuration,
    /// Events stamped more than this ahead of the wall clock are rejected (`too_far_ahead`).
    pub max_lookahead: HumanDuration,
}

/// Largest `state.max_seen_entries`.
pub const MAX_SEEN_ENTRIES: usize = 4096;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Hard cap on tracked identities; the least recently active are evicted first.
    pub max_identities: usize,
    /// Identities idle this long (event time) are evicted.
    pub idle_ttl: HumanDuration,
    /// How long after its last event an evicted (dormant) identity is still remembered,
    /// so its return is scored; `0s` forgets it at eviction.
    pub dormant_memory: HumanDuration,
    /// An identity is `learning` until it has this many events ...
    pub learning_min_events: u64,
    /// ... and this much history.
    pub learning_min_span: HumanDuration,
    /// ... or, with at least half those events, this much history (`0s`: never): a
    /// sparse key must not stay unjudged for weeks.
    pub learning_sparse_span: HumanDuration,
    /// Rate bucket width.
    pub bucket: HumanDuration,
    /// Recent window the volume detectors compare with the baseline; a multiple of `bucket`.
    pub window: HumanDuration,
    /// Most exact entries per seen-set before it degrades to a sketch.
    pub max_seen_entries: usize,
    /// Half-life of each identity's learned novelty rate (how often it meets new
    /// destinations, actions, sources).
    pub novelty_half_life: HumanDuration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreConfig {
    /// Score half-life in event time when no new evidence arrives.
    pub half_life: HumanDuration,
    /// Emit a signal when the score moves by at least this much since the last one.
    pub emit_step: f64,
    /// A level, once published, is kept until the score falls this far below the
    /// level's threshold (0 = none).
    pub level_hold: f64,
    /// Level thresholds on the 0-100 score; must be increasing.
    pub elevated: f64,
    pub high: f64,
    pub critical: f64,
    /// Window in which a novelty met by many identities counts as a fleet-wide change.
    pub fleet_novelty_window: HumanDuration,
    /// How long earlier adopters of a new action are remembered as its peers (a
    /// platform change spreading team by team); `0s` turns the peer discount off.
    pub fleet_peer_memory: HumanDuration,
    /// Window in which a detector firing on many identities counts as fleet-wide.
    pub fleet_pulse_window: HumanDuration,
    /// Window of the sustained-anomaly rule: whole hours, 1h to 15h.
    pub sustained_window: HumanDuration,
    /// Weight of each other elevated hour in that window, in [0, 1].
    pub sustained_hour_weight: f64,
    /// Weight, in [0, 1], of new-destination signs on a read that succeeded from the
    /// identity's usual network, client family and environment, of data no more than
    /// internal. 1: no different from any other call.
    pub usual_place_read_weight: f64,
    /// Weight, in [0, 1], of the novelty and refusal signs of a refusal with no other
    /// failed call in its hour, from the identity's usual network, client family and
    /// environment (not for AI agents). 1: no different from any other refusal.
    pub lone_refusal_weight: f64,
    /// Whether a session from a network or client family the identity never used, but
    /// inside private address space, of successful reads of data no more than internal,
    /// stops short of `high` (an engineer debugging with a job's role from the VPN).
    pub internal_visit_below_high: bool,
    /// Weight, in [0, 1], of the `off_hours` sign on a write that meets a new
    /// destination or action (the cron job at the wrong hour writing somewhere new);
    /// used when more than the detector's own weight.
    pub off_hours_write_weight: f64,
    /// Action globs (case-insensitive) that impair logging or detection, alone or
    /// qualified by a destination glob: a first use scores high on its own, learning or
    /// not.
    pub impair_defences: Vec<ImpairPattern>,
}

/// One `score.impair_defences` entry: an action glob (`"cloudtrail:StopLogging"`), or an
/// action glob on a destination glob (`{ action = "delete *", destination = "*falco*" }`)
/// for actions that impair defences only when aimed at a defence (deleting a security
/// agent's DaemonSet, not any DaemonSet).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ImpairPattern {
    Action(String),
    Target(ImpairTarget),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImpairTarget {
    pub action: String,
    pub destination: String,
}

impl ImpairPattern {
    /// The action glob and, for a target, the destination glob.
    pub fn globs(&self) -> (&str, Option<&str>) {
        match self {
            ImpairPattern::Action(action) => (action, None),
            ImpairPattern::Target(t) => (&t.action, Some(&t.destination)),
        }
    }
}

/// Per-detector weight in [0, 1]; 0 disables a detector.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorsConfig {
    pub volume_spike: f64,
    pub data_volume_spike: f64,
    pub new_destination: f64,
    pub destination_burst: f64,
    pub new_action: f64,
    pub new_source: f64,
    pub off_hours: f64,
    pub failure_burst: f64,
}

impl DetectorsConfig {
    /// (name, weight) for every detector, in the fixed order of design §4.
    pub fn weights(&self) -> [(&'static str, f64); 8] {
        [
            ("volume_spike", self.volume_spike),
            ("data_volume_spike", self.data_volume_spike),
            ("new_destination", self.new_destination),
            ("destination_burst", self.destination_burst),
            ("new_action", self.new_action),
            ("new_source", self.new_source),
            ("off_hours", self.off_hours),
            ("failure_burst", self.failure_burst),
        ]
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensitivityConfig {
    /// Used when no rule matches and the event does not say.
    pub default: Sensitivity,
    /// Score multiplier per sensitivity.
    pub scale_public: f64,
    pub scale_internal: f64,
    pub scale_confidential: f64,
    pub scale_restricted: f64,
    /// First matching rule wins.
    pub rules: Vec<SensitivityRule>,
}

impl SensitivityConfig {
    pub fn scale(&self, s: Sensitivity) -> f64 {
        match s {
            Sensitivity::Public => self.scale_public,
            Sensitivity::Internal => self.scale_internal,
            Sensitivity::Confidential => self.scale_confidential,
            Sensitivity::Restricted => self.scale_restricted,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensitivityRule {
    /// Glob on `destination` (`*` any run, `?` one character), case-sensitive; absent:
    /// any destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Glob on `action`, case-insensitive; absent: any action. For data an action
    /// names better than its destination (an agent's `tool:payments.get_card`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    pub level: Sensitivity,
}

/// The `[sensitivity]` rules, compiled: the first rule whose globs all match classifies
/// a call. Shared by scoring and by `/v1/decide`, so both see the same class.
#[derive(Debug, Clone)]
pub struct SensitivityRules {
    rules: Vec<(Option<Glob>, Option<Glob>, Sensitivity)>,
}

impl SensitivityRules {
    pub fn new(rules: &[SensitivityRule]) -> Self {
        SensitivityRules {
            rules: rules
                .iter()
                .map(|r| {
                    (
                        r.pattern.as_deref().map(Glob::new),
                        r.action
                            .as_deref()
                            .map(|a| Glob::new_case_insensitive(a.trim())),
                        r.level,
                    )
                })
                .collect(),
        }
    }

    /// The class of the first matching rule, if any.
    pub fn classify(&self, action: &str, destination: &str) -> Option<Sensitivity> {
        self.rules
            .iter()
            .find(|(d, a, _)| {
                d.as_ref().map_or(true, |d| d.matches(destination))
                    && a.as_ref().map_or(true, |a| a.matches(action))
            })
            .map(|(_, _, level)| *level)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoConfig {
    /// Seed of the built-in fleet generator.
    pub seed: u64,
    /// Identities in the demo fleet.
    pub identities: usize,
    /// Simulated event time that passes per real second.
    pub speedup: f64,
    /// Cap on events fed per real second.
    pub max_events_per_second: u64,
    /// Days of simulated activity the generator produces (the demo keeps serving after).
    pub days: u32,
    /// Stop by itself after this long; "0s" runs until Ctrl-C (tests use a few seconds).
    pub duration: HumanDuration,
    /// Simulated history before now, fed as fast as `max_events_per_second` allows at
    /// start, so baselines exist and attacks show up sooner; "0s" starts the fleet now.
    pub backfill: HumanDuration,
    /// Rows in the terminal live view.
    pub top: usize,
}

impl Config {
    /// Defaults only.
    pub fn default_config() -> Result<Self, ConfigError> {
        Self::from_figment(Figment::from(Toml::string(DEFAULT_TOML)))
    }

    /// Defaults, then `file` if given, then `RISKD__*` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(path) = file {
            // Read it ourselves: figment silently ignores a missing file, and a typo in a
            // path must not quietly run with defaults.
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Unreadable {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            figment = figment.merge(Toml::string(&text));
        }
        // Secrets and librdkafka properties are taken from the environment as written,
        // not through figment's value parser: it would read a token `00123456` as the
        // number 123456, and split `sasl.password` at its dot.
        figment = figment.merge(Env::prefixed(ENV_PREFIX).split("__").filter(|key| {
            let key = key.as_str().to_ascii_lowercase();
            key != "api__token" && !key.starts_with("kafka__properties__")
        }));
        let mut config: Config = figment.extract().map_err(Box::new)?;
        config.apply_raw_env(std::env::vars());
        config.validate()?;
        Ok(config)
    }

    /// `RISKD__API__TOKEN` and `RISKD__KAFKA__PROPERTIES__<name>` as written (the name
    /// lower-cased: `RISKD__KAFKA__PROPERTIES__SASL.PASSWORD` is `sasl.password`). Docker
    /// and Kubernetes take dots in variable names; a shell needs
    /// `env 'RISKD__KAFKA__PROPERTIES__sasl.password=…' riskd run`.
    fn apply_raw_env(&mut self, vars: impl Iterator<Item = (String, String)>) {
        const PROPERTY_PREFIX: &str = "KAFKA__PROPERTIES__";
        for (name, value) in vars {
            let Some(key) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let upper = key.to_ascii_uppercase();
            if upper == "API__TOKEN" {
                self.api.token = value;
            } else if let Some(property) = upper.strip_prefix(PROPERTY_PREFIX) {
                if !property.is_empty() {
                    let property = property.to_ascii_lowercase();
                    self.kafka.properties.insert(property, value);
                }
            }
        }
    }

    /// Defaults overlaid with `text` (the contents of a config file), validated. No
    /// environment variables are read, so the result depends on `text` alone: used by
    /// the config fuzz target and by callers that hold a config in memory.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        Self::from_figment(Figment::from(Toml::string(DEFAULT_TOML)).merge(Toml::string(text)))
    }

    fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let config: Config = figment.extract().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    /// Cross-field rules that serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let nonempty = [
            ("kafka.brokers", &self.kafka.brokers),
            ("kafka.group_id", &self.kafka.group_id),
            ("kafka.input_topic", &self.kafka.input_topic),
            ("kafka.signals_topic", &self.kafka.signals_topic),
            ("kafka.state_topic", &self.kafka.state_topic),
            ("kafka.dead_letter_topic", &self.kafka.dead_letter_topic),
            ("api.identity_header", &self.api.identity_header),
        ];
        for (key, value) in nonempty {
            if value.trim().is_empty() {
                return Err(ConfigError::invalid(key, "must not be empty"));
            }
        }
        let mut topics = vec![
            &self.kafka.input_topic,
            &self.kafka.signals_topic,
            &self.kafka.state_topic,
            &self.kafka.dead_letter_topic,
        ];
        if !self.kafka.repartition_topic.trim().is_empty() {
            topics.push(&self.kafka.repartition_topic);
        }
        for (i, a) in topics.iter().enumerate() {
            if topics[i + 1..].contains(a) {
                return Err(ConfigError::invalid(
                    "kafka.*_topic",
                    format!("topic `{a}` is used for two purposes"),
                ));
            }
        }
        if self.kafka.topic_partitions < 1 {
            return Err(ConfigError::invalid(
                "kafka.topic_partitions",
                "must be at least 1",
            ));
        }
        if self.kafka.topic_replication < 1 {
            return Err(ConfigError::invalid(
                "kafka.topic_replication",
                "must be at least 1",
            ));
        }
        if self.kafka.session_timeout.0 < Duration::from_secs(1) {
            return Err(ConfigError::invalid(
                "kafka.session_timeout",
                "must be at least 1s",
            ));
        }
        if self.kafka.state_flush_interval.0 < Duration::from_millis(10) {
            return Err(ConfigError::invalid(
                "kafka.state_flush_interval",
                "must be at least 10ms",
            ));
        }
        if self.kafka.state_flush_interval.0 >= self.kafka.session_timeout.0 {
            return Err(ConfigError::invalid(
                "kafka.state_flush_interval",
                "must be shorter than kafka.session_timeout (a revocation flushes within it)",
            ));
        }
        if self.kafka.commit_interval.0 < Duration::from_millis(10) {
            return Err(ConfigError::invalid(
                "kafka.commit_interval",
                "must be at least 10ms",
            ));
        }
        if !(1_000..=10_000_000).contains(&self.kafka.producer_queue) {
            return Err(ConfigError::invalid(
                "kafka.producer_queue",
                "must be between 1000 and 10000000",
            ));
        }
        if self.kafka.dedupe_window > 10_000_000 {
            return Err(ConfigError::invalid(
                "kafka.dedupe_window",
                "must be at most 10000000 (it is held per partition in memory)",
            ));
        }
        if self.api.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError::invalid(
                "api.listen",
                format!(
                    "`{}` is not an address such as 127.0.0.1:8080",
                    self.api.listen
                ),
            ));
        }
        let stall = self.api.max_pipeline_stall.0;
        if !stall.is_zero() && stall < Duration::from_secs(5) {
            return Err(ConfigError::invalid(
                "api.max_pipeline_stall",
                "must be 0 (off) or at least 5s (and counts as at least \
                 kafka.session_timeout: a rebalance may hold the pipeline that long)",
            ));
        }
        if self.api.max_body_bytes < 64 {
            return Err(ConfigError::invalid(
                "api.max_body_bytes",
                "must be at least 64",
            ));
        }
        if self.api.max_batch == 0 {
            return Err(ConfigError::invalid("api.max_batch", "must be at least 1"));
        }
        if !(self.api.batch_rate_per_second.is_finite() && self.api.batch_rate_per_second >= 0.0) {
            return Err(ConfigError::invalid(
                "api.batch_rate_per_second",
                "must be a number of calls per second, 0 or more (0 disables the limit)",
            ));
        }
        if axum::http::HeaderName::from_bytes(self.api.identity_header.trim().as_bytes()).is_err() {
            return Err(ConfigError::invalid(
                "api.identity_header",
                format!(
                    "`{}` is not a valid HTTP header name",
                    self.api.identity_header
                ),
            ));
        }
        if !self.api.token.is_empty() && self.api.token.trim() != self.api.token {
            // Trailing newlines from `$(cat token-file)` would make every request fail.
            return Err(ConfigError::invalid(
                "api.token",
                "has leading or trailing whitespace",
            ));
        }
        // Half a TLS setup must not silently fall back to plain HTTP.
        match (
            self.api.tls_cert.trim().is_empty(),
            self.api.tls_key.trim().is_empty(),
        ) {
            (false, true) => {
                return Err(ConfigError::invalid(
                    "api.tls_key",
                    "must be set when api.tls_cert is (TLS needs both; leave both empty for plain HTTP)",
                ));
            }
            (true, false) => {
                return Err(ConfigError::invalid(
                    "api.tls_cert",
                    "must be set when api.tls_key is (TLS needs both; leave both empty for plain HTTP)",
                ));
            }
            _ => {}
        }
        if !self.api.policy_file.trim().is_empty() {
            // Load it now so `riskd check-config` catches a broken policy, not start-up.
            crate::policy::Policy::load(&self.api.policy_file, &self.sensitivity)
                .map_err(|e| ConfigError::invalid("api.policy_file", e.to_string()))?;
        }
        if self.decode.max_record_bytes < 64 {
            return Err(ConfigError::invalid(
                "decode.max_record_bytes",
                "must be at least 64",
            ));
        }
        if !(4..=1024).contains(&self.decode.max_depth) {
            return Err(ConfigError::invalid(
                "decode.max_depth",
                "must be between 4 and 1024",
            ));
        }
        if self.state.max_identities == 0 {
            return Err(ConfigError::invalid(
                "state.max_identities",
                "must be at least 1",
            ));
        }
        let bucket = self.state.bucket.0.as_millis();
        let window = self.state.window.0.as_millis();
        if bucket == 0 {
            return Err(ConfigError::invalid(
                "state.bucket",
                "must be greater than zero",
            ));
        }
        if window < bucket || window % bucket != 0 {
            return Err(ConfigError::invalid(
                "state.window",
                format!(
                    "{} is not a whole multiple of state.bucket ({})",
                    self.state.window, self.state.bucket
                ),
            ));
        }
        if window / bucket > 60 {
            return Err(ConfigError::invalid(
                "state.window",
                "may span at most 60 buckets (state stays compact)",
            ));
        }
        if self.state.idle_ttl.0 <= self.state.window.0 {
            return Err(ConfigError::invalid(
                "state.idle_ttl",
                "must be longer than state.window",
            ));
        }
        // Counts per kind are 16-bit in the state; far below that, the sets would
        // already dwarf the rest of an identity's memory.
        if !(1..=MAX_SEEN_ENTRIES).contains(&self.state.max_seen_entries) {
            return Err(ConfigError::invalid(
                "state.max_seen_entries",
                format!("must be 1 to {MAX_SEEN_ENTRIES}"),
            ));
        }
        if !self.state.dormant_memory.0.is_zero()
            && self.state.dormant_memory.0 <= self.state.idle_ttl.0
        {
            return Err(ConfigError::invalid(
                "state.dormant_memory",
                "must be longer than state.idle_ttl (an identity is only dormant once \
                 evicted), or \"0s\" to forget evicted identities",
            ));
        }
        if self.state.novelty_half_life.0 < Duration::from_secs(3600) {
            return Err(ConfigError::invalid(
                "state.novelty_half_life",
                "must be at least 1h",
            ));
        }
        if self.score.fleet_novelty_window.0 < Duration::from_secs(60) {
            return Err(ConfigError::invalid(
                "score.fleet_novelty_window",
                "must be at least 1m",
            ));
        }
        let peer_memory = self.score.fleet_peer_memory.0;
        if !peer_memory.is_zero()
            && (peer_memory <= self.score.fleet_novelty_window.0
                || peer_memory > Duration::from_secs(90 * 86_400))
        {
            return Err(ConfigError::invalid(
                "score.fleet_peer_memory",
                "must be 0s (off), or longer than score.fleet_novelty_window and at most 90d \
                 (with a longer novelty window, raise this or set 0s)",
            ));
        }
        if self.score.fleet_pulse_window.0 < Duration::from_secs(10) {
            return Err(ConfigError::invalid(
                "score.fleet_pulse_window",
                "must be at least 10s",
            ));
        }
        let window = self.score.sustained_window.0;
        if window.as_secs() % 3600 != 0 || !(1..=15).contains(&(window.as_secs() / 3600)) {
            return Err(ConfigError::invalid(
                "score.sustained_window",
                "must be whole hours from 1h to 15h (the state keeps 16 hours of bits)",
            ));
        }
        if !(0.0..=1.0).contains(&self.score.usual_place_read_weight) {
            return Err(ConfigError::invalid(
                "score.usual_place_read_weight",
                "must be in [0, 1]",
            ));
        }
        if !(0.0..=1.0).contains(&self.score.lone_refusal_weight) {
            return Err(ConfigError::invalid(
                "score.lone_refusal_weight",
                "must be in [0, 1]",
            ));
        }
        if !(0.0..=1.0).contains(&self.score.off_hours_write_weight) {
            return Err(ConfigError::invalid(
                "score.off_hours_write_weight",
                "must be in [0, 1]",
            ));
        }
        if !(0.0..=1.0).contains(&self.score.sustained_hour_weight) {
            return Err(ConfigError::invalid(
                "score.sustained_hour_weight",
                "must be in [0, 1]",
            ));
        }
        if self.score.impair_defences.len() > crate::state::identity::MAX_IMPAIR_ENTRIES {
            return Err(ConfigError::invalid(
                "score.impair_defences",
                format!(
                    "at most {} entries (each identity remembers which it has met)",
                    crate::state::identity::MAX_IMPAIR_ENTRIES
                ),
            ));
        }
        if let Some(i) = self.score.impair_defences.iter().position(|p| {
            let (action, destination) = p.globs();
            action.trim().is_empty() || destination.is_some_and(|d| d.trim().is_empty())
        }) {
            return Err(ConfigError::invalid(
                &format!("score.impair_defences[{i}]"),
                "must not be empty (an empty pattern matches nothing)",
            ));
        }
        if self.score.half_life.0.is_zero() {
            return Err(ConfigError::invalid(
                "score.half_life",
                "must be greater than zero",
            ));
        }
        if !(self.score.emit_step > 0.0 && self.score.emit_step <= 100.0) {
            return Err(ConfigError::invalid(
                "score.emit_step",
                "must be in (0, 100]",
            ));
        }
        let levels = [
            ("score.elevated", self.score.elevated),
            ("score.high", self.score.high),
            ("score.critical", self.score.critical),
        ];
        let mut previous = 0.0;
        for (key, value) in levels {
            if !(value > previous && value <= 100.0) {
                return Err(ConfigError::invalid(
                    key,
                    format!(
                        "{value} is out of order: thresholds must satisfy 0 < elevated < high < critical <= 100"
                    ),
                ));
            }
            previous = value;
        }
        let narrowest = self
            .score
            .elevated
            .min(self.score.high - self.score.elevated)
            .min(self.score.critical - self.score.high);
        if !(self.score.level_hold >= 0.0 && self.score.level_hold < narrowest) {
            return Err(ConfigError::invalid(
                "score.level_hold",
                format!(
                    "must be at least 0 and less than the narrowest level band ({narrowest}): \
                     a hold as wide as a band would keep a level for ever"
                ),
            ));
        }
        for (name, weight) in self.detectors.weights() {
            if !(0.0..=1.0).contains(&weight) {
                return Err(ConfigError::invalid(
                    &format!("detectors.{name}"),
                    format!("weight {weight} is outside [0, 1]"),
                ));
            }
        }
        let scales = [
            ("sensitivity.scale_public", self.sensitivity.scale_public),
            (
                "sensitivity.scale_internal",
                self.sensitivity.scale_internal,
            ),
            (
                "sensitivity.scale_confidential",
                self.sensitivity.scale_confidential,
            ),
            (
                "sensitivity.scale_restricted",
                self.sensitivity.scale_restricted,
            ),
        ];
        for (key, value) in scales {
            if !(0.0..=4.0).contains(&value) {
                return Err(ConfigError::invalid(
                    key,
                    format!("{value} is outside [0, 4]"),
                ));
            }
        }
        for (i, rule) in self.sensitivity.rules.iter().enumerate() {
            for (field, value) in [("pattern", &rule.pattern), ("action", &rule.action)] {
                if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                    return Err(ConfigError::invalid(
                        &format!("sensitivity.rules[{i}].{field}"),
                        "must not be empty",
                    ));
                }
            }
            if rule.pattern.is_none() && rule.action.is_none() {
                return Err(ConfigError::invalid(
                    &format!("sensitivity.rules[{i}]"),
                    "needs a `pattern` (destination) or an `action`, or both",
                ));
            }
        }
        if self.demo.speedup.is_nan() || self.demo.speedup <= 0.0 {
            return Err(ConfigError::invalid(
                "demo.speedup",
                "must be greater than zero",
            ));
        }
        if self.demo.identities == 0 {
            return Err(ConfigError::invalid(
                "demo.identities",
                "must be at least 1",
            ));
        }
        if self.demo.max_events_per_second == 0 {
            return Err(ConfigError::invalid(
                "demo.max_events_per_second",
                "must be at least 1",
            ));
        }
        if self.demo.days == 0 {
            return Err(ConfigError::invalid("demo.days", "must be at least 1"));
        }
        if self.demo.backfill.0 >= Duration::from_secs(u64::from(self.demo.days) * 86_400) {
            return Err(ConfigError::invalid(
                "demo.backfill",
                "must be shorter than demo.days",
            ));
        }
        if !(1..=200).contains(&self.demo.top) {
            return Err(ConfigError::invalid(
                "demo.top",
                "must be between 1 and 200",
            ));
        }
        Ok(())
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn load_text(text: &str) -> Result<Config, ConfigError> {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(text.as_bytes()).expect("write");
        Config::load(Some(file.path()))
    }

    #[test]
    fn defaults_are_valid() {
        let config = Config::default_config().expect("defaults load");
        assert_eq!(config.kafka.input_topic, "nhi.activity");
        assert_eq!(config.kafka.signals_topic, "nhi.risk-signals");
        assert_eq!(config.kafka.state_topic, "riskd.state");
        assert_eq!(config.kafka.dead_letter_topic, "nhi.activity.dlq");
        assert_eq!(config.api.listen, "127.0.0.1:8080");
        assert!(config.api.token.is_empty());
    }

    #[test]
    fn unknown_key_is_refused_and_named() {
        let err = load_text("[kafka]\nbrokerz = \"x:1\"\n").expect_err("unknown key");
        assert!(err.to_string().contains("brokerz"), "{err}");
    }

    #[test]
    fn file_overrides_defaults() {
        let config = load_text("[api]\nlisten = \"127.0.0.1:9999\"\n").expect("valid");
        assert_eq!(config.api.listen, "127.0.0.1:9999");
    }

    #[test]
    fn bad_duration_names_the_key() {
        let err = load_text("[score]\nhalf_life = \"soon\"\n").expect_err("bad duration");
        let text = err.to_string();
        assert!(
            text.contains("half_life") && text.contains("soon"),
            "{text}"
        );
    }

    #[test]
    fn window_must_be_multiple_of_bucket() {
        let err =
            load_text("[state]\nbucket = \"1m\"\nwindow = \"90s\"\n").expect_err("bad window");
        assert!(err.to_string().contains("state.window"), "{err}");
    }

    #[test]
    fn thresholds_must_be_ordered() {
        let err = load_text("[score]\nhigh = 20.0\n").expect_err("bad order");
        assert!(err.to_string().contains("score.high"), "{err}");
    }

    #[test]
    fn sustained_rule_keys_are_checked() {
        for (text, key) in [
            (
                "[score]\nsustained_window = \"90m\"\n",
                "score.sustained_window",
            ),
            (
                "[score]\nsustained_window = \"16h\"\n",
                "score.sustained_window",
            ),
            (
                "[score]\nsustained_hour_weight = 1.5\n",
                "score.sustained_hour_weight",
            ),
            (
                "[score]\nusual_place_read_weight = -0.1\n",
                "score.usual_place_read_weight",
            ),
            (
                "[score]\nlone_refusal_weight = 2\n",
                "score.lone_refusal_weight",
            ),
            (
                "[score]\noff_hours_write_weight = 1.5\n",
                "score.off_hours_write_weight",
            ),
            (
                "[api]\nmax_pipeline_stall = \"1s\"\n",
                "api.max_pipeline_stall",
            ),
        ] {
            let err = load_text(text).expect_err(text);
            assert!(err.to_string().contains(key), "{text}: {err}");
        }
        assert!(
            load_text("[score]\nsustained_window = \"6h\"\nsustained_hour_weight = 0\n").is_ok()
        );
    }

    #[test]
    fn secrets_and_kafka_properties_from_the_environment_are_taken_as_written() {
        let mut config = Config::default_config().expect("defaults");
        config.apply_raw_env(
            [
                ("RISKD__API__TOKEN", "00123456"),
                ("RISKD__KAFKA__PROPERTIES__SASL.PASSWORD", "1e5"),
                ("RISKD__KAFKA__PROPERTIES__security.protocol", "SASL_SSL"),
                ("OTHER__API__TOKEN", "x"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        assert_eq!(config.api.token, "00123456");
        assert_eq!(
            config
                .kafka
                .properties
                .get("sasl.password")
                .map(String::as_str),
            Some("1e5")
        );
        assert_eq!(
            config
                .kafka
                .properties
                .get("security.protocol")
                .map(String::as_str),
            Some("SASL_SSL")
        );
    }

    #[test]
    fn too_many_impair_defences_entries_are_refused() {
        let list: Vec<String> = (0..65).map(|i| format!("\"svc:Op{i}\"")).collect();
        let err = load_text(&format!(
            "[score]\nimpair_defences = [{}]\n",
            list.join(", ")
        ))
        .expect_err("65 entries");
        assert!(err.to_string().contains("score.impair_defences"), "{err}");
        assert!(err.to_string().contains("at most 64"), "{err}");
    }

    #[test]
    fn an_empty_impair_defences_pattern_names_its_position() {
        let err = load_text("[score]\nimpair_defences = [\"cloudtrail:StopLogging\", \" \"]\n")
            .expect_err("empty pattern");
        assert!(
            err.to_string().contains("score.impair_defences[1]"),
            "{err}"
        );
    }

    #[test]
    fn sensitivity_rules_match_destinations_actions_or_both() {
        let config = load_text(
            "[sensitivity]\nrules = [\n\
             { action = \"tool:payments.*\", level = \"restricted\" },\n\
             { pattern = \"*/exports/*\", action = \"GET *\", level = \"confidential\" },\n\
             { pattern = \"*public*\", level = \"public\" },\n]\n",
        )
        .expect("valid");
        let rules = SensitivityRules::new(&config.sensitivity.rules);
        assert_eq!(
            rules.classify("TOOL:Payments.get_card", "payments/cards/card_1"),
            Some(Sensitivity::Restricted)
        );
        assert_eq!(
            rules.classify("GET /v1/x", "api/exports/1"),
            Some(Sensitivity::Confidential)
        );
        assert_eq!(rules.classify("POST /v1/x", "api/exports/1"), None);
        assert_eq!(
            rules.classify("s3:GetObject", "public-assets"),
            Some(Sensitivity::Public)
        );
        for (text, key) in [
            (
                "[sensitivity]\nrules = [{ level = \"public\" }]\n",
                "sensitivity.rules[0]",
            ),
            (
                "[sensitivity]\nrules = [{ action = \" \", level = \"public\" }]\n",
                "sensitivity.rules[0].action",
            ),
        ] {
            let err = load_text(text).expect_err(text);
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn impair_defences_targets_are_checked_too() {
        let err = load_text(
            "[score]\nimpair_defences = [{ action = \"delete daemonsets\", destination = \"\" }]\n",
        )
        .expect_err("empty destination");
        assert!(
            err.to_string().contains("score.impair_defences[0]"),
            "{err}"
        );
        let err = load_text(
            "[score]\nimpair_defences = [{ action = \"delete daemonsets\", dest = \"*falco*\" }]\n",
        )
        .expect_err("misspelt key");
        assert!(err.to_string().contains("impair_defences"), "{err}");
        let ok = load_text(
            "[score]\nimpair_defences = [\"a:B\", { action = \"delete daemonsets\", destination = \"*falco*\" }]\n",
        )
        .expect("valid");
        assert_eq!(ok.score.impair_defences.len(), 2);
    }

    #[test]
    fn scoring_keys_are_validated_by_name() {
        let err = load_text("[score]\nlevel_hold = 30.0\n").expect_err("wider than a band");
        assert!(err.to_string().contains("score.level_hold"), "{err}");
        let err = load_text("[score]\nlevel_hold = -1.0\n").expect_err("negative");
        assert!(err.to_string().contains("score.level_hold"), "{err}");
        let err = load_text("[state]\ndormant_memory = \"30d\"\n").expect_err("under the TTL");
        assert!(err.to_string().contains("state.dormant_memory"), "{err}");
        load_text("[state]\ndormant_memory = \"0s\"\n").expect("off");
        let err = load_text("[state]\nnovelty_half_life = \"1m\"\n").expect_err("too short");
        assert!(err.to_string().contains("state.novelty_half_life"), "{err}");
        let err = load_text("[score]\nfleet_pulse_window = \"1s\"\n").expect_err("too short");
        assert!(
            err.to_string().contains("score.fleet_pulse_window"),
            "{err}"
        );
        let err = load_text("[score]\nfleet_peer_memory = \"12h\"\n").expect_err("in the window");
        assert!(err.to_string().contains("score.fleet_peer_memory"), "{err}");
        let err = load_text("[score]\nfleet_peer_memory = \"1y\"\n").expect_err("too long");
        assert!(err.to_string().contains("score.fleet_peer_memory"), "{err}");
        let err = load_text("[score]\nfleet_peer_memory = \"24h\"\n").expect_err("the window");
        assert!(err.to_string().contains("score.fleet_peer_memory"), "{err}");
        load_text("[score]\nfleet_peer_memory = \"90d\"\n").expect("the longest");
        load_text("[score]\nfleet_peer_memory = \"0s\"\n").expect("off");
        load_text("[score]\nfleet_peer_memory = \"30d\"\n").expect("a month");
        let err = load_text("[detectors]\nnew_action = 1.5\n").expect_err("weight");
        assert!(err.to_string().contains("detectors.new_action"), "{err}");
    }

    #[test]
    fn kafka_runtime_keys_are_validated_by_name() {
        for (text, key) in [
            ("[kafka]\nproducer_queue = 10\n", "kafka.producer_queue"),
            (
                "[state]\nmax_seen_entries = 70000\n",
                "state.max_seen_entries",
            ),
            (
                "[kafka]\nstate_flush_interval = \"1m\"\n",
                "kafka.state_flush_interval",
            ),
            (
                "[kafka]\ncommit_interval = \"1ms\"\n",
                "kafka.commit_interval",
            ),
            (
                "[kafka]\ndedupe_window = 100000000\n",
                "kafka.dedupe_window",
            ),
        ] {
            let err = load_text(text).expect_err(key);
            assert!(err.to_string().contains(key), "{err}");
        }
        let config = load_text("[kafka]\ngroup_instance_id = \"riskd-0\"\n").expect("valid");
        assert_eq!(config.kafka.group_instance_id, "riskd-0");
    }

    #[test]
    fn tls_needs_both_cert_and_key() {
        let err = load_text("[api]\ntls_cert = \"/etc/riskd/cert.pem\"\n").expect_err("no key");
        assert!(err.to_string().contains("api.tls_key"), "{err}");
        let err = load_text("[api]\ntls_key = \"/etc/riskd/key.pem\"\n").expect_err("no cert");
        assert!(err.to_string().contains("api.tls_cert"), "{err}");
        let config = load_text("[api]\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n").expect("both");
        assert_eq!(config.api.tls_files(), Some(("c.pem", "k.pem")));
        let config = Config::default_config().expect("defaults");
        assert_eq!(config.api.tls_files(), None);
    }

    #[test]
    fn missing_file_is_an_error() {
        let err = Config::load(Some(Path::new("/nonexistent/riskd.toml"))).expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/riskd.toml"), "{err}");
    }

    #[test]
    fn token_is_redacted_in_output() {
        let mut config = Config::default_config().expect("defaults");
        config.api.token = "s3cret".into();
        assert!(!config.to_toml().contains("s3cret"));
        assert!(!format!("{config:?}").contains("s3cret"));
        config
            .kafka
            .properties
            .0
            .insert("sasl.password".into(), "hunter2".into());
        assert!(!config.to_toml().contains("hunter2"));
        assert!(!format!("{config:?}").contains("hunter2"));
        assert!(config.to_toml().contains("sasl.password"));
    }
}
