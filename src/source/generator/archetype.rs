//! The benign behaviour of each kind of identity in the synthetic fleet.
//!
//! Every archetype is a small state machine driven by one seeded RNG: when its next
//! "session" starts (a Poisson arrival shaped by a daily/weekly curve, a cron slot, a
//! nightly job) and what each event of a session looks like. Together they show every
//! property of design §3 that makes naive first-seen rules useless:
//!
//! - high-cardinality destinations: customer ids (`support_copilot`), order and charge
//!   ids (`payment_api_key`, `partner_api_key`), build hashes in S3 keys (`ci_bot`),
//!   date partitions (`data_pipeline`), pod names per rollout (`k8s_controller`), node
//!   addresses that change daily (`metrics_scraper`), instance ids (`terraform_deployer`);
//! - churning sources: a fresh runner IP per build (`ci_bot`, `secrets_bot`), a fresh pod
//!   IP per cron run (`cron_job`) and per rollout (`k8s_workload`, agents);
//! - fleet-wide change: one SDK/agent upgrade day changes user agents across most of the
//!   fleet, one release day adds a v2 route to most API keys, a ten-minute cluster
//!   incident makes every controller see errors (and retry), a sale day triples payments;
//! - rhythm: cron at a fixed minute, CI and deploys in working hours only, agents idle at
//!   night and at weekends, consumer traffic peaking in the evening, slow organic growth.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

use super::util::*;
use super::Calendar;
use crate::event::{ActivityEvent, IdentityKind, Outcome, Sensitivity};

pub const ACCOUNT: &str = "123456789012";

/// The kinds of identity the generator simulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Archetype {
    SupportCopilot,
    CodingAgent,
    ResearchAgent,
    CiBot,
    CronJob,
    K8sController,
    K8sWorkload,
    PaymentApiKey,
    PartnerApiKey,
    DataPipeline,
    SecretsBot,
    MetricsScraper,
    TerraformDeployer,
    InternalApiClient,
}

impl Archetype {
    pub const ALL: [Archetype; 14] = [
        Archetype::SupportCopilot,
        Archetype::CodingAgent,
        Archetype::ResearchAgent,
        Archetype::CiBot,
        Archetype::CronJob,
        Archetype::K8sController,
        Archetype::K8sWorkload,
        Archetype::PaymentApiKey,
        Archetype::PartnerApiKey,
        Archetype::DataPipeline,
        Archetype::SecretsBot,
        Archetype::MetricsScraper,
        Archetype::TerraformDeployer,
        Archetype::InternalApiClient,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Archetype::SupportCopilot => "support_copilot",
            Archetype::CodingAgent => "coding_agent",
            Archetype::ResearchAgent => "research_agent",
            Archetype::CiBot => "ci_bot",
            Archetype::CronJob => "cron_job",
            Archetype::K8sController => "k8s_controller",
            Archetype::K8sWorkload => "k8s_workload",
            Archetype::PaymentApiKey => "payment_api_key",
            Archetype::PartnerApiKey => "partner_api_key",
            Archetype::DataPipeline => "data_pipeline",
            Archetype::SecretsBot => "secrets_bot",
            Archetype::MetricsScraper => "metrics_scraper",
            Archetype::TerraformDeployer => "terraform_deployer",
            Archetype::InternalApiClient => "internal_api_client",
        }
    }

    pub fn kind(self) -> IdentityKind {
        match self {
            Archetype::SupportCopilot | Archetype::CodingAgent | Archetype::ResearchAgent => {
                IdentityKind::AiAgent
            }
            Archetype::CiBot | Archetype::SecretsBot => IdentityKind::Bot,
            Archetype::PaymentApiKey | Archetype::PartnerApiKey => IdentityKind::ApiKey,
            Archetype::K8sWorkload => IdentityKind::Workload,
            Archetype::CronJob
            | Archetype::K8sController
            | Archetype::DataPipeline
            | Archetype::MetricsScraper
            | Archetype::TerraformDeployer
            | Archetype::InternalApiClient => IdentityKind::ServiceAccount,
        }
    }

    /// Share of the fleet, in percent (sums to 100).
    pub fn weight(self) -> u32 {
        match self {
            Archetype::SupportCopilot => 8,
            Archetype::CodingAgent => 6,
            Archetype::ResearchAgent => 6,
            Archetype::CiBot => 10,
            Archetype::CronJob => 9,
            Archetype::K8sController => 5,
            Archetype::K8sWorkload => 11,
            Archetype::PaymentApiKey => 12,
            Archetype::PartnerApiKey => 6,
            Archetype::DataPipeline => 6,
            Archetype::SecretsBot => 5,
            Archetype::MetricsScraper => 4,
            Archetype::TerraformDeployer => 4,
            Archetype::InternalApiClient => 8,
        }
    }

    /// Whether this archetype's user agent changes on the fleet-wide upgrade day.
    fn upgrades_with_fleet(self) -> bool {
        !matches!(self, Archetype::PaymentApiKey | Archetype::PartnerApiKey)
    }
}

const REPOS: [&str; 12] = [
    "web-shop",
    "checkout-service",
    "search-api",
    "mobile-bff",
    "inventory",
    "notifications",
    "docs-site",
    "design-system",
    "recommendations",
    "pricing-engine",
    "auth-gateway",
    "analytics-sdk",
];
const APPS: [&str; 10] = [
    "checkout", "cart", "catalog", "search", "orders", "shipping", "reviews", "pricing",
    "notifier", "accounts",
];
const CONTROLLERS: [&str; 10] = [
    "deployment-controller",
    "replicaset-controller",
    "argo-rollouts",
    "cert-manager",
    "external-dns",
    "karpenter",
    "keda-operator",
    "cluster-autoscaler",
    "ingress-nginx",
    "external-secrets",
];
const NAMESPACES: [&str; 9] = [
    "shop", "payments", "search", "orders", "identity", "media", "growth", "ml", "platform",
];
const DATASETS: [&str; 6] = [
    "clickstream",
    "orders",
    "inventory-snapshots",
    "app-logs",
    "email-events",
    "ad-impressions",
];
const SPACES: [&str; 8] = [
    "ENG", "SRE", "PRODUCT", "SEC", "DATA", "SUPPORT", "HR", "FIN",
];
const CRON_JOBS: [&str; 8] = [
    "invoice-reminder",
    "cache-warmer",
    "report-digest",
    "stale-cart-cleanup",
    "fx-rates-sync",
    "sitemap-builder",
    "cert-expiry-check",
    "usage-rollup",
];
const SECRET_SERVICES: [&str; 8] = [
    "checkout", "orders", "search", "notifier", "pricing", "accounts", "shipping", "catalog",
];

