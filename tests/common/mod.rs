//! Shared harness for the integration tests and benches: a loopback Tansu broker.

pub mod broker;
