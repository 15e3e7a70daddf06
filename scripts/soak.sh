#!/usr/bin/env bash
# Soak riskd: generated traffic through a loopback Tansu broker into `riskd run`, with
# concurrent API lookups, for a bounded time; samples riskd's RSS and /metrics error
# counters and ends with a table and a PASS/FAIL verdict (see benches/soak.rs).
#
# Usage: scripts/soak.sh [SECONDS]   (default 600; everything on 127.0.0.1)
# Tunables (environment): RISKD_SOAK_RATE, RISKD_SOAK_IDENTITIES, RISKD_SOAK_CHURN_PERCENT,
# RISKD_SOAK_MAX_IDENTITIES, RISKD_SOAK_SAMPLE_SECONDS, RISKD_SOAK_RSS_TOLERANCE_PERCENT,
# RISKD_SOAK_WARMUP_SECONDS.
set -euo pipefail
cd "$(dirname "$0")/.."
export RISKD_SOAK_SECONDS="${1:-${RISKD_SOAK_SECONDS:-600}}"
if ! command -v tansu >/dev/null 2>&1 && [ -z "${TANSU:-}" ] && [ ! -x "$HOME/.cargo/bin/tansu" ]; then
    scripts/install-tansu.sh
fi
exec cargo bench --bench soak
