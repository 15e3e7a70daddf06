//! Optional TLS for the API (`api.tls_cert` / `api.tls_key`), with rustls on the ring
//! provider. The same axum [`Router`] is served over each TLS stream by hyper's HTTP/1
//! connection; `axum::serve` cannot be used because it only takes plain listeners.
//!
//! The certificate and key are read once at start-up: a bad file stops start-up with an
//! error naming it, rather than the first client finding out.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::ApiError;

/// A client that connects but never finishes the handshake must not hold a task (and a
/// socket) forever; a real client finishes in a few round trips.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Time to read a request head, so an idle or trickling connection is closed (the same
/// purpose as hyper's default in `axum::serve`, which is not applied to a hand-built
/// connection unless a timer is given).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// After shutdown, how long in-flight requests get to finish before they are dropped.
pub(super) const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Builds the server TLS configuration from PEM files; errors name the file at fault.
pub(crate) fn acceptor(cert_path: &str, key_path: &str) -> Result<TlsAcceptor, ApiError> {
    let tls_error = |path: &str, message: String| ApiError::Tls {
        path: path.to_string(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| tls_error(cert_path, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(cert_path, e.to_string()))?;
    if certs.is_empty() {
        return Err(tls_error(
            cert_path,
            "no PEM certificate (-----BEGIN CERTIFICATE-----) found".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| {
        tls_error(
            key_path,
            format!("{e} (expected a PEM private key: PKCS#8, PKCS#1 or SEC1)"),
        )
    })?;
    // Explicit provider: does not depend on a process-wide default being installed.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(cert_path, e.to_string()))?
        .with_no_client_auth()
        // Also checks that the key matches the leaf certificate.
        .with_single_cert(certs, key)
        .map_err(|e| {
            tls_error(
                cert_path,
                format!("certificate and key {key_path} are not usable together: {e}"),
            )
        })?;
    // HTTP/1 only is served; say so in ALPN so a client does not try h2.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepts TCP connections, completes the TLS handshake and serves `app` on each, until
/// `shutdown` is cancelled. Then it stops accepting, lets in-flight connections finish
/// within [`SHUTDOWN_GRACE`] and drops the rest.
pub(crate) async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: Router,
    shutdown: CancellationToken,
) -> Result<(), ApiError> {
    let mut connections = JoinSet::new();
    loop {
        let (tcp, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            // Reap finished connection tasks so the set does not grow with every client.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Per-connection failures (reset before accept, fd exhaustion) must
                    // not stop the server.
                    tracing::debug!(error = %e, "API accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(app.clone());
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
            let tls = tokio::select! {
                // No request is in flight yet, so shutdown need not wait for it.
                () = shutdown.cancelled() => return,
                result = handshake => match result {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "API TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "API TLS handshake timed out");
                        return;
                    }
                },
            };
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(tls), service);
            tokio::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                () = shutdown.cancelled() => {
                    // Finish the request in flight, then close instead of keeping alive.
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "API connection ended with an error");
            }
        });
    }
    drop(listener);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::debug!(
            remaining = connections.len(),
            "API connections dropped after the shutdown grace"
        );
        connections.abort_all();
    }
    Ok(())
}
