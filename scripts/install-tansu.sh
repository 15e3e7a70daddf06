#!/usr/bin/env sh
# Installs the Tansu broker used by riskd's Kafka integration tests and benchmarks
# (a Kafka-protocol broker in Rust; in-memory storage needs the `dynostore` feature).
# Does nothing when `tansu` is already on PATH or in ~/.cargo/bin.
set -eu

if command -v tansu >/dev/null 2>&1; then
    echo "tansu already installed: $(command -v tansu)"
    exit 0
fi
if [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/tansu" ]; then
    echo "tansu already installed: ${CARGO_HOME:-$HOME/.cargo}/bin/tansu"
    exit 0
fi

echo "installing tansu (this compiles a broker from source and takes several minutes)"
cargo install tansu --locked --features dynostore
