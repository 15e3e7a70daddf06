//! AWS CloudTrail → activity events (design §2).
//!
//! Input is a log file's `{"Records":[...]}` envelope (up to 64 × `max_record_bytes`) or
//! a single record. The envelope is split into per-record byte spans by a linear scan,
//! so each record is size-checked against `max_record_bytes` and parsed on its own: a
//! 64 MiB file never becomes one tree, and one bad record does not sink its neighbours.
//!
//! Mapping:
//! - identity from `userIdentity`: `AssumedRole` → the role ARN
//!   (`sessionContext.sessionIssuer.arn`, else derived from the assumed-role ARN), with
//!   the session name in `attributes["session"]`; `IAMUser`/`Root` → `arn`; `AWSService`
//!   → `invokedBy`; anything else → `arn`, else `principalId`, else `invokedBy`.
//!   The last fallback is ours: AWS writes service events (`AwsServiceEvent`, e.g.
//!   `StartSecretVersionDelete`) with a type-less `{accountId, invokedBy}` identity, and
//!   those are real actions by a service principal, not garbage.
//! - a call a service made on a user's or role's behalf (`invokedBy` next to an `arn`:
//!   the `kms:Decrypt` Secrets Manager or S3 makes for the caller, with source `AWS
//!   Internal`) keeps the user or role as its identity and carries the service in
//!   `attributes["invoked_by"]`, so scoring can tell it from a call the identity made.
//! - identity_kind: IAM user with an access key → `api_key`, assumed role → `workload`,
//!   AWS service → `service_account`, root → `human`, else `unknown`.
//! - action `<service>:<eventName>`, service = first label of `eventSource`.
//! - destination: `resources[0].ARN`; else S3 `bucketName` (+ `key`) as an S3 ARN; else
//!   the first of [`IDENTIFYING_PARAMS`] in `requestParameters` (an ARN value as is,
//!   otherwise `<service>:<param>/<value>` so equal names in different services stay
//!   apart); else the service host (`eventSource`).
//! - outcome from `errorCode`: absent → success; access-denied / unauthorized / forbidden
//!   codes → denied; any other code → error.
//! - `sourceIPAddress` → `source_ip` when it is an IP literal, otherwise (`AWS Internal`,
//!   `s3.amazonaws.com`) → `source_network`.

use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde_json::Value;

use super::scan;
use super::util::{check_time_range, is_ip, parse_rfc3339, serde_rejection, value_kind, Obj};
use super::{Decoded, Limits, RejectReason, Rejection};
use crate::event::{ActivityEvent, IdentityKind, Outcome};

/// How much larger than `max_record_bytes` a whole `{"Records":[...]}` document may be.
pub const ENVELOPE_FACTOR: usize = 64;

/// Request parameters that name the object acted on, in priority order (the first one
/// present wins). Role and user names come before policy names because attaching a
/// policy to a role acts on the role.
pub const IDENTIFYING_PARAMS: &[&str] = &[
    "secretId",
    "name",
    "trailName",
    "roleName",
    "userName",
    "groupName",
    "instanceProfileName",
    "policyArn",
    "functionName",
    "keyId",
    "snapshotId",
    "volumeId",
    "instanceId",
    "imageId",
    "dBInstanceIdentifier",
    "dBClusterIdentifier",
    "dBSnapshotIdentifier",
    "logGroupName",
    "tableName",
    "queueUrl",
    "topicArn",
    "stackName",
    "clusterName",
    "repositoryName",
    "resourceArn",
    "resourceName",
    "resourceId",
    "vpcId",
    "subnetId",
    "routeTableId",
    "groupId",
    "internetGatewayId",
    "allocationId",
    "networkInterfaceId",
    "configurationARN",
    "roleArn",
];

