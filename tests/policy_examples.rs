//! The five "Examples and Use Cases" of the seed text, each decided by the shipped
//! example policy (`config/policy.example.toml`). One test per example; each checks the
//! permitted path and every way the seed says it must be refused.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use riskd::config::Config;
use riskd::policy::{Decision, DecisionInput, Policy, Verdict};
use riskd::signal::{model_name, IdentityState, Level, Reason, Signal};

fn policy() -> Policy {
    let config = Config::default_config().expect("defaults");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/policy.example.toml");
    Policy::load(path, &config.sensitivity).expect("example policy loads")
}

/// Wednesday 2026-11-25 at `h`:`m` UTC.
fn wednesday(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, h, m, 0)
        .single()
        .expect("valid")
}

fn saturday_noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0)
        .single()
        .expect("valid")
}

fn signal(identity: &str, score: f64, level: Level, reasons: &[(&str, f64)]) -> Signal {
    Signal {
        identity: identity.into(),
        time: "2026-11-25T08:00:00.000Z".into(),
        score,
        level,
        state: IdentityState::Active,
        identity_kind: riskd::event::IdentityKind::Unknown,
        events_seen: 5000,
        reasons: reasons
            .iter()
            .map(|(d, s)| Reason {
                detector: (*d).into(),
                strength: *s,
                detail: format!("{d} fired"),
            })
            .collect(),
        event_id: None,
        model: model_name(),
    }
}

fn normal(identity: &str) -> Signal {
    signal(identity, 5.0, Level::Normal, &[])
}