/// A simulated identity: immutable profile plus the state of its current session.
pub struct IdentitySim {
    pub name: String,
    pub arch: Archetype,
    pub kind: IdentityKind,
    pub env: String,
    pub first_ms: i64,
    pub last_ms: i64,
    pub network: Option<String>,
    rng: Pcg64Mcg,
    id_hash: u64,
    /// Events (or session starts) per minute at the peak of the curve.
    base_rate: f64,
    growth_per_day: f64,
    fixed_ips: Vec<String>,
    ua_old: String,
    ua_new: String,
    ua_switch_ms: i64,
    route_switch_ms: i64,
    targets: Vec<String>,
    /// Cron period and offset within it, for scheduled archetypes.
    period_ms: i64,
    offset_ms: i64,
    rollout_period_ms: i64,
    session_len: u32,
    session_pos: u32,
    session_ip: String,
    session_tag: String,
    session_ticket: String,
}

impl IdentitySim {
    pub fn new(
        index: usize,
        arch: Archetype,
        seed: u64,
        cal: &Calendar,
        first_ms: i64,
        last_ms: i64,
    ) -> Self {
        let id_hash = mix(seed ^ mix(index as u64 + 1));
        let mut rng = Pcg64Mcg::seed_from_u64(id_hash);
        let n = index;
        let mut targets = Vec::new();
        let mut env = "prod".to_string();
        let mut network = None;
        let mut fixed_ips = Vec::new();
        let mut period_ms = 0;
        let mut offset_ms = 0;
        let (name, base_rate, ua_old, ua_new) = match arch {
            Archetype::SupportCopilot => {
                network = Some("eks-prod-agents".into());
                (
                    format!("spiffe://acme.internal/ns/support/sa/support-copilot-{n}"),
                    log_uniform(&mut rng, 0.4, 1.4),
                    "support-copilot/3.2.0 (langchain/0.2.14; python/3.11)".to_string(),
                    "support-copilot/3.3.1 (langchain/0.3.2; python/3.12)".to_string(),
                )
            }
            Archetype::CodingAgent => {
                network = Some("eks-prod-agents".into());
                for _ in 0..rng.gen_range(2..5) {
                    targets.push(pick(&mut rng, &REPOS).to_string());
                }
                (
                    format!("spiffe://acme.internal/ns/dev-agents/sa/coding-agent-{n}"),
                    log_uniform(&mut rng, 0.12, 0.4),
                    "acme-coder/1.8.0 (claude-agent-sdk/0.1.9)".to_string(),
                    "acme-coder/1.9.0 (claude-agent-sdk/0.2.1)".to_string(),
                )
            }
            Archetype::ResearchAgent => {
                network = Some("eks-prod-agents".into());
                for _ in 0..rng.gen_range(2..4) {
                    targets.push(pick(&mut rng, &SPACES).to_string());
                }
                (
                    format!("spiffe://acme.internal/ns/agents/sa/research-agent-{n}"),
                    log_uniform(&mut rng, 0.1, 0.4),
                    "research-agent/0.9.3 (openai-agents/0.0.17)".to_string(),
                    "research-agent/0.10.0 (openai-agents/0.1.0)".to_string(),
                )
            }
            Archetype::CiBot => {
                network = Some("gha-runners".into());
                env = "ci".into();
                let repo = pick(&mut rng, &REPOS).to_string();
                let name = format!("arn:aws:iam::{ACCOUNT}:role/gha-{repo}-{n}");
                targets.push(repo);
                (
                    name,
                    // Builds per minute at the working-hours peak (~4-20 a day).
                    log_uniform(&mut rng, 4.0, 20.0) / 450.0,
                    "aws-sdk-go-v2/1.30.3 os/linux lang/go#1.22.5 md/GOOS#linux".to_string(),
                    "aws-sdk-go-v2/1.32.2 os/linux lang/go#1.23.1 md/GOOS#linux".to_string(),
                )
            }
            Archetype::CronJob => {
                network = Some("eks-prod-batch".into());
                let job = pick(&mut rng, &CRON_JOBS).to_string();
                // Most jobs hourly, some every 15 minutes, some daily, each at a fixed minute.
                let p = rng.gen_range(0..10);
                period_ms = if p < 6 {
                    HOUR
                } else if p < 8 {
                    15 * MINUTE
                } else {
                    DAY
                };
                offset_ms = rng.gen_range(0..period_ms / MINUTE) * MINUTE;
                targets.push(job.clone());
                (
                    format!("system:serviceaccount:batch:{job}-{n}"),
                    0.0,
                    "python-requests/2.31.0 boto3/1.34.2 botocore/1.34.2".to_string(),
                    "python-requests/2.32.3 boto3/1.35.10 botocore/1.35.10".to_string(),
                )
            }
            Archetype::K8sController => {
                let c = pick(&mut rng, &CONTROLLERS).to_string();
                network = Some("eks-control-plane".into());
                fixed_ips.push(format!("10.0.{}.{}", n % 4, rng.gen_range(10..250)));
                for _ in 0..rng.gen_range(4..8) {
                    targets.push(pick(&mut rng, &NAMESPACES).to_string());
                }
                targets.sort();
                targets.dedup();
                let name = format!("system:serviceaccount:kube-system:{c}-c{n}");
                targets.insert(0, c);
                (
                    name,
                    log_uniform(&mut rng, 0.2, 0.7),
                    "kube-controller-manager/v1.29.6 (linux/amd64) kubernetes/2d8f8e2".into(),
                    "kube-controller-manager/v1.30.4 (linux/amd64) kubernetes/a51b3b7".into(),
                )
            }
            Archetype::K8sWorkload => {
                let app = pick(&mut rng, &APPS).to_string();
                let ns = pick(&mut rng, &NAMESPACES).to_string();
                network = Some("eks-prod-apps".into());
                let name = format!("system:serviceaccount:{ns}:{app}-{n}");
                targets.push(app);
                (
                    name,
                    log_uniform(&mut rng, 0.15, 0.6),
                    "aws-sdk-java/2.25.11 Linux/5.10.219 OpenJDK_64-Bit_Server_VM/17.0.11".into(),
                    "aws-sdk-java/2.28.4 Linux/5.10.225 OpenJDK_64-Bit_Server_VM/21.0.4".into(),
                )
            }
            Archetype::PaymentApiKey => {
                env = "prod".into();
                for _ in 0..rng.gen_range(1..4) {
                    fixed_ips.push(cloud_egress_ip(&mut rng));
                }
                let sdk = if chance(&mut rng, 0.5) {
                    "acme-pay-python/5.4.0 python/3.11.6"
                } else {
                    "acme-pay-node/12.1.0 node/20.11.1"
                };
                targets.push(format!("acct_{}", base62(&mut rng, 16)));
                (
                    format!("key_live_{}", base62(&mut rng, 24)),
                    log_uniform(&mut rng, 0.1, 1.6),
                    sdk.to_string(),
                    sdk.to_string(),
                )
            }
            Archetype::PartnerApiKey => {
                for _ in 0..rng.gen_range(1..3) {
                    fixed_ips.push(cloud_egress_ip(&mut rng));
                }
                let ua = if chance(&mut rng, 0.5) {
                    "okhttp/4.12.0"
                } else {
                    "Go-http-client/1.1"
                };
                (
                    format!("key_partner_{}", base62(&mut rng, 20)),
                    log_uniform(&mut rng, 0.08, 0.35),
                    ua.to_string(),
                    ua.to_string(),
                )
            }
            Archetype::DataPipeline => {
                network = Some("vpc-data".into());
                env = "prod".into();
                for _ in 0..rng.gen_range(1..3) {
                    targets.push(pick(&mut rng, &DATASETS).to_string());
                }
                period_ms = DAY;
                // Nightly, between 00:30 and 03:30, fixed per pipeline.
                offset_ms = 30 * MINUTE + rng.gen_range(0..180) * MINUTE;
                let ds = targets[0].clone();
                (
                    format!("arn:aws:iam::{ACCOUNT}:role/etl-{ds}-{n}"),
                    // Objects per nightly run (not a rate: the schedule is fixed).
                    log_uniform(&mut rng, 40.0, 160.0),
                    "aws-sdk-java/1.12.734 Linux/5.10 OpenJDK_64-Bit_Server_VM/11 scala/2.12.18 \
                     Spark/3.5.1"
                        .to_string(),
                    "aws-sdk-java/2.28.4 Linux/5.10 OpenJDK_64-Bit_Server_VM/17 scala/2.12.18 \
                     Spark/3.5.2"
                        .to_string(),
                )
            }
            Archetype::SecretsBot => {
                network = Some("gha-runners".into());
                env = "ci".into();
                for _ in 0..rng.gen_range(3..7) {
                    let svc = pick(&mut rng, &SECRET_SERVICES);
                    let what = pick(&mut rng, &["db-password", "api-token", "signing-key"]);
                    targets.push(format!(
                        "arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:deploy/{svc}/{what}-{}",
                        base62(&mut rng, 6)
                    ));
                }
                targets.sort();
                targets.dedup();
                (
                    format!("arn:aws:iam::{ACCOUNT}:role/deploy-secrets-bot-{n}"),
                    log_uniform(&mut rng, 6.0, 20.0) / 450.0,
                    "aws-sdk-go-v2/1.30.3 os/linux lang/go#1.22.5".to_string(),
                    "aws-sdk-go-v2/1.32.2 os/linux lang/go#1.23.1".to_string(),
                )
            }
            Archetype::MetricsScraper => {
                network = Some("eks-prod-monitoring".into());
                fixed_ips.push(format!("10.32.{}.{}", n % 200, rng.gen_range(2..250)));
                period_ms = MINUTE;
                (
                    format!("system:serviceaccount:monitoring:prometheus-{n}"),
                    0.0,
                    "Prometheus/2.51.2".to_string(),
                    "Prometheus/2.54.1".to_string(),
                )
            }
            Archetype::TerraformDeployer => {
                network = Some("atlantis".into());
                fixed_ips.push(format!("10.8.{}.{}", n % 200, rng.gen_range(2..250)));
                let team = pick(&mut rng, &NAMESPACES).to_string();
                let name = format!("arn:aws:iam::{ACCOUNT}:role/terraform-{team}-{n}");
                targets.push(team);
                (
                    name,
                    log_uniform(&mut rng, 0.5, 3.0) / 450.0,
                    "Terraform/1.7.5 (+https://www.terraform.io) terraform-provider-aws/5.40.0"
                        .into(),
                    "Terraform/1.9.5 (+https://www.terraform.io) terraform-provider-aws/5.67.0"
                        .into(),
                )
            }
            Archetype::InternalApiClient => {
                // Most run outside prod: the allowlist is "their own environment".
                env = pick(&mut rng, &["staging", "staging", "qa", "dev"]).to_string();
                network = Some(format!("eks-{env}"));
                let svc = pick(&mut rng, &APPS).to_string();
                let name = format!("arn:aws:iam::{ACCOUNT}:role/svc-{svc}-{env}-{n}");
                targets.push(svc);
                (
                    name,
                    log_uniform(&mut rng, 0.08, 0.35),
                    "aws-sdk-java/2.25.11 Linux/5.10.219 OpenJDK_64-Bit_Server_VM/17.0.11".into(),
                    "aws-sdk-java/2.28.4 Linux/5.10.225 OpenJDK_64-Bit_Server_VM/21.0.4".into(),
                )
            }
        };
        // Rolling upgrade through the working day; identities created afterwards start on
        // the new version.
        let ua_switch_ms = if arch.upgrades_with_fleet() {
            cal.sdk_upgrade_ms + between(&mut rng, 7 * HOUR, 17 * HOUR)
        } else if chance(&mut rng, 0.2) {
            // A few merchants upgrade their SDK on their own schedule.
            cal.start_ms + between(&mut rng, 2 * DAY, (cal.days.max(3) as i64) * DAY)
        } else {
            i64::MAX
        };
        let ua_new = if matches!(arch, Archetype::PaymentApiKey) {
            ua_new.replace("5.4.0", "6.0.1").replace("12.1.0", "13.0.0")
        } else {
            ua_new
        };
        // Most integrations adopt the new route on release day; some later, some never.
        let route_switch_ms = if chance(&mut rng, 0.8) {
            cal.release_ms + between(&mut rng, 9 * HOUR, 18 * HOUR)
        } else if chance(&mut rng, 0.5) {
            cal.release_ms + between(&mut rng, 2 * DAY, 4 * DAY)
        } else {
            i64::MAX
        };
        let growth_per_day = rng.gen_range(0.0..0.025);
        let rollout_period_ms = between(&mut rng, 20 * HOUR, 4 * DAY);
        IdentitySim {
            name,
            arch,
            kind: arch.kind(),
            env,
            first_ms,
            last_ms,
            network,
            rng,
            id_hash,
            base_rate,
            growth_per_day,
            fixed_ips,
            ua_old,
            ua_new,
            ua_switch_ms,
            route_switch_ms,
            targets,
            period_ms,
            offset_ms,
            rollout_period_ms,
            session_len: 0,
            session_pos: 0,
            session_ip: String::new(),
            session_tag: String::new(),
            session_ticket: String::new(),
        }
    }

