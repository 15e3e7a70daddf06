//! Injected attacks: short (or, for exfiltration, long and thin) sequences of malicious
//! events under a victim identity, interleaved with its normal traffic.
//!
//! The five use cases of the seed text plus three classic credential-abuse patterns.
//! Several have a subtle variant (same network and client as the victim, only the
//! behaviour differs) so that a detector keyed on "public IP" alone cannot pass.
//! Each attack's event times are planned up front (at most a few thousand), so its
//! label carries the exact first and last malicious event.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

use super::archetype::{Archetype, IdentitySim, ACCOUNT};
use super::util::*;
use crate::event::{ActivityEvent, Outcome, Sensitivity};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AttackKind {
    UnapprovedCodePush,
    NonAllowlistedEnvironment,
    SecretFromSuspiciousNetwork,
    SensitiveRecordVolume,
    PaymentKeyExport,
    StolenCredentials,
    PermissionProbing,
    LowAndSlowExfiltration,
}

impl AttackKind {
    pub const ALL: [AttackKind; 8] = [
        AttackKind::UnapprovedCodePush,
        AttackKind::NonAllowlistedEnvironment,
        AttackKind::SecretFromSuspiciousNetwork,
        AttackKind::SensitiveRecordVolume,
        AttackKind::PaymentKeyExport,
        AttackKind::StolenCredentials,
        AttackKind::PermissionProbing,
        AttackKind::LowAndSlowExfiltration,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AttackKind::UnapprovedCodePush => "unapproved_code_push",
            AttackKind::NonAllowlistedEnvironment => "non_allowlisted_environment",
            AttackKind::SecretFromSuspiciousNetwork => "secret_from_suspicious_network",
            AttackKind::SensitiveRecordVolume => "sensitive_record_volume",
            AttackKind::PaymentKeyExport => "payment_key_export",
            AttackKind::StolenCredentials => "stolen_credentials",
            AttackKind::PermissionProbing => "permission_probing",
            AttackKind::LowAndSlowExfiltration => "low_and_slow_exfiltration",
        }
    }

    /// Archetypes this attack plausibly targets.
    pub fn victims(self) -> &'static [Archetype] {
        match self {
            AttackKind::UnapprovedCodePush => &[Archetype::CodingAgent],
            AttackKind::NonAllowlistedEnvironment => &[Archetype::InternalApiClient],
            AttackKind::SecretFromSuspiciousNetwork => &[Archetype::SecretsBot],
            AttackKind::SensitiveRecordVolume => &[Archetype::SupportCopilot],
            AttackKind::PaymentKeyExport => &[Archetype::PaymentApiKey],
            AttackKind::StolenCredentials => &[
                Archetype::CiBot,
                Archetype::TerraformDeployer,
                Archetype::CronJob,
            ],
            AttackKind::PermissionProbing => &[
                Archetype::K8sWorkload,
                Archetype::ResearchAgent,
                Archetype::InternalApiClient,
            ],
            AttackKind::LowAndSlowExfiltration => {
                &[Archetype::K8sWorkload, Archetype::DataPipeline]
            }
        }
    }

    /// Longest the attack can last, so planning leaves room before the victim's end.
    fn max_duration(self) -> i64 {
        match self {
            AttackKind::LowAndSlowExfiltration => 42 * HOUR,
            AttackKind::SensitiveRecordVolume => 2 * HOUR,
            _ => 4 * HOUR,
        }
    }
}

const OLD_TOOLS: [&str; 4] = [
    "aws-cli/1.16.312 Python/2.7.16 Linux/4.14.133-113.105.amzn2.x86_64 botocore/1.13.48",
    "Boto3/1.9.201 Python/3.6.9 Linux/4.15.0-1044-aws Botocore/1.12.201",
    "aws-sdk-go/1.25.0 (go1.12.9; linux; amd64)",
    "aws-cli/1.18.69 Python/3.8.10 Linux/5.4.0-1045-aws botocore/1.17.12",
];

