//! Every record of the Stratus Red Team CloudTrail set (`../shared/data/cloudtrail-stratus`,
//! 55 files, 2,900 records) must decode or be rejected with a precise reason. Prints the
//! counts (`cargo test --test decode_stratus -- --nocapture`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use riskd::decode::{decode, Decoded, Format, Limits};
use riskd::event::IdentityKind;

const DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/data/cloudtrail-stratus"
);

/// `RISKD_SHARED_DATA` (the `shared/data` folder) overrides the default location, for
/// checkouts that do not sit next to `shared/` (e.g. git worktrees).
fn data_dir() -> PathBuf {
    match std::env::var_os("RISKD_SHARED_DATA") {
        Some(dir) => PathBuf::from(dir).join("cloudtrail-stratus"),
        None => PathBuf::from(DIR),
    }
}

#[test]
fn every_stratus_record_decodes_or_is_rejected_precisely() {
    let dir = data_dir();
    assert!(
        dir.is_dir(),
        "development data missing: {} (the shared data folder must sit next to the repo, \
         or set RISKD_SHARED_DATA to it)",
        dir.display()
    );
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("read data dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert_eq!(
        files.len(),
        55,
        "expected 55 CloudTrail files in {}",
        dir.display()
    );

    let limits = Limits::default();
    let mut out = Vec::new();
    for file in &files {
        let bytes = std::fs::read(file).expect("read file");
        let before = out.len();
        decode(Format::Cloudtrail, &bytes, &limits, &mut out);
        // auto must agree with the explicit format on real files.
        let mut auto = Vec::new();
        decode(Format::Auto, &bytes, &limits, &mut auto);
        assert_eq!(auto, out[before..], "auto disagrees on {}", file.display());
    }

    let mut events = 0usize;
    let mut rejected: BTreeMap<&str, usize> = BTreeMap::new();
    let mut skipped: BTreeMap<&str, usize> = BTreeMap::new();
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    let mut host_destinations = 0usize;
    for d in &out {
        match d {
            Decoded::Event(ev) => {
                events += 1;
                *kinds.entry(ev.identity_kind.as_str()).or_default() += 1;
                *outcomes.entry(ev.outcome.as_str()).or_default() += 1;
                assert!(!ev.identity.is_empty() && !ev.action.is_empty());
                assert!(!ev.destination.is_empty());
                assert!(ev.action.contains(':'), "action {}", ev.action);
                if ev.destination.ends_with(".amazonaws.com") {
                    host_destinations += 1;
                }
                if ev.identity_kind == IdentityKind::Workload {
                    assert!(
                        ev.identity.contains(":role/"),
                        "assumed role must map to its role: {}",
                        ev.identity
                    );
                    assert!(ev.attributes.contains_key("session"));
                }
            }
            Decoded::Rejected(r) => {
                assert!(!r.detail.is_empty(), "rejection without detail: {r:?}");
                *rejected.entry(r.reason.as_str()).or_default() += 1;
                println!("rejected: {r}");
            }
            Decoded::Skipped(why) => *skipped.entry(why).or_default() += 1,
        }
    }
    println!(
        "stratus: {} records: {events} decoded, rejected {rejected:?}, skipped {skipped:?}",
        out.len()
    );
    println!("identity kinds {kinds:?}; outcomes {outcomes:?}; service-host destinations {host_destinations}");
    assert_eq!(out.len(), 2_900, "expected 2,900 records");
    // Every record in this set is well-formed CloudTrail; a rejection here is a decoder bug.
    assert_eq!(events, 2_900, "rejections: {rejected:?}");
}
