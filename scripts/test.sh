#!/usr/bin/env bash
# The whole test suite, as a newcomer and CI run it: installs what the tests need
# (build dependencies and the Tansu broker; the Rust toolchain is assumed), then runs every test.
# Kafka tests start their own broker process on a free loopback port.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

# Compilers, OpenSSL headers and the openssl CLI (tests/api_tls.rs), when missing.
scripts/install-build-deps.sh
scripts/install-tansu.sh

# Fail early and clearly if the development data the corpus tests read is not there.
if [ ! -d ../shared/data/cloudtrail-stratus ]; then
  echo "warning: ../shared/data is missing; the CloudTrail corpus test will fail (see README)" >&2
fi

cargo test --locked --all-targets "$@"
