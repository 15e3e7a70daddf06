//! The deployment files (Dockerfile, docker-compose.yml, Prometheus config and alerts,
//! Grafana provisioning and dashboard) checked against each other and against what riskd
//! really exports. No Docker engine is needed: files are parsed, PromQL is parsed with a
//! real PromQL parser, and every metric a panel or alert names must appear in
//! `riskd::metrics::metrics().render()`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use promql_parser::label::MatchOp;
use promql_parser::parser::{self, Expr, LabelModifier};
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn yaml(rel: &str) -> Value {
    serde_norway::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not valid YAML: {e}"))
}

fn str_at<'a>(v: &'a Value, pointer: &str, what: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{what}: missing string at {pointer}"))
}

/// Compose interpolates `$VAR`/`${VAR}` and turns `$$` into `$`. Returns the string a
/// container would see, failing on a bare `$name` (almost always a forgotten `$$`).
fn compose_unescape(s: &str, where_: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            Some('$') => {
                chars.next();
                out.push('$');
            }
            Some('{') => {
                // Interpolation on purpose: `${NAME}` or `${NAME:-default}`.
                let mut inner = String::new();
                chars.next();
                for d in chars.by_ref() {
                    if d == '}' {
                        break;
                    }
                    inner.push(d);
                }
                let name = inner.split(":-").next().unwrap_or_default();
                assert!(
                    !name.is_empty()
                        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "{where_}: `${{{inner}}}` is not a compose variable; write `$${{...}}` for the shell"
                );
                out.push_str(&format!("<{name}>"));
            }
            other => panic!(
                "{where_}: bare `$` before {other:?} in {s:?}: compose would interpolate it; write `$$`"
            ),
        }
    }
    out
}

/// Every string inside a YAML/JSON value, with a path for messages.
fn walk_strings<'a>(v: &'a Value, path: String, out: &mut Vec<(String, &'a str)>) {
    match v {
        Value::String(s) => out.push((path, s)),
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                walk_strings(x, format!("{path}[{i}]"), out);
            }
        }
        Value::Object(o) => {
            for (k, x) in o {
                walk_strings(x, format!("{path}.{k}"), out);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------
// What riskd exports
// ---------------------------------------------------------------------------------------

struct Exported {
    /// Sample name -> Prometheus type of its family (`counter`, `gauge`, `histogram`).
    types: BTreeMap<String, String>,
    /// Sample name -> label name -> values seen.
    labels: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
}

/// Labels Prometheus adds at scrape time (config/prometheus.yml), valid on every metric.
const TARGET_LABELS: [&str; 3] = ["instance", "job", "deployment"];

fn exported() -> Exported {
    let m = riskd::metrics::metrics();
    // `riskd_consumer_lag_messages` is a gauge vector labelled by topic and partition; until the
    // Kafka runtime is assigned partitions it has no child, and the text format omits a
    // family with no samples. Setting one child here makes it render as it does in a
    // running consumer; the family itself is registered by `Metrics::new`, unchanged.
    m.consumer_lag.with_label_values(&["activity", "0"]).set(0);
    let text = m.render();

    let mut types = BTreeMap::new();
    let mut labels: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (name, kind) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            if kind == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    types.insert(format!("{name}{suffix}"), kind.to_string());
                }
            } else {
                types.insert(name.to_string(), kind.to_string());
            }
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        let entry = labels.entry(name.to_string()).or_default();
        if let (Some(open), Some(close)) = (line.find('{'), line.find('}')) {
            for pair in line[open + 1..close].split(',') {
                if let Some((k, v)) = pair.split_once('=') {
                    entry
                        .entry(k.to_string())
                        .or_default()
                        .insert(v.trim_matches('"').to_string());
                }
            }
        }
    }
    for name in labels.keys() {
        assert!(
            types.contains_key(name),
            "sample {name} has no # TYPE line in /metrics"
        );
    }
    Exported { types, labels }
}

#[test]
fn exported_metrics_cover_every_named_const() {
    let ex = exported();
    for name in [
        riskd::metrics::EVENTS_CONSUMED,
        riskd::metrics::EVENTS_REJECTED,
        riskd::metrics::SIGNALS_PUBLISHED,
        riskd::metrics::DETECTOR_FIRED,
        riskd::metrics::IDENTITIES_TRACKED,
        riskd::metrics::IDENTITIES_EVICTED,
        riskd::metrics::DECISIONS,
        riskd::metrics::CONSUMER_LAG,
        riskd::metrics::STATE_RESTORE_SECONDS,
        riskd::metrics::PIPELINE_SILENT_SECONDS,
        riskd::metrics::BUILD_INFO,
        riskd::metrics::API_REQUESTS,
    ] {
        assert!(
            ex.labels.contains_key(name),
            "{name} has no sample in /metrics"
        );
    }
    for hist in [
        riskd::metrics::EVENT_PROCESSING_SECONDS,
        riskd::metrics::EVENT_TO_SIGNAL_SECONDS,
        riskd::metrics::LOOKUP_DURATION_SECONDS,
    ] {
        assert!(
            ex.labels.contains_key(&format!("{hist}_bucket")),
            "{hist}_bucket has no sample in /metrics"
        );
    }
}