/// Decodes one CloudTrail document (envelope or single record) into `out`. The input
/// already passed the encoding and depth bounds and is at most
/// `ENVELOPE_FACTOR × max_record_bytes`.
pub(crate) fn decode_into(text: &str, limits: &Limits, out: &mut Vec<Decoded>) {
    // Syntax first, without building anything, so the span splitter below only ever
    // sees valid JSON.
    if let Err(e) = serde_json::from_str::<IgnoredAny>(text) {
        out.push(Decoded::Rejected(serde_rejection(&e)));
        return;
    }
    let Some(members) = scan::object_members(text) else {
        out.push(Decoded::Rejected(Rejection::new(
            RejectReason::NotAnObject,
            format!(
                "expected a CloudTrail record or {{\"Records\":[...]}}, found {}",
                scan::json_kind(text)
            ),
        )));
        return;
    };
    match members.iter().find(|m| m.key() == "Records") {
        Some(records) => {
            let Some(elements) = scan::array_elements(records.value) else {
                out.push(Decoded::Rejected(Rejection::new(
                    RejectReason::WrongType,
                    format!(
                        "field `Records`: expected an array, found {}",
                        scan::json_kind(records.value)
                    ),
                )));
                return;
            };
            out.reserve(elements.len());
            for (i, element) in elements.into_iter().enumerate() {
                let decoded = if element.len() > limits.max_record_bytes {
                    Err(Rejection::new(
                        RejectReason::TooLarge,
                        format!(
                            "record is {} bytes, over max_record_bytes {}",
                            element.len(),
                            limits.max_record_bytes
                        ),
                    ))
                } else {
                    decode_record(element)
                };
                out.push(match decoded {
                    Ok(ev) => Decoded::Event(Box::new(ev)),
                    Err(r) => Decoded::Rejected(Rejection::new(
                        r.reason,
                        format!("Records[{i}]: {}", r.detail),
                    )),
                });
            }
        }
        None => {
            let decoded = if text.len() > limits.max_record_bytes {
                Err(Rejection::new(
                    RejectReason::TooLarge,
                    format!(
                        "record is {} bytes, over max_record_bytes {}",
                        text.len(),
                        limits.max_record_bytes
                    ),
                ))
            } else {
                decode_record(text)
            };
            out.push(match decoded {
                Ok(ev) => Decoded::Event(Box::new(ev)),
                Err(r) => Decoded::Rejected(r),
            });
        }
    }
}

/// Decodes one CloudTrail record (one element of `Records`).
pub(crate) fn decode_record(text: &str) -> Result<ActivityEvent, Rejection> {
    let value: Value = serde_json::from_str(text).map_err(|e| serde_rejection(&e))?;
    let Value::Object(map) = &value else {
        return Err(Rejection::new(
            RejectReason::NotAnObject,
            format!(
                "expected a CloudTrail record object, found {}",
                value_kind(&value)
            ),
        ));
    };
    map_record(&Obj { map, path: "" })
}

fn map_record(rec: &Obj<'_>) -> Result<ActivityEvent, Rejection> {
    let time_ms = event_time(rec)?;
    let event_source = rec.req_str("eventSource")?;
    let event_name = rec.req_str("eventName")?;
    let service = event_source.split('.').next().unwrap_or(event_source);

    let mut attributes = BTreeMap::new();
    let (identity, identity_kind) = identity(rec, &mut attributes)?;

    let destination = destination(rec, service, event_source)?;

    let error_code = rec.opt_nonempty("errorCode")?;
    let outcome = match error_code {
        None => Outcome::Success,
        Some(code) if is_denied(code) => Outcome::Denied,
        Some(_) => Outcome::Error,
    };

    let (source_ip, source_network) = match rec.opt_nonempty("sourceIPAddress")? {
        Some(src) if is_ip(src) => (Some(src.to_string()), None),
        Some(src) => (None, Some(src.to_string())),
        None => (None, None),
    };

    // Payload moved either way (design §2): S3 logs downloads as `bytesTransferredOut`
    // and uploads as `bytesTransferredIn`; a bulk upload to a new place is data moved too.
    let bytes = rec
        .lenient_obj("additionalEventData", "additionalEventData")
        .and_then(|a| {
            let out = a
                .map
                .get("bytesTransferredOut")
                .and_then(non_negative_integer);
            let inward = a
                .map
                .get("bytesTransferredIn")
                .and_then(non_negative_integer);
            match (out, inward) {
                (None, None) => None,
                (o, i) => Some(o.unwrap_or(0).saturating_add(i.unwrap_or(0))),
            }
        });

    for (key, attr) in [
        ("awsRegion", "aws_region"),
        ("recipientAccountId", "recipient_account_id"),
        ("eventType", "event_type"),
    ] {
        if let Some(v) = rec.opt_nonempty(key)? {
            attributes.insert(attr.to_string(), v.to_string());
        }
    }
    // Older trails wrote `readOnly` as a string; both forms carry the same meaning.
    match rec.map.get("readOnly") {
        Some(Value::Bool(b)) => {
            attributes.insert("read_only".into(), b.to_string());
        }
        Some(Value::String(s)) if !s.is_empty() => {
            attributes.insert("read_only".into(), s.clone());
        }
        _ => {}
    }
    if let Some(code) = error_code {
        attributes.insert("error_code".into(), code.to_string());
    }

    Ok(ActivityEvent {
        time_ms,
        identity,
        action: format!("{service}:{event_name}"),
        destination,
        event_id: rec.opt_nonempty("eventID")?.map(str::to_string),
        identity_kind,
        environment: None,
        source_ip,
        source_network,
        user_agent: rec.opt_nonempty("userAgent")?.map(str::to_string),
        outcome,
        bytes,
        records: None,
        sensitivity: None,
        attributes,
    })
}

