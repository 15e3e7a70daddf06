//! Shutdown plumbing: SIGINT/SIGTERM become one cancellation token that every task
//! watches, so the service drains in a known order instead of dying mid-write.

use tokio_util::sync::CancellationToken;

/// Exit status of a forced exit (128 + SIGINT, as a shell reports an interrupted job).
const FORCED_EXIT: i32 = 130;

/// Returns a token that is cancelled on the first SIGINT or SIGTERM.
///
/// A second signal exits at once: once tokio listens for a signal it never restores the
/// default disposition, so without this an operator whose drain hangs (a broker that
/// stopped answering) could only `kill -9`.
pub fn on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown signal received, draining (a second signal exits at once)");
        trigger.cancel();
        wait_for_signal().await;
        tracing::warn!("second shutdown signal: exiting without finishing the drain");
        std::process::exit(FORCED_EXIT);
    });
    token
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(err) => {
            tracing::warn!(%err, "cannot listen for SIGTERM; only SIGINT will stop riskd");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