/// Actions a probing caller tries: broad, mostly outside any one workload's grant.
const PROBES: [(&str, &str); 24] = [
    ("iam:ListUsers", "iam"),
    ("iam:CreateUser", "iam"),
    ("iam:AttachUserPolicy", "iam"),
    ("iam:CreateAccessKey", "iam"),
    ("iam:PassRole", "arn:aws:iam::123456789012:role/admin"),
    (
        "sts:AssumeRole",
        "arn:aws:iam::123456789012:role/OrganizationAccountAccessRole",
    ),
    ("kms:ListKeys", "kms"),
    (
        "kms:Decrypt",
        "arn:aws:kms:us-east-1:123456789012:key/payments-master",
    ),
    ("s3:ListBuckets", "s3"),
    ("s3:GetBucketPolicy", "arn:aws:s3:::acme-payroll"),
    (
        "s3:GetObject",
        "arn:aws:s3:::acme-payroll/2026/11/payroll.csv",
    ),
    ("secretsmanager:ListSecrets", "secretsmanager"),
    (
        "secretsmanager:GetSecretValue",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db/master",
    ),
    (
        "dynamodb:Scan",
        "arn:aws:dynamodb:us-east-1:123456789012:table/accounts-main",
    ),
    ("lambda:ListFunctions", "lambda"),
    (
        "lambda:UpdateFunctionCode",
        "arn:aws:lambda:us-east-1:123456789012:function:billing-webhook",
    ),
    (
        "ssm:GetParameter",
        "arn:aws:ssm:us-east-1:123456789012:parameter/prod/stripe/secret",
    ),
    ("ssm:SendCommand", "ssm"),
    ("ec2:RunInstances", "ec2"),
    ("organizations:ListAccounts", "organizations"),
    (
        "cloudtrail:StopLogging",
        "arn:aws:cloudtrail:us-east-1:123456789012:trail/org-trail",
    ),
    ("list secrets", "kube-system/secrets"),
    (
        "create pods/exec",
        "kube-system/pods/coredns-5d78c9869d-8xk2p",
    ),
    ("get nodes", "nodes"),
];

/// One planned attack.
pub struct AttackSim {
    pub id: String,
    pub kind: AttackKind,
    pub victim: usize,
    pub description: String,
    pub times: Vec<i64>,
    pos: usize,
    rng: Pcg64Mcg,
    /// Address the attacker calls from; `None`: the victim's own (compromised host).
    ip: Option<String>,
    network: Option<String>,
    user_agent: Option<String>,
    targets: Vec<String>,
    subtle: bool,
}