    /// Per-identity resources (repos, namespaces, secrets, account id), in creation order.
    pub fn targets(&self) -> &[String] {
        &self.targets
    }

    /// Events (or session starts) per minute at the peak of this identity's curve.
    pub fn base_rate(&self) -> f64 {
        self.base_rate
    }

    pub fn user_agent(&self, t: i64) -> &str {
        if t >= self.ua_switch_ms {
            &self.ua_new
        } else {
            &self.ua_old
        }
    }

    /// Rollout generation at `t`: pods are replaced every `rollout_period_ms`, with a
    /// per-identity phase so the fleet does not roll all at once.
    fn rollout(&self, t: i64) -> u64 {
        let phase = (self.id_hash % self.rollout_period_ms.max(1) as u64) as i64;
        (t + phase).div_euclid(self.rollout_period_ms.max(1)) as u64
    }

    /// The address this identity's normal traffic comes from at `t`.
    pub fn current_ip(&mut self, t: i64) -> String {
        match self.arch {
            Archetype::CiBot
            | Archetype::SecretsBot
            | Archetype::CronJob
            | Archetype::DataPipeline => self.session_ip.clone(),
            Archetype::SupportCopilot
            | Archetype::CodingAgent
            | Archetype::ResearchAgent
            | Archetype::K8sWorkload
            | Archetype::InternalApiClient => {
                // Two or three replicas per rollout, each with a pod IP from a large range.
                let replica = self.rng.gen_range(0..3u64);
                let h = mix(self.id_hash ^ mix(self.rollout(t)) ^ replica);
                let second = match self.arch {
                    Archetype::K8sWorkload => 244,
                    Archetype::InternalApiClient => 245,
                    _ => 42,
                };
                format!("10.{second}.{}.{}", (h >> 8) % 256, 1 + h % 253)
            }
            _ => {
                if self.fixed_ips.is_empty() {
                    self.session_ip.clone()
                } else {
                    let i = self.rng.gen_range(0..self.fixed_ips.len());
                    self.fixed_ips[i].clone()
                }
            }
        }
    }

