//! `riskd healthcheck`: the liveness probe for container runtimes (Docker's
//! `HEALTHCHECK`, a Kubernetes exec probe). It asks this host's API for `/healthz`, over
//! TLS when the API serves TLS (`api.tls_cert`), and succeeds only on `200`.
//!
//! Why a subcommand: the runtime image has no curl, and the bash `/dev/tcp` probe it used
//! cannot speak TLS, so every container serving TLS was reported unhealthy. The probe
//! reads the same config as `riskd run` (defaults, `--config`, `RISKD__*`), so it follows
//! the listen address and TLS settings without being told twice.
//!
//! TLS trust: the probe pins the certificate the API is configured with (the first one in
//! `api.tls_cert`) instead of checking a name against a CA. The probe dials a loopback
//! address the certificate need not name, and what it must establish is that the API
//! answering is this instance, serving this certificate; the handshake signature is
//! still verified against that certificate's key. The server reads its certificate once
//! at start and the probe on every run: a certificate file replaced without a restart
//! fails the probe (saying so) until riskd restarts and serves it. Each run also loads
//! and validates the whole config, so a config or policy file broken on disk fails the
//! probe too, as it would fail the next start.
//!
//! `--timeout` bounds the connect and each read and write, and the status line must
//! come within it: a probe ends within about twice the timeout whatever the server does.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::config::Config;

/// Why the probe failed; the message is what an operator reads in `docker inspect`.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("api.listen `{0}` is not an address with a port (host:port)")]
    Listen(String),
    #[error("cannot read the API's certificate {path} (api.tls_cert): {message}")]
    Certificate { path: String, message: String },
    #[error("cannot connect to the API at {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("request to {addr} failed: {source}")]
    Exchange {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{addr} answered `{status}` to GET /healthz, not 200")]
    Status { addr: SocketAddr, status: String },
    #[error("{addr} gave no status line within {timeout}")]
    Silent { addr: SocketAddr, timeout: String },
}

/// Where the probe dials for `listen`: the same port, on loopback when the API listens
/// on every address (`0.0.0.0`, `[::]`), else the address itself.
pub fn target(listen: &str) -> Result<SocketAddr, ProbeError> {
    let addr: SocketAddr = listen
        .trim()
        .parse()
        .map_err(|_| ProbeError::Listen(listen.to_string()))?;
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Ok(SocketAddr::new(ip, addr.port()))
}

/// Asks the API `config` describes for `/healthz`; `Ok` on `200`. `timeout` bounds the
/// connect and each read and write.
pub fn check(config: &Config, timeout: Duration) -> Result<(), ProbeError> {
    let addr = target(&config.api.listen)?;
    // The files as the server picks them (trimmed, both set), so the probe speaks TLS
    // exactly when the server does.
    let tls = config
        .api
        .tls_files()
        .map(|(cert, _)| pinned_client(cert))
        .transpose()?;
    let tcp = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|source| ProbeError::Connect { addr, source })?;
    let exchange = |source| ProbeError::Exchange { addr, source };
    tcp.set_read_timeout(Some(timeout)).map_err(exchange)?;
    tcp.set_write_timeout(Some(timeout)).map_err(exchange)?;
    let deadline = Instant::now() + timeout;
    let status = match tls {
        None => status_line(tcp, deadline),
        Some(client) => {
            let name = ServerName::IpAddress(addr.ip().into());
            let connection = rustls::ClientConnection::new(client, name)
                .map_err(|e| exchange(std::io::Error::other(e)))?;
            status_line(rustls::StreamOwned::new(connection, tcp), deadline)
        }
    }
    .map_err(|source| match source.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => ProbeError::Silent {
            addr,
            timeout: humantime::format_duration(timeout).to_string(),
        },
        _ => exchange(source),
    })?;
    let code = status.split_whitespace().nth(1);
    if status.starts_with("HTTP/1.") && code == Some("200") {
        Ok(())
    } else {
        Err(ProbeError::Status { addr, status })
    }
}

/// Sends `GET /healthz` and returns the response's status line. Reads no further: a TLS
/// server may close without `close_notify`, which would fail a read to the end. Gives up
/// at `deadline`: the socket's timeouts bound each read, not a server dripping a byte at
/// a time.
fn status_line(mut stream: impl Read + Write, deadline: Instant) -> std::io::Result<String> {
    stream.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    stream.flush()?;
    let mut head = Vec::new();
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 4096 {
        if Instant::now() > deadline {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no status line in time",
            ));
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    // At most 100 bytes of it in a message: a server that is not HTTP may send anything.
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = &line[..line.len().min(100)];
    Ok(String::from_utf8_lossy(line).trim_end().to_string())
}

