//! Where events come from: files (replay), Kafka (run) and the synthetic fleet generator
//! (generate, demo, tests, benches).

pub mod generator;
pub mod kafka;