impl AttackSim {
    /// Plans `kind` against `victim` somewhere in `[earliest, latest_end]`, or `None`
    /// when the window is too short.
    pub fn plan(
        id: String,
        kind: AttackKind,
        victim_index: usize,
        victim: &IdentitySim,
        earliest: i64,
        latest_end: i64,
        seed: u64,
    ) -> Option<AttackSim> {
        let mut rng = Pcg64Mcg::seed_from_u64(seed);
        let latest_start = latest_end - kind.max_duration();
        if latest_start <= earliest + DAY {
            return None;
        }
        // Pick a day, then an hour that suits the attack.
        let first_day = day_start(earliest) + DAY;
        let days = ((latest_start - first_day) / DAY).max(1);
        let day = first_day + rng.gen_range(0..days) * DAY;
        let hour_lo_hi = match kind {
            AttackKind::UnapprovedCodePush => (1, 5),
            AttackKind::NonAllowlistedEnvironment => (9, 17),
            AttackKind::SensitiveRecordVolume => (10, 15),
            AttackKind::PaymentKeyExport => (18, 23),
            _ => (0, 24),
        };
        let start = day + rng.gen_range(hour_lo_hi.0..hour_lo_hi.1) * HOUR + rng.gen_range(0..HOUR);
        if start < earliest || start > latest_start {
            return None;
        }
        let subtle = chance(&mut rng, 0.5);
        let mut times = Vec::new();
        let mut t = start;
        let mut push_n = |rng: &mut Pcg64Mcg, n: usize, lo: i64, hi: i64, times: &mut Vec<i64>| {
            for _ in 0..n {
                times.push(t);
                t += between(rng, lo, hi);
            }
        };
        let mut ip = None;
        let mut network = None;
        let mut user_agent = None;
        let mut targets = Vec::new();
        let description;
        match kind {
            AttackKind::UnapprovedCodePush => {
                let n = rng.gen_range(4..9);
                push_n(&mut rng, n, 30 * SECOND, 6 * MINUTE, &mut times);
                let repo = if subtle {
                    victim_repo(victim, &mut rng)
                } else {
                    pick(&mut rng, &["payments-core", "infra-live", "iam-policies"]).to_string()
                };
                description = format!(
                    "coding agent pushes {n} commits to main of {repo} at night, outside the \
                     change window and without an approval"
                );
                targets.push(repo);
            }
            AttackKind::NonAllowlistedEnvironment => {
                let n = rng.gen_range(20..60);
                push_n(&mut rng, n, 15 * SECOND, 3 * MINUTE, &mut times);
                description = format!(
                    "{} service account calls prod APIs ({n} calls), outside its allowlisted \
                     environment",
                    victim.env
                );
            }
            AttackKind::SecretFromSuspiciousNetwork => {
                let n = rng.gen_range(4..9);
                push_n(&mut rng, n, 20 * SECOND, 3 * MINUTE, &mut times);
                if subtle {
                    ip = Some(private_ip(&mut rng, 200, 0, 15));
                    network = Some("vpn-contractors".to_string());
                } else {
                    ip = Some(public_ip(&mut rng));
                    user_agent = Some(
                        "aws-cli/2.15.30 Python/3.11.8 Linux/6.5.0-1016-aws exe/x86_64.ubuntu.22"
                            .to_string(),
                    );
                }
                description = format!(
                    "automation bot retrieves production secrets from {} in an unreviewed \
                     pipeline step",
                    if subtle {
                        "a contractor VPN"
                    } else {
                        "a public address"
                    }
                );
            }
            AttackKind::SensitiveRecordVolume => {
                let dur = between(&mut rng, 45 * MINUTE, 90 * MINUTE);
                let rate = victim_rate(victim) * rng.gen_range(15.0..25.0);
                while t < start + dur {
                    times.push(t);
                    t += exp_gap_ms(&mut rng, rate);
                }
                description = format!(
                    "privileged support agent reads {} customer records in {} min (~20x usual)",
                    times.len(),
                    dur / MINUTE
                );
            }
            AttackKind::PaymentKeyExport => {
                let n = rng.gen_range(6..20);
                push_n(&mut rng, n, 10 * SECOND, 2 * MINUTE, &mut times);
                if !subtle {
                    ip = Some(public_ip(&mut rng));
                    user_agent = Some("python-requests/2.25.1".to_string());
                }
                targets.push(format!("exp_{}", base62(&mut rng, 16)));
                description = format!(
                    "payment API key (settlement only) used to export customer data{}",
                    if subtle {
                        " from the merchant's own servers"
                    } else {
                        " from a new address"
                    }
                );
            }
            AttackKind::StolenCredentials => {
                let n = rng.gen_range(15..40);
                push_n(&mut rng, n, 5 * SECOND, 4 * MINUTE, &mut times);
                ip = Some(if subtle {
                    cloud_egress_ip(&mut rng)
                } else {
                    public_ip(&mut rng)
                });
                user_agent = Some(pick(&mut rng, &OLD_TOOLS).to_string());
                description = "leaked credentials used from outside: old tool, reconnaissance \
                               calls, then reads"
                    .to_string();
            }
            AttackKind::PermissionProbing => {
                let n = rng.gen_range(25..70);
                push_n(&mut rng, n, 2 * SECOND, 20 * SECOND, &mut times);
                description = format!(
                    "burst of {n} calls, mostly denied, across actions this identity never used"
                );
            }
            AttackKind::LowAndSlowExfiltration => {
                let end = start + between(&mut rng, 24 * HOUR, 40 * HOUR);
                while t < end {
                    times.push(t);
                    times.push(t + between(&mut rng, SECOND, 20 * SECOND));
                    t += between(&mut rng, 25 * MINUTE, 70 * MINUTE);
                }
                targets.push(format!("cdn-sync-{}", pod_suffix(&mut rng, 8)));
                description = format!(
                    "copies customer export segments to an external bucket, one every ~45 min \
                     for {} h",
                    (end - start) / HOUR
                );
            }
        }
        if times.last().is_some_and(|&end| end > latest_end) || times.is_empty() {
            return None;
        }
        Some(AttackSim {
            id,
            kind,
            victim: victim_index,
            description,
            times,
            pos: 0,
            rng,
            ip,
            network,
            user_agent,
            targets,
            subtle,
        })
    }

