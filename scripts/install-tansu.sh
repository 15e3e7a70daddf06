#!/usr/bin/env bash
# Installs Tansu, the Kafka-protocol broker the integration tests start (design §10),
# only when it is missing: building it takes about ten minutes on two cores.
set -euo pipefail
export PATH="$HOME/.cargo/bin:$PATH"
if command -v tansu >/dev/null 2>&1; then
  echo "tansu: $(command -v tansu) already installed"
  exit 0
fi
echo "tansu: not found, installing with cargo (about 10 minutes on 2 cores)..."
cargo install tansu --locked --features dynostore
command -v tansu
