//! `riskd run`: the Kafka service (design §7). Placeholder until the runtime issue lands.

use tokio_util::sync::CancellationToken;

use crate::config::Config;

pub async fn run(_config: Config, _shutdown: CancellationToken) -> anyhow::Result<()> {
    anyhow::bail!("`riskd run` is not implemented yet (Kafka runtime issue)")
}
