#!/usr/bin/env bash
# Replay throughput (design §11: >= 500k events/s on 1M native events).
# Generates a fixed-seed fleet once, then times `riskd replay` on it (release build).
# Usage: scripts/bench-replay.sh [identities] [days]
set -euo pipefail
cd "$(dirname "$0")/.."
identities=${1:-1000}
days=${2:-14}
dir=${BENCH_DIR:-target/bench-replay}
mkdir -p "$dir"
cargo build --release --quiet
events="$dir/events-$identities-$days.ndjson"
if [ ! -f "$events" ]; then
  ./target/release/riskd generate --seed 7 --identities "$identities" --days "$days" \
    --events "$events" --labels "$dir/labels-$identities-$days.json"
fi
echo "events: $(wc -l < "$events") lines, $(du -h "$events" | cut -f1)"
echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for run in 1 2 3; do
  ./target/release/riskd replay --format native --output /dev/null "$events" 2>&1 | tail -1
done