fn event_time(rec: &Obj<'_>) -> Result<i64, Rejection> {
    if let Some(t) = rec.opt_nonempty("eventTime")? {
        return parse_rfc3339("eventTime", t);
    }
    // `@timestamp` appears when records were re-shipped through Elastic/OpenSearch.
    match rec.map.get("@timestamp") {
        None | Some(Value::Null) => Err(Rejection::new(
            RejectReason::MissingField,
            "field `eventTime` (or `@timestamp`) is missing",
        )),
        Some(Value::String(s)) => parse_rfc3339("@timestamp", s),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(ms) => check_time_range("@timestamp", ms),
            None => Err(Rejection::new(
                RejectReason::InvalidValue,
                format!("field `@timestamp`: {n} is not integer epoch milliseconds"),
            )),
        },
        Some(other) => Err(Rejection::new(
            RejectReason::WrongType,
            format!(
                "field `@timestamp`: expected a string or epoch milliseconds, found {}",
                value_kind(other)
            ),
        )),
    }
}

fn identity(
    rec: &Obj<'_>,
    attributes: &mut BTreeMap<String, String>,
) -> Result<(String, IdentityKind), Rejection> {
    let Some(ui) = rec.opt_obj("userIdentity", "userIdentity")? else {
        return Err(Rejection::new(
            RejectReason::MissingField,
            "field `userIdentity` is missing",
        ));
    };
    let missing = |field: &str| {
        Rejection::new(
            RejectReason::MissingField,
            format!("field `userIdentity.{field}` is missing or empty"),
        )
    };
    let arn = ui.opt_nonempty("arn")?;
    let principal = ui.opt_nonempty("principalId")?;
    // A role's principal id is `<role id>:<session name>`: the session changes with every
    // CI run or Lambda cold start, the role id (`AROA…`) does not. Only the stable part
    // names the identity, or each session would be an identity with no history.
    let stable_principal = principal.map(|p| p.split_once(':').map_or(p, |(id, _)| id));
    let invoked_by = ui.opt_nonempty("invokedBy")?;
    // A service acting for a user or role (not a service's own identity, below).
    let is_service =
        ui.opt_nonempty("type")? == Some("AWSService") || (arn.is_none() && principal.is_none());
    if let (Some(service), false) = (invoked_by, is_service) {
        attributes.insert("invoked_by".into(), service.to_string());
    }
    match ui.opt_nonempty("type")? {
        Some("AssumedRole") => {
            let issuer_arn = match ui.lenient_obj("sessionContext", "userIdentity.sessionContext") {
                Some(ctx) => match ctx
                    .lenient_obj("sessionIssuer", "userIdentity.sessionContext.sessionIssuer")
                {
                    Some(issuer) => issuer.opt_nonempty("arn")?,
                    None => None,
                },
                None => None,
            };
            let session = arn
                .and_then(|a| assumed_role_parts(a).map(|p| p.session))
                .or_else(|| principal.and_then(|p| p.split_once(':').map(|(_, s)| s)))
                .filter(|s| !s.is_empty());
            if let Some(s) = session {
                attributes.insert("session".into(), s.to_string());
            }
            let role = match (issuer_arn, arn) {
                (Some(issuer), _) => issuer.to_string(),
                (None, Some(a)) => match assumed_role_parts(a) {
                    Some(p) => format!("arn:{}:iam::{}:role/{}", p.partition, p.account, p.role),
                    None => a.to_string(),
                },
                (None, None) => stable_principal.ok_or_else(|| missing("arn"))?.to_string(),
            };
            Ok((role, IdentityKind::Workload))
        }
        Some("IAMUser") => {
            // Some records (`CheckMfa`, console sign-in) carry the user's name and
            // account but no ARN: the ARN is rebuilt from them, so the user stays one
            // identity rather than a second one named by its `AIDA…` id. (A user with
            // an IAM path keeps its path only in the ARN; such records cannot recover it.)
            let id = match (
                arn,
                ui.opt_nonempty("userName")?,
                ui.opt_nonempty("accountId")?,
            ) {
                (Some(arn), _, _) => arn.to_string(),
                (None, Some(name), Some(account)) => format!(
                    "arn:{}:iam::{account}:user/{name}",
                    partition_of(rec.opt_nonempty("awsRegion").ok().flatten())
                ),
                (None, _, _) => principal.ok_or_else(|| missing("arn"))?.to_string(),
            };
            let kind = if ui.opt_nonempty("accessKeyId")?.is_some() {
                IdentityKind::ApiKey
            } else {
                IdentityKind::Unknown
            };
            Ok((id, kind))
        }
        Some("AWSAccount") => {
            // A principal of another account. S3 logs an anonymous (unsigned) request as
            // this type with the account `ANONYMOUS_PRINCIPAL` and no principal id: one
            // identity per account that received it, not a rejected record.
            let account = ui.opt_nonempty("accountId")?;
            match (stable_principal, account) {
                (Some(p), _) => Ok((p.to_string(), IdentityKind::Unknown)),
                (None, Some("ANONYMOUS_PRINCIPAL")) => Ok((
                    format!(
                        "anonymous@{}",
                        rec.opt_nonempty("recipientAccountId")
                            .ok()
                            .flatten()
                            .unwrap_or("unknown-account")
                    ),
                    IdentityKind::Unknown,
                )),
                (None, Some(account)) => Ok((format!("account:{account}"), IdentityKind::Unknown)),
                (None, None) => Err(missing("principalId")),
            }
        }
        Some("Root") => {
            let id = arn.or(principal).ok_or_else(|| missing("arn"))?;
            Ok((id.to_string(), IdentityKind::Human))
        }
        Some("AWSService") => {
            let id = invoked_by.ok_or_else(|| missing("invokedBy"))?;
            Ok((id.to_string(), IdentityKind::ServiceAccount))
        }
        None if arn.is_none() && principal.is_none() && invoked_by.is_some() => {
            // Service events carry only `{accountId, invokedBy}`; see the module docs.
            Ok((
                invoked_by.unwrap_or_default().to_string(),
                IdentityKind::ServiceAccount,
            ))
        }
        _ => {
            let id = arn
                .or(principal)
                .or(invoked_by)
                .ok_or_else(|| missing("arn` / `principalId"))?;
            Ok((id.to_string(), IdentityKind::Unknown))
        }
    }
}