// ---------------------------------------------------------------------------------------
// PromQL
// ---------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct QueryFacts {
    /// Metric names selected.
    metrics: BTreeSet<String>,
    /// `histogram_quantile(q, ...)`: (q, bucket metric names under it).
    quantiles: Vec<(f64, BTreeSet<String>)>,
    /// Labels in `by (...)` clauses.
    group_by: BTreeSet<String>,
}

/// Grafana's built-in interval variables, replaced by a plausible value so the query
/// parses as plain PromQL. Any other `$` is an error (this dashboard has no variables).
fn substitute_grafana_vars(expr: &str, where_: &str) -> String {
    let out = expr
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h");
    assert!(
        !out.contains('$'),
        "{where_}: unknown Grafana variable in {expr:?}"
    );
    out
}

/// Parses `expr`, and checks every selector against what riskd exports: the metric exists
/// (`up` allowed only when `allow_up`), label matchers name exported labels and values,
/// `rate`/`increase` apply to counters, `histogram_quantile` to `_bucket` series, and
/// `by (...)` labels exist on the metrics aggregated.
fn check_promql(expr: &str, where_: &str, ex: &Exported, allow_up: bool) -> QueryFacts {
    let ast = parser::parse(expr)
        .unwrap_or_else(|e| panic!("{where_}: PromQL does not parse: {e}\n  {expr}"));
    let mut facts = QueryFacts::default();
    visit(&ast, where_, ex, allow_up, &mut facts);
    assert!(
        !facts.metrics.is_empty(),
        "{where_}: selects no metric: {expr}"
    );
    facts
}

/// Returns the metric names selected under `e`.
fn visit(
    e: &Expr,
    where_: &str,
    ex: &Exported,
    allow_up: bool,
    facts: &mut QueryFacts,
) -> BTreeSet<String> {
    match e {
        Expr::VectorSelector(vs) => check_selector(vs, where_, ex, allow_up, facts),
        Expr::MatrixSelector(ms) => check_selector(&ms.vs, where_, ex, allow_up, facts),
        Expr::Aggregate(a) => {
            let names = visit(&a.expr, where_, ex, allow_up, facts);
            if let Some(p) = &a.param {
                visit(p, where_, ex, allow_up, facts);
            }
            if let Some(LabelModifier::Include(labels)) = &a.modifier {
                for label in &labels.labels {
                    facts.group_by.insert(label.to_string());
                    if TARGET_LABELS.contains(&label.as_str()) || label == "le" {
                        continue;
                    }
                    for name in &names {
                        let has = ex
                            .labels
                            .get(name)
                            .is_some_and(|l| l.contains_key(label.as_str()));
                        assert!(
                            has || name == "up",
                            "{where_}: `by ({label})` but {name} has no label `{label}`"
                        );
                    }
                }
            }
            names
        }
        Expr::Unary(u) => visit(&u.expr, where_, ex, allow_up, facts),
        Expr::Paren(p) => visit(&p.expr, where_, ex, allow_up, facts),
        Expr::Subquery(s) => visit(&s.expr, where_, ex, allow_up, facts),
        Expr::Binary(b) => {
            let mut names = visit(&b.lhs, where_, ex, allow_up, facts);
            names.extend(visit(&b.rhs, where_, ex, allow_up, facts));
            names
        }
        Expr::Call(call) => {
            let mut names = BTreeSet::new();
            let mut per_arg = Vec::new();
            for arg in &call.args.args {
                let n = visit(arg, where_, ex, allow_up, facts);
                names.extend(n.iter().cloned());
                per_arg.push(n);
            }
            match call.func.name {
                "rate" | "increase" | "irate" => {
                    for name in &names {
                        let kind = ex.types.get(name).map(String::as_str);
                        assert!(
                            kind == Some("counter") || kind == Some("histogram"),
                            "{where_}: {}() over {name}, which is a {kind:?}, not a counter",
                            call.func.name
                        );
                    }
                }
                "histogram_quantile" => {
                    let q = match call.args.args.first().map(|b| &**b) {
                        Some(Expr::NumberLiteral(n)) => n.val,
                        other => panic!("{where_}: histogram_quantile quantile is {other:?}"),
                    };
                    let buckets = per_arg.get(1).cloned().unwrap_or_default();
                    for name in &buckets {
                        assert!(
                            name.ends_with("_bucket")
                                && ex.types.get(name).map(String::as_str) == Some("histogram"),
                            "{where_}: histogram_quantile over {name}, not a histogram _bucket"
                        );
                    }
                    facts.quantiles.push((q, buckets));
                }
                _ => {}
            }
            names
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => BTreeSet::new(),
    }
}

fn check_selector(
    vs: &promql_parser::parser::VectorSelector,
    where_: &str,
    ex: &Exported,
    allow_up: bool,
    facts: &mut QueryFacts,
) -> BTreeSet<String> {
    let name = vs
        .name
        .clone()
        .unwrap_or_else(|| panic!("{where_}: selector without a metric name: {vs}"));
    facts.metrics.insert(name.clone());
    if name == "up" && allow_up {
        return BTreeSet::from([name]);
    }
    let labels = ex.labels.get(&name).unwrap_or_else(|| {
        panic!(
            "{where_}: metric {name} is not exported by riskd (not in metrics().render()); \
             exported: {:?}",
            ex.labels.keys().collect::<Vec<_>>()
        )
    });
    for m in &vs.matchers.matchers {
        if TARGET_LABELS.contains(&m.name.as_str()) || m.name == "__name__" {
            continue;
        }
        let values = labels
            .get(&m.name)
            .unwrap_or_else(|| panic!("{where_}: {name} has no label `{}`", m.name));
        if matches!(m.op, MatchOp::Equal) {
            assert!(
                values.contains(&m.value),
                "{where_}: {name}{{{}=\"{}\"}} never exported; values: {values:?}",
                m.name,
                m.value
            );
        }
    }
    BTreeSet::from([name])
}

#[test]
fn promql_checker_rejects_mistakes() {
    // The checks above must be able to fail, or the file tests prove nothing.
    let ex = exported();
    let bad = [
        "rate(riskd_no_such_metric_total[5m])",
        "rate(riskd_identities_tracked[5m])",
        "sum by (sources) (rate(riskd_events_consumed_total[5m]))",
        "rate(riskd_api_requests_total{status=\"500\"}[5m])",
        "histogram_quantile(0.99, rate(riskd_events_consumed_total[5m]))",
        "sum(rate(riskd_events_consumed_total[5m])",
    ];
    for expr in bad {
        let result = std::panic::catch_unwind(|| check_promql(expr, "self-test", &ex, false));
        assert!(result.is_err(), "checker accepted a bad query: {expr}");
    }
    let good = check_promql(
        "histogram_quantile(0.99, sum by (le) (rate(riskd_lookup_duration_seconds_bucket[1m])))",
        "self-test",
        &ex,
        false,
    );
    assert_eq!(good.quantiles.len(), 1);
}

// ---------------------------------------------------------------------------------------
// docker-compose.yml
// ---------------------------------------------------------------------------------------

fn compose() -> Value {
    yaml("docker-compose.yml")
}

fn service<'a>(c: &'a Value, name: &str) -> &'a Value {
    c.pointer(&format!("/services/{name}"))
        .unwrap_or_else(|| panic!("docker-compose.yml has no service `{name}`"))
}

