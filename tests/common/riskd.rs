//! A `riskd run` child process for integration tests: configured through `RISKD__*`
//! variables, its log captured to a file, killable with SIGKILL or stopped with SIGTERM.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::broker::free_port;

pub struct Riskd {
    child: Child,
    pub api_port: u16,
    log: PathBuf,
    name: String,
}

impl Riskd {
    /// Starts `riskd run` with `env` (topics, broker) plus test-friendly timings.
    pub fn spawn(name: &str, env: &[(String, String)]) -> Riskd {
        let api_port = free_port();
        let log = std::env::temp_dir().join(format!(
            "riskd-test-{}-{name}-{api_port}.log",
            std::process::id()
        ));
        let log_file = std::fs::File::create(&log).expect("create riskd log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_riskd"));
        command
            .arg("run")
            .env("RISKD__API__LISTEN", format!("127.0.0.1:{api_port}"))
            // Tansu forms a group after about half the session timeout; a short one
            // keeps rebalances (and the tests) quick.
            .env("RISKD__KAFKA__SESSION_TIMEOUT", "6s")
            .env("RISKD__KAFKA__STATE_FLUSH_INTERVAL", "200ms")
            .env("RISKD__KAFKA__COMMIT_INTERVAL", "200ms")
            .env("RISKD_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file);
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command.spawn().expect("spawn riskd");
        Riskd {
            child,
            api_port,
            log,
            name: name.to_string(),
        }
    }

    /// Process id (for sampling its memory from `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET `path` on the API; returns (status, body), or None if not answering.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.api_port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let status = response.split_whitespace().nth(1)?.parse().ok()?;
        let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
        Some((status, body))
    }

    /// Waits for `/readyz` to answer 200 (state restored, signals followed).
    pub fn wait_ready(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if let Some((200, _)) = self.get("/readyz") {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "riskd {} exited early ({status}):\n{}",
                    self.name,
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "riskd {} not ready within {within:?}:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the log contains `needle` at least `times` times.
    pub fn wait_log(&self, needle: &str, times: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.log().matches(needle).count() < times {
            assert!(
                Instant::now() < deadline,
                "riskd {} never logged {needle:?} x{times}:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The partitions of the most recent assignment, from the log.
    pub fn assigned(&self) -> Option<Vec<i32>> {
        let log = self.log();
        let line = log
            .lines()
            .rev()
            .find(|l| l.contains("partitions assigned"))?;
        let list = line.split("partitions=[").nth(1)?.split(']').next()?;
        Some(
            list.split(',')
                .filter_map(|p| p.trim().parse().ok())
                .collect(),
        )
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL: no drain, no commit, no goodbye to the group.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for the exit, failing if it takes longer than `within`.
    pub fn terminate(&mut self, within: Duration) -> ExitStatus {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait riskd") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "riskd {} did not exit within {within:?} of SIGTERM:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Riskd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        } else {
            eprintln!("riskd {} log kept at {}", self.name, self.log.display());
        }
    }
}