/// The AWS partition of a region (`cn-north-1` → `aws-cn`), for ARNs rebuilt from parts.
fn partition_of(region: Option<&str>) -> &'static str {
    match region {
        Some(r) if r.starts_with("cn-") => "aws-cn",
        Some(r) if r.starts_with("us-gov-") => "aws-us-gov",
        _ => "aws",
    }
}

struct AssumedRole<'a> {
    partition: &'a str,
    account: &'a str,
    role: &'a str,
    session: &'a str,
}

/// Splits `arn:<partition>:sts::<account>:assumed-role/<role>/<session>`.
fn assumed_role_parts(arn: &str) -> Option<AssumedRole<'_>> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("sts"), Some(_), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let rest = resource.strip_prefix("assumed-role/")?;
    let (role, session) = rest.split_once('/')?;
    (!role.is_empty() && !account.is_empty()).then_some(AssumedRole {
        partition,
        account,
        role,
        session,
    })
}

fn destination(rec: &Obj<'_>, service: &str, event_source: &str) -> Result<String, Rejection> {
    if let Some(Value::Array(resources)) = rec.map.get("resources") {
        if let Some(Value::Object(first)) = resources.first() {
            for key in ["ARN", "arn"] {
                if let Some(Value::String(arn)) = first.get(key) {
                    if !arn.is_empty() {
                        return Ok(arn.clone());
                    }
                }
            }
        }
    }
    // requestParameters is free-form per API (sometimes a string, often null); mine it
    // leniently rather than reject records over shapes we do not use.
    let params = rec.lenient_obj("requestParameters", "requestParameters");
    if let Some(params) = &params {
        if let Some(bucket) = params.opt_nonempty("bucketName").ok().flatten() {
            return Ok(match params.opt_nonempty("key").ok().flatten() {
                Some(key) => format!("arn:aws:s3:::{bucket}/{key}"),
                None => format!("arn:aws:s3:::{bucket}"),
            });
        }
        if let Some(d) = identifying_param(params, service) {
            return Ok(d);
        }
        // EC2 wraps ids in `{"instancesSet":{"items":[{"instanceId":...}]}}`.
        if let Some(Value::String(id)) = params
            .map
            .get("instancesSet")
            .and_then(|s| s.get("items"))
            .and_then(|items| items.get(0))
            .and_then(|item| item.get("instanceId"))
        {
            if !id.is_empty() {
                return Ok(format!("{service}:instanceId/{id}"));
            }
        }
    }
    // Service events (`AwsServiceEvent`) have no request; they name their object in
    // `serviceEventDetails` or `additionalEventData.ARN`.
    if let Some(details) = rec.lenient_obj("serviceEventDetails", "serviceEventDetails") {
        if let Some(d) = identifying_param(&details, service) {
            return Ok(d);
        }
    }
    if let Some(extra) = rec.lenient_obj("additionalEventData", "additionalEventData") {
        if let Some(Value::String(arn)) = extra.map.get("ARN") {
            if arn.starts_with("arn:") {
                return Ok(arn.clone());
            }
        }
    }
    Ok(event_source.to_string())
}

