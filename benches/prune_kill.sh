#!/usr/bin/env bash
# kill -9 trials against `arca prune`: a prune killed at a random moment must leave a repository
# that checks clean, restores exactly, and that the next prune finishes cleaning.
#
#   benches/prune_kill.sh WORKDIR [TRIALS]          (TRIALS default 30; WORKDIR on tmpfs)
#
# Env: SRC (tree backed up, default ~/.cargo/registry/src; a few hundred MiB is right), ARCA
# (binary, default `arca` on PATH), SEED (kill delays, default 1), HOOKS=0 skips the cross-check
# with the crash-injection hook (ARCA_TEST_PRUNE_CRASH_AFTER, one run per step).
#
# Prepares one repository (pack size 4 MiB for many packs, a cheap KDF so start-up is short):
# the tree in 3 versions (2 deterministic edits) and 3 streams (tar of its largest top-level
# directory, edited in between). Uninterrupted `forget` + `prune --max-unused 0` runs on copies
# give the duration D (median of 3). Each trial: fresh copy (cp -a), forget all but the newest
# snapshot of each group, `arca prune --max-unused 0` in the background, kill -9 after a random
# delay in [0, 1.2 D) (COMMIT=15 more kills aim at steps 3-8, see below), then: `check
# --read-data` (must exit 0), restore the kept tree and diff -r it, dump the kept stream and cmp
# it, `prune --max-unused 0` again (must exit 0), `prune --dry-run --max-unused 0 --json` (must
# plan no unindexed, delete or repack pack), `check --read-data`. The phase the kill hit is read
# from the files: new packs only (in data/ or tmp/) = repack; new index files =
# index-repacks..reconcile (R) or write-index (K: more new index files than R); old index files
# gone = remove-index; packs gone = remove-packs. A failing trial keeps its repository as the
# kill left it in WORKDIR/fail-NAME, with the commands to reproduce in WORKDIR/fail-NAME.txt.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lifecycle-lib.sh"
[ $# -ge 1 ] || { sed -n '2,23p' "$0"; exit 2; }
work=$1 trials=${2:-30}
src=${SRC:-$HOME/.cargo/registry/src}
seed=${SEED:-1}
export ARCA=${ARCA:-arca} ARCA_PASSWORD=bench
mkdir -p "$work"; work=$(cd "$work" && pwd)
tree=$work/tree
log=$work/trials.txt

a() { "$ARCA" -q "$@"; } # arca, quiet
snap_tree() { "$ARCA" -r "$1" snapshots --json | jq -r --arg p "$tree" '[.[] | select(.paths == [$p])] | last | .id'; }
snap_stream() { "$ARCA" -r "$1" snapshots --json | jq -r --arg p "$tree" '[.[] | select(.paths != [$p])] | last | .id'; }
files() { (cd "$1/$2" 2>/dev/null && find . -type f -name '[0-9a-f]*' -printf '%f\n' | LC_ALL=C sort); }
count_new() { LC_ALL=C comm -13 "$1" <(files "$2" "$3") | wc -l; } # listed-before-file repo dir
count_gone() { LC_ALL=C comm -23 "$1" <(files "$2" "$3") | wc -l; }

# ---- Prepare ------------------------------------------------------------------------------------
prep=$work/prepared
rm -rf "$work"/{tree,stream-src,prepared,ref,trial,postkill,restore} "$work"/fail-*
echo "preparing: $src -> $tree"
cp -a "$src" "$tree"
cp -a "$(largest_subdir "$tree")" "$work/stream-src"
a -r "$prep" init --pack-size 4 --kdf-memory 8 --kdf-iterations 1 || exit 1
a -r "$prep" backup "$tree" || exit 1
for s in 1 2; do edit "$tree" "$s"; a -r "$prep" backup "$tree" || exit 1; done
for s in 1 2 3; do
  [ "$s" = 1 ] || edit "$work/stream-src" "$((100 + s))"
  stream "$work/stream-src" > "$work/stream.tar"
  a -r "$prep" backup --stdin --stdin-filename stream.tar < "$work/stream.tar" || exit 1
done
echo "prepared: $("$ARCA" -r "$prep" snapshots --json | jq length) snapshots, $(files "$prep" data | wc -l) packs," \
  "$(mib "$(bytes "$prep")") MiB; tree $(mib "$(bytes "$tree")") MiB, stream $(mib "$(bytes "$work/stream.tar")") MiB"

# ---- Reference: uninterrupted forget + prune ---------------------------------------------------
rm -rf "$work/ref"; cp -a "$prep" "$work/ref"
arca_forget "$work/ref" > /dev/null || exit 1
files "$work/ref" data > "$work/packs0"   # after forget = what every trial starts from
files "$work/ref" index > "$work/index0"
/usr/bin/time -f "%e %M" -o "$work/ref.time" "$ARCA" -r "$work/ref" --json prune --max-unused 0 > "$work/ref.json" || exit 1
read -r dur rss < "$work/ref.time"
# D is the median of this run and two more on fresh copies (a busy machine makes one run slow).
for r in 2 3; do
  rm -rf "$work/trial"; cp -a "$prep" "$work/trial"; arca_forget "$work/trial" > /dev/null
  /usr/bin/time -f "%e" -o "$work/ref.time$r" "$ARCA" -q -r "$work/trial" prune --max-unused 0 || exit 1
done
runs="$dur $(cat "$work/ref.time2" "$work/ref.time3" | tr '\n' ' ')"
dur=$(printf '%s\n' $runs | sort -g | sed -n 2p)
echo "uninterrupted prune: D = ${dur}s (median of $runs), peak RSS $((rss / 1024)) MiB; plan $(jq -c '.plan | {blobs, blobs_used, packs, keep_packs, repack_packs, delete_packs}' "$work/ref.json");" \
  "done $(jq -c .done "$work/ref.json")"
ref_bytes=$(($(bytes "$work/ref") - $(bytes "$work/ref/tmp")))
a -r "$work/ref" check --read-data || { echo "reference repository fails check"; exit 1; }
"$ARCA" -r "$work/ref" forget --help > /dev/null 2>&1 || echo "NOTE: arca has no forget yet; using the snapshot-file FALLBACK"

# ---- One trial ------------------------------------------------------------------------------------
n_r=0 # new index files after step 3 (R); set from the hook run after index-repacks
n_i0=$(wc -l < "$work/index0") # index files a trial starts with

# wait_r PID DIR: poll until the prune writes its first new index file (R, the end of step 3,
# where the commit begins); fails if the process exits first.
# Builtins only (a glob, no fork), so the poll sees the file within microseconds.
wait_r() {
  local f
  while kill -0 "$1" 2> /dev/null; do
    f=("$2"/index/*)
    [ "${#f[@]}" -gt "$n_i0" ] && return 0
  done
  return 1
}

# spin SECONDS: busy-wait, for delays of milliseconds (sleep's fork + exec would take ~1 ms).
spin() {
  local us end
  printf -v us '%.0f' "${1}e6"
  end=$((${EPOCHREALTIME/./} + us))
  while [ "${EPOCHREALTIME/./}" -lt "$end" ]; do :; done
}
# phase DIR RC: which step the prune was in when it stopped, from the files it left.
phase() {
  [ "$2" = 0 ] && { echo completed; return; }
  local np gp ni gi
  np=$(count_new "$work/packs0" "$1" data) gp=$(count_gone "$work/packs0" "$1" data)
  ni=$(count_new "$work/index0" "$1" index) gi=$(count_gone "$work/index0" "$1" index)
  echo "$np $gp $ni $gi" > "$1.counts"
  if [ "$gp" -gt 0 ]; then echo remove-packs
  elif [ "$gi" -gt 0 ]; then echo remove-index
  elif [ "$n_r" -gt 0 ] && [ "$ni" -gt "$n_r" ]; then echo write-index
  elif [ "$ni" -gt 0 ]; then echo index-repacks..reconcile
  elif [ "$np" -gt 0 ] || [ -n "$(find "$1/tmp" -type f -size +0 2> /dev/null)" ]; then echo repack
  else echo plan-or-startup; fi
}

# verify DIR: the checks every interrupted prune must pass. Prints "ok" or what failed.
verify() {
  local t=$1 bad="" id out
  a -r "$t" check --read-data > "$t.check1" 2>&1 || bad="$bad check1(rc=$?)"
  rm -rf "$work/restore"
  id=$(snap_tree "$t")
  { a -r "$t" restore "$id" --target "$work/restore" > "$t.restore" 2>&1 &&
    diff -r --no-dereference -q "$tree" "$work/restore$tree" > "$t.diff" 2>&1; } || bad="$bad restore"
  rm -rf "$work/restore"
  id=$(snap_stream "$t")
  "$ARCA" -r "$t" dump "$id:/stream.tar" 2> "$t.dump" | cmp -s - "$work/stream.tar" || bad="$bad stream"
  a -r "$t" prune --max-unused 0 > "$t.prune2" 2>&1 || bad="$bad prune2(rc=$?)"
  out=$("$ARCA" -r "$t" --json prune --dry-run --max-unused 0 2> "$t.dry")
  echo "$out" > "$t.dry.json"
  [ "$(echo "$out" | jq '.plan | .unindexed_packs + .delete_packs + .repack_packs')" = 0 ] || bad="$bad leftovers"
  a -r "$t" check --read-data > "$t.check2" 2>&1 || bad="$bad check2(rc=$?)"
  # Repository size without tmp/ (should equal the uninterrupted prune's), and what the killed
  # prune left in tmp/ (a pack being written; a writer removes temp files an hour old).
  echo "$(($(bytes "$t") - $(bytes "$t/tmp"))) $(bytes "$t/tmp")" > "$t.bytes"
  echo "${bad:-ok}"
}

# trial NAME HOW ARG: copy, forget, prune interrupted by HOW (kill DELAY | hook STEP), verify.
trial() {
  local name=$1 how=$2 arg=$3 t=$work/trial rc ph v
  rm -rf "$t" "$t".* "$work/postkill"; cp -a "$prep" "$t"
  arca_forget "$t" > /dev/null 2>&1 || { echo "$name: forget failed"; return; }
  if [ "$how" = kill ] || [ "$how" = commit ]; then
    "$ARCA" -r "$t" prune --max-unused 0 > "$t.prune1" 2>&1 &
    local pid=$!
    if [ "$how" = kill ]; then sleep "$arg"
    else wait_r "$pid" "$t" && spin "$arg"; fi # commit: the delay counts from step 3's end
    kill -9 "$pid" 2> /dev/null
    wait "$pid" 2> /dev/null; rc=$?
  else
    { (ARCA_TEST_PRUNE_CRASH_AFTER=$arg exec "$ARCA" -r "$t" prune --max-unused 0 > "$t.prune1" 2>&1); rc=$?; } 2> /dev/null
  fi
  ph=$(phase "$t" "$rc")
  [ "$how:$arg" = hook:index-repacks ] && n_r=$(count_new "$work/index0" "$t" index)
  cp -a "$t" "$work/postkill"          # the state the kill left, kept if a check fails
  v=$(verify "$t")
  local size tmp; read -r size tmp < "$t.bytes"
  printf "%-9s %-6s %-15s rc=%-3s %-26s %-17s %6s %6s  %s\n" "$name" "$how" "$arg" "$rc" "$ph" \
    "$(cat "$t.counts" 2> /dev/null || echo '- - - -')" "$(mib "$size")" "$(mib "$tmp")" "$v" | tee -a "$log"
  if [ "$v" != ok ]; then
    rm -rf "$work/fail-$name"; mv "$work/postkill" "$work/fail-$name"
    for f in "$t".*; do cp "$f" "$work/fail-$name.${f##*.}"; done
    cat > "$work/fail-$name.txt" << EOF
trial $name: prune stopped by $how $arg (rc $rc, phase $ph); failed: $v
The repository as the kill left it: $work/fail-$name (logs: $work/fail-$name.*). Reproduce:
  export ARCA_PASSWORD=bench; cp -a $work/fail-$name /tmp/repro
  $ARCA -r /tmp/repro check --read-data
  $ARCA -r /tmp/repro restore \$($ARCA -r /tmp/repro snapshots --json | jq -r '[.[] | select(.paths == ["$tree"])] | last | .id') --target /tmp/repro-restore && diff -r $tree /tmp/repro-restore$tree
  $ARCA -r /tmp/repro prune --max-unused 0 && $ARCA -r /tmp/repro --json prune --dry-run --max-unused 0 && $ARCA -r /tmp/repro check --read-data
EOF
    echo "  FAILED: kept $work/fail-$name, see $work/fail-$name.txt"
  fi
  rm -rf "$work/postkill"
}

# Columns: packs new/gone, index files new/gone (against the start); MiB after recovery without
# tmp/, and in tmp/; verdict.
printf "%-9s %-6s %-15s %-6s %-26s %-17s %6s %6s  %s\n" trial how arg rc phase "pk+ pk- ix+ ix-" MiB tmp verdict | tee "$log"
if [ "${HOOKS:-1}" != 0 ]; then
  for step in plan repack index-repacks lock reconcile write-index remove-index remove-packs; do
    trial "hook" hook "$step"
  done
fi
for ((i = 1; i <= trials; i++)); do
  delay=$(awk -v s="$seed" -v i="$i" -v d="$dur" 'BEGIN { srand(s * 1000 + i); printf "%.3f", rand() * 1.2 * d }')
  trial "kill-$i" kill "$delay"
done
# The commit (steps 3-8) is a small part of the run, so uniform delays rarely hit it: COMMIT
# more kills (default 15) aim at it. Calibration: 3 uninterrupted runs, each timed from the
# moment its first new index file (R) appears to its exit (W, median). Each commit trial then
# kills at a random moment in [0, 1.2 W) after R appears.
commit=${COMMIT:-15}
if [ "$commit" -gt 0 ]; then
  for c in 1 2 3; do
    rm -rf "$work/trial"; cp -a "$prep" "$work/trial"; arca_forget "$work/trial" > /dev/null 2>&1
    "$ARCA" -r "$work/trial" prune --max-unused 0 > /dev/null 2>&1 &
    pid=$!
    wait_r "$pid" "$work/trial" && t0=$EPOCHREALTIME && wait "$pid" &&
      awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.4f\n", b - a }'
  done > "$work/commit-times"
  w=$(sort -g "$work/commit-times" | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
  echo "commit: R appears, then the process exits after $(tr '\n' ' ' < "$work/commit-times")s; W = ${w}s"
  for ((i = 1; i <= commit; i++)); do
    delay=$(awk -v s="$seed" -v i="$i" -v w="$w" 'BEGIN { srand(s * 1000 + 500 + i); printf "%.4f", rand() * 1.2 * w }')
    trial "commit-$i" commit "$delay"
  done
fi

# ---- Summary ----------------------------------------------------------------------------------
echo
echo "uninterrupted prune ${dur}s; repository after it $(mib "$ref_bytes") MiB without tmp/; $trials kill trials, delays in [0, $(awk -v d="$dur" 'BEGIN { printf "%.2f", 1.2 * d }')) s (SEED=$seed)"
echo "kill trials by phase (uniform delays | aimed at the commit):"
awk '$2 == "kill" || $2 == "commit" { if ($2 == "kill") u[$5]++; else c[$5]++; p[$5] = 1 }
  END { for (k in p) printf "  %-26s %3d | %3d\n", k, u[k], c[k] }' "$log"
echo "failures: kill $(awk '($2 == "kill" || $2 == "commit") && $NF != "ok"' "$log" | wc -l), hook $(awk '$2 == "hook" && $NF != "ok"' "$log" | wc -l)" \
  "(check/restore/stream/prune2/leftovers: $(grep -c 'check' "$log" | tr -d ' ')/$(grep -c ' restore' "$log" | tr -d ' ')/$(grep -c ' stream' "$log" | tr -d ' ')/$(grep -c 'prune2' "$log" | tr -d ' ')/$(grep -c 'leftovers' "$log" | tr -d ' '))"
echo "log: $log"
[ -n "${KEEP:-}" ] || rm -rf "$work/trial" "$work"/trial.* "$work/ref" "$work/restore"
