#!/usr/bin/env bash
# `arca status` on a repository with many snapshots (issue 8 target: 10,000 snapshots in ≤ 1 s).
#
# Usage: benches/status.sh [SNAPSHOTS] [HOSTS]   (defaults 10000 and 100)
# Builds release binaries, backs up a small tree once, then writes SNAPSHOTS snapshot files
# reusing its tree over HOSTS groups plus one journal file per snapshot (examples/status_repo.rs),
# and prints the median wall time of 5 runs of `arca status --max-age 1h` (and --prometheus).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}
hosts=${2:-100}
cargo build --release --locked --quiet --bin arca --example status_repo
target=${CARGO_TARGET_DIR:-target}/release
arca=$target/arca
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export ARCA_REPOSITORY=$work/repo ARCA_PASSWORD=bench
mkdir -p "$work/src/sub"
for i in $(seq 1 50); do head -c $((i * 997)) /dev/urandom > "$work/src/sub/f$i"; done
"$arca" -q init --kdf-memory 8 --kdf-iterations 1 >/dev/null
"$arca" -q backup "$work/src" >/dev/null
start=$(date +%s.%N)
"$target/examples/status_repo" "$ARCA_REPOSITORY" "$ARCA_PASSWORD" "$n" "$hosts"
echo "repository built in $(echo "$(date +%s.%N) - $start" | bc) s"

# median5 CMD...: median wall time of 5 runs, seconds (any exit code: 6 and 7 are results).
median5() {
  local t=()
  for _ in 1 2 3 4 5; do
    local s e
    s=$(date +%s.%N)
    "$@" >/dev/null || true
    e=$(date +%s.%N)
    t+=("$(echo "$e - $s" | bc)")
  done
  printf '%s\n' "${t[@]}" | sort -n | sed -n 3p
}
# Exit 6 is expected: most host groups' newest snapshots are older than 1h.
("$arca" status --max-age 1h || true) | tail -3
echo "$( ("$arca" --json status || true) | grep -c '"short_id"') groups over $n snapshots"
echo "arca status (table):      $(median5 "$arca" status --max-age 1h) s (median of 5)"
echo "arca status --prometheus: $(median5 "$arca" status --max-age 1h --prometheus) s (median of 5)"
