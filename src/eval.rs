//! Detection quality: recall, false alerts per 1,000 identity-days and time to detect,
//! from signals and attack labels. Placeholder until the scoring issue lands.

use std::path::Path;

/// Evaluates `signals` (NDJSON) against `labels` and prints the report.
pub fn run_cli(_labels: &Path, _signals: &Path) -> anyhow::Result<()> {
    anyhow::bail!("`riskd eval` is not implemented yet (scoring issue)")
}