    fn growth(&self, t: i64, cal: &Calendar) -> f64 {
        1.0 + self.growth_per_day * (t - cal.start_ms).max(0) as f64 / DAY as f64
    }

    /// Instantaneous rate (per minute) of events or session starts at `t`.
    fn rate(&self, t: i64, cal: &Calendar) -> f64 {
        let curve = match self.arch {
            Archetype::SupportCopilot | Archetype::CodingAgent | Archetype::ResearchAgent => {
                office(t)
            }
            Archetype::CiBot | Archetype::SecretsBot | Archetype::TerraformDeployer => {
                working_hours(t)
            }
            Archetype::K8sController => {
                // Every controller retries hard while the cluster is unhealthy.
                if cal.in_incident(t) {
                    4.0
                } else {
                    1.0
                }
            }
            Archetype::K8sWorkload => 0.3 + 0.7 * consumer(t),
            Archetype::PaymentApiKey => consumer(t) * if cal.in_sale(t) { 3.0 } else { 1.0 },
            Archetype::PartnerApiKey => 0.15 + 0.85 * office(t),
            Archetype::InternalApiClient => 0.2 + 0.8 * office(t),
            Archetype::CronJob | Archetype::DataPipeline | Archetype::MetricsScraper => 0.0,
        };
        self.base_rate * curve * self.growth(t, cal)
    }

    fn max_rate(&self, cal: &Calendar) -> f64 {
        let burst = match self.arch {
            Archetype::K8sController => 4.0,
            Archetype::PaymentApiKey => 3.0,
            _ => 1.0,
        };
        self.base_rate * burst * self.growth(cal.end_ms, cal)
    }

    /// Next arrival of a non-homogeneous Poisson process after `t`, by thinning.
    fn poisson_after(&mut self, t: i64, cal: &Calendar) -> Option<i64> {
        let max = self.max_rate(cal);
        if max <= 0.0 {
            return None;
        }
        let mut at = t;
        loop {
            at = at.saturating_add(exp_gap_ms(&mut self.rng, max));
            if at > self.last_ms {
                return None;
            }
            if self.rng.gen::<f64>() * max < self.rate(at, cal) {
                return Some(at);
            }
        }
    }

    /// Next slot `offset (mod period)` strictly after `t`, plus scheduler jitter.
    fn scheduled_after(&mut self, t: i64, jitter_ms: i64) -> Option<i64> {
        let p = self.period_ms.max(1);
        let slot = (t - self.offset_ms).div_euclid(p) * p + self.offset_ms + p;
        let at = slot + between(&mut self.rng, 0, jitter_ms);
        (at <= self.last_ms).then_some(at)
    }

    /// Schedules the event after one at `t` (or the first one, with `t < first_ms`).
    pub fn next_after(&mut self, t: i64, cal: &Calendar) -> Option<i64> {
        if self.session_pos < self.session_len {
            let gap = match self.arch {
                Archetype::CiBot => between(&mut self.rng, 3 * SECOND, 45 * SECOND),
                Archetype::SecretsBot => between(&mut self.rng, SECOND, 12 * SECOND),
                Archetype::TerraformDeployer => between(&mut self.rng, 300, 8 * SECOND),
                Archetype::CronJob => between(&mut self.rng, 200, 3 * SECOND),
                Archetype::DataPipeline => between(&mut self.rng, 2 * SECOND, 25 * SECOND),
                _ => SECOND,
            };
            let at = t + gap;
            return (at <= self.last_ms).then_some(at);
        }
        let from = t.max(self.first_ms);
        let start = match self.arch {
            Archetype::CronJob => self.scheduled_after(from, 4 * SECOND)?,
            Archetype::DataPipeline => self.scheduled_after(from, 9 * MINUTE)?,
            Archetype::MetricsScraper => {
                // Every 60 s, with a little jitter, never drifting.
                let at = from + MINUTE + between(&mut self.rng, -700, 700);
                if at > self.last_ms {
                    return None;
                }
                at
            }
            _ => self.poisson_after(from, cal)?,
        };
        self.start_session(start, cal);
        Some(start)
    }

