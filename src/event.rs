//! The activity event: the one shape every decoder produces and every later stage reads
//! (design §2). Field names are a contract with producers; see `decode::native`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What kind of non-human (or human) principal acted. Unknown strings map to `Unknown`
/// rather than failing, because producers invent kinds faster than we can list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityKind {
    AiAgent,
    ServiceAccount,
    ApiKey,
    Workload,
    Bot,
    Human,
    #[default]
    #[serde(other)]
    Unknown,
}

impl IdentityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityKind::AiAgent => "ai_agent",
            IdentityKind::ServiceAccount => "service_account",
            IdentityKind::ApiKey => "api_key",
            IdentityKind::Workload => "workload",
            IdentityKind::Bot => "bot",
            IdentityKind::Human => "human",
            IdentityKind::Unknown => "unknown",
        }
    }

    /// A small number for packing the kind into state flags (0 is `Unknown`).
    pub fn code(self) -> u8 {
        match self {
            IdentityKind::Unknown => 0,
            IdentityKind::AiAgent => 1,
            IdentityKind::ServiceAccount => 2,
            IdentityKind::ApiKey => 3,
            IdentityKind::Workload => 4,
            IdentityKind::Bot => 5,
            IdentityKind::Human => 6,
        }
    }

    /// The kind of [`IdentityKind::code`]; `Unknown` for any other number.
    pub fn from_code(code: u8) -> Self {
        match code {
            1 => IdentityKind::AiAgent,
            2 => IdentityKind::ServiceAccount,
            3 => IdentityKind::ApiKey,
            4 => IdentityKind::Workload,
            5 => IdentityKind::Bot,
            6 => IdentityKind::Human,
            _ => IdentityKind::Unknown,
        }
    }

    pub fn is_unknown(&self) -> bool {
        *self == IdentityKind::Unknown
    }

    /// Parses a producer-supplied kind; anything unrecognised is `Unknown`.
    pub fn parse(s: &str) -> Self {
        match s {
            "ai_agent" => IdentityKind::AiAgent,
            "service_account" => IdentityKind::ServiceAccount,
            "api_key" => IdentityKind::ApiKey,
            "workload" => IdentityKind::Workload,
            "bot" => IdentityKind::Bot,
            "human" => IdentityKind::Human,
            _ => IdentityKind::Unknown,
        }
    }
}

/// Result of the action as the audited system reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    #[default]
    Success,
    Denied,
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
            Outcome::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "success" => Some(Outcome::Success),
            "denied" => Some(Outcome::Denied),
            "error" => Some(Outcome::Error),
            _ => None,
        }
    }

    pub fn is_failure(self) -> bool {
        !matches!(self, Outcome::Success)
    }
}

/// Data classification of a destination. Ordered: a higher variant is more sensitive.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Sensitivity {
    Public,
    #[default]
    Internal,
    Confidential,
    Restricted,
}

impl Sensitivity {
    pub fn as_str(self) -> &'static str {
        match self {
            Sensitivity::Public => "public",
            Sensitivity::Internal => "internal",
            Sensitivity::Confidential => "confidential",
            Sensitivity::Restricted => "restricted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "public" => Some(Sensitivity::Public),
            "internal" => Some(Sensitivity::Internal),
            "confidential" => Some(Sensitivity::Confidential),
            "restricted" => Some(Sensitivity::Restricted),
            _ => None,
        }
    }
}

/// One action by one identity, in riskd's native shape (design §2).
///
/// `time_ms` is event time in Unix epoch milliseconds; everything downstream advances on
/// it, never on the wall clock.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ActivityEvent {
    /// Event time, Unix epoch milliseconds.
    pub time_ms: i64,
    pub identity: String,
    pub action: String,
    pub destination: String,
    pub event_id: Option<String>,
    pub identity_kind: IdentityKind,
    pub environment: Option<String>,
    pub source_ip: Option<String>,
    pub source_network: Option<String>,
    pub user_agent: Option<String>,
    pub outcome: Outcome,
    pub bytes: Option<u64>,
    pub records: Option<u64>,
    /// Producer-declared sensitivity; when absent, config rules on `destination` decide.
    pub sensitivity: Option<Sensitivity>,
    pub attributes: BTreeMap<String, String>,
}
