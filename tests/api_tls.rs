//! The API over TLS (`api.tls_cert` / `api.tls_key`): a real HTTPS request with a rustls
//! client that trusts a self-signed certificate made at test time by the `openssl` CLI,
//! plain HTTP refused on the TLS port, clean shutdown, and start-up errors naming the file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use riskd::config::Config;
use riskd::risk_table::RiskTable;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// A self-signed P-256 certificate for `localhost` / 127.0.0.1 and its key, in `dir`.
fn make_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("c.pem"), dir.join("k.pem"));
    let output = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            // openssl marks a self-signed certificate as a CA by default, and webpki
            // refuses a CA certificate as a server's own (CaUsedAsEndEntity).
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-days",
            "1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run the `openssl` CLI ({e}); tests/api_tls.rs needs it to make a \
                 test certificate: install OpenSSL (e.g. `apt-get install openssl`)"
            )
        });
    assert!(
        output.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    (cert, key)
}

struct Server {
    addr: std::net::SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), riskd::api::ApiError>>,
}

impl Server {
    async fn start(cert: &Path, key: &Path) -> Server {
        let mut config = Config::default_config().expect("defaults");
        config.api.listen = "127.0.0.1:0".into();
        config.api.tls_cert = cert.display().to_string();
        config.api.tls_key = key.display().to_string();
        config.validate().expect("valid TLS config");
        let listener = riskd::api::bind(&config).await.expect("bind loopback");
        let addr = listener.local_addr().expect("addr");
        let table = RiskTable::new();
        table.set_ready(true);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { riskd::api::serve(listener, table, &config, shutdown).await }
        });
        Server {
            addr,
            shutdown,
            task,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let result = tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("server stops promptly")
            .expect("server task not panicked");
        result.expect("server exits cleanly");
    }
}

/// A rustls client trusting only `cert`.
fn connector(cert: &Path) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert).expect("read cert") {
        roots.add(c.expect("parse cert")).expect("add root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// One HTTP/1.1 request over TLS; the whole response as text.
async fn https_get(server: &Server, cert: &Path, path: &str) -> String {
    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("server name");
    let mut tls = connector(cert)
        .connect(name, tcp)
        .await
        .expect("TLS handshake with the API");
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut response))
        .await
        .expect("response in time")
        .expect("read");
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn healthz_over_tls_and_plain_http_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = make_cert(dir.path());
    let server = Server::start(&cert, &key).await;

    let response = https_get(&server, &cert, "/healthz").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("ok"), "{response}");
    // The router behind TLS is the full one: unknown routes get the JSON 404.
    let response = https_get(&server, &cert, "/nope").await;
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");

    // Plain HTTP to the TLS port: the handshake fails, so no HTTP 200 comes back.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
        .get(format!("http://{}/healthz", server.addr))
        .send()
        .await;
    // An error (connection closed, not HTTP) is the expected refusal.
    if let Ok(resp) = plain {
        assert_ne!(resp.status(), reqwest::StatusCode::OK);
    }

    server.stop().await;
}

/// Runs the built `riskd healthcheck` against `addr` with the given TLS files (as the
/// image's HEALTHCHECK would, through `RISKD__*` variables): exit status and stderr.
async fn run_healthcheck(addr: std::net::SocketAddr, cert: &Path, key: &Path) -> (bool, String) {
    let (cert, key) = (cert.to_path_buf(), key.to_path_buf());
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_riskd"))
            .args(["healthcheck", "--timeout", "5s"])
            .env("RISKD__API__LISTEN", addr.to_string())
            .env("RISKD__API__TLS_CERT", &cert)
            .env("RISKD__API__TLS_KEY", &key)
            .output()
    })
    .await
    .expect("probe thread")
    .expect("run the riskd binary");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_subcommand_speaks_tls_and_pins_the_configured_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = make_cert(dir.path());
    let other_dir = tempfile::tempdir().expect("tempdir");
    let (other_cert, other_key) = make_cert(other_dir.path());
    let server = Server::start(&cert, &key).await;

    let (ok, stderr) = run_healthcheck(server.addr, &cert, &key).await;
    assert!(ok, "healthcheck failed against the TLS API: {stderr}");
    // Another certificate than the one the API serves: refused, and said so.
    let (ok, stderr) = run_healthcheck(server.addr, &other_cert, &other_key).await;
    assert!(
        !ok,
        "healthcheck passed with a certificate the API does not serve"
    );
    assert!(stderr.contains("other than the first"), "{stderr}");

    let addr = server.addr;
    server.stop().await;
    // Nothing listening any more: fails, saying so.
    let (ok, stderr) = run_healthcheck(addr, &cert, &key).await;
    assert!(!ok && stderr.contains("cannot connect"), "{stderr}");
}

#[tokio::test]
async fn shutdown_with_an_idle_client_that_never_handshakes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = make_cert(dir.path());
    let server = Server::start(&cert, &key).await;
    // Holds a TCP connection open without sending a ClientHello.
    let _idle = TcpStream::connect(server.addr).await.expect("connect");
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Well inside the shutdown grace: a pending handshake is not waited for.
    let started = std::time::Instant::now();
    server.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn bad_tls_files_fail_start_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = make_cert(dir.path());
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a pem file\n").expect("write");
    let missing = dir.path().join("missing.pem");
    for (c, k, named) in [
        (&missing, &key, &missing),
        (&garbage, &key, &garbage),
        (&cert, &garbage, &garbage),
        (&cert, &missing, &missing),
    ] {
        let mut config = Config::default_config().expect("defaults");
        config.api.listen = "127.0.0.1:0".into();
        config.api.tls_cert = c.display().to_string();
        config.api.tls_key = k.display().to_string();
        let listener = riskd::api::bind(&config).await.expect("bind");
        let err = riskd::api::serve(
            listener,
            RiskTable::new(),
            &config,
            CancellationToken::new(),
        )
        .await
        .expect_err("bad TLS file refused");
        let text = err.to_string();
        assert!(text.contains(&named.display().to_string()), "{text}");
    }
}

#[test]
fn only_one_of_cert_and_key_is_a_config_error_naming_the_other() {
    let err = Config::from_toml_str("[api]\ntls_cert = \"c.pem\"\n").expect_err("key missing");
    assert!(err.to_string().contains("api.tls_key"), "{err}");
    let err = Config::from_toml_str("[api]\ntls_key = \"k.pem\"\n").expect_err("cert missing");
    assert!(err.to_string().contains("api.tls_cert"), "{err}");
}