    fn start_session(&mut self, t: i64, cal: &Calendar) {
        self.session_pos = 0;
        let rng = &mut self.rng;
        self.session_len = match self.arch {
            Archetype::CiBot => rng.gen_range(9..22),
            Archetype::SecretsBot => rng.gen_range(3..7),
            Archetype::TerraformDeployer => rng.gen_range(15..45),
            Archetype::CronJob => rng.gen_range(3..6),
            Archetype::DataPipeline => {
                // Nightly volume follows yesterday's business: lighter after a weekend
                // day, +-15% noise, slow organic growth.
                let g = self.growth_per_day * (t - cal.start_ms).max(0) as f64 / DAY as f64;
                let weekend = if is_weekend(t - DAY) { 0.75 } else { 1.0 };
                let noise = rng.gen_range(0.85..1.15);
                (self.base_rate * weekend * noise * (1.0 + g)).max(3.0) as u32
            }
            _ => 1,
        };
        match self.arch {
            Archetype::CiBot | Archetype::SecretsBot => {
                // Ephemeral runner: a fresh address from a /12 for every job.
                let second = rng.gen_range(64..80);
                self.session_ip = private_ip(rng, second, 0, 255);
                self.session_tag = hex(rng, 40);
                self.session_ticket = format!("CHG-{}", rng.gen_range(10000..99999));
            }
            Archetype::CronJob => {
                self.session_ip = private_ip(rng, 244, 0, 255);
                self.session_tag = format!("{}", rng.gen_range(28_000_000..29_000_000));
            }
            Archetype::DataPipeline => {
                self.session_ip = private_ip(rng, 50, 0, 63);
                self.session_tag = format!("j-{}", base62(rng, 13).to_uppercase());
            }
            Archetype::TerraformDeployer => {
                self.session_tag = format!("{}", rng.gen_range(1000..9999));
                self.session_ticket = format!("CHG-{}", rng.gen_range(10000..99999));
            }
            _ => {}
        }
    }

    fn base_event(&mut self, t: i64, action: &str, destination: String) -> ActivityEvent {
        let ip = self.current_ip(t);
        ActivityEvent {
            time_ms: t,
            identity: self.name.clone(),
            action: action.to_string(),
            destination,
            event_id: None,
            identity_kind: self.kind,
            environment: Some(self.env.clone()),
            source_ip: Some(ip),
            source_network: self.network.clone(),
            user_agent: Some(self.user_agent(t).to_string()),
            outcome: Outcome::Success,
            bytes: None,
            records: None,
            sensitivity: None,
            attributes: BTreeMap::new(),
        }
    }

    /// The event at `t` (scheduled by [`Self::next_after`]).
    pub fn emit(&mut self, t: i64, cal: &Calendar) -> ActivityEvent {
        let pos = self.session_pos;
        self.session_pos += 1;
        let roll: f64 = self.rng.gen();
        match self.arch {
            Archetype::SupportCopilot => self.emit_copilot(t, roll),
            Archetype::CodingAgent => self.emit_coder(t, roll),
            Archetype::ResearchAgent => self.emit_research(t, roll),
            Archetype::CiBot => self.emit_ci(t, pos),
            Archetype::CronJob => self.emit_cron(t, pos),
            Archetype::K8sController => self.emit_controller(t, roll, cal),
            Archetype::K8sWorkload => self.emit_workload(t, roll),
            Archetype::PaymentApiKey => self.emit_payment(t, roll),
            Archetype::PartnerApiKey => self.emit_partner(t, roll),
            Archetype::DataPipeline => self.emit_pipeline(t, pos, cal),
            Archetype::SecretsBot => self.emit_secrets(t, pos),
            Archetype::MetricsScraper => self.emit_scraper(t, roll),
            Archetype::TerraformDeployer => self.emit_terraform(t, pos),
            Archetype::InternalApiClient => self.emit_internal(t, roll),
        }
    }

    fn emit_copilot(&mut self, t: i64, roll: f64) -> ActivityEvent {
        let mut e = if roll < 0.55 {
            let id = base62(&mut self.rng, 14);
            let mut e = self.base_event(
                t,
                "GET /v1/customers/{id}",
                format!("crm.acme.internal/v1/customers/cus_{id}"),
            );
            e.records = Some(1);
            e.bytes = Some(self.rng.gen_range(1_500..9_000));
            e.sensitivity = Some(Sensitivity::Confidential);
            e
        } else if roll < 0.8 {
            let id = self.rng.gen_range(100_000..999_999);
            let mut e = self.base_event(
                t,
                "GET /v1/tickets/{id}",
                format!("support.acme.internal/v1/tickets/{id}"),
            );
            e.records = Some(1);
            e.bytes = Some(self.rng.gen_range(800..30_000));
            e
        } else if roll < 0.95 {
            let mut e = self.base_event(
                t,
                "POST /v1/chat/completions",
                "llm-gateway.acme.internal/v1/chat/completions".into(),
            );
            e.bytes = Some(self.rng.gen_range(4_000..60_000));
            e
        } else {
            let slug = self.rng.gen_range(1..400);
            self.base_event(
                t,
                "GET /v1/kb/articles/{id}",
                format!("kb.acme.internal/v1/kb/articles/{slug}"),
            )
        };
        e.attributes.insert(
            "session".into(),
            format!(
                "conv-{:x}",
                (t / (7 * MINUTE)) ^ (self.id_hash as i64 & 0xffff)
            ),
        );
        e
    }

    fn emit_coder(&mut self, t: i64, roll: f64) -> ActivityEvent {
        let repo = pick(&mut self.rng, &self.targets).clone();
        if roll < 0.35 {
            self.base_event(t, "git:fetch", format!("github.com/acme/{repo}"))
        } else if roll < 0.65 {
            let path = format!(
                "{}/{}.{}",
                pick(&mut self.rng, &["src", "lib", "tests", "docs", "api"]),
                pod_suffix(&mut self.rng, 6),
                pick(&mut self.rng, &["rs", "ts", "py", "md", "go"])
            );
            self.base_event(
                t,
                "github:contents.read",
                format!("github.com/acme/{repo}/blob/main/{path}"),
            )
        } else if roll < 0.82 {
            let mut e = self.base_event(
                t,
                "POST /v1/messages",
                "llm-gateway.acme.internal/v1/messages".into(),
            );
            e.bytes = Some(self.rng.gen_range(10_000..200_000));
            e
        } else if roll < 0.95 {
            // Agent branches only, each tied to a ticket and a signed approval.
            let ticket = format!("ENG-{}", self.rng.gen_range(1000..9999));
            let mut e = self.base_event(
                t,
                "git:push",
                format!(
                    "github.com/acme/{repo}/refs/heads/agent/{}",
                    ticket.to_lowercase()
                ),
            );
            e.attributes.insert(
                "approval_id".into(),
                format!("apr-{}", hex(&mut self.rng, 10)),
            );
            e.attributes.insert("ticket".into(), ticket);
            e.attributes
                .insert("change_window".into(), "business-hours".into());
            e
        } else {
            self.base_event(
                t,
                "github:pulls.create",
                format!("github.com/acme/{repo}/pulls"),
            )
        }
    }

