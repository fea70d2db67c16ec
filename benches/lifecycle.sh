#!/usr/bin/env bash
# Lifecycle benchmark: forget + prune, arca against restic and borg, same data, one run.
#
#   benches/lifecycle.sh SRC WORKDIR [TOOL ...]      TOOL: arca restic borg (default: all three)
#
# SRC is a real tree of a few hundred MiB (e.g. ~/.cargo/registry/src); it is copied into
# WORKDIR and never touched. Put WORKDIR on tmpfs (/dev/shm/...); it needs about 12 × SRC.
# Env: ARCA (arca binary, default `arca` on PATH), REPS (forget+prune repetitions on copies of
# the same repository, default 3; medians are printed), KEEP=1 keeps WORKDIR's big dirs.
#
# Per tool: init; back up the tree, then 3 × (edit: ~10% of files changed, ~5% deleted, ~5%
# added; back up); then 3 streams (tar of the largest top-level directory, edited in between)
# through stdin. That repository is copied REPS times, and on each copy `forget --keep-last 1`
# and prune are timed separately (arca forget + prune; restic forget + prune; borg prune per
# archive prefix + compact); one more copy times the combined command (restic forget --prune,
# arca forget --prune when it exists). A FRESH repository holding only what is kept (the final
# tree and stream, backed up once each) gives the size prune should approach. The pruned
# repository is then checked with full data reads, the kept tree restored and compared with
# `diff -r`, and the kept stream compared with `cmp`.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lifecycle-lib.sh"
[ $# -ge 2 ] || { sed -n '2,20p' "$0"; exit 2; }
src=$(cd "$1" && pwd) work=$2; shift 2
tools=${*:-arca restic borg}
reps=${REPS:-3}
export ARCA=${ARCA:-arca}
export ARCA_PASSWORD=bench RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
mkdir -p "$work"
work=$(cd "$work" && pwd)
results=$work/results.txt # one line per measurement: tool phase rep rc wall_s rss_kib
: > "$results"


# use TOOL STATE: point the tool's environment at the repository (and cache) under STATE.
use() {
  mkdir -p "$2"
  export repo=$2/repo
  case $1 in
    restic) export RESTIC_REPOSITORY=$repo RESTIC_CACHE_DIR=$2/cache ;;
    borg) export BORG_REPO=$repo BORG_BASE_DIR=$2/base ;; # cache and security dir per copy
    arca) export ARCA_REPOSITORY=$repo ;;
  esac
}

# Per-tool commands. $tree and $d are set by run_tool.
t_init() {
  case $1 in
    arca) "$ARCA" init ;;
    restic) restic init ;;
    borg) borg init -e repokey-blake2 ;;
  esac
}
t_backup() { # tool name: back up $tree
  case $1 in
    arca) "$ARCA" backup "$tree" ;;
    restic) restic backup "$tree" ;;
    borg) borg create --compression zstd,3 "::tree-$2" "$tree" ;;
  esac
}
t_stdin() { # tool name: back up stdin as stream.tar
  case $1 in
    arca) "$ARCA" backup --stdin --stdin-filename stream.tar ;;
    restic) restic backup --stdin --stdin-filename stream.tar ;;
    borg) borg create --compression zstd,3 --stdin-name stream.tar "::stream-$2" - ;;
  esac
}
t_forget() { # keep the newest snapshot of each group (tree, stream)
  case $1 in
    arca) arca_forget "$repo" ;;
    restic) restic forget --keep-last 1 ;;
    borg) borg prune --keep-last 1 --glob-archives 'tree-*' && borg prune --keep-last 1 --glob-archives 'stream-*' ;;
  esac
}
t_prune() {
  case $1 in
    arca) "$ARCA" --json prune ;;
    restic) restic prune ;;
    borg) borg compact ;;
  esac
}
t_combined() { # forget and prune in one command, where the tool has one
  case $1 in
    arca) "$ARCA" forget --keep-last 1 --prune ;;
    restic) restic forget --keep-last 1 --prune ;;
  esac
}
t_base() { # open the repository and list its keys (archives for borg): no index is loaded
  case $1 in
    arca) "$ARCA" key list ;;
    restic) restic key list ;;
    borg) borg list ;;
  esac
}
t_check() {
  case $1 in
    arca) "$ARCA" check --read-data ;;
    restic) restic check --read-data ;;
    borg) borg check --verify-data ;;
  esac
}
t_restore() { # tool dir: restore the kept tree under dir (at dir/<absolute tree path>)
  case $1 in
    arca) "$ARCA" restore "$("$ARCA" snapshots --json | jq -r --arg p "$tree" '[.[] | select(.paths == [$p])] | last | .id')" --target "$2" ;;
    restic) restic restore latest --path "$tree" --target "$2" ;;
    borg) mkdir -p "$2" && (cd "$2" && borg extract "::$(borg list --short --glob-archives 'tree-*' | tail -1)") ;;
  esac
}
t_dump_stream() { # the kept stream to stdout
  case $1 in
    arca) "$ARCA" dump "$("$ARCA" snapshots --json | jq -r --arg p "$tree" '[.[] | select(.paths != [$p])] | last | .id'):/stream.tar" ;;
    restic) restic dump --path /stream.tar latest /stream.tar ;;
    borg) borg extract --stdout "::$(borg list --short --glob-archives 'stream-*' | tail -1)" ;;
  esac
}
export -f t_init t_backup t_stdin t_forget t_prune t_combined t_base t_check t_restore arca_forget arca_forget_fallback