/// `environment` as a map, whether written as a map or a list of `K=V`.
fn env_of(svc: &Value) -> BTreeMap<String, String> {
    match svc.get("environment") {
        Some(Value::Object(o)) => o
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// Bind mounts of a service: (host path as written, container path).
fn bind_mounts(svc: &Value) -> Vec<(String, String)> {
    svc.get("volumes")
        .and_then(Value::as_array)
        .map(|vols| {
            vols.iter()
                .filter_map(Value::as_str)
                .filter(|v| v.starts_with("./"))
                .map(|v| {
                    let mut parts = v.split(':');
                    (
                        parts.next().unwrap_or_default().to_string(),
                        parts.next().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn healthcheck_test(svc: &Value, name: &str) -> Vec<String> {
    let test = svc
        .pointer("/healthcheck/test")
        .unwrap_or_else(|| panic!("service `{name}` has no healthcheck.test"));
    let parts: Vec<String> = match test {
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().unwrap_or_default().to_string())
            .collect(),
        Value::String(s) => vec!["CMD-SHELL".into(), s.clone()],
        other => panic!("service `{name}`: healthcheck.test is {other}"),
    };
    assert!(
        matches!(parts.first().map(String::as_str), Some("CMD" | "CMD-SHELL")) && parts.len() > 1,
        "service `{name}`: healthcheck.test must be [CMD, ...] or [CMD-SHELL, cmd]: {parts:?}"
    );
    parts
}

fn depends_on_condition<'a>(svc: &'a Value, dep: &str) -> Option<&'a str> {
    svc.pointer(&format!("/depends_on/{dep}/condition"))
        .and_then(Value::as_str)
}

#[test]
fn compose_has_the_services_with_healthchecks() {
    let c = compose();
    let services = c
        .get("services")
        .and_then(Value::as_object)
        .expect("docker-compose.yml: `services` is not a map");
    for name in ["kafka", "riskd", "prometheus", "grafana", "generator"] {
        assert!(services.contains_key(name), "missing service `{name}`");
    }
    // Long-running services are health-checked; the generator is a one-shot job.
    for name in ["kafka", "riskd", "prometheus", "grafana"] {
        healthcheck_test(service(&c, name), name);
    }
    assert!(
        str_at(service(&c, "kafka"), "/image", "kafka").starts_with("apache/kafka:"),
        "kafka must use the official apache/kafka image"
    );
    let kafka_env = env_of(service(&c, "kafka"));
    assert!(
        kafka_env
            .get("KAFKA_PROCESS_ROLES")
            .is_some_and(|r| r.contains("broker") && r.contains("controller")),
        "kafka must run KRaft as broker and controller"
    );
}

#[test]
fn compose_strings_escape_dollar_for_the_shell() {
    let c = compose();
    let mut strings = Vec::new();
    walk_strings(&c, "compose".into(), &mut strings);
    for (path, s) in strings {
        compose_unescape(s, &path);
    }
}

#[test]
fn compose_riskd_service_matches_config_and_prometheus() {
    let c = compose();
    let riskd = service(&c, "riskd");
    assert_eq!(
        depends_on_condition(riskd, "kafka"),
        Some("service_healthy"),
        "riskd must wait for kafka to be healthy"
    );
    let env = env_of(riskd);
    assert_eq!(
        env.get("RISKD__KAFKA__BROKERS").map(String::as_str),
        Some("kafka:9092")
    );
    let listen = env
        .get("RISKD__API__LISTEN")
        .expect("riskd needs RISKD__API__LISTEN (the default is loopback)");
    assert!(
        listen.starts_with("0.0.0.0:"),
        "riskd must listen on all interfaces in a container, got {listen}"
    );
    let port = listen.rsplit(':').next().unwrap_or_default();

    // Every RISKD__SECTION__KEY variable names a real config key.
    let defaults: toml::Value = toml::from_str(
        &riskd::config::Config::default_config()
            .expect("defaults load")
            .to_toml(),
    )
    .expect("effective config is TOML");
    for svc_name in ["riskd", "generator"] {
        let Some(svc) = c.pointer(&format!("/services/{svc_name}")) else {
            continue;
        };
        for key in env_of(svc).keys() {
            let Some(path) = key.strip_prefix("RISKD__") else {
                continue;
            };
            let mut node = &defaults;
            for part in path.split("__") {
                node = node
                    .get(part.to_ascii_lowercase().as_str())
                    .unwrap_or_else(|| {
                        panic!("{svc_name}: {key} names no config key (see config/default.toml)")
                    });
            }
        }
    }

    // Prometheus scrapes the riskd service on the port it listens on.
    let prom = yaml("config/prometheus.yml");
    let targets: Vec<String> = prom["scrape_configs"]
        .as_array()
        .expect("scrape_configs")
        .iter()
        .filter(|j| j["job_name"] == "riskd")
        .flat_map(|j| j["static_configs"].as_array().cloned().unwrap_or_default())
        .flat_map(|s| s["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t.as_str().map(str::to_string))
        .collect();
    assert_eq!(
        targets,
        vec![format!("riskd:{port}")],
        "config/prometheus.yml must scrape the compose service riskd on its API port"
    );
    let published: Vec<&str> = riskd["ports"]
        .as_array()
        .map(|p| p.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(
        published.iter().any(|p| p.ends_with(&format!(":{port}"))),
        "riskd should publish its API port {port}: {published:?}"
    );
}

#[test]
fn compose_generator_feeds_the_input_topic() {
    let c = compose();
    let generator = service(&c, "generator");
    assert_eq!(
        depends_on_condition(generator, "kafka"),
        Some("service_healthy")
    );
    let args: Vec<&str> = generator["command"]
        .as_array()
        .expect("generator: `command` is a list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(args.first(), Some(&"generate"), "{args:?}");
    assert!(
        args.contains(&"--kafka"),
        "generator must produce to Kafka: {args:?}"
    );
    // `riskd generate --kafka` keys by identity itself; the topic must be the one the
    // riskd service consumes, and the brokers the kafka service.
    let effective = |svc: &str| {
        let env = env_of(service(&c, svc));
        let mut config = riskd::config::Config::default_config().expect("defaults load");
        if let Some(topic) = env.get("RISKD__KAFKA__INPUT_TOPIC") {
            config.kafka.input_topic = topic.clone();
        }
        if let Some(brokers) = env.get("RISKD__KAFKA__BROKERS") {
            config.kafka.brokers = brokers.clone();
        }
        config.kafka
    };
    let (generator_kafka, riskd_kafka) = (effective("generator"), effective("riskd"));
    let topic = args
        .iter()
        .find_map(|a| a.strip_prefix("--topic="))
        .unwrap_or(&generator_kafka.input_topic);
    assert_eq!(
        topic, riskd_kafka.input_topic,
        "generator must produce to the riskd service's input topic"
    );
    assert_eq!(generator_kafka.brokers, "kafka:9092");
    assert_eq!(riskd_kafka.brokers, "kafka:9092");
    // The binary accepts exactly these arguments (compose interpolation aside).
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_riskd"));
    for a in &args {
        let a = a.replace("${GENERATOR_SEED:-7}", "7");
        let a = a.replace("${GENERATOR_IDENTITIES:-200}", "200");
        let a = a.replace("${GENERATOR_DAYS:-14}", "14");
        let a = a.replace("${GENERATOR_RATE:-500}", "500");
        assert!(!a.contains('$'), "uninterpolated argument in the test: {a}");
        cmd.arg(a);
    }
    let help = cmd.arg("--help").output().expect("run riskd");
    assert!(
        help.status.success(),
        "riskd rejects the generator's arguments: {}",
        String::from_utf8_lossy(&help.stderr)
    );
}

#[test]
fn compose_bind_mounts_exist_and_prometheus_loads_the_alerts() {
    let c = compose();
    let services = c["services"].as_object().expect("services");
    for (name, svc) in services {
        for (host, _) in bind_mounts(svc) {
            assert!(
                root().join(&host).exists(),
                "service `{name}` mounts {host}, which does not exist"
            );
        }
    }
    let prometheus = service(&c, "prometheus");
    let mounts = bind_mounts(prometheus);
    let target_of = |host: &str| {
        mounts
            .iter()
            .find(|(h, _)| h == host)
            .map(|(_, t)| t.clone())
            .unwrap_or_else(|| panic!("prometheus does not mount {host}"))
    };
    let config_target = target_of("./config/prometheus.yml");
    let alerts_target = target_of("./config/alerts.yml");
    let mut args = Vec::new();
    walk_strings(prometheus, "prometheus".into(), &mut args);
    assert!(
        args.iter()
            .any(|(_, a)| *a == format!("--config.file={config_target}")),
        "prometheus must run with --config.file={config_target}"
    );
    let prom = yaml("config/prometheus.yml");
    let rule_files: Vec<&str> = prom["rule_files"]
        .as_array()
        .expect("config/prometheus.yml has rule_files")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        rule_files.contains(&alerts_target.as_str()),
        "rule_files {rule_files:?} must load the mounted alerts at {alerts_target}"
    );
    for f in rule_files {
        assert!(
            mounts.iter().any(|(_, t)| t == f),
            "rule file {f} is not mounted into the prometheus container"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Alerts
// ---------------------------------------------------------------------------------------

#[test]
fn alerts_parse_and_use_exported_metrics() {
    let ex = exported();
    let alerts = yaml("config/alerts.yml");
    let groups = alerts["groups"].as_array().expect("alerts.yml: groups");
    let mut by_name: BTreeMap<String, QueryFacts> = BTreeMap::new();
    let mut exprs: BTreeMap<String, String> = BTreeMap::new();
    for group in groups {
        assert!(group["name"].is_string(), "every group needs a name");
        for rule in group["rules"].as_array().expect("group rules") {
            let name = str_at(rule, "/alert", "alert rule").to_string();
            let expr = str_at(rule, "/expr", &name);
            let facts = check_promql(expr, &format!("alert {name}"), &ex, true);
            if let Some(f) = rule.get("for") {
                let f = f.as_str().expect("`for` is a string");
                promql_parser::util::parse_duration(f)
                    .unwrap_or_else(|e| panic!("alert {name}: bad `for: {f}`: {e}"));
            }
            let severity = str_at(rule, "/labels/severity", &name);
            assert!(
                ["warning", "critical"].contains(&severity),
                "alert {name}: severity {severity}"
            );
            assert!(
                !str_at(rule, "/annotations/summary", &name).is_empty(),
                "alert {name}: empty summary"
            );
            assert!(
                by_name.insert(name.clone(), facts).is_none(),
                "alert {name} defined twice"
            );
            exprs.insert(name, expr.to_string());
        }
    }

    let required: [(&str, &[&str]); 5] = [
        ("RiskdDown", &["up"]),
        ("RiskdConsumerLagHigh", &["riskd_consumer_lag_messages"]),
        (
            "RiskdRejectRateHigh",
            &["riskd_events_rejected_total", "riskd_events_consumed_total"],
        ),
        (
            "RiskdNoSignals",
            &[
                "riskd_signals_published_total",
                "riskd_events_consumed_total",
            ],
        ),
        ("RiskdApiErrors", &["riskd_api_requests_total"]),
    ];
    for (alert, metrics) in required {
        let facts = by_name
            .get(alert)
            .unwrap_or_else(|| panic!("config/alerts.yml lacks alert {alert}"));
        for m in metrics {
            assert!(
                facts.metrics.contains(*m),
                "alert {alert} should use {m}; uses {:?}",
                facts.metrics
            );
        }
    }
    assert!(
        exprs["RiskdDown"].contains("== 0"),
        "RiskdDown fires on up == 0"
    );
    assert!(
        exprs["RiskdNoSignals"].contains("[1h]"),
        "RiskdNoSignals looks at an hour (a steady fleet can go 15 minutes without a signal)"
    );
    assert!(
        exprs["RiskdApiErrors"].contains("status=\"5xx\""),
        "RiskdApiErrors counts 5xx"
    );
}

// ---------------------------------------------------------------------------------------
// Grafana
// ---------------------------------------------------------------------------------------

const DASHBOARD: &str = "config/grafana/dashboards/riskd.json";

fn dashboard() -> Value {
    serde_json::from_str(&read(DASHBOARD))
        .unwrap_or_else(|e| panic!("{DASHBOARD} is not valid JSON: {e}"))
}

/// Non-row panels, including those nested in collapsed rows.
fn panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("dashboard.panels") {
        if p["type"] == "row" {
            out.extend(p["panels"].as_array().into_iter().flatten());
        } else {
            out.push(p);
        }
    }
    out
}

fn panel_exprs(p: &Value) -> Vec<&str> {
    p["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["expr"].as_str())
        .collect()
}

#[test]
fn dashboard_has_required_panels_on_exported_metrics() {
    let ex = exported();
    let d = dashboard();
    assert!(
        d["uid"].is_string() && d["title"].is_string(),
        "uid and title"
    );
    let all = panels(&d);

    let mut ids = BTreeSet::new();
    let mut facts_by_title: BTreeMap<String, QueryFacts> = BTreeMap::new();
    for p in &all {
        let title = str_at(p, "/title", "panel").to_string();
        assert!(
            ids.insert(p["id"].as_u64().expect("panel id")),
            "duplicate panel id in {title}"
        );
        let exprs = panel_exprs(p);
        assert!(!exprs.is_empty(), "panel {title} has no query");
        let mut merged = QueryFacts::default();
        for expr in exprs {
            let where_ = format!("panel {title}");
            let f = check_promql(&substitute_grafana_vars(expr, &where_), &where_, &ex, false);
            merged.metrics.extend(f.metrics);
            merged.quantiles.extend(f.quantiles);
            merged.group_by.extend(f.group_by);
        }
        facts_by_title.insert(title, merged);
    }

    let find = |title: &str| -> &QueryFacts {
        facts_by_title
            .iter()
            .find(|(t, _)| t.starts_with(title))
            .map(|(_, f)| f)
            .unwrap_or_else(|| {
                panic!(
                    "{DASHBOARD}: no panel titled `{title}`; panels: {:?}",
                    facts_by_title.keys().collect::<Vec<_>>()
                )
            })
    };
    // (panel title prefix, metric it must show, label it must break down by)
    let required: [(&str, &str, Option<&str>); 12] = [
        (
            "Throughput by source",
            "riskd_events_consumed_total",
            Some("source"),
        ),
        (
            "Rejects by reason",
            "riskd_events_rejected_total",
            Some("reason"),
        ),
        (
            "Consumer lag by partition",
            "riskd_consumer_lag_messages",
            Some("partition"),
        ),
        ("Identities tracked", "riskd_identities_tracked", None),
        ("Identities tracked", "riskd_identities_dormant", None),
        ("Identities evicted", "riskd_identities_evicted_total", None),
        (
            "Signals by level",
            "riskd_signals_published_total",
            Some("level"),
        ),
        (
            "Detector firings by detector",
            "riskd_detector_fired_total",
            Some("detector"),
        ),
        (
            "Decisions by decision",
            "riskd_decisions_total",
            Some("decision"),
        ),
        (
            "API responses by status",
            "riskd_api_requests_total",
            Some("status"),
        ),
        ("State restore seconds", "riskd_state_restore_seconds", None),
        ("Build info", "riskd_build_info", None),
    ];
    for (title, metric, by) in required {
        let f = find(title);
        assert!(
            f.metrics.contains(metric),
            "panel {title} should query {metric}; queries {:?}",
            f.metrics
        );
        if let Some(label) = by {
            assert!(
                f.group_by.contains(label),
                "panel {title} should break down `by ({label})`; groups by {:?}",
                f.group_by
            );
        }
    }
    for (title, hist) in [
        ("Event processing latency", "riskd_event_processing_seconds"),
        ("Event-to-signal latency", "riskd_event_to_signal_seconds"),
        ("Lookup latency", "riskd_lookup_duration_seconds"),
    ] {
        let f = find(title);
        if hist == "riskd_lookup_duration_seconds" {
            assert!(
                f.group_by.contains("endpoint"),
                "panel {title} should break down by endpoint; groups by {:?}",
                f.group_by
            );
        }
        for q in [0.5, 0.99] {
            assert!(
                f.quantiles
                    .iter()
                    .any(|(qq, b)| (*qq - q).abs() < 1e-9 && b.contains(&format!("{hist}_bucket"))),
                "panel {title} should show histogram_quantile({q}) over {hist}_bucket"
            );
        }
    }
}

#[test]
fn grafana_provisioning_points_at_the_dashboard_and_datasource() {
    let c = compose();
    let grafana = service(&c, "grafana");
    let mounts = bind_mounts(grafana);
    let target_of = |host: &str| {
        mounts
            .iter()
            .find(|(h, _)| h.trim_end_matches('/') == host)
            .map(|(_, t)| t.trim_end_matches('/').to_string())
            .unwrap_or_else(|| panic!("grafana does not mount {host}"))
    };
    assert_eq!(
        target_of("./config/grafana/provisioning"),
        "/etc/grafana/provisioning"
    );
    let dashboards_dir = target_of("./config/grafana/dashboards");

    let provider = yaml("config/grafana/provisioning/dashboards/riskd.yml");
    let providers = provider["providers"].as_array().expect("providers");
    assert!(
        providers.iter().any(|p| p["type"] == "file"
            && p.pointer("/options/path").and_then(Value::as_str) == Some(&dashboards_dir)),
        "a file provider must load {dashboards_dir} (where compose mounts the dashboards)"
    );

    let env = env_of(grafana);
    let home = env
        .get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
        .expect("grafana: the riskd dashboard is the home dashboard");
    let rel = home
        .strip_prefix(&format!("{dashboards_dir}/"))
        .unwrap_or_else(|| panic!("home dashboard {home} is not under {dashboards_dir}"));
    assert!(
        Path::new(&root().join("config/grafana/dashboards").join(rel)).is_file(),
        "home dashboard {rel} does not exist in config/grafana/dashboards"
    );
    assert_eq!(
        env.get("GF_AUTH_ANONYMOUS_ENABLED").map(String::as_str),
        Some("true")
    );
    assert_eq!(
        env.get("GF_AUTH_ANONYMOUS_ORG_ROLE").map(String::as_str),
        Some("Viewer")
    );

    let ds = yaml("config/grafana/provisioning/datasources/prometheus.yml");
    let sources = ds["datasources"].as_array().expect("datasources");
    let prom = sources
        .iter()
        .find(|s| s["type"] == "prometheus")
        .expect("a prometheus datasource");
    let uid = str_at(prom, "/uid", "datasource");
    let url = str_at(prom, "/url", "datasource");
    assert!(
        url.starts_with("http://prometheus:") && c.pointer("/services/prometheus").is_some(),
        "datasource url {url} must point at the compose prometheus service"
    );
    for p in panels(&dashboard()) {
        let title = p["title"].as_str().unwrap_or("?");
        assert_eq!(
            p.pointer("/datasource/uid").and_then(Value::as_str),
            Some(uid),
            "panel {title} must use the provisioned datasource uid {uid}"
        );
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(tuid) = t.pointer("/datasource/uid").and_then(Value::as_str) {
                assert_eq!(tuid, uid, "panel {title}: target datasource uid");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Dockerfile
// ---------------------------------------------------------------------------------------

/// Instructions as (KEYWORD, arguments), continuation lines joined, comments dropped.
fn dockerfile() -> Vec<(String, String)> {
    let text = read("Dockerfile");
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.starts_with('#') || trimmed.is_empty()) {
            continue;
        }
        if let Some(body) = trimmed.strip_suffix('\\') {
            current.push_str(body);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let (kw, args) = current
            .split_once(char::is_whitespace)
            .unwrap_or((&current, ""));
        out.push((kw.to_ascii_uppercase(), args.trim().to_string()));
        current.clear();
    }
    out
}

#[test]
fn dockerfile_is_multi_stage_and_runs_unprivileged() {
    let instrs = dockerfile();
    let froms: Vec<usize> = instrs
        .iter()
        .enumerate()
        .filter(|(_, (k, _))| k == "FROM")
        .map(|(i, _)| i)
        .collect();
    assert!(
        froms.len() >= 2,
        "Dockerfile must have a builder and a runtime stage"
    );
    let builder = &instrs[froms[0]].1;
    assert!(
        builder.starts_with("rust:") && builder.contains(" AS builder"),
        "first stage builds from a rust image: {builder}"
    );
    let last = *froms.last().unwrap_or(&0);
    assert!(
        instrs[last].1.starts_with("debian:bookworm-slim"),
        "runtime stage is debian:bookworm-slim, got {}",
        instrs[last].1
    );
    let builder_stage = &instrs[froms[0]..last];
    let runtime = &instrs[last..];
    let joined = |stage: &[(String, String)], kw: &str| -> String {
        stage
            .iter()
            .filter(|(k, _)| k == kw)
            .map(|(_, a)| a.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let builder_runs = joined(builder_stage, "RUN");
    for pkg in ["make", "gcc", "g++", "perl", "zlib1g-dev", "libssl-dev"] {
        assert!(
            builder_runs.split_whitespace().any(|w| w == pkg),
            "builder must install {pkg} (librdkafka from source with libz and ssl)"
        );
    }
    let runtime_runs = joined(runtime, "RUN");
    for pkg in ["ca-certificates", "libssl3", "zlib1g"] {
        assert!(
            runtime_runs.split_whitespace().any(|w| w == pkg),
            "runtime must install {pkg}"
        );
    }

    let users: Vec<&str> = runtime
        .iter()
        .filter(|(k, _)| k == "USER")
        .map(|(_, a)| a.as_str())
        .collect();
    let user = users.last().expect("runtime stage sets USER");
    let name = user.split(':').next().unwrap_or_default();
    assert!(
        !["root", "0", ""].contains(&name),
        "runtime must not run as root, USER is {user}"
    );
    assert!(
        runtime
            .iter()
            .any(|(k, a)| k == "EXPOSE" && a.split_whitespace().any(|p| p == "8080")),
        "EXPOSE 8080"
    );
    assert_eq!(joined(runtime, "ENTRYPOINT"), r#"["riskd"]"#);
    assert_eq!(joined(runtime, "CMD"), r#"["run"]"#);
    assert!(
        runtime
            .iter()
            .any(|(k, a)| k == "COPY" && a.split_whitespace().next() == Some("config/")),
        "runtime copies config/ so --config examples work"
    );
    assert!(
        joined(runtime, "ENV").contains("RISKD__API__LISTEN=0.0.0.0:8080"),
        "runtime listens on all interfaces (the default is loopback)"
    );
    let ignore = read(".dockerignore");
    for entry in ["target", ".git"] {
        assert!(
            ignore.lines().any(|l| l.trim() == entry),
            ".dockerignore must exclude {entry}"
        );
    }
}

/// The HEALTHCHECK command of the image, as argv.
fn dockerfile_healthcheck() -> Vec<String> {
    let instrs = dockerfile();
    let args = &instrs
        .iter()
        .find(|(k, _)| k == "HEALTHCHECK")
        .expect("Dockerfile has a HEALTHCHECK")
        .1;
    let json = &args[args
        .find("CMD [")
        .expect("HEALTHCHECK CMD [...] (exec form)")
        + 4..];
    serde_json::from_str(json).unwrap_or_else(|e| panic!("HEALTHCHECK CMD is not JSON: {e}"))
}

#[test]
fn compose_and_image_healthchecks_are_the_same_probe() {
    let c = compose();
    let compose_cmd: Vec<String> = healthcheck_test(service(&c, "riskd"), "riskd")[1..]
        .iter()
        .map(|s| compose_unescape(s, "riskd healthcheck"))
        .collect();
    assert_eq!(
        compose_cmd,
        dockerfile_healthcheck(),
        "docker-compose.yml and Dockerfile should probe riskd the same way"
    );
    assert_eq!(
        compose_cmd,
        ["riskd", "healthcheck"],
        "riskd is probed by its own `healthcheck` subcommand, which speaks TLS too"
    );
}

/// Runs the image's healthcheck command with `RISKD__API__LISTEN` pointing at `port`.
fn run_probe(port: u16) -> bool {
    let argv = dockerfile_healthcheck();
    // The image's `riskd` is the binary this test suite built.
    let program = match argv[0].as_str() {
        "riskd" => env!("CARGO_BIN_EXE_riskd"),
        other => other,
    };
    let status = Command::new(program)
        .args(&argv[1..])
        .env("RISKD__API__LISTEN", format!("0.0.0.0:{port}"))
        // The probe says why it failed on stderr; the exit status is what counts.
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run the healthcheck with {}: {e}", argv[0]));
    status.success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_probe_passes_on_riskd_and_fails_otherwise() {
    // The real riskd API on a free port.
    let mut config = riskd::config::Config::default_config().expect("defaults load");
    config.api.listen = "127.0.0.1:0".into();
    let listener = riskd::api::bind(&config).await.expect("bind API");
    let port = listener.local_addr().expect("addr").port();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let table = riskd::risk_table::RiskTable::new();
    let server = {
        let shutdown = shutdown.clone();
        let config = config.clone();
        tokio::spawn(async move { riskd::api::serve(listener, table, &config, shutdown).await })
    };
    assert!(
        tokio::task::spawn_blocking(move || run_probe(port))
            .await
            .expect("probe thread"),
        "the healthcheck fails against a healthy riskd on port {port}"
    );

    // A server that answers 503 must fail the probe.
    let bad = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let bad_port = bad.local_addr().expect("addr").port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut sock, _)) = bad.accept().await {
            let mut buf = [0u8; 1024];
            let _ = sock.read(&mut buf).await;
            let _ = sock
                .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    });
    assert!(
        !tokio::task::spawn_blocking(move || run_probe(bad_port))
            .await
            .expect("probe thread"),
        "the healthcheck passes against a server answering 503"
    );

    // Nothing listening must fail the probe too.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    assert!(
        !tokio::task::spawn_blocking(move || run_probe(closed))
            .await
            .expect("probe thread"),
        "the healthcheck passes with nothing listening"
    );

    shutdown.cancel();
    server
        .await
        .expect("server task")
        .expect("server shut down cleanly");
}