    fn emit_research(&mut self, t: i64, roll: f64) -> ActivityEvent {
        if roll < 0.4 {
            let space = pick(&mut self.rng, &self.targets).clone();
            let id = self.rng.gen_range(100_000..9_999_999);
            let mut e = self.base_event(
                t,
                "GET /wiki/rest/api/content/{id}",
                format!("wiki.acme.internal/wiki/spaces/{space}/pages/{id}"),
            );
            e.bytes = Some(self.rng.gen_range(2_000..80_000));
            e
        } else if roll < 0.65 {
            self.base_event(t, "GET /search", "search.acme.internal/search".into())
        } else if roll < 0.85 {
            let mut e = self.base_event(
                t,
                "POST /v1/chat/completions",
                "llm-gateway.acme.internal/v1/chat/completions".into(),
            );
            e.bytes = Some(self.rng.gen_range(4_000..120_000));
            e
        } else {
            let mut e = self.base_event(
                t,
                "POST /v1/embeddings",
                "llm-gateway.acme.internal/v1/embeddings".into(),
            );
            e.bytes = Some(self.rng.gen_range(2_000..30_000));
            e
        }
    }

    fn emit_ci(&mut self, t: i64, pos: u32) -> ActivityEvent {
        let repo = self.targets[0].clone();
        let hash = self.session_tag.clone();
        let last = self.session_len.saturating_sub(1);
        let (step, mut e) = if pos == 0 {
            (
                "checkout",
                self.base_event(
                    t,
                    "sts:AssumeRoleWithWebIdentity",
                    format!("arn:aws:iam::{ACCOUNT}:role/gha-{repo}"),
                ),
            )
        } else if pos == 1 {
            (
                "checkout",
                self.base_event(t, "git:clone", format!("github.com/acme/{repo}")),
            )
        } else if pos == last {
            let mut e = self.base_event(
                t,
                "s3:PutObject",
                format!("arn:aws:s3:::acme-build-artifacts/{repo}/{hash}/{repo}.tar.gz"),
            );
            e.bytes = Some(self.rng.gen_range(20_000_000..250_000_000));
            ("publish", e)
        } else if pos + 1 == last {
            (
                "publish",
                self.base_event(
                    t,
                    "ecr:PutImage",
                    format!("arn:aws:ecr:us-east-1:{ACCOUNT}:repository/{repo}"),
                ),
            )
        } else {
            let r: f64 = self.rng.gen();
            if r < 0.4 {
                let key = hex(&mut self.rng, 16);
                let mut e = self.base_event(
                    t,
                    "s3:GetObject",
                    format!("arn:aws:s3:::acme-build-cache/{repo}/deps-{key}.tar.zst"),
                );
                e.bytes = Some(self.rng.gen_range(1_000_000..90_000_000));
                ("build", e)
            } else if r < 0.7 {
                (
                    "build",
                    self.base_event(
                        t,
                        "ecr:BatchGetImage",
                        format!("arn:aws:ecr:us-east-1:{ACCOUNT}:repository/base-images"),
                    ),
                )
            } else if r < 0.85 {
                (
                    "test",
                    self.base_event(
                        t,
                        "codeartifact:GetPackageVersionAsset",
                        format!("arn:aws:codeartifact:us-east-1:{ACCOUNT}:repository/acme/npm"),
                    ),
                )
            } else {
                (
                    "build",
                    self.base_event(t, "ecr:GetAuthorizationToken", "ecr".into()),
                )
            }
        };
        e.attributes.insert("pipeline_step".into(), step.into());
        e.attributes.insert("run_id".into(), hash[..10].to_string());
        e
    }

    fn emit_cron(&mut self, t: i64, pos: u32) -> ActivityEvent {
        let job = self.targets[0].clone();
        let date = date_str(t);
        let mut e = match pos {
            0 => self.base_event(
                t,
                "secretsmanager:GetSecretValue",
                format!(
                    "arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:batch/{job}/config-{}",
                    token_of(self.id_hash, 6)
                ),
            ),
            1 => {
                let mut e = self.base_event(
                    t,
                    "rds-data:ExecuteStatement",
                    format!("arn:aws:rds:us-east-1:{ACCOUNT}:cluster:reporting"),
                );
                e.records = Some(self.rng.gen_range(10..5_000));
                e
            }
            2 => {
                let mut e = self.base_event(
                    t,
                    "s3:PutObject",
                    format!(
                        "arn:aws:s3:::acme-batch-output/{job}/dt={date}/{}.json",
                        t / 1000
                    ),
                );
                e.bytes = Some(self.rng.gen_range(2_000..400_000));
                e
            }
            _ => {
                if chance(&mut self.rng, 0.5) {
                    self.base_event(
                        t,
                        "sqs:SendMessage",
                        format!("arn:aws:sqs:us-east-1:{ACCOUNT}:{job}-done"),
                    )
                } else {
                    self.base_event(t, "cloudwatch:PutMetricData", "cloudwatch".into())
                }
            }
        };
        e.attributes
            .insert("job".into(), format!("{job}-{}", self.session_tag));
        e
    }

