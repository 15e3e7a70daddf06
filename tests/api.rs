//! The HTTP API over real loopback connections: every endpoint, auth, error reasons,
//! Envoy ext_authz headers, readiness, and `riskd demo` as a built binary.

use std::time::Duration;

use reqwest::StatusCode;
use riskd::config::{Config, HumanDuration};
use riskd::risk_table::{RiskTable, SharedRiskTable};
use riskd::signal::{model_name, IdentityState, Level, Reason, Signal};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

struct Server {
    base: String,
    table: SharedRiskTable,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), riskd::api::ApiError>>,
}

impl Server {
    async fn start(configure: impl FnOnce(&mut Config)) -> Server {
        let mut config = Config::default_config().expect("defaults");
        config.api.listen = "127.0.0.1:0".into();
        configure(&mut config);
        let listener = riskd::api::bind(&config).await.expect("bind loopback");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let table = RiskTable::new();
        table.set_ready(true);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let table = table.clone();
            let shutdown = shutdown.clone();
            async move { riskd::api::serve(listener, table, &config, shutdown).await }
        });
        Server {
            base,
            table,
            shutdown,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let result = tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("server stops promptly")
            .expect("server task not panicked");
        result.expect("server exits cleanly");
    }
}

fn signal(identity: &str, score: f64, level: Level, reasons: &[(&str, f64)]) -> Signal {
    Signal {
        identity: identity.into(),
        time: "2026-11-25T08:00:00.120Z".into(),
        score,
        level,
        state: IdentityState::Active,
        identity_kind: riskd::event::IdentityKind::Unknown,
        events_seen: 48211,
        reasons: reasons
            .iter()
            .map(|(d, s)| Reason {
                detector: (*d).into(),
                strength: *s,
                detail: format!("{d} detail"),
            })
            .collect(),
        event_id: None,
        model: model_name(),
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// Status of a GET of `url`.
async fn status_of(c: &reqwest::Client, url: String) -> StatusCode {
    c.get(url).send().await.expect("request").status()
}

async fn json_of(resp: reqwest::Response) -> Value {
    resp.json().await.expect("JSON body")
}

/// Percent-encodes everything but unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

const ARN: &str = "arn:aws:iam::123456789012:role/ci-deployer";

#[tokio::test]
async fn lookup_known_and_unknown_identities() {
    let s = Server::start(|_| {}).await;
    s.table
        .apply(signal(ARN, 72.4, Level::High, &[("new_destination", 0.81)]));
    let c = client();

    let resp = c
        .get(s.url(&format!("/v1/risk/{}", encode(ARN))))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::OK);
    let body = json_of(resp).await;
    assert_eq!(body["identity"], ARN);
    assert_eq!(body["score"], 72.4);
    assert_eq!(body["level"], "high");
    assert_eq!(body["state"], "active");
    assert_eq!(body["events_seen"], 48211);
    assert_eq!(body["updated"], "2026-11-25T08:00:00.120Z");
    assert_eq!(body["reasons"][0]["detector"], "new_destination");
    assert!(body["age_seconds"].as_f64().expect("age") >= 0.0);

    // An unencoded `/` in the identity works too.
    let resp = c
        .get(s.url(&format!("/v1/risk/{ARN}")))
        .send()
        .await
        .expect("request");
    assert_eq!(json_of(resp).await["score"], 72.4);

    // Never seen: explicit unknown, null score, never a zero.
    let resp = c
        .get(s.url("/v1/risk/system%3Aserviceaccount%3Ans%3Aghost"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::OK);
    let body = json_of(resp).await;
    assert_eq!(body["identity"], "system:serviceaccount:ns:ghost");
    assert_eq!(body["state"], "unknown");
    assert!(body["score"].is_null() && body["level"].is_null(), "{body}");
    assert!(body["updated"].is_null() && body["age_seconds"].is_null());
    assert_eq!(body["events_seen"], 0);
    s.stop().await;
}

#[tokio::test]
async fn batch_keeps_order_and_enforces_limits() {
    let s = Server::start(|c| {
        c.api.max_batch = 3;
        c.api.max_body_bytes = 1024;
    })
    .await;
    s.table.apply(signal("a", 10.0, Level::Normal, &[]));
    s.table.apply(signal("c", 90.0, Level::Critical, &[]));
    let c = client();

    let resp = c
        .post(s.url("/v1/risk:batch"))
        .json(&json!({"identities": ["c", "b", "a"]}))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::OK);
    let body = json_of(resp).await;
    let results = body["results"].as_array().expect("results");
    let ids: Vec<&str> = results
        .iter()
        .map(|r| r["identity"].as_str().expect("identity"))
        .collect();
    assert_eq!(ids, ["c", "b", "a"]);
    assert_eq!(results[0]["level"], "critical");
    assert_eq!(results[1]["state"], "unknown");
    assert!(results[1]["score"].is_null());

    // Over api.max_batch: refused with the reason.
    let resp = c
        .post(s.url("/v1/risk:batch"))
        .json(&json!({"identities": ["a", "b", "c", "d"]}))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let err = json_of(resp).await["error"]
        .as_str()
        .expect("error")
        .to_string();
    assert!(err.contains("api.max_batch"), "{err}");

    // Over api.max_body_bytes.
    let big = "x".repeat(2000);
    let resp = c
        .post(s.url("/v1/risk:batch"))
        .json(&json!({"identities": [big]}))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(json_of(resp).await["error"].is_string());

    // Malformed JSON.
    let resp = c
        .post(s.url("/v1/risk:batch"))
        .header("content-type", "application/json")
        .body("{\"identities\": [")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(json_of(resp).await["error"].is_string());

    // Unknown field.
    let resp = c
        .post(s.url("/v1/risk:batch"))
        .json(&json!({"identities": ["a"], "include": "all"}))
        .send()
        .await
        .expect("request");
    assert!(resp.status().is_client_error(), "{}", resp.status());
    let err = json_of(resp).await["error"]
        .as_str()
        .expect("error")
        .to_string();
    assert!(err.contains("unknown field"), "{err}");

    // Not JSON at all.
    let resp = c
        .post(s.url("/v1/risk:batch"))
        .body("identities=a")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(json_of(resp).await["error"].is_string());
    s.stop().await;
}

#[tokio::test]
async fn list_is_riskiest_first_and_stats_count_levels() {
    let s = Server::start(|_| {}).await;
    s.table.apply(signal("low", 5.0, Level::Normal, &[]));
    s.table.apply(signal("mid", 65.0, Level::High, &[]));
    s.table.apply(signal("top", 95.0, Level::Critical, &[]));
    s.table.apply(signal("warm", 35.0, Level::Elevated, &[]));
    let c = client();

    let body = json_of(
        c.get(s.url("/v1/risk?min_level=high&limit=10"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    let ids: Vec<&str> = body["identities"]
        .as_array()
        .expect("list")
        .iter()
        .map(|r| r["identity"].as_str().expect("identity"))
        .collect();
    assert_eq!(ids, ["top", "mid"]);

    let body = json_of(
        c.get(s.url("/v1/risk?min_level=normal&limit=2"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(body["identities"].as_array().expect("list").len(), 2);

    let resp = c
        .get(s.url("/v1/risk?min_level=purple"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(json_of(resp).await["error"]
        .as_str()
        .expect("error")
        .contains("min_level"));
    let resp = c
        .get(s.url("/v1/risk?limit=-1"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    // One lookup so the lookup histogram is not empty.
    c.get(s.url("/v1/risk/top")).send().await.expect("request");
    let stats = json_of(c.get(s.url("/v1/stats")).send().await.expect("request")).await;
    assert_eq!(stats["identities"]["total"], 4);
    assert_eq!(stats["identities"]["critical"], 1);
    assert_eq!(stats["identities"]["high"], 1);
    assert_eq!(stats["identities"]["elevated"], 1);
    assert_eq!(stats["identities"]["normal"], 1);
    assert_eq!(stats["ready"], true);
    let lookup = &stats["handler_latency_us"]["lookup"];
    assert_eq!(lookup["count"], 1);
    assert!(lookup["p99"].as_f64().expect("p99") > 0.0);
    s.stop().await;
}

#[tokio::test]
async fn token_is_required_on_v1_and_ext_authz_only() {
    let s = Server::start(|c| c.api.token = "correct-horse-battery-staple".into()).await;
    let c = client();
    for path in ["/v1/risk/a", "/v1/stats", "/v1/risk", "/ext_authz/x"] {
        let resp = c.get(s.url(path)).send().await.expect("request");
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert!(resp.headers().contains_key("www-authenticate"));
        assert!(json_of(resp).await["error"].is_string());
        let resp = c
            .get(s.url(path))
            .bearer_auth("wrong-horse-battery-staple")
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    let resp = c
        .post(s.url("/v1/decide"))
        .json(&json!({"identity":"a","action":"b","destination":"c"}))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = c
        .get(s.url("/v1/risk/a"))
        .bearer_auth("correct-horse-battery-staple")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::OK);
    // Probes and scrapes stay open.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let resp = c.get(s.url(path)).send().await.expect("request");
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
    }
    s.stop().await;
}

#[tokio::test]
async fn decide_with_builtin_policy_and_with_example_policy() {
    let s = Server::start(|_| {}).await;
    s.table.apply(signal(
        "crit",
        92.0,
        Level::Critical,
        &[("volume_spike", 0.9)],
    ));
    s.table.apply(signal("hot", 66.0, Level::High, &[]));
    s.table.apply(signal("calm", 3.0, Level::Normal, &[]));
    let c = client();
    let decide = |identity: &'static str| {
        c.post(s.url("/v1/decide"))
            .json(&json!({"identity": identity, "action": "s3:GetObject",
                          "destination": "arn:aws:s3:::reports", "context": {"ticket": 42}}))
            .send()
    };
    let body = json_of(decide("crit").await.expect("request")).await;
    assert_eq!(body["decision"], "deny");
    assert_eq!(body["rule"], "default");
    assert_eq!(body["score"], 92.0);
    assert_eq!(body["level"], "critical");
    assert_eq!(body["reasons"][0]["detector"], "volume_spike");
    assert_eq!(
        json_of(decide("hot").await.expect("request")).await["decision"],
        "step_up"
    );
    assert_eq!(
        json_of(decide("calm").await.expect("request")).await["decision"],
        "allow"
    );
    let body = json_of(decide("never-seen").await.expect("request")).await;
    assert_eq!(body["state"], "unknown");
    assert!(body["score"].is_null());

    // Bad requests say why.
    let resp = c
        .post(s.url("/v1/decide"))
        .json(&json!({"identity": "a", "action": "b"}))
        .send()
        .await
        .expect("request");
    assert!(resp.status().is_client_error());
    assert!(json_of(resp).await["error"]
        .as_str()
        .expect("error")
        .contains("destination"));
    let resp = c
        .post(s.url("/v1/decide"))
        .json(&json!({"identity": "a", "action": "b", "destination": "c", "context": {"x": [1]}}))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // A kind no rule can select would slip past every rule that selects on the kind.
    let resp = c
        .post(s.url("/v1/decide"))
        .json(&json!({"identity": "a", "action": "b", "destination": "c",
                      "context": {"identity_kind": "API_KEY"}}))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(json_of(resp).await["error"]
        .as_str()
        .expect("error")
        .contains("`API_KEY`"));
    s.stop().await;

    // The shipped example policy, through the API.
    let policy = concat!(env!("CARGO_MANIFEST_DIR"), "/config/policy.example.toml");
    let s = Server::start(|c| c.api.policy_file = policy.into()).await;
    s.table.apply(signal("pay-key-1", 4.0, Level::Normal, &[]));
    let body = json_of(
        c.post(s.url("/v1/decide"))
            .json(
                &json!({"identity": "pay-key-1", "action": "POST /v1/payments/export",
                          "destination": "payments-api", "context": {"identity_kind": "api_key"}}),
            )
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(body["decision"], "deny");
    assert_eq!(body["rule"], "payment-key-no-customer-export");
    // Through Envoy's check, which sends no kind: the kind riskd saw on the key's
    // events selects the same rule, and `/v1/risk` reports it.
    let mut seen = signal("pay-key-2", 4.0, Level::Normal, &[]);
    seen.identity_kind = riskd::event::IdentityKind::ApiKey;
    s.table.apply(seen);
    let resp = c
        .post(s.url("/ext_authz/v1/payments/export"))
        .header("host", "payments-api")
        .header("x-riskd-identity", "pay-key-2")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        resp.headers()["x-riskd-rule"],
        "payment-key-no-customer-export"
    );
    let body = json_of(
        c.get(s.url("/v1/risk/pay-key-2"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(body["identity_kind"], "api_key");
    s.stop().await;
}

#[tokio::test]
async fn broken_policy_file_fails_start_naming_rule_and_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("policy.toml");
    std::fs::write(
        &path,
        "[[rules]]\nname = \"ok\"\n[[rules]]\nname = \"bad\"\nmax_level = \"severe\"\n",
    )
    .expect("write");
    let mut config = Config::default_config().expect("defaults");
    config.api.policy_file = path.display().to_string();
    let err = riskd::api::router(RiskTable::new(), &config).expect_err("broken policy");
    assert!(err.to_string().contains("rules[1].max_level"), "{err}");
    let err = config.validate().expect_err("check-config catches it too");
    assert!(err.to_string().contains("api.policy_file"), "{err}");
}

#[tokio::test]
async fn ext_authz_allow_step_up_and_deny() {
    let s = Server::start(|_| {}).await;
    s.table.apply(signal("svc-calm", 3.0, Level::Normal, &[]));
    s.table.apply(signal("svc-hot", 70.0, Level::High, &[]));
    s.table
        .apply(signal("svc-crit", 97.0, Level::Critical, &[]));
    let c = client();
    let check = |identity: Option<&'static str>| {
        let mut req = c
            .post(s.url("/ext_authz/v1/payments/export?format=csv"))
            .header("host", "payments.internal")
            .header("x-forwarded-for", "203.0.113.9, 10.0.0.1");
        if let Some(id) = identity {
            req = req.header("x-riskd-identity", id);
        }
        req.send()
    };

    let resp = check(Some("svc-calm")).await.expect("request");
    assert_eq!(resp.status(), StatusCode::OK);
    let h = resp.headers();
    assert_eq!(h["x-riskd-decision"], "allow");
    assert_eq!(h["x-riskd-score"], "3.0");
    assert_eq!(h["x-riskd-level"], "normal");

    let resp = check(Some("svc-hot")).await.expect("request");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(resp.headers()["x-riskd-decision"], "step_up");
    assert_eq!(resp.headers()["x-riskd-level"], "high");

    let resp = check(Some("svc-crit")).await.expect("request");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(resp.headers()["x-riskd-decision"], "deny");
    assert_eq!(resp.headers()["x-riskd-score"], "97.0");
    let body = json_of(resp).await;
    assert_eq!(body["decision"], "deny");

    // Unknown identity: allowed by the default policy, but flagged, and no fake score.
    let resp = check(Some("svc-new")).await.expect("request");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-riskd-state"], "unknown");
    assert!(!resp.headers().contains_key("x-riskd-score"));

    // No identity header: fail closed.
    let resp = check(None).await.expect("request");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(resp.headers()["x-riskd-decision"], "deny");
    s.stop().await;
}

#[tokio::test]
async fn ext_authz_maps_method_path_host_and_context_headers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("policy.toml");
    std::fs::write(
        &path,
        r#"
[[rules]]
name = "export-needs-approval-from-office"
action = ["POST /v1/*/export"]
destination = ["payments.internal"]
require_context = ["approval_id"]
source_networks = ["203.0.113.0/24"]
"#,
    )
    .expect("write");
    let s = Server::start(|c| {
        c.api.policy_file = path.display().to_string();
        c.api.identity_header = "x-client-id".into();
    })
    .await;
    let c = client();
    const EXPORT: &str = "/v1/payments/export";
    const HOST: &str = "payments.internal";
    const APPROVED: &[(&str, &str)] = &[("x-riskd-context-approval-id", "CHG-1")];
    let send = |path: &str, host: &str, xff: &str, headers: &[(&str, &str)]| {
        let mut req = c
            .post(s.url(&format!("/ext_authz{path}")))
            .header("host", host)
            .header("x-client-id", "svc-a")
            .header("x-forwarded-for", xff);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.send()
    };
    let resp = send(EXPORT, HOST, "203.0.113.9", APPROVED)
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["x-riskd-rule"],
        "export-needs-approval-from-office"
    );
    // Another spelling of the same host and path is the same request: the rule
    // applies (and its missing approval denies) rather than no rule at all.
    let resp = send(
        "/v1//payments/%65xport/",
        "PAYMENTS.internal:443",
        "203.0.113.9",
        &[],
    )
    .await
    .expect("request");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        resp.headers()["x-riskd-rule"],
        "export-needs-approval-from-office"
    );
    let resp = send(EXPORT, HOST, "203.0.113.9", &[])
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let body = json_of(resp).await;
    assert!(
        body["explanation"].to_string().contains("approval_id"),
        "{body}"
    );
    let resp = send(EXPORT, HOST, "198.51.100.7", APPROVED)
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // The client's own X-Forwarded-For entries come first; Envoy appends the address
    // it saw last. Only that one counts.
    let resp = send(EXPORT, HOST, "203.0.113.9, 198.51.100.7", APPROVED)
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // Neither a context header naming the source nor an underscore spelling of the
    // approval (which a proxy stripping `x-riskd-context-approval-id` lets through)
    // is taken from the client.
    let resp = send(
        EXPORT,
        HOST,
        "198.51.100.7",
        &[
            ("x-riskd-context-source-ip", "203.0.113.9"),
            ("x-riskd-context-approval-id", "CHG-1"),
        ],
    )
    .await
    .expect("request");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = send(
        EXPORT,
        HOST,
        "203.0.113.9",
        &[("x-riskd-context-approval_id", "CHG-1")],
    )
    .await
    .expect("request");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    s.stop().await;
}

#[tokio::test]
async fn a_stalled_pipeline_makes_readyz_unready_but_lookups_still_answer() {
    // The shortest stall the config accepts is 5 s, and it counts as at least the
    // session timeout; built directly, the server takes 300 ms for both, so the test
    // need not wait.
    let s = Server::start(|c| {
        c.api.max_pipeline_stall = HumanDuration(Duration::from_millis(300));
        c.kafka.session_timeout = HumanDuration(Duration::from_millis(300));
    })
    .await;
    let c = client();
    s.table
        .apply(signal("svc", 70.0, Level::High, &[("new_source", 0.9)]));
    // No pipeline here yet: nothing to be stalled.
    assert_eq!(status_of(&c, s.url("/readyz")).await, StatusCode::OK);
    s.table.beat(0);
    assert_eq!(status_of(&c, s.url("/readyz")).await, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let resp = c.get(s.url("/readyz")).send().await.expect("request");
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let reason = resp.text().await.expect("body");
    assert!(reason.contains("pipeline stalled"), "{reason}");
    let stats = json_of(c.get(s.url("/v1/stats")).send().await.expect("request")).await;
    assert_eq!(stats["pipeline_stalled"], true);
    assert!(
        stats["pipeline_silent_seconds"].as_f64() >= Some(0.4),
        "{stats}"
    );
    // Prometheus sees it too (only this test's server has a pipeline beating).
    let text = c
        .get(s.url("/metrics"))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    let silent: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("riskd_pipeline_silent_seconds "))
        .and_then(|v| v.trim().parse().ok())
        .expect("riskd_pipeline_silent_seconds in /metrics");
    assert!(silent >= 0.4, "{silent}");
    // Lookups keep answering with the last score: the caller decides what stale means.
    let resp = c.get(s.url("/v1/risk/svc")).send().await.expect("request");
    assert_eq!(resp.status(), StatusCode::OK);
    // The pipeline going round again makes it ready again.
    s.table.beat(0);
    assert_eq!(status_of(&c, s.url("/readyz")).await, StatusCode::OK);
    let stats = json_of(c.get(s.url("/v1/stats")).send().await.expect("request")).await;
    assert_eq!(stats["pipeline_stalled"], false);
    s.stop().await;
}

#[tokio::test]
async fn health_readiness_metrics_and_unknown_routes() {
    let s = Server::start(|_| {}).await;
    let c = client();
    assert_eq!(status_of(&c, s.url("/healthz")).await, StatusCode::OK);
    s.table.set_ready(false);
    assert_eq!(
        status_of(&c, s.url("/readyz")).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Not ready: no answers that could be mistaken for "never seen".
    let resp = c.get(s.url("/v1/risk/a")).send().await.expect("request");
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(json_of(resp).await["error"].is_string());
    let resp = c
        .get(s.url("/ext_authz/x"))
        .header("x-riskd-identity", "a")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let stats = json_of(c.get(s.url("/v1/stats")).send().await.expect("request")).await;
    assert_eq!(stats["ready"], false);
    s.table.set_ready(true);
    assert_eq!(status_of(&c, s.url("/readyz")).await, StatusCode::OK);
    let resp = c.get(s.url("/v1/nope")).send().await.expect("request");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(json_of(resp).await["error"].is_string());
    let resp = c.delete(s.url("/v1/risk/a")).send().await.expect("request");
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(json_of(resp).await["error"].is_string());

    let text = c
        .get(s.url("/metrics"))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("text");
    assert!(
        text.contains("riskd_api_requests_total{status=\"4xx\"}"),
        "{text}"
    );
    // Lookups, batches and decisions are timed apart: a single lookup's p99 must not
    // drown in 1,000-identity batches.
    for endpoint in ["lookup", "batch", "decide"] {
        assert!(
            text.contains(&format!(
                "riskd_lookup_duration_seconds_count{{endpoint=\"{endpoint}\"}}"
            )),
            "{text}"
        );
    }
    assert!(text.contains("riskd_decisions_total"));
    s.stop().await;
}

/// A loopback port that was free a moment ago (the demo binds it itself).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn spawn_demo(port: u16, duration: &str) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_riskd"))
        .arg("demo")
        .env("RISKD__API__LISTEN", format!("127.0.0.1:{port}"))
        .env("RISKD__DEMO__DURATION", duration)
        .env("RISKD__DEMO__IDENTITIES", "50")
        .env("RISKD_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn riskd demo")
}

fn wait_exit(child: &mut std::process::Child, within: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("riskd demo did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `/readyz` until the demo answers, then until it has scored someone.
async fn wait_for_scores(base: &str) -> Value {
    let c = client();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "demo never served scores"
        );
        if let Ok(resp) = c.get(format!("{base}/readyz")).send().await {
            if resp.status() == StatusCode::OK {
                let list = json_of(
                    c.get(format!("{base}/v1/risk?min_level=normal&limit=5"))
                        .send()
                        .await
                        .expect("list"),
                )
                .await;
                if !list["identities"]
                    .as_array()
                    .expect("identities")
                    .is_empty()
                {
                    return list;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn demo_binary_serves_scores_and_stops_on_sigint() {
    let port = free_port();
    let mut child = spawn_demo(port, "120s");
    let base = format!("http://127.0.0.1:{port}");
    let list = wait_for_scores(&base).await;
    let first = list["identities"][0]["identity"]
        .as_str()
        .expect("identity")
        .to_string();
    let c = client();
    let one = json_of(
        c.get(format!("{base}/v1/risk/{}", encode(&first)))
            .send()
            .await
            .expect("lookup"),
    )
    .await;
    assert_eq!(one["identity"], first.as_str());
    assert!(one["score"].is_number(), "{one}");
    let decision = json_of(
        c.post(format!("{base}/v1/decide"))
            .json(&json!({"identity": first, "action": "s3:GetObject", "destination": "x"}))
            .send()
            .await
            .expect("decide"),
    )
    .await;
    assert!(decision["decision"].is_string(), "{decision}");
    let metrics = c
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.lines().any(
            |l| l.starts_with("riskd_events_consumed_total{source=\"demo\"}") && !l.ends_with(" 0")
        ),
        "demo events not counted"
    );

    // Ctrl-C: a clean, prompt, successful exit.
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(status.success());
    let status = wait_exit(&mut child, Duration::from_secs(10));
    assert!(status.success(), "demo exited with {status}");
}

#[tokio::test]
async fn demo_binary_stops_by_itself_after_duration() {
    let port = free_port();
    let mut child = spawn_demo(port, "3s");
    wait_for_scores(&format!("http://127.0.0.1:{port}")).await;
    let status = wait_exit(&mut child, Duration::from_secs(20));
    assert!(status.success(), "demo exited with {status}");
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().expect("stdout"), &mut stdout)
        .expect("read stdout");
    // Not a terminal: no ANSI live view on stdout.
    assert!(!stdout.contains("\x1b[2J"), "{stdout}");
}

#[tokio::test]
async fn a_client_that_never_finishes_its_request_does_not_hold_shutdown() {
    let s = Server::start(|_| {}).await;
    let addr = s.base.trim_start_matches("http://").to_string();
    // Half a request, then silence: graceful shutdown waited for it (until hyper's
    // 30 s header timeout; a client trickling bytes, longer).
    let mut stalled = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    tokio::io::AsyncWriteExt::write_all(&mut stalled, b"GET /v1/risk/a HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.shutdown.cancel();
    let result = tokio::time::timeout(Duration::from_secs(15), s.task)
        .await
        .expect("the server stops within its shutdown grace")
        .expect("server task not panicked");
    result.expect("server exits cleanly");
    drop(stalled);
}