fn ctx(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

fn decide(
    policy: &Policy,
    identity: &str,
    action: &str,
    destination: &str,
    context: &BTreeMap<String, String>,
    risk: Option<&Signal>,
    now: DateTime<Utc>,
) -> Verdict {
    policy.evaluate(
        &DecisionInput {
            identity,
            action,
            destination,
            context,
        },
        risk,
        now,
    )
}

#[test]
fn example_1_coding_agent_reads_docs_but_pushes_only_in_change_window_with_signed_approval() {
    let p = policy();
    let agent = "spiffe://corp/agents/copilot";
    let risk = normal(agent);
    let kind = ("identity_kind", "ai_agent");

    // Reading internal documentation: allowed.
    let v = decide(
        &p,
        agent,
        "docs:read",
        "docs.internal/handbook/onboarding",
        &ctx(&[kind]),
        Some(&risk),
        saturday_noon(),
    );
    assert_eq!(v.decision, Decision::Allow, "{v:?}");
    assert_eq!(v.rule, "coding-agent-reads-internal-docs");

    let approved = ctx(&[
        kind,
        ("approval_id", "CHG-1042"),
        ("approval_path", "signed/release-board"),
    ]);
    // Push in the change window with a signed approval: allowed.
    let v = decide(
        &p,
        agent,
        "git:push",
        "github.com/corp/payments",
        &approved,
        Some(&risk),
        wednesday(10, 30),
    );
    assert_eq!(v.decision, Decision::Allow, "{v:?}");
    assert_eq!(
        v.rule,
        "coding-agent-push-needs-change-window-and-signed-approval"
    );

    // Outside the change window: denied.
    let v = decide(
        &p,
        agent,
        "git:push",
        "github.com/corp/payments",
        &approved,
        Some(&risk),
        saturday_noon(),
    );
    assert_eq!(v.decision, Decision::Deny, "{v:?}");
    assert!(v.explanation.iter().any(|e| e.contains("time window")));
    let v = decide(
        &p,
        agent,
        "git:push",
        "github.com/corp/payments",
        &approved,
        Some(&risk),
        wednesday(17, 0),
    );
    assert_eq!(v.decision, Decision::Deny, "window end is exclusive: {v:?}");

    // No approval, or one that did not come through the signed path: denied.
    let v = decide(
        &p,
        agent,
        "git:push",
        "github.com/corp/payments",
        &ctx(&[kind]),
        Some(&risk),
        wednesday(10, 30),
    );
    assert_eq!(v.decision, Decision::Deny, "{v:?}");
    assert!(v.explanation.iter().any(|e| e.contains("approval_id")));
    let unsigned = ctx(&[
        kind,
        ("approval_id", "CHG-1042"),
        ("approval_path", "chat/self-approved"),
    ]);
    let v = decide(
        &p,
        agent,
        "git:push",
        "github.com/corp/payments",
        &unsigned,
        Some(&risk),
        wednesday(10, 30),
    );
    assert_eq!(v.decision, Decision::Deny, "{v:?}");
}

#[test]
fn example_2_service_account_only_in_allowlisted_environments_and_governed() {
    let p = policy();
    let sa = "system:serviceaccount:billing:invoice-sync";
    let risk = normal(sa);
    let good = ctx(&[
        ("identity_kind", "service_account"),
        ("environment", "prod"),
        ("owner", "team-billing"),
    ]);

    let v = decide(
        &p,
        sa,
        "POST /v1/invoices",
        "billing-api.prod",
        &good,
        Some(&risk),
        saturday_noon(),
    );
    assert_eq!(v.decision, Decision::Allow, "{v:?}");
    assert_eq!(v.rule, "service-account-allowlisted-environments");

    // Destination in an environment that is not allowlisted: denied.
    let mut dev = good.clone();
    dev.insert("environment".into(), "dev-sandbox".into());
    let v = decide(
        &p,
        sa,
        "POST /v1/invoices",
        "billing-api.dev",
        &dev,
        Some(&risk),
        saturday_noon(),
    );
    assert_eq!(v.decision, Decision::Deny, "{v:?}");

    // Lifecycle governance: no owner on record, never seen, or still learning.
    let orphan = ctx(&[
        ("identity_kind", "service_account"),
        ("environment", "prod"),
    ]);
    let v = decide(
        &p,
        sa,
        "POST /v1/invoices",
        "billing-api.prod",
        &orphan,
        Some(&risk),
        saturday_noon(),
    );
    assert_eq!(v.decision, Decision::Deny, "{v:?}");
    let v = decide(
        &p,
        sa,
        "POST /v1/invoices",
        "billing-api.prod",
        &good,
        None,
        saturday_noon(),
    );
    assert_eq!(v.decision, Decision::Deny, "unknown account: {v:?}");
    let mut learning = normal(sa);
    learning.state = IdentityState::Learning;
    let v = decide(
        &p,
        sa,
        "POST /v1/invoices",
        "billing-api.prod",
        &good,
        Some(&learning),
        saturday_noon(),
    );
    assert_eq!(v.decision, Decision::StepUp, "learning account: {v:?}");
}

#[test]
fn example_3_bot_gets_secret_only_for_short_task_from_trusted_network_and_reviewed_step() {
    let p = policy();
    let bot = "arn:aws:iam::123456789012:role/release-bot";
    let risk = normal(bot);
    let good = ctx(&[
        ("identity_kind", "bot"),
        ("task_id", "job-8812"),
        ("task_ttl_seconds", "600"),
        ("source_ip", "10.42.7.19"),
        ("pipeline_step", "reviewed:deploy"),
    ]);
    let secret = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db";

    let v = decide(
        &p,
        bot,
        "secretsmanager:GetSecretValue",
        secret,
        &good,
        Some(&risk),
        saturday_noon(),
    );
    assert_eq!(v.decision, Decision::Allow, "{v:?}");
    assert_eq!(v.rule, "bot-secret-retrieval");

    let refused = |change: (&str, &str), why: &str| {
        let mut c = good.clone();
        c.insert(change.0.into(), change.1.into());
        let v = decide(
            &p,
            bot,
            "secretsmanager:GetSecretValue",
            secret,
            &c,
            Some(&risk),
            saturday_noon(),
        );
        assert_eq!(v.decision, Decision::Deny, "{why}: {v:?}");
    };
    refused(("task_ttl_seconds", "86400"), "long-lived task");
    refused(("source_ip", "185.220.101.4"), "suspicious public network");
    refused(
        ("pipeline_step", "unreviewed:debug-shell"),
        "unreviewed step",
    );

    let mut no_task = good.clone();
    no_task.remove("task_id");
    let v = decide(
        &p,
        bot,
        "secretsmanager:GetSecretValue",
        secret,
        &no_task,
        Some(&risk),
        saturday_noon(),
    );
    assert_eq!(v.decision, Decision::Deny, "no task: {v:?}");

    // The bot itself behaving oddly: refused even with perfect context.
    let odd = signal(bot, 64.0, Level::High, &[("new_source", 0.9)]);
    let v = decide(
        &p,
        bot,
        "secretsmanager:GetSecretValue",
        secret,
        &good,
        Some(&odd),
        saturday_noon(),
    );
    assert_eq!(v.decision, Decision::Deny, "{v:?}");
}

#[test]
fn example_4_privileged_agent_stopped_from_sensitive_records_on_unusual_volume() {
    let p = policy();
    let agent = "arn:aws:iam::123456789012:role/privileged-support-agent";
    let records = "arn:aws:s3:::customer-records/eu/4411.json";
    let none = ctx(&[]);

    // Its role permits reading customer records, and normally it may.
    let v = decide(
        &p,
        agent,
        "s3:GetObject",
        records,
        &none,
        Some(&normal(agent)),
        saturday_noon(),
    );
    assert_eq!(v.decision, Decision::Allow, "{v:?}");
    assert_eq!(v.rule, "privileged-agent-sensitive-records-volume");

    // Unusual volume: stopped, even though the overall level is only elevated.
    let spiking = signal(agent, 45.0, Level::Elevated, &[("volume_spike", 0.8)]);
    let v = decide(
        &p,
        agent,
        "s3:GetObject",
        records,
        &none,
        Some(&spiking),
        saturday_noon(),
    );
    assert_eq!(v.decision, Decision::Deny, "{v:?}");
    assert!(v.explanation.iter().any(|e| e.contains("volume_spike")));

    // The same agent declared a service account, with the governance context example
    // 2 asks for: still stopped (example 2's rule used to catch it first).
    let governed = ctx(&[
        ("identity_kind", "service_account"),
        ("environment", "prod"),
        ("owner", "support-platform"),
    ]);
    let v = decide(
        &p,
        agent,
        "s3:GetObject",
        records,
        &governed,
        Some(&spiking),
        saturday_noon(),
    );
    assert_eq!(v.decision, Decision::Deny, "{v:?}");
    assert_eq!(v.rule, "privileged-agent-sensitive-records-volume");

    // A weak volume blip does not block on its own.
    let blip = signal(agent, 12.0, Level::Normal, &[("volume_spike", 0.2)]);
    let v = decide(
        &p,
        agent,
        "s3:GetObject",
        records,
        &none,
        Some(&blip),
        saturday_noon(),
    );
    assert_eq!(v.decision, Decision::Allow, "{v:?}");

    // Non-sensitive data is not what this rule protects: the default rule applies.
    let v = decide(
        &p,
        agent,
        "s3:GetObject",
        "arn:aws:s3:::public-assets/logo.png",
        &none,
        Some(&spiking),
        saturday_noon(),
    );
    assert_eq!(v.rule, "default");
    assert_eq!(v.decision, Decision::Allow, "{v:?}");
}

#[test]
fn example_5_payment_key_settles_but_never_exports_customer_data() {
    let p = policy();
    let key = "pay-key-7f3a";
    let risk = normal(key);
    let kind = ctx(&[("identity_kind", "api_key")]);

    let v = decide(
        &p,
        key,
        "POST /v1/settlements",
        "payments-api",
        &kind,
        Some(&risk),
        saturday_noon(),
    );
    assert_eq!(v.decision, Decision::Allow, "{v:?}");
    assert_eq!(v.rule, "payment-key-settlement");

    // Exporting customer data: denied even with a perfectly normal score.
    let v = decide(
        &p,
        key,
        "POST /v1/payments/export",
        "payments-api/customers",
        &kind,
        Some(&risk),
        saturday_noon(),
    );
    assert_eq!(v.decision, Decision::Deny, "{v:?}");
    assert_eq!(v.rule, "payment-key-no-customer-export");

    // Real-time check on settlement: elevated steps up, high is refused.
    let elevated = signal(key, 40.0, Level::Elevated, &[("new_action", 0.6)]);
    let v = decide(
        &p,
        key,
        "POST /v1/settlements",
        "payments-api",
        &kind,
        Some(&elevated),
        saturday_noon(),
    );
    assert_eq!(v.decision, Decision::StepUp, "{v:?}");
    let high = signal(key, 70.0, Level::High, &[("new_action", 0.9)]);
    let v = decide(
        &p,
        key,
        "POST /v1/settlements",
        "payments-api",
        &kind,
        Some(&high),
        saturday_noon(),
    );
    assert_eq!(v.decision, Decision::Deny, "{v:?}");
}

#[test]
fn builtin_default_denies_critical_and_steps_up_high() {
    let config = Config::default_config().expect("defaults");
    let p = Policy::load("", &config.sensitivity).expect("built-in policy");
    let none = ctx(&[]);
    let check =
        |risk: Option<&Signal>| decide(&p, "x", "a", "d", &none, risk, saturday_noon()).decision;
    assert_eq!(
        check(Some(&signal("x", 90.0, Level::Critical, &[]))),
        Decision::Deny
    );
    assert_eq!(
        check(Some(&signal("x", 70.0, Level::High, &[]))),
        Decision::StepUp
    );
    assert_eq!(
        check(Some(&signal("x", 40.0, Level::Elevated, &[]))),
        Decision::Allow
    );
    assert_eq!(check(None), Decision::Allow);
}

#[test]
fn a_request_without_a_kind_is_judged_with_the_kind_riskd_saw() {
    // Envoy's check carries no `identity_kind`; the agent's events named it. The push
    // rule for agents must still hold it to the change window (not `no_match = allow`).
    let p = policy();
    let agent = "spiffe://corp/agents/copilot";
    let mut seen = normal(agent);
    seen.identity_kind = riskd::event::IdentityKind::AiAgent;
    let push = |context: &BTreeMap<String, String>, risk: &Signal| {
        decide(
            &p,
            agent,
            "git:push",
            "github.com/corp/payments",
            context,
            Some(risk),
            saturday_noon(),
        )
    };
    let no_kind = ctx(&[]);
    let v = push(&no_kind, &seen);
    assert_eq!(v.decision, Decision::Deny, "{v:?}");
    assert_eq!(
        v.rule,
        "coding-agent-push-needs-change-window-and-signed-approval"
    );
    // Without what riskd saw, the agent rules do not select it: the catch-all allows.
    let v = push(&no_kind, &normal(agent));
    assert_eq!(
        (v.decision, v.rule.as_str()),
        (Decision::Allow, "default"),
        "{v:?}"
    );
    // The caller's word wins over what riskd saw.
    let v = push(&ctx(&[("identity_kind", "human")]), &seen);
    assert_ne!(
        v.rule, "coding-agent-push-needs-change-window-and-signed-approval",
        "{v:?}"
    );
}
