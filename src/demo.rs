//! `riskd demo`: generator, pipeline, API and a live view in one process, no external
//! service. Placeholder until the enforcement API issue lands.

use tokio_util::sync::CancellationToken;

use crate::config::Config;

pub async fn run(_config: Config, _shutdown: CancellationToken) -> anyhow::Result<()> {
    anyhow::bail!("`riskd demo` is not implemented yet (enforcement API issue)")
}
