//! Synthetic labelled NHI fleet. Placeholder until the scoring issue lands.

use std::path::Path;

/// Options of `riskd generate`.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub seed: u64,
    pub identities: usize,
    pub days: u32,
}

/// Writes events (NDJSON) and labels (JSON) to files.
pub fn generate_to_files(
    _opts: &GenerateOptions,
    _events: &Path,
    _labels: &Path,
) -> anyhow::Result<()> {
    anyhow::bail!("`riskd generate` is not implemented yet (scoring issue)")
}