run_tool() {
  local tool=$1 r
  d=$work/$tool; export tree=$work/$tool/tree
  rm -rf "$d"; mkdir -p "$d"
  # Same starting data for every tool; the edits below are deterministic.
  cp -a "$work/base" "$tree"
  cp -a "$work/stream-base" "$d/stream-src"
  echo "== $tool"
  use "$tool" "$d/s0"
  measure "$tool" init 0 t_init "$tool" || return
  measure "$tool" backup 0 t_backup "$tool" 0 || return
  for r in 1 2 3; do
    edit "$tree" "$r"
    measure "$tool" backup "$r" t_backup "$tool" "$r" || return
  done
  for r in 1 2 3; do
    [ "$r" = 1 ] || edit "$d/stream-src" "$((100 + r))"
    stream "$d/stream-src" > "$d/stream.tar"
    measure "$tool" stdin "$r" t_stdin "$tool" "$r" < "$d/stream.tar" || return
  done
  echo "$tool size before $(bytes "$d/s0/repo")" >> "$results"
  # forget, then prune, timed separately on REPS copies of the same repository.
  for ((r = 1; r <= reps; r++)); do
    rm -rf "$d/r"; cp -a "$d/s0" "$d/r"; use "$tool" "$d/r"
    measure "$tool" forget "$r" t_forget "$tool" || return
    measure "$tool" prune "$r" t_prune "$tool" || return
    [ "$tool" = arca ] && jq -c '.plan' "$work/log.arca.prune.$r" > "$work/arca-plan.$r.json"
    echo "$tool size after $(bytes "$d/r/repo")" >> "$results"
  done
  if [ "$tool" = arca ]; then
    # Prune's own memory: the same forget + prune opened with a cheap key (Argon2id 8 MiB, t=1),
    # so that the 64 MiB key derivation every command runs does not set the peak.
    rm -rf "$d/k"; cp -a "$d/s0" "$d/k"; use arca "$d/k"
    # (open tries every key file, so the 64 MiB one is removed: the cheap key is the only one)
    ARCA_NEW_PASSWORD=cheap "$ARCA" key add --kdf-memory 8 --kdf-iterations 1 > /dev/null
    ARCA_PASSWORD=cheap "$ARCA" key remove "$(ARCA_PASSWORD=cheap "$ARCA" --json key list | jq -r '.[] | select(.current | not) | .id')" > /dev/null
    ARCA_PASSWORD=cheap measure arca base-kdf8 0 t_base arca
    ARCA_PASSWORD=cheap measure arca forget-kdf8 0 t_forget arca
    ARCA_PASSWORD=cheap measure arca prune-kdf8 0 t_prune arca
    rm -rf "$d/k"
  fi
  # forget --prune in one command, on one more copy.
  rm -rf "$d/c"; cp -a "$d/s0" "$d/c"; use "$tool" "$d/c"
  if [ "$tool" = restic ] || { [ "$tool" = arca ] && "$ARCA" forget --help 2>&1 | grep -q -- --prune; }; then
    measure "$tool" forget+prune 1 t_combined "$tool"
    echo "$tool size combined $(bytes "$d/c/repo")" >> "$results"
  fi
  rm -rf "$d/c" "$d/s0"
  # A fresh repository with only what is kept.
  use "$tool" "$d/fresh"
  measure "$tool" fresh-init 0 t_init "$tool" &&
    measure "$tool" fresh-tree 0 t_backup "$tool" 3 &&
    measure "$tool" fresh-stream 0 t_stdin "$tool" 3 < "$d/stream.tar"
  echo "$tool size fresh $(bytes "$d/fresh/repo")" >> "$results"
  rm -rf "$d/fresh"
  # Verify the pruned repository (the last copy). Listing keys first gives the memory every
  # command needs (key derivation, repository open), the baseline of prune's peak RSS.
  use "$tool" "$d/r"
  measure "$tool" base 0 t_base "$tool"
  measure "$tool" check 0 t_check "$tool"
  local ok=identical
  measure "$tool" restore 0 t_restore "$tool" "$d/restore" &&
    diff -r --no-dereference -q "$tree" "$d/restore/${tree#/}" > "$d/diff.txt" 2>&1 || ok=DIFFERS
  echo "$tool verify restore $ok" >> "$results"
  ok=identical
  t_dump_stream "$tool" 2> "$d/dump.err" | cmp -s - "$d/stream.tar" || ok=DIFFERS
  echo "$tool verify stream $ok" >> "$results"
  echo "$tool: tree restore $(awk -v t="$tool" '$1 == t && $3 == "restore" { print $4 }' "$results"), stream $ok"
  [ -n "${KEEP:-}" ] || rm -rf "$d/restore" "$d/tree" "$d/stream-src" "$d/stream.tar"
}

