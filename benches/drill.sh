#!/usr/bin/env bash
# `arca drill` against a plain `arca restore` of the same snapshot, and the error of the RTO a
# 5% sample drill extrapolates, on a kernel-sized tree.
#
#   benches/drill.sh [WORKDIR] [RUNS]        (default /dev/shm/arca-drill: tmpfs, 3 runs)
#
# Builds arca (release) and the corpus of examples/gen_corpus.rs at SCALE 3 (about 1 GiB in
# ~55,000 entries, like a kernel source tree) once under WORKDIR, backs it up once, reads the
# repository once (warm page cache for every run), then alternates RUNS times: `arca restore
# latest` into a fresh directory (wall time; then `rm -rf` of it, timed), `arca drill` (wall time; its JSON gives the restore
# and verify times), `arca drill --sample 5%` (random seed; its extrapolated RTO). Prints the
# medians, drill's overhead over restore (target <= 15%), and each sample's extrapolation error
# against the median RTO measured by the full drills (target <= 25%).
# Env: SCALE (corpus scale, default 3), ARCA (binary; default: the release build).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$( [ -d /dev/shm ] && echo /dev/shm/arca-drill || echo /tmp/arca-drill )}
runs=${2:-3}
scale=${SCALE:-3}
target=${CARGO_TARGET_DIR:-$root/target}
if [ -z "${ARCA:-}" ]; then
  cargo build --release --locked --manifest-path "$root/Cargo.toml" --bin arca --example gen_corpus
  ARCA=$target/release/arca
fi
mkdir -p "$work"
work=$(cd "$work" && pwd)
corpus=$work/corpus
[ -d "$corpus" ] || "$target/release/examples/gen_corpus" "$corpus" "$scale"
export ARCA_REPOSITORY=$work/repo ARCA_PASSWORD=bench
if [ ! -f "$work/repo/config" ]; then
  "$ARCA" -q init --kdf-memory 8 --kdf-iterations 1
  "$ARCA" -q backup "$corpus"
fi
tar cf - -C "$work" repo | cat > /dev/null
echo "corpus: $(du -sh "$corpus" | cut -f1), $(find "$corpus" | wc -l) entries; repository $(du -sh "$work/repo" | cut -f1)"

now() { date +%s%N; }
median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
: > "$work/restore.ns"; : > "$work/rm.ns"; : > "$work/drill.ns"; : > "$work/drill-rto.ns"; : > "$work/drill-verify.ns"
: > "$work/sample.txt"
for ((i = 1; i <= runs; i++)); do
  rm -rf "$work/restored"
  t=$(now); "$ARCA" -q restore latest --target "$work/restored"; echo $(($(now) - t)) >> "$work/restore.ns"
  t=$(now); rm -rf "$work/restored"; echo $(($(now) - t)) >> "$work/rm.ns"
  t=$(now); "$ARCA" --json drill --scratch "$work" > "$work/drill.json"; echo $(($(now) - t)) >> "$work/drill.ns"
  jq -r .rto_measured_ns "$work/drill.json" >> "$work/drill-rto.ns"
  jq -r .verify_ns "$work/drill.json" >> "$work/drill-verify.ns"
  "$ARCA" --json drill --scratch "$work" --sample 5% > "$work/sample.json"
  jq -r '"\(.rto_extrapolated_ns) \(.rto_measured_ns) \(.sample.seed) \(.model.kind) \(.model.fixed_ns) \(.model.per_entry_ns) \(.model.per_byte_ns)"' \
    "$work/sample.json" >> "$work/sample.txt"
done
restore=$(median < "$work/restore.ns")
rm_ns=$(median < "$work/rm.ns")
drill=$(median < "$work/drill.ns")
rto=$(median < "$work/drill-rto.ns")
verify=$(median < "$work/drill-verify.ns")
s() { awk -v n="$1" 'BEGIN {printf "%.2f s", n / 1e9}'; }
echo "plain restore (wall, median of $runs): $(s "$restore")"
echo "drill         (wall, median of $runs): $(s "$drill")  [restore $(s "$rto"), verify $(s "$verify")]"
echo "rm -rf of the restored tree (median of $runs): $(s "$rm_ns") (a drill removes its scratch directory)"
awk -v d="$drill" -v r="$restore" -v x="$rm_ns" 'BEGIN {printf "drill overhead: %+.1f%% over restore (target <= 15%%), %+.1f%% over restore + rm -rf\n", (d / r - 1) * 100, (d / (r + x) - 1) * 100}'
while read -r ext meas seed kind fixed pe pb; do
  awk -v e="$ext" -v m="$meas" -v f="$rto" -v seed="$seed" -v k="$kind" -v fx="$fixed" -v pe="$pe" -v pb="$pb" \
    'BEGIN {printf "sample 5%% (seed %s): restored in %.2f s, extrapolated RTO %.2f s vs measured %.2f s: %+.1f%% (%s: fixed %.2f s, %.1f us/entry, %.2f ns/byte)\n",
      seed, m / 1e9, e / 1e9, f / 1e9, (e / f - 1) * 100, k, fx / 1e9, pe / 1e3, pb}'
done < "$work/sample.txt"
rm -rf "$work/restored"
