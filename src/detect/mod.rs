//! Detectors (design §4), one file each, no IO. Placeholder until the scoring issue lands.