# The source, copied once; the streamed part is its largest top-level directory.
rm -rf "$work/base" "$work/stream-base"
cp -a "$src" "$work/base"
cp -a "$(largest_subdir "$work/base")" "$work/stream-base"
echo "tree: $(mib "$(bytes "$work/base")") MiB, $(find "$work/base" -type f | wc -l) files;" \
  "stream: $(mib "$(bytes "$work/stream-base")") MiB; tools: $tools; REPS=$reps"
"$ARCA" forget --help > /dev/null 2>&1 ||
  echo "NOTE: arca has no forget yet; using the snapshot-file FALLBACK (benches/lifecycle-lib.sh)"
echo "arca: $("$ARCA" --version 2>&1); $(restic version 2>/dev/null | cut -d' ' -f1-2); $(borg --version 2>/dev/null)"
for tool in $tools; do
  run_tool "$tool"
done

# ---- Summary ----------------------------------------------------------------------------------
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR) print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
col() { awk -v t="$1" -v p="$2" -v c="$3" '$1 == t && $2 == p && $4 == 0 { print $c }' "$results"; }
size() { awk -v t="$1" -v k="$2" '$1 == t && $2 == "size" && $3 == k { print $4; exit }' "$results"; }
echo
echo "Lifecycle: wall seconds and peak RSS (MiB) are medians of $reps runs; base_RSS: listing keys"
echo "(key derivation + open); repository sizes in MiB (apparent); fresh: only the kept data, backed up once"
printf "%-7s %9s %9s %9s %12s %10s %10s %9s %9s %9s %9s %11s %9s %9s\n" tool forget_s prune_s total_s \
  forget+prune prune_RSS forget_RSS base_RSS before after fresh after/fresh restore stream
