#!/usr/bin/env bash
# The whole test suite, as a newcomer and CI run it: installs what the tests need
# (the Tansu broker; the Rust toolchain is assumed), then runs every test.
# Kafka tests start their own broker process on a free loopback port.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

scripts/install-tansu.sh

# The API TLS tests make a throwaway certificate with the openssl CLI.
if ! command -v openssl >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq openssl
  else
    echo "error: the openssl CLI is needed by tests/api_tls.rs; install it" >&2
    exit 1
  fi
fi

# Fail early and clearly if the development data the corpus tests read is not there.
if [ ! -d ../shared/data/cloudtrail-stratus ]; then
  echo "warning: ../shared/data is missing; the CloudTrail corpus test will fail (see README)" >&2
fi

cargo test --locked --all-targets "$@"