    fn emit_controller(&mut self, t: i64, roll: f64, cal: &Calendar) -> ActivityEvent {
        let controller = self.targets[0].clone();
        let ns = self.targets[1 + self.rng.gen_range(0..self.targets.len() - 1)].clone();
        let app = pick(&mut self.rng, &APPS).to_string();
        // Replica-set hash changes with every rollout of that app; pod suffix per pod.
        let app_hash = mix(self.id_hash ^ hash_str(&ns) ^ hash_str(&app).rotate_left(17));
        let period = 8 * HOUR + (app_hash % (40 * HOUR as u64)) as i64;
        let gen = (t + (app_hash % period as u64) as i64).div_euclid(period) as u64;
        let rs_hash = mix(app_hash ^ gen);
        let rs = token_of(rs_hash, 10);
        let replica = self.rng.gen_range(1..5u64);
        let pod = format!(
            "{app}-{rs}-{}",
            token_of(mix(rs_hash.wrapping_add(replica)), 5)
        );
        let mut e = if roll < 0.25 {
            self.base_event(
                t,
                "update leases",
                format!("kube-system/leases/{controller}"),
            )
        } else if roll < 0.55 {
            self.base_event(t, "get pods", format!("{ns}/pods/{pod}"))
        } else if roll < 0.7 {
            self.base_event(t, "list pods", format!("{ns}/pods"))
        } else if roll < 0.82 {
            self.base_event(t, "patch pods/status", format!("{ns}/pods/{pod}"))
        } else if roll < 0.92 {
            let ev = hex(&mut self.rng, 16);
            self.base_event(t, "create events", format!("{ns}/events/{pod}.{ev}"))
        } else if controller == "external-secrets" {
            self.base_event(t, "get secrets", format!("{ns}/secrets/{app}-env"))
        } else if controller == "cert-manager" {
            self.base_event(
                t,
                "update certificates",
                format!("{ns}/certificates/{app}-tls"),
            )
        } else {
            self.base_event(
                t,
                "update deployments/status",
                format!("{ns}/deployments/{app}"),
            )
        };
        if cal.in_incident(t) && chance(&mut self.rng, 0.7) {
            e.outcome = Outcome::Error;
        }
        e
    }

    fn emit_workload(&mut self, t: i64, roll: f64) -> ActivityEvent {
        let app = self.targets[0].clone();
        if roll < 0.45 {
            let mut e = self.base_event(
                t,
                "dynamodb:GetItem",
                format!("arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/{app}-main"),
            );
            e.records = Some(1);
            e
        } else if roll < 0.65 {
            let mut e = self.base_event(
                t,
                "dynamodb:PutItem",
                format!("arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/{app}-main"),
            );
            e.records = Some(1);
            e
        } else if roll < 0.85 {
            self.base_event(
                t,
                "sqs:SendMessage",
                format!("arn:aws:sqs:us-east-1:{ACCOUNT}:{app}-events"),
            )
        } else {
            let sku = self.rng.gen_range(10_000..999_999);
            let img = self.rng.gen_range(0..6);
            let mut e = self.base_event(
                t,
                "s3:GetObject",
                format!("arn:aws:s3:::acme-assets/{app}/{sku}/{img}.jpg"),
            );
            e.bytes = Some(self.rng.gen_range(20_000..900_000));
            e
        }
    }

    fn emit_payment(&mut self, t: i64, roll: f64) -> ActivityEvent {
        let v2 = t >= self.route_switch_ms;
        let mut e = if v2 && roll < 0.3 {
            self.base_event(
                t,
                "POST /v2/payment_intents",
                "api.pay.acme.com/v2/payment_intents".into(),
            )
        } else if v2 && roll < 0.45 {
            let id = base62(&mut self.rng, 24);
            self.base_event(
                t,
                "POST /v2/payment_intents/{id}/confirm",
                format!("api.pay.acme.com/v2/payment_intents/pi_{id}/confirm"),
            )
        } else if roll < 0.6 {
            self.base_event(t, "POST /v1/charges", "api.pay.acme.com/v1/charges".into())
        } else if roll < 0.8 {
            let id = base62(&mut self.rng, 24);
            self.base_event(
                t,
                "POST /v1/charges/{id}/capture",
                format!("api.pay.acme.com/v1/charges/ch_{id}/capture"),
            )
        } else if roll < 0.9 {
            let id = base62(&mut self.rng, 24);
            self.base_event(
                t,
                "GET /v1/charges/{id}",
                format!("api.pay.acme.com/v1/charges/ch_{id}"),
            )
        } else if roll < 0.95 {
            self.base_event(t, "POST /v1/refunds", "api.pay.acme.com/v1/refunds".into())
        } else if roll < 0.98 {
            self.base_event(t, "GET /v1/balance", "api.pay.acme.com/v1/balance".into())
        } else {
            let date = date_str(t - DAY);
            let mut e = self.base_event(
                t,
                "GET /v1/settlements/{date}",
                format!("api.pay.acme.com/v1/settlements/{date}"),
            );
            e.records = Some(self.rng.gen_range(50..5_000));
            e
        };
        e.bytes = Some(e.bytes.unwrap_or_else(|| self.rng.gen_range(600..3_500)));
        let r: f64 = self.rng.gen();
        if r < 0.015 {
            e.outcome = Outcome::Error;
        } else if r < 0.017 {
            e.outcome = Outcome::Denied;
        }
        e.attributes
            .insert("account".into(), self.targets[0].clone());
        e
    }

    fn emit_partner(&mut self, t: i64, roll: f64) -> ActivityEvent {
        let v2 = t >= self.route_switch_ms;
        let ord = base62(&mut self.rng, 16);
        if v2 && roll < 0.25 {
            self.base_event(
                t,
                "GET /v2/orders/{id}/events",
                format!("api.acme.com/v2/orders/ord_{ord}/events"),
            )
        } else if roll < 0.6 {
            let mut e = self.base_event(
                t,
                "GET /v1/orders/{id}",
                format!("api.acme.com/v1/orders/ord_{ord}"),
            );
            e.records = Some(1);
            e
        } else if roll < 0.8 {
            let mut e = self.base_event(t, "GET /v1/orders", "api.acme.com/v1/orders".into());
            e.records = Some(self.rng.gen_range(5..100));
            e.bytes = Some(self.rng.gen_range(5_000..200_000));
            e
        } else if roll < 0.95 {
            self.base_event(t, "POST /v1/shipments", "api.acme.com/v1/shipments".into())
        } else {
            let sku = self.rng.gen_range(10_000..999_999);
            self.base_event(
                t,
                "GET /v1/products/{id}",
                format!("api.acme.com/v1/products/{sku}"),
            )
        }
    }

