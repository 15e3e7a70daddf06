//! A throwaway Kafka-protocol broker for integration tests and benches: one Tansu
//! process with in-memory storage on a free loopback port, killed when dropped.
//!
//! Tansu is a real broker speaking the Kafka wire protocol, so rdkafka consumer groups,
//! rebalances, commits and compaction settings are exercised for real (design §10).
//! When the binary is missing the harness panics with instructions: a broker test must
//! never pass silently without a broker.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running Tansu broker. Dropping it kills the process.
pub struct Broker {
    child: Child,
    port: u16,
    log: PathBuf,
}

/// Finds the `tansu` binary: `$TANSU`, then `PATH`, then `~/.cargo/bin`.
pub fn tansu_binary() -> Option<PathBuf> {
    if let Some(explicit) = std::env::var_os("TANSU") {
        let path = PathBuf::from(explicit);
        return path.is_file().then_some(path);
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join("tansu");
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    let home = std::env::var_os("HOME")?;
    let candidate = PathBuf::from(home).join(".cargo/bin/tansu");
    candidate.is_file().then_some(candidate)
}

/// Asks the OS for a free loopback port. There is a small window in which another
/// process could take it; `Broker::start` retries on a fresh port if Tansu fails to bind.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

impl Broker {
    /// Starts Tansu and waits until it accepts connections.
    pub fn start() -> Broker {
        let Some(binary) = tansu_binary() else {
            panic!(
                "the Kafka integration tests need the Tansu broker, which is not installed: \
                 run `scripts/install-tansu.sh` (cargo install tansu --locked --features \
                 dynostore) or set TANSU=/path/to/tansu"
            );
        };
        let mut last_error = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            let url = format!("tcp://127.0.0.1:{port}");
            let log =
                std::env::temp_dir().join(format!("riskd-tansu-{}-{port}.log", std::process::id()));
            let log_file = std::fs::File::create(&log).expect("create broker log");
            let child = Command::new(&binary)
                .arg("broker")
                .arg("--storage-engine")
                .arg("memory://tansu/")
                .arg("--listener-url")
                .arg(&url)
                .arg("--advertised-listener-url")
                .arg(&url)
                .env_remove("RUST_LOG")
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().expect("clone log handle"))
                .stderr(log_file)
                .spawn()
                .expect("spawn tansu");
            watchdog(child.id());
            let mut broker = Broker { child, port, log };
            if broker.wait_listening(Duration::from_secs(15)) {
                return broker;
            }
            last_error = std::fs::read_to_string(&broker.log).unwrap_or_default();
        }
        panic!("tansu did not start listening; last log:\n{last_error}");
    }

    fn wait_listening(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Freezes the broker (SIGSTOP): connections stay open but nothing answers, the
    /// nastiest kind of outage for a client.
    pub fn pause(&self) {
        signal(self.pid(), "-STOP");
    }

    /// Thaws a paused broker (SIGCONT).
    pub fn resume(&self) {
        signal(self.pid(), "-CONT");
    }

    /// Where the broker's output goes, for failure messages.
    pub fn log_path(&self) -> &std::path::Path {
        &self.log
    }
}

/// The broker shared by the tests of one test binary (each test uses its own topics and
/// group). Statics are never dropped, so [`watchdog`] ends it when the binary exits.
pub fn shared() -> &'static Broker {
    static SHARED: std::sync::OnceLock<Broker> = std::sync::OnceLock::new();
    SHARED.get_or_init(Broker::start)
}

/// Kills the broker once this test process is gone, however it ends (a panic that
/// aborts, a killed `cargo test`), so no Tansu outlives its tests.
fn watchdog(broker_pid: u32) {
    let script = format!(
        "while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill -9 {broker_pid} 2>/dev/null",
        parent = std::process::id()
    );
    let _ = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

fn signal(pid: u32, which: &str) {
    let status = Command::new("kill")
        .arg(which)
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {which} {pid} failed");
}

impl Drop for Broker {
    fn drop(&mut self) {
        // SIGKILL also ends a paused (SIGSTOPped) broker, so no resume is needed.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}