/// The first of [`IDENTIFYING_PARAMS`] with a non-empty string value: an ARN as is,
/// otherwise `<service>:<param>/<value>`.
fn identifying_param(params: &Obj<'_>, service: &str) -> Option<String> {
    IDENTIFYING_PARAMS
        .iter()
        .find_map(|&param| match params.map.get(param) {
            Some(Value::String(v)) if v.starts_with("arn:") => Some(v.clone()),
            Some(Value::String(v)) if !v.is_empty() => Some(format!("{service}:{param}/{v}")),
            _ => None,
        })
}

/// Error codes that mean "not allowed" rather than "went wrong". EC2 prefixes its codes
/// with `Client.`.
fn is_denied(code: &str) -> bool {
    let code = code.strip_prefix("Client.").unwrap_or(code);
    code.starts_with("AccessDenied") || code.contains("Unauthorized") || code == "Forbidden"
}

fn non_negative_integer(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|x| x.is_finite() && *x >= 0.0 && x.fract() == 0.0 && *x < 1.8e19)
                .map(|x| x as u64)
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(overrides: serde_json::Value) -> serde_json::Value {
        let mut base = json!({
            "eventTime": "2023-07-10T11:42:36Z",
            "eventSource": "s3.amazonaws.com",
            "eventName": "GetObject",
            "awsRegion": "eu-west-1",
            "sourceIPAddress": "203.0.113.7",
            "userAgent": "aws-cli/2.13",
            "eventID": "ev-1",
            "userIdentity": {
                "type": "IAMUser",
                "arn": "arn:aws:iam::111122223333:user/ci",
                "principalId": "AIDAEXAMPLE",
                "accessKeyId": "AKIAEXAMPLE"
            }
        });
        if let (Some(b), Some(o)) = (base.as_object_mut(), overrides.as_object()) {
            for (k, v) in o {
                b.insert(k.clone(), v.clone());
            }
        }
        base
    }

    fn ok(v: serde_json::Value) -> ActivityEvent {
        decode_record(&v.to_string()).unwrap_or_else(|e| panic!("{v}: {e}"))
    }

    fn bad(v: serde_json::Value) -> Rejection {
        let e = decode_record(&v.to_string()).expect_err("should reject");
        assert!(!e.detail.is_empty());
        e
    }

    fn run(text: &str, limits: &Limits) -> Vec<Decoded> {
        let mut out = Vec::new();
        decode_into(text, limits, &mut out);
        out
    }

    #[test]
    fn iam_user_with_key_is_api_key_without_key_unknown() {
        let ev = ok(record(json!({})));
        assert_eq!(ev.identity, "arn:aws:iam::111122223333:user/ci");
        assert_eq!(ev.identity_kind, IdentityKind::ApiKey);
        assert_eq!(ev.action, "s3:GetObject");
        let ev = ok(record(
            json!({"userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::1:user/u"}}),
        ));
        assert_eq!(ev.identity_kind, IdentityKind::Unknown);
    }

    #[test]
    fn a_call_made_on_a_users_behalf_names_the_service() {
        // As in the Stratus set: Secrets Manager decrypting for the user who read a secret.
        let ev = ok(record(json!({
            "userIdentity": {
                "type": "IAMUser",
                "arn": "arn:aws:iam::111122223333:user/bert",
                "invokedBy": "secretsmanager.amazonaws.com"
            },
            "sourceIPAddress": "secretsmanager.amazonaws.com"
        })));
        assert_eq!(ev.identity, "arn:aws:iam::111122223333:user/bert");
        assert_eq!(
            ev.attributes.get("invoked_by").map(String::as_str),
            Some("secretsmanager.amazonaws.com")
        );
        // A service's own identity is the service: nothing on its behalf.
        let own = ok(record(json!({"userIdentity": {
            "type": "AWSService",
            "invokedBy": "lambda.amazonaws.com"
        }})));
        assert_eq!(own.identity, "lambda.amazonaws.com");
        assert!(!own.attributes.contains_key("invoked_by"));
    }

    #[test]
    fn assumed_role_prefers_session_issuer() {
        let ev = ok(record(json!({"userIdentity": {
            "type": "AssumedRole",
            "arn": "arn:aws:sts::111122223333:assumed-role/deployer/sess-42",
            "principalId": "AROAEXAMPLE:sess-42",
            "sessionContext": {"sessionIssuer": {"arn": "arn:aws:iam::111122223333:role/path/deployer"}}
        }})));
        assert_eq!(ev.identity, "arn:aws:iam::111122223333:role/path/deployer");
        assert_eq!(ev.identity_kind, IdentityKind::Workload);
        assert_eq!(
            ev.attributes.get("session").map(String::as_str),
            Some("sess-42")
        );
    }

    #[test]
    fn assumed_role_derives_role_arn_keeping_partition() {
        let ev = ok(record(json!({"userIdentity": {
            "type": "AssumedRole",
            "arn": "arn:aws-cn:sts::111122223333:assumed-role/deployer/sess-1"
        }})));
        assert_eq!(ev.identity, "arn:aws-cn:iam::111122223333:role/deployer");
        assert_eq!(
            ev.attributes.get("session").map(String::as_str),
            Some("sess-1")
        );
    }

    #[test]
    fn assumed_role_without_arn_falls_back_to_principal() {
        let ev = ok(record(json!({"userIdentity": {
            "type": "AssumedRole", "principalId": "AROAEXAMPLE:sess-9"
        }})));
        // The role id, not the session: each session would otherwise be an identity.
        assert_eq!(ev.identity, "AROAEXAMPLE");
        assert_eq!(
            ev.attributes.get("session").map(String::as_str),
            Some("sess-9")
        );
        let e = bad(record(json!({"userIdentity": {"type": "AssumedRole"}})));
        assert_eq!(e.reason, RejectReason::MissingField);
    }

    #[test]
    fn identities_without_an_arn_stay_stable() {
        // The real `CheckMfa` record of the Stratus sample: an IAM user with a name and
        // an account but no ARN is the same user as in its other records.
        let ev = ok(record(json!({"awsRegion": "us-east-1", "userIdentity": {
            "type": "IAMUser", "principalId": "AIDATFQR7NSC5AU2ZV3IE", "accountId": "123837392027",
            "accessKeyId": "", "userName": "bert-jan"
        }})));
        assert_eq!(ev.identity, "arn:aws:iam::123837392027:user/bert-jan");
        let ev = ok(record(json!({"awsRegion": "cn-north-1", "userIdentity": {
            "type": "IAMUser", "principalId": "AIDA1", "accountId": "1", "userName": "u"
        }})));
        assert_eq!(ev.identity, "arn:aws-cn:iam::1:user/u");
        // A role of another account: its role id, whatever the session.
        for session in ["ci-run-1", "ci-run-2"] {
            let ev = ok(record(json!({"userIdentity": {
                "type": "AWSAccount", "principalId": format!("AROAOTHER:{session}"), "accountId": "222"
            }})));
            assert_eq!(ev.identity, "AROAOTHER");
        }
        // An anonymous S3 request: one identity per receiving account, not a rejection.
        let ev = ok(record(
            json!({"recipientAccountId": "111", "userIdentity": {
                "type": "AWSAccount", "principalId": "", "accountId": "ANONYMOUS_PRINCIPAL"
            }}),
        ));
        assert_eq!(ev.identity, "anonymous@111");
    }

    #[test]
    fn root_aws_service_and_other_types() {
        let ev = ok(record(
            json!({"userIdentity": {"type": "Root", "arn": "arn:aws:iam::1:root"}}),
        ));
        assert_eq!(
            (ev.identity.as_str(), ev.identity_kind),
            ("arn:aws:iam::1:root", IdentityKind::Human)
        );
        let ev = ok(record(
            json!({"userIdentity": {"type": "AWSService", "invokedBy": "lambda.amazonaws.com"}}),
        ));
        assert_eq!(
            (ev.identity.as_str(), ev.identity_kind),
            ("lambda.amazonaws.com", IdentityKind::ServiceAccount)
        );
        let e = bad(record(json!({"userIdentity": {"type": "AWSService"}})));
        assert_eq!(e.reason, RejectReason::MissingField);
        assert!(e.detail.contains("userIdentity.invokedBy"), "{}", e.detail);
        let ev = ok(record(
            json!({"userIdentity": {"type": "WebIdentityUser", "principalId": "accounts.google.com:123"}}),
        ));
        assert_eq!(
            (ev.identity.as_str(), ev.identity_kind),
            ("accounts.google.com:123", IdentityKind::Unknown)
        );
        let ev = ok(record(
            json!({"userIdentity": {"type": "FederatedUser", "arn": "arn:aws:sts::1:federated-user/bob", "principalId": "x"}}),
        ));
        assert_eq!(ev.identity, "arn:aws:sts::1:federated-user/bob");
        let e = bad(record(json!({"userIdentity": {"type": "SAMLUser"}})));
        assert_eq!(e.reason, RejectReason::MissingField);
    }

    #[test]
    fn user_identity_missing_or_wrong_type() {
        let mut v = record(json!({}));
        v.as_object_mut().map(|o| o.remove("userIdentity"));
        let e = bad(v);
        assert_eq!(e.reason, RejectReason::MissingField);
        assert!(e.detail.contains("userIdentity"));
        let e = bad(record(json!({"userIdentity": "root"})));
        assert_eq!(e.reason, RejectReason::WrongType);
        assert!(e.detail.contains("userIdentity"));
        let e = bad(record(json!({"userIdentity": {"type": 7}})));
        assert_eq!(e.reason, RejectReason::WrongType);
        assert!(e.detail.contains("userIdentity.type"), "{}", e.detail);
    }

    #[test]
    fn destination_priority() {
        let ev = ok(record(json!({
            "resources": [{"ARN": "arn:aws:s3:::from-resources"}],
            "requestParameters": {"bucketName": "b", "key": "k"}
        })));
        assert_eq!(ev.destination, "arn:aws:s3:::from-resources");
        let ev = ok(record(
            json!({"requestParameters": {"bucketName": "b", "key": "dir/k.txt"}}),
        ));
        assert_eq!(ev.destination, "arn:aws:s3:::b/dir/k.txt");
        let ev = ok(record(json!({"requestParameters": {"bucketName": "b"}})));
        assert_eq!(ev.destination, "arn:aws:s3:::b");
        let ev = ok(record(json!({"eventSource": "iam.amazonaws.com",
            "requestParameters": {"policyArn": "arn:aws:iam::aws:policy/Admin", "roleName": "r"}})));
        assert_eq!(ev.destination, "iam:roleName/r", "role before policy");
        let ev = ok(record(json!({"eventSource": "iam.amazonaws.com",
            "requestParameters": {"policyArn": "arn:aws:iam::aws:policy/Admin"}})));
        assert_eq!(
            ev.destination, "arn:aws:iam::aws:policy/Admin",
            "ARN values as is"
        );
        let ev = ok(record(json!({"eventSource": "kms.amazonaws.com",
            "requestParameters": {"keyId": "", "encryptionContext": {"a": "b"}}})));
        assert_eq!(
            ev.destination, "kms.amazonaws.com",
            "empty and nested params ignored"
        );
        let ev = ok(record(json!({"requestParameters": "weird"})));
        assert_eq!(ev.destination, "s3.amazonaws.com");
        let ev = ok(record(
            json!({"resources": [{"accountId": "1"}], "requestParameters": null}),
        ));
        assert_eq!(ev.destination, "s3.amazonaws.com");
        let ev = ok(record(
            json!({"eventSource": "ec2.amazonaws.com", "serviceEventDetails": {"snapshotId": "snap-1"}}),
        ));
        assert_eq!(ev.destination, "ec2:snapshotId/snap-1");
    }

    #[test]
    fn every_identifying_param_is_used() {
        for &param in IDENTIFYING_PARAMS {
            let ev = ok(record(
                json!({"eventSource": "x.amazonaws.com", "requestParameters": {param: "v"}}),
            ));
            assert_eq!(ev.destination, format!("x:{param}/v"));
        }
    }

    #[test]
    fn outcome_from_error_code() {
        let cases = [
            ("AccessDenied", Outcome::Denied),
            ("AccessDeniedException", Outcome::Denied),
            ("Client.UnauthorizedOperation", Outcome::Denied),
            ("UnauthorizedAccess", Outcome::Denied),
            ("Forbidden", Outcome::Denied),
            ("NoSuchBucketPolicy", Outcome::Error),
            ("ThrottlingException", Outcome::Error),
            ("Client.InvalidVpcID.NotFound", Outcome::Error),
            ("", Outcome::Success),
        ];
        for (code, want) in cases {
            let ev = ok(record(json!({"errorCode": code})));
            assert_eq!(ev.outcome, want, "{code}");
        }
        assert_eq!(ok(record(json!({}))).outcome, Outcome::Success);
        assert_eq!(
            bad(record(json!({"errorCode": 403}))).reason,
            RejectReason::WrongType
        );
    }

    #[test]
    fn source_address_ip_or_named_network() {
        let ev = ok(record(json!({"sourceIPAddress": "2001:db8::1"})));
        assert_eq!(ev.source_ip.as_deref(), Some("2001:db8::1"));
        let ev = ok(record(json!({"sourceIPAddress": "s3.amazonaws.com"})));
        assert_eq!(
            (ev.source_ip, ev.source_network.as_deref()),
            (None, Some("s3.amazonaws.com"))
        );
        let ev = ok(record(json!({"sourceIPAddress": "AWS Internal"})));
        assert_eq!(ev.source_network.as_deref(), Some("AWS Internal"));
    }

    #[test]
    fn service_name_from_event_source() {
        let ev = ok(record(
            json!({"eventSource": "secretsmanager.amazonaws.com", "eventName": "GetSecretValue"}),
        ));
        assert_eq!(ev.action, "secretsmanager:GetSecretValue");
        let ev = ok(record(json!({"eventSource": "custom"})));
        assert_eq!(ev.action, "custom:GetObject");
    }

    #[test]
    fn times() {
        let mut v = record(json!({"@timestamp": "2023-07-10T11:42:37Z"}));
        v.as_object_mut().map(|o| o.remove("eventTime"));
        assert_eq!(ok(v.clone()).time_ms, 1_688_989_357_000);
        v["@timestamp"] = json!(1_688_989_357_001_i64);
        assert_eq!(ok(v.clone()).time_ms, 1_688_989_357_001);
        v["@timestamp"] = json!(true);
        assert_eq!(bad(v.clone()).reason, RejectReason::WrongType);
        v["@timestamp"] = json!(1.5);
        assert_eq!(bad(v.clone()).reason, RejectReason::InvalidValue);
        v.as_object_mut().map(|o| o.remove("@timestamp"));
        let e = bad(v);
        assert_eq!(e.reason, RejectReason::MissingField);
        assert!(e.detail.contains("eventTime"));
        let e = bad(record(json!({"eventTime": "10/07/2023"})));
        assert_eq!(e.reason, RejectReason::InvalidValue);
        assert!(e.detail.contains("`10/07/2023`"));
        assert_eq!(
            bad(record(json!({"eventTime": "1970-01-01T00:00:00Z"}))).reason,
            RejectReason::InvalidValue
        );
    }

    #[test]
    fn required_fields() {
        for field in ["eventSource", "eventName"] {
            let mut v = record(json!({}));
            v.as_object_mut().map(|o| o.remove(field));
            let e = bad(v);
            assert_eq!(e.reason, RejectReason::MissingField);
            assert!(e.detail.contains(field));
        }
        let e = bad(record(json!({"eventName": ["x"]})));
        assert_eq!(e.reason, RejectReason::WrongType);
        assert!(e.detail.contains("`eventName`"));
    }

    #[test]
    fn bytes_and_compact_attributes() {
        let ev = ok(record(
            json!({"additionalEventData": {"bytesTransferredOut": 512.0},
            "readOnly": "false", "eventType": "AwsApiCall", "recipientAccountId": "111122223333"}),
        ));
        assert_eq!(ev.bytes, Some(512));
        assert_eq!(
            ev.attributes.get("read_only").map(String::as_str),
            Some("false")
        );
        assert_eq!(ev.attributes.len(), 4, "{:?}", ev.attributes);
        let ev = ok(record(
            json!({"additionalEventData": {"bytesTransferredOut": "512"}}),
        ));
        assert_eq!(ev.bytes, None);
        let ev = ok(record(
            json!({"additionalEventData": {"bytesTransferredOut": -1}}),
        ));
        assert_eq!(ev.bytes, None);
        // An upload moves data too; S3 logs both directions on every object call.
        let ev = ok(record(
            json!({"additionalEventData": {"bytesTransferredIn": 2048.0, "bytesTransferredOut": 0.0}}),
        ));
        assert_eq!(ev.bytes, Some(2048));
    }

    #[test]
    fn envelope_yields_one_result_per_record_in_order() {
        let a = record(json!({"eventName": "A"}));
        let b = record(json!({"eventName": "B"}));
        let text = format!(r#"{{"Records":[{a},{{"eventName":"bad"}},7,{b}]}}"#);
        let out = run(&text, &Limits::default());
        assert_eq!(out.len(), 4);
        assert!(matches!(&out[0], Decoded::Event(e) if e.action == "s3:A"));
        assert!(
            matches!(&out[1], Decoded::Rejected(r) if r.reason == RejectReason::MissingField && r.detail.starts_with("Records[1]: "))
        );
        assert!(matches!(&out[2], Decoded::Rejected(r) if r.reason == RejectReason::NotAnObject));
        assert!(matches!(&out[3], Decoded::Event(e) if e.action == "s3:B"));
    }

    #[test]
    fn envelope_edge_cases() {
        let limits = Limits::default();
        assert!(run(r#"{"Records":[]}"#, &limits).is_empty());
        let out = run(r#"{"Records":{"a":1}}"#, &limits);
        assert!(
            matches!(&out[..], [Decoded::Rejected(r)] if r.reason == RejectReason::WrongType && r.detail.contains("`Records`"))
        );
        let out = run(r#"[{"Records":[]}]"#, &limits);
        assert!(
            matches!(&out[..], [Decoded::Rejected(r)] if r.reason == RejectReason::NotAnObject)
        );
        let out = run(r#"{"Records":[{"a":1}"#, &limits);
        assert!(
            matches!(&out[..], [Decoded::Rejected(r)] if r.reason == RejectReason::InvalidJson)
        );
    }

    #[test]
    fn single_record_over_limit_is_too_large() {
        let text = record(json!({})).to_string();
        let limits = Limits {
            max_record_bytes: 50,
            max_depth: 64,
        };
        let out = run(&text, &limits);
        assert!(matches!(&out[..], [Decoded::Rejected(r)] if r.reason == RejectReason::TooLarge));
    }
}
