//! The ground truth written next to a generated fleet: who exists (archetype, kind,
//! active span), which fleet-wide changes happened when, and which windows are attacks.
//! `riskd eval` scores signals against it; times are RFC 3339 so people can read it.

use serde::{Deserialize, Serialize};

use crate::signal::parse_time_ms;

/// Everything `riskd eval` needs to know about a generated fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Labels {
    /// Generator version that wrote this file.
    pub generator: String,
    pub seed: u64,
    pub fleet_start: String,
    pub fleet_end: String,
    /// Benign fleet-wide changes (SDK upgrade, release, incident, sale day): not attacks,
    /// listed so that a false alert can be traced to its cause.
    #[serde(default)]
    pub fleet_changes: Vec<FleetChange>,
    pub identities: Vec<IdentityLabel>,
    pub attacks: Vec<AttackLabel>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdentityLabel {
    pub identity: String,
    pub archetype: String,
    /// `identity_kind` as the events carry it.
    pub kind: String,
    /// Start of the span the identity may be active in (its first event is at or after).
    pub first_active: String,
    /// End of that span (its last event is at or before).
    pub last_active: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttackLabel {
    pub id: String,
    pub kind: String,
    pub identity: String,
    /// Time of the first malicious event.
    pub start: String,
    /// Time of the last malicious event.
    pub end: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetChange {
    pub kind: String,
    pub start: String,
    pub end: String,
    pub description: String,
}

/// A label file whose times or references do not make sense.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LabelsError {
    #[error("labels: {field} `{value}` is not an RFC 3339 time")]
    BadTime { field: String, value: String },
    #[error("labels: attack {id} names identity `{identity}` that is not in the identity list")]
    UnknownIdentity { id: String, identity: String },
}

fn time(field: &str, value: &str) -> Result<i64, LabelsError> {
    parse_time_ms(value).ok_or_else(|| LabelsError::BadTime {
        field: field.to_string(),
        value: value.to_string(),
    })
}

impl Labels {
    /// Fleet start and end in epoch milliseconds.
    pub fn fleet_span_ms(&self) -> Result<(i64, i64), LabelsError> {
        Ok((
            time("fleet_start", &self.fleet_start)?,
            time("fleet_end", &self.fleet_end)?,
        ))
    }

    /// Checks every time parses and every attack names a listed identity.
    pub fn validate(&self) -> Result<(), LabelsError> {
        self.fleet_span_ms()?;
        for i in &self.identities {
            i.span_ms()?;
        }
        for a in &self.attacks {
            a.span_ms()?;
            if !self.identities.iter().any(|i| i.identity == a.identity) {
                return Err(LabelsError::UnknownIdentity {
                    id: a.id.clone(),
                    identity: a.identity.clone(),
                });
            }
        }
        Ok(())
    }
}

impl IdentityLabel {
    pub fn span_ms(&self) -> Result<(i64, i64), LabelsError> {
        Ok((
            time(
                &format!("{}.first_active", self.identity),
                &self.first_active,
            )?,
            time(&format!("{}.last_active", self.identity), &self.last_active)?,
        ))
    }
}

impl AttackLabel {
    pub fn span_ms(&self) -> Result<(i64, i64), LabelsError> {
        Ok((
            time(&format!("{}.start", self.id), &self.start)?,
            time(&format!("{}.end", self.id), &self.end)?,
        ))
    }
}