    pub fn start_ms(&self) -> i64 {
        self.times.first().copied().unwrap_or(0)
    }

    pub fn end_ms(&self) -> i64 {
        self.times.last().copied().unwrap_or(0)
    }

    /// Time of the next malicious event, if any remain.
    pub fn next_time(&self) -> Option<i64> {
        self.times.get(self.pos).copied()
    }

    fn base(
        &self,
        victim: &mut IdentitySim,
        t: i64,
        action: &str,
        destination: String,
    ) -> ActivityEvent {
        let (ip, network) = match &self.ip {
            Some(ip) => (ip.clone(), self.network.clone()),
            None => (victim.current_ip(t), victim.network.clone()),
        };
        let ua = match &self.user_agent {
            Some(ua) => ua.clone(),
            None => victim.user_agent(t).to_string(),
        };
        ActivityEvent {
            time_ms: t,
            identity: victim.name.clone(),
            action: action.to_string(),
            destination,
            event_id: None,
            identity_kind: victim.kind,
            environment: Some(victim.env.clone()),
            source_ip: Some(ip),
            source_network: network,
            user_agent: Some(ua),
            outcome: Outcome::Success,
            bytes: None,
            records: None,
            sensitivity: None,
            attributes: BTreeMap::new(),
        }
    }

    /// The malicious event due now; advances to the next one.
    pub fn emit(&mut self, victim: &mut IdentitySim) -> ActivityEvent {
        let pos = self.pos;
        let t = self.times[pos.min(self.times.len() - 1)];
        self.pos += 1;
        let n = self.times.len();
        match self.kind {
            AttackKind::UnapprovedCodePush => {
                let repo = self.targets[0].clone();
                if pos == 0 {
                    self.base(victim, t, "git:fetch", format!("github.com/acme/{repo}"))
                } else if pos == 2 && n > 4 {
                    let mut e = self.base(
                        victim,
                        t,
                        "github:branches.update_protection",
                        format!("github.com/acme/{repo}/branches/main/protection"),
                    );
                    e.outcome = Outcome::Denied;
                    e
                } else {
                    let mut e = self.base(
                        victim,
                        t,
                        "git:push",
                        format!("github.com/acme/{repo}/refs/heads/main"),
                    );
                    // No ticket, no approval: this is what the change-window policy checks.
                    e.attributes.insert("change_window".into(), "none".into());
                    e
                }
            }
            AttackKind::NonAllowlistedEnvironment => {
                let sku = self.rng.gen_range(10_000..999_999);
                let r: f64 = self.rng.gen();
                let mut e = if self.subtle || r < 0.4 {
                    // Same API as usual, only the environment in the host differs.
                    self.base(
                        victim,
                        t,
                        "GET /v1/items/{id}",
                        format!("inventory.prod.acme.internal/v1/items/{sku}"),
                    )
                } else if r < 0.75 {
                    let id = base62(&mut self.rng, 14);
                    self.base(
                        victim,
                        t,
                        "GET /v1/accounts/{id}",
                        format!("billing.prod.acme.internal/v1/accounts/acct_{id}"),
                    )
                } else {
                    let mut e = self.base(
                        victim,
                        t,
                        "GET /v1/entries",
                        "ledger.prod.acme.internal/v1/entries".into(),
                    );
                    e.records = Some(self.rng.gen_range(50..500));
                    e
                };
                e.environment = Some("prod".into());
                if chance(&mut self.rng, 0.1) {
                    e.outcome = Outcome::Denied;
                }
                e
            }
            AttackKind::SecretFromSuspiciousNetwork => {
                let mut e = if pos == 0 && !self.subtle {
                    self.base(
                        victim,
                        t,
                        "secretsmanager:ListSecrets",
                        "secretsmanager".into(),
                    )
                } else {
                    let name = pick(
                        &mut self.rng,
                        &[
                            "prod/payments/stripe-live-key-Q2xk9A",
                            "prod/db/master-password-7hGf2s",
                            "prod/oauth/signing-key-Lp03Zx",
                        ],
                    );
                    self.base(
                        victim,
                        t,
                        "secretsmanager:GetSecretValue",
                        format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:{name}"),
                    )
                };
                e.attributes.insert(
                    "pipeline_step".into(),
                    if self.subtle {
                        "manual-run"
                    } else {
                        "debug-shell"
                    }
                    .into(),
                );
                e
            }
            AttackKind::SensitiveRecordVolume => {
                let id = base62(&mut self.rng, 14);
                let r: f64 = self.rng.gen();
                let mut e = if r < 0.8 {
                    let mut e = self.base(
                        victim,
                        t,
                        "GET /v1/customers/{id}",
                        format!("crm.acme.internal/v1/customers/cus_{id}"),
                    );
                    e.records = Some(1);
                    e.bytes = Some(self.rng.gen_range(1_500..9_000));
                    e.sensitivity = Some(Sensitivity::Confidential);
                    e
                } else if r < 0.92 {
                    let mut e = self.base(
                        victim,
                        t,
                        "GET /v1/customers/{id}/payment_methods",
                        format!("crm.acme.internal/v1/customers/cus_{id}/payment_methods"),
                    );
                    e.records = Some(self.rng.gen_range(1..4));
                    e.sensitivity = Some(Sensitivity::Restricted);
                    e
                } else {
                    let mut e = self.base(
                        victim,
                        t,
                        "GET /v1/customers",
                        "crm.acme.internal/v1/customers".into(),
                    );
                    e.records = Some(100);
                    e.bytes = Some(self.rng.gen_range(150_000..600_000));
                    e.sensitivity = Some(Sensitivity::Confidential);
                    e
                };
                e.attributes
                    .insert("session".into(), format!("conv-{:x}", t / (7 * MINUTE)));
                e
            }
            AttackKind::PaymentKeyExport => {
                let export = self.targets[0].clone();
                let mut e = if pos == 0 {
                    self.base(
                        victim,
                        t,
                        "POST /v1/customers/export",
                        "api.pay.acme.com/v1/customers/export".into(),
                    )
                } else if pos + 1 == n {
                    let mut e = self.base(
                        victim,
                        t,
                        "GET /v1/files/{id}/contents",
                        format!("files.pay.acme.com/v1/files/file_{}/contents", &export[4..]),
                    );
                    e.bytes = Some(self.rng.gen_range(5_000_000..60_000_000));
                    e.records = Some(self.rng.gen_range(10_000..200_000));
                    e.sensitivity = Some(Sensitivity::Confidential);
                    e
                } else if pos % 3 == 1 {
                    self.base(
                        victim,
                        t,
                        "GET /v1/customers/export/{id}",
                        format!("api.pay.acme.com/v1/customers/export/{export}"),
                    )
                } else {
                    let mut e = self.base(
                        victim,
                        t,
                        "GET /v1/customers",
                        "api.pay.acme.com/v1/customers".into(),
                    );
                    e.records = Some(100);
                    e.bytes = Some(self.rng.gen_range(100_000..400_000));
                    e
                };
                if let Some(account) = victim_account(victim) {
                    e.attributes.insert("account".into(), account);
                }
                e
            }
            AttackKind::StolenCredentials => {
                const RECON: [(&str, &str, f64); 11] = [
                    ("sts:GetCallerIdentity", "sts", 0.0),
                    ("iam:ListAttachedRolePolicies", "iam", 0.3),
                    ("iam:GetAccountAuthorizationDetails", "iam", 0.8),
                    ("s3:ListBuckets", "s3", 0.1),
                    ("ec2:DescribeInstances", "ec2", 0.2),
                    ("ec2:DescribeRegions", "ec2", 0.0),
                    ("lambda:ListFunctions", "lambda", 0.5),
                    ("secretsmanager:ListSecrets", "secretsmanager", 0.6),
                    ("rds:DescribeDBInstances", "rds", 0.4),
                    ("iam:ListRoles", "iam", 0.5),
                    ("s3:ListObjectsV2", "arn:aws:s3:::acme-tfstate", 0.2),
                ];
                if pos < RECON.len() && pos * 2 < n {
                    let (action, dest, denied) = RECON[pos];
                    let mut e = self.base(victim, t, action, dest.to_string());
                    if chance(&mut self.rng, denied) {
                        e.outcome = Outcome::Denied;
                    }
                    e
                } else {
                    let bucket = pick(
                        &mut self.rng,
                        &["acme-tfstate", "acme-batch-output", "acme-customer-exports"],
                    );
                    let key = hex(&mut self.rng, 8);
                    let mut e = self.base(
                        victim,
                        t,
                        "s3:GetObject",
                        format!("arn:aws:s3:::{bucket}/{key}.json"),
                    );
                    e.bytes = Some(self.rng.gen_range(5_000..5_000_000));
                    if chance(&mut self.rng, 0.25) {
                        e.outcome = Outcome::Denied;
                    }
                    e
                }
            }
            AttackKind::PermissionProbing => {
                let (action, dest) = *pick(&mut self.rng, &PROBES);
                let mut e = self.base(victim, t, action, dest.to_string());
                if chance(&mut self.rng, 0.85) {
                    e.outcome = Outcome::Denied;
                }
                e
            }
            AttackKind::LowAndSlowExfiltration => {
                let segment = pos / 2;
                let date = date_str(t);
                let mut e = if pos % 2 == 0 {
                    self.base(
                        victim,
                        t,
                        "s3:GetObject",
                        format!(
                            "arn:aws:s3:::acme-customer-exports/{date}/segment-{segment:04}.csv.gz"
                        ),
                    )
                } else {
                    let bucket = self.targets[0].clone();
                    let key = hex(&mut self.rng, 12);
                    self.base(
                        victim,
                        t,
                        "s3:PutObject",
                        format!("arn:aws:s3:::{bucket}/{key}.bin"),
                    )
                };
                e.bytes = Some(self.rng.gen_range(1_000_000..4_000_000));
                e.records = Some(self.rng.gen_range(2_000..8_000));
                e
            }
        }
    }
}

fn victim_repo(victim: &IdentitySim, rng: &mut Pcg64Mcg) -> String {
    match victim.targets().first() {
        Some(r) if rng.gen::<bool>() => r.clone(),
        _ => "checkout-service".to_string(),
    }
}

fn victim_rate(victim: &IdentitySim) -> f64 {
    victim.base_rate().max(0.2)
}

fn victim_account(victim: &IdentitySim) -> Option<String> {
    victim.targets().first().cloned()
}
