//! Shared harness for the integration tests and benches: a loopback Tansu broker, Kafka
//! helpers, and a `riskd run` child process.

#![allow(dead_code)]

pub mod bench;
pub mod broker;
pub mod kafka;
pub mod riskd;