/// A rustls client that accepts exactly the first certificate of `path`.
fn pinned_client(path: &str) -> Result<Arc<rustls::ClientConfig>, ProbeError> {
    let unreadable = |message: String| ProbeError::Certificate {
        path: path.to_string(),
        message,
    };
    let leaf = CertificateDer::pem_file_iter(path)
        .map_err(|e| unreadable(e.to_string()))?
        .next()
        .ok_or_else(|| unreadable("no certificate in the file".into()))?
        .map_err(|e| unreadable(e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinnedCertificate {
        leaf,
        algorithms: provider.signature_verification_algorithms,
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| unreadable(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Accepts the server's certificate only if it is byte for byte the configured one.
#[derive(Debug)]
struct PinnedCertificate {
    leaf: CertificateDer<'static>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.leaf.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the API presented a certificate other than the first in api.tls_cert".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_dials_loopback_for_a_wildcard_listen_address() {
        let at = |listen: &str| target(listen).map(|a| a.to_string());
        assert_eq!(at("0.0.0.0:8080").ok().as_deref(), Some("127.0.0.1:8080"));
        assert_eq!(at("[::]:9000").ok().as_deref(), Some("[::1]:9000"));
        assert_eq!(at("10.1.2.3:80").ok().as_deref(), Some("10.1.2.3:80"));
        assert_eq!(at(" 127.0.0.1:1 ").ok().as_deref(), Some("127.0.0.1:1"));
        for bad in ["localhost:8080", "8080", "0.0.0.0", ""] {
            let err = target(bad).expect_err(bad).to_string();
            assert!(err.contains("api.listen"), "{err}");
        }
    }

    #[test]
    fn tls_follows_the_files_the_server_would_use() {
        let mut config = Config::default_config().expect("defaults");
        // Blank (after trimming) is plain HTTP for the server, and for the probe: a
        // healthy plain server then passes, where a TLS attempt would fail to read " ".
        config.api.tls_cert = " ".into();
        config.api.tls_key = " ".into();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        config.api.listen = listener.local_addr().expect("addr").to_string();
        let server = std::thread::spawn(move || {
            let (mut sock, _) = listener.accept().expect("accept");
            let mut buf = [0u8; 512];
            let _ = sock.read(&mut buf);
            let _ = sock.write_all(b"HTTP/1.1 200 OK\r\n\r\nok");
        });
        check(&config, Duration::from_secs(5)).expect("plain HTTP with blank TLS files");
        server.join().expect("server thread");
        // A padded path is the file the server reads.
        config.api.tls_cert = " /nonexistent/riskd-cert.pem ".into();
        config.api.tls_key = "/nonexistent/riskd-key.pem".into();
        let err = check(&config, Duration::from_secs(5)).expect_err("no such file");
        assert!(
            err.to_string()
                .contains("certificate /nonexistent/riskd-cert.pem (api"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_certificate_file_is_named() {
        let err = pinned_client("/nonexistent/riskd-cert.pem").expect_err("missing file");
        assert!(
            err.to_string().contains("/nonexistent/riskd-cert.pem"),
            "{err}"
        );
    }

    #[test]
    fn only_a_200_status_line_passes() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let answers = [
            "HTTP/1.1 503 Service Unavailable",
            "HTTP/1.1 200 OK",
            "SSH-2.0-x",
        ];
        let server = std::thread::spawn(move || {
            for answer in answers {
                let (mut sock, _) = listener.accept().expect("accept");
                let mut buf = [0u8; 512];
                let _ = sock.read(&mut buf);
                let _ = sock.write_all(format!("{answer}\r\n\r\n").as_bytes());
            }
        });
        let mut config = Config::default_config().expect("defaults");
        config.api.listen = format!("127.0.0.1:{port}");
        let timeout = Duration::from_secs(5);
        let first = check(&config, timeout).expect_err("503 fails");
        assert!(first.to_string().contains("503"), "{first}");
        assert!(check(&config, timeout).is_ok());
        assert!(check(&config, timeout).is_err());
        server.join().expect("server thread");
        // Nothing listening any more.
        let refused = check(&config, timeout).expect_err("refused");
        assert!(refused.to_string().contains("cannot connect"), "{refused}");
    }

    #[test]
    fn a_server_dripping_bytes_without_a_line_times_out() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            let Ok((mut sock, _)) = listener.accept() else {
                return;
            };
            // A byte every 50 ms, never a newline, for up to 10 s.
            for _ in 0..200 {
                if sock.write_all(b"H").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let mut config = Config::default_config().expect("defaults");
        config.api.listen = format!("127.0.0.1:{port}");
        let started = Instant::now();
        let err = check(&config, Duration::from_millis(300)).expect_err("no status line");
        assert!(
            err.to_string().contains("no status line within 300ms"),
            "{err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
}
