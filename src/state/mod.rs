//! Per-identity behavioural state (design §3), no IO. Placeholder until the scoring issue
//! lands.
