//! Fuzz target: `decode(Format::Auto, ..)` must never panic, and every rejection must
//! carry a detail. Small limits so the depth and size bounds are exercised too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use riskd::decode::{decode, Decoded, Format, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_record_bytes: 4096,
        max_depth: 16,
    };
    let mut out = Vec::new();
    decode(Format::Auto, data, &limits, &mut out);
    for d in &out {
        if let Decoded::Rejected(r) = d {
            assert!(!r.detail.is_empty(), "empty detail: {r:?}");
        }
    }
});