for tool in $tools; do
  f=$(col "$tool" forget 5 | median) p=$(col "$tool" prune 5 | median)
  [ -n "$f" ] && [ -n "$p" ] || { echo "$tool: failed, see $work/log.$tool.*"; continue; }
  tot=$(for r in $(seq "$reps"); do
    awk -v t="$tool" -v r="$r" '$1 == t && $3 == r && ($2 == "forget" || $2 == "prune") { s += $5 } END { print s }' "$results"
  done | median)
  c=$(col "$tool" forget+prune 5); c=${c:--}
  prss=$(col "$tool" prune 6 | median) frss=$(col "$tool" forget 6 | median)
  b=$(size "$tool" before) a=$(size "$tool" after) fr=$(size "$tool" fresh)
  base=$(col "$tool" base 6); base=${base:-0}
  printf "%-7s %9s %9s %9s %12s %10s %10s %9s %9s %9s %9s %11s %9s %9s\n" "$tool" "$f" "$p" "$tot" "$c" \
    "$(mib $((prss * 1024)))" "$(mib $((frss * 1024)))" "$(mib $((base * 1024)))" "$(mib "$b")" "$(mib "$a")" "$(mib "$fr")" \
    "$(awk -v a="$a" -v f="$fr" 'BEGIN { printf "%.3f", a / f }')" \
    "$(awk -v t="$tool" '$1 == t && $2 == "verify" && $3 == "restore" { print $4 }' "$results")" \
    "$(awk -v t="$tool" '$1 == t && $2 == "verify" && $3 == "stream" { print $4 }' "$results")"
done
echo
echo "Verification (rc 0 = ok): $(awk '$2 == "check" { printf "%s check rc=%s %ss; ", $1, $4, $5 }' "$results")"
echo "Backups (wall s): $(awk '$2 == "backup" || $2 == "stdin" { a[$1] = a[$1] " " $2 $3 "=" $5 } END { for (t in a) printf "%s:%s; ", t, a[t] }' "$results")"
if [ -f "$work/arca-plan.1.json" ]; then
  echo
  echo "arca prune plan (run 1): $(cat "$work/arca-plan.1.json")"
  blobs=$(jq .blobs "$work/arca-plan.1.json") set=$(jq .used_set_bytes "$work/arca-plan.1.json")
  prss=$(col arca prune 6 | median) base=$(col arca base 6)
  awk -v r="$prss" -v z="$base" -v b="$blobs" -v s="$set" 'BEGIN {
    printf "arca prune memory: peak RSS %.1f MiB / %d blobs indexed = %.0f B per blob; above `arca key list` (%.1f MiB: KDF, open) %.0f B per blob; used-blob set %d B = %.3f B per blob\n",
      r / 1024, b, r * 1024 / b, z / 1024, (r - z) * 1024 / b, s, s / b }'
  k=$(col arca prune-kdf8 6) kz=$(col arca base-kdf8 6) kt=$(col arca prune-kdf8 5)
  [ -n "$k" ] && awk -v r="$k" -v z="$kz" -v b="$blobs" -v t="$kt" 'BEGIN {
    printf "arca prune with an 8 MiB key: %.2f s, peak RSS %.1f MiB (key list %.1f MiB) = %.0f B per blob, %.0f B per blob above key list\n",
      t, r / 1024, z / 1024, r * 1024 / b, (r - z) * 1024 / b }'
fi
if grep -q '^arca ' "$results" && grep -q '^restic ' "$results"; then
  ap=$(col arca prune 5 | median) rp=$(col restic prune 5 | median)
  at=$(for r in $(seq "$reps"); do awk -v r="$r" '$1 == "arca" && $3 == r && ($2 == "forget" || $2 == "prune") { s += $5 } END { print s }' "$results"; done | median)
  rc=$(col restic forget+prune 5)
  ar=$(col arca prune 6 | median) rr=$(col restic prune 6 | median)
  awk -v ap="$ap" -v rp="$rp" -v at="$at" -v rc="$rc" -v ar="$ar" -v rr="$rr" 'BEGIN {
    printf "ratios: arca prune / restic prune = %.2f (target <= 0.3); arca forget+prune / restic forget --prune = %.2f; arca prune RSS / restic prune RSS = %.2f (target <= 1)\n",
      ap / rp, (rc > 0 ? at / rc : 0), ar / rr }'
fi
echo "raw results: $results; logs: $work/log.*"
[ -n "${KEEP:-}" ] || rm -rf "$work/base" "$work/stream-base" "$work"/*/r
