#!/usr/bin/env bash
# End-to-end benchmark on a deterministic corpus: arca against its peers, same machine, one run.
#
#   benches/e2e.sh [WORKDIR] [TOOL ...]        TOOL: arca restic borg rustic (default: all found)
#
# Builds arca (release), writes the corpus of examples/gen_corpus.rs (about 300 MiB in ~20,000
# files) once under WORKDIR, then runs ../shared/bench/peers.sh, which prints wall time, peak
# RSS and repository size per tool and phase (init, backup, unchanged re-backup, restore,
# check --read-data). Put WORKDIR on tmpfs (/dev/shm/...) to measure without disk costs.
# Peers: apt-get install restic borgbackup; cargo install rustic-rs.
# Cold-cache mode (caches dropped before each tool; needs root and a source on disk):
# benches/cold.sh --kernel WORKDIR, benches/cold.sh --small WORKDIR, or benches/cold.sh SRC WORKDIR.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/arca-e2e}
shift || true
tools=${*:-}
if [ -z "$tools" ]; then
  tools=arca
  for t in restic borg rustic; do command -v "$t" >/dev/null && tools="$tools $t"; done
fi
target=${CARGO_TARGET_DIR:-$root/target}
cargo build --release --locked --manifest-path "$root/Cargo.toml" --bin arca --example gen_corpus
mkdir -p "$work/runs"
[ -d "$work/corpus" ] || "$target/release/examples/gen_corpus" "$work/corpus"
# Read the corpus once so that no tool pays for a cold page cache the others do not.
tar cf - -C "$work" corpus | cat > /dev/null
echo "corpus: $(du -sh "$work/corpus" | cut -f1), $(find "$work/corpus" | wc -l) entries; tools: $tools"
PATH="$target/release:$PATH" bash "$root/../shared/bench/peers.sh" "$work/corpus" "$work/runs" $tools