    fn emit_pipeline(&mut self, t: i64, pos: u32, cal: &Calendar) -> ActivityEvent {
        let ds = pick(&mut self.rng, &self.targets).clone();
        let date = date_str(t - DAY);
        let last = self.session_len.saturating_sub(1);
        let g = self.growth(t, cal);
        let mut e = if pos == 0 {
            self.base_event(
                t,
                "glue:StartJobRun",
                format!("arn:aws:glue:us-east-1:{ACCOUNT}:job/etl-{ds}"),
            )
        } else if pos == last {
            let mut e = self.base_event(
                t,
                "redshift-data:ExecuteStatement",
                format!("arn:aws:redshift:us-east-1:{ACCOUNT}:namespace:warehouse"),
            );
            e.records = Some((self.rng.gen_range(1_000_000..8_000_000) as f64 * g) as u64);
            e
        } else if pos * 3 < last * 2 {
            let mut e = self.base_event(
                t,
                "s3:GetObject",
                format!("arn:aws:s3:::acme-raw-events/{ds}/dt={date}/part-{pos:05}.parquet"),
            );
            e.bytes = Some((self.rng.gen_range(40_000_000..260_000_000) as f64 * g) as u64);
            e.records = Some(self.rng.gen_range(100_000..900_000));
            e
        } else {
            let mut e = self.base_event(
                t,
                "s3:PutObject",
                format!("arn:aws:s3:::acme-warehouse/{ds}/dt={date}/part-{pos:05}.snappy.parquet"),
            );
            e.bytes = Some((self.rng.gen_range(20_000_000..120_000_000) as f64 * g) as u64);
            e
        };
        e.attributes
            .insert("job_run".into(), self.session_tag.clone());
        e
    }

    fn emit_secrets(&mut self, t: i64, pos: u32) -> ActivityEvent {
        let step = if self.session_tag.as_bytes()[0] < b'8' {
            "deploy"
        } else {
            "migrate"
        };
        let mut e = if pos == 0 {
            self.base_event(
                t,
                "sts:AssumeRoleWithWebIdentity",
                format!("arn:aws:iam::{ACCOUNT}:role/deploy-secrets-bot"),
            )
        } else if chance(&mut self.rng, 0.8) {
            let secret = pick(&mut self.rng, &self.targets).clone();
            self.base_event(t, "secretsmanager:GetSecretValue", secret)
        } else {
            self.base_event(
                t,
                "kms:Decrypt",
                format!(
                    "arn:aws:kms:us-east-1:{ACCOUNT}:key/{}",
                    token_of(self.id_hash, 12)
                ),
            )
        };
        e.attributes.insert("pipeline_step".into(), step.into());
        e.attributes
            .insert("run_id".into(), self.session_tag[..10].to_string());
        e.attributes
            .insert("ticket".into(), self.session_ticket.clone());
        e
    }

    fn emit_scraper(&mut self, t: i64, roll: f64) -> ActivityEvent {
        if roll < 0.1 {
            return self.base_event(
                t,
                "GET /api/v1/query",
                "thanos-query.monitoring.svc:9090/api/v1/query".into(),
            );
        }
        // Autoscaled nodes: the target set is replaced day by day.
        let day = (t / DAY) as u64;
        let node = self.rng.gen_range(0..30u64);
        let h = mix(self.id_hash ^ mix(day * 131 + node / 3) ^ node);
        let mut e = self.base_event(
            t,
            "GET /metrics",
            format!(
                "10.{}.{}.{}:9100/metrics",
                100 + h % 20,
                (h >> 8) % 256,
                1 + (h >> 16) % 253
            ),
        );
        e.bytes = Some(self.rng.gen_range(40_000..400_000));
        e.sensitivity = Some(Sensitivity::Public);
        e
    }

    fn emit_terraform(&mut self, t: i64, pos: u32) -> ActivityEvent {
        let team = self.targets[0].clone();
        let last = self.session_len.saturating_sub(1);
        let applying = pos * 2 > last;
        let mut e = if pos == 0 {
            self.base_event(
                t,
                "s3:GetObject",
                format!("arn:aws:s3:::acme-tfstate/{team}/terraform.tfstate"),
            )
        } else if pos == 1 || pos == last {
            self.base_event(
                t,
                if pos == 1 {
                    "dynamodb:PutItem"
                } else {
                    "dynamodb:DeleteItem"
                },
                format!("arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/terraform-locks"),
            )
        } else if pos + 1 == last {
            self.base_event(
                t,
                "s3:PutObject",
                format!("arn:aws:s3:::acme-tfstate/{team}/terraform.tfstate"),
            )
        } else {
            let r: f64 = self.rng.gen();
            let inst = format!("i-0{}", hex(&mut self.rng, 16));
            if r < 0.3 {
                self.base_event(t, "ec2:DescribeInstances", "ec2".into())
            } else if r < 0.45 {
                self.base_event(
                    t,
                    "iam:GetRole",
                    format!("arn:aws:iam::{ACCOUNT}:role/{team}-app"),
                )
            } else if r < 0.6 {
                self.base_event(t, "ec2:DescribeSecurityGroups", "ec2".into())
            } else if r < 0.72 {
                self.base_event(
                    t,
                    "iam:GetPolicyVersion",
                    format!("arn:aws:iam::{ACCOUNT}:policy/{team}-app"),
                )
            } else if applying && r < 0.85 {
                self.base_event(
                    t,
                    "ec2:CreateTags",
                    format!("arn:aws:ec2:us-east-1:{ACCOUNT}:instance/{inst}"),
                )
            } else if applying && r < 0.92 {
                self.base_event(
                    t,
                    "ec2:ModifyInstanceAttribute",
                    format!("arn:aws:ec2:us-east-1:{ACCOUNT}:instance/{inst}"),
                )
            } else {
                self.base_event(
                    t,
                    "eks:DescribeCluster",
                    format!("arn:aws:eks:us-east-1:{ACCOUNT}:cluster/prod"),
                )
            }
        };
        e.attributes.insert(
            "pipeline_step".into(),
            if applying { "apply" } else { "plan" }.into(),
        );
        e.attributes
            .insert("ticket".into(), self.session_ticket.clone());
        if applying {
            e.attributes
                .insert("approval_id".into(), format!("apr-{}", self.session_tag));
        }
        e
    }

    fn emit_internal(&mut self, t: i64, roll: f64) -> ActivityEvent {
        let env = self.env.clone();
        let sku = self.rng.gen_range(10_000..999_999);
        if roll < 0.55 {
            self.base_event(
                t,
                "GET /v1/items/{id}",
                format!("inventory.{env}.acme.internal/v1/items/{sku}"),
            )
        } else if roll < 0.75 {
            self.base_event(
                t,
                "POST /v1/reservations",
                format!("inventory.{env}.acme.internal/v1/reservations"),
            )
        } else {
            self.base_event(
                t,
                "GET /v1/prices/{id}",
                format!("pricing.{env}.acme.internal/v1/prices/{sku}"),
            )
        }
    }
}
