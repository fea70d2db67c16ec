#!/usr/bin/env bash
# Copy benchmark: `arca copy` against `restic copy` of the same data, one run.
#
#   benches/copy.sh SRC WORKDIR [TOOL ...]      TOOL: arca restic (default: both)
#
# SRC is a tree of a few hundred MiB (e.g. the corpus of examples/gen_corpus.rs, ~300 MiB in
# ~20,000 files); it is copied into WORKDIR and never touched. Put WORKDIR on tmpfs
# (/dev/shm/...); it needs about 6 × SRC. Env: ARCA (arca binary, default `arca` on PATH), REPS
# (copies into a fresh destination, default 3; medians are printed).
#
# Per tool: a source repository with three snapshots of the tree (backed up, edited with
# benches/lifecycle-lib.sh's deterministic `edit`, backed up again, twice). Then REPS times: a
# fresh destination repository with its own password is created (not timed), all snapshots are
# copied into it (`copy`), and copied again (`recopy`: nothing to transfer). The last
# destination is checked with full data reads, and its latest snapshot restored and compared
# with the tree (`diff -r`).
set -u
here=$(cd "$(dirname "$0")" && pwd)
PHASE_WIDTH=8
. "$here/lifecycle-lib.sh"
[ $# -ge 2 ] || { sed -n '2,16p' "$0"; exit 2; }
src=$(cd "$1" && pwd) work=$2; shift 2
tools=${*:-arca restic}
reps=${REPS:-3}
export ARCA=${ARCA:-arca}
mkdir -p "$work"
work=$(cd "$work" && pwd)
results=$work/results.txt # one line per measurement: tool phase rep rc wall_s rss_kib
: > "$results"
echo bench > "$work/pw-src"
echo bench-offsite > "$work/pw-dst"


# Per-tool commands: SRC and DST repositories are $d/src and $d/dst.
a_src() { "$ARCA" -r "$d/src" --password-file "$work/pw-src" "$@"; }
a_dst() { "$ARCA" -r "$d/dst" --password-file "$work/pw-dst" "$@"; }
r_src() { restic -r "$d/src" --password-file "$work/pw-src" --cache-dir "$d/cache" "$@"; }
r_dst() { restic -r "$d/dst" --password-file "$work/pw-dst" --cache-dir "$d/cache" "$@"; }
t_src() { case $1 in arca) shift; a_src "$@" ;; restic) shift; r_src "$@" ;; esac; }
t_dst() { case $1 in arca) shift; a_dst "$@" ;; restic) shift; r_dst "$@" ;; esac; }
t_copy() {
  case $1 in
    arca) a_src copy --to "$d/dst" --to-password-file "$work/pw-dst" ;;
    restic) r_dst copy --from-repo "$d/src" --from-password-file "$work/pw-src" ;;
  esac
}

run_tool() {
  local tool=$1 r
  d=$work/$tool; tree=$d/tree
  rm -rf "$d"; mkdir -p "$d"
  cp -a "$work/base" "$tree"
  echo "== $tool"
  t_src "$tool" init > /dev/null || return
  for r in 0 1 2; do
    [ "$r" = 0 ] || edit "$tree" "$r"
    measure "$tool" backup "$r" t_src "$tool" backup "$tree" || return
  done
  for ((r = 1; r <= reps; r++)); do
    rm -rf "$d/dst"
    t_dst "$tool" init > /dev/null || return
    measure "$tool" copy "$r" t_copy "$tool" || return
    measure "$tool" recopy "$r" t_copy "$tool" || return
  done
  echo "$tool size src $(bytes "$d/src") dst $(bytes "$d/dst")" >> "$results"
  measure "$tool" check 0 t_dst "$tool" check --read-data
  local ok=identical
  rm -rf "$d/restore"
  t_dst "$tool" restore latest --target "$d/restore" > "$d/restore.log" 2>&1 &&
    diff -r --no-dereference -q "$tree" "$d/restore/${tree#/}" > "$d/diff.txt" 2>&1 || ok=DIFFERS
  echo "$tool verify restore $ok" >> "$results"
  echo "$tool: restore of the copy $ok"
  rm -rf "$d/restore" "$tree"
}

export -f a_src a_dst r_src r_dst t_src t_dst t_copy
export work
rm -rf "$work/base"
cp -a "$src" "$work/base"
echo "tree: $(mib "$(bytes "$work/base")") MiB, $(find "$work/base" -type f | wc -l) files; tools: $tools; REPS=$reps"
echo "arca: $("$ARCA" --version 2>&1); $(restic version 2>/dev/null | cut -d' ' -f1-2)"
for tool in $tools; do
  export d=$work/$tool
  run_tool "$tool"
done

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR) print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
col() { awk -v t="$1" -v p="$2" -v c="$3" '$1 == t && $2 == p && $4 == 0 { print $c }' "$results"; }
echo
echo "Copy of 3 snapshots into a fresh repository: wall seconds and peak RSS (MiB), medians of $reps runs"
printf "%-7s %9s %9s %10s %10s %9s %9s %8s\n" tool copy_s recopy_s copy_RSS src_MiB dst_MiB check restore
for tool in $tools; do
  c=$(col "$tool" copy 5 | median) rc=$(col "$tool" recopy 5 | median) m=$(col "$tool" copy 6 | median)
  [ -n "$c" ] || { echo "$tool: failed, see $work/log.$tool.*"; continue; }
  sizes=$(awk -v t="$tool" '$1 == t && $2 == "size" { print $4, $6 }' "$results")
  printf "%-7s %9s %9s %10s %10s %9s %9s %8s\n" "$tool" "$c" "$rc" "$(mib $((m * 1024)))" \
    "$(mib "${sizes% *}")" "$(mib "${sizes#* }")" \
    "rc=$(awk -v t="$tool" '$1 == t && $2 == "check" { print $4 }' "$results")" \
    "$(awk -v t="$tool" '$1 == t && $2 == "verify" { print $4 }' "$results")"
done
if grep -q '^arca copy' "$results" && grep -q '^restic copy' "$results"; then
  ac=$(col arca copy 5 | median) rcp=$(col restic copy 5 | median)
  ar=$(col arca recopy 5 | median) rr=$(col restic recopy 5 | median)
  awk -v a="$ac" -v r="$rcp" -v x="$ar" -v y="$rr" 'BEGIN {
    printf "ratios: arca copy / restic copy = %.2f (target <= 0.5); recopy %.2f\n", a / r, x / y }'
fi
echo "raw results: $results; logs: $work/log.*"
rm -rf "$work/base"
