//! Where signals and rejected records go: files (replay) and Kafka (run).

pub mod kafka;
