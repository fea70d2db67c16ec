#!/usr/bin/env bash
# Cold-cache mode of the end-to-end benchmark: initial backups read from the storage, not from
# the page cache. Needs root (it drops the caches: `sync; echo 3 > /proc/sys/vm/drop_caches`
# before every cold run) and a SOURCE on a real disk (tmpfs cannot be dropped).
#
#   benches/cold.sh SOURCE WORKDIR [TOOL ...]     TOOL: arca restic (default: both, if found)
#   benches/cold.sh --kernel WORKDIR [TOOL ...]   SOURCE = Debian's linux-source-6.1, unpacked
#   benches/cold.sh --small WORKDIR [TOOL ...]    SOURCE = 1,000 dirs × 1,000 small files
#
# One run prints, for the same tree:
#   - the I/O floors, cold: one reader (`tar -cf - | cat`) and 16 readers
#     (`find -print0 | xargs -0 -P16 -n200 cat`), the fastest the storage hands the bytes over;
#   - per tool: cold initial backup and warm initial backup (each into a fresh repository),
#     wall seconds and peak RSS.
# ARCA_BASE=/path/to/an/older/arca adds it as tool `arca-base` (to compare before and after).
# ARCA_IO_THREADS, if set, is passed on (the `--io-threads` setting); IO_SWEEP="1 2 4 …" instead
# runs arca's cold backup once per value (ROUNDS times, interleaved), to measure the default.
# Put the arca to measure on PATH, or let the script build it (cargo build --release).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
case ${1:-} in
  --kernel)
    work=$2; shift 2
    src=$work/linux-source-6.1
    if [ ! -d "$src" ]; then
      [ -f /usr/src/linux-source-6.1.tar.xz ] || apt-get install -y linux-source-6.1 >/dev/null
      mkdir -p "$work" && tar -xf /usr/src/linux-source-6.1.tar.xz -C "$work"
    fi ;;
  --small)
    work=$2; shift 2
    src=$work/small
    if [ ! -d "$src" ]; then
      mkdir -p "$src.tmp"
      for ((d = 0; d < 1000; d++)); do
        mkdir "$src.tmp/d$d"
        (cd "$src.tmp/d$d" && for ((f = 0; f < 1000; f++)); do echo "file $d/$f" > "f$f"; done)
      done
      mv "$src.tmp" "$src"
    fi ;;
  *)
    src=$1 work=$2; shift 2 ;;
esac
tools=${*:-}
if [ -z "$tools" ]; then
  tools=arca
  [ -n "${ARCA_BASE:-}" ] && tools="$tools arca-base"
  command -v restic >/dev/null && tools="$tools restic"
fi
if ! command -v arca >/dev/null; then
  cargo build --release --locked --manifest-path "$root/Cargo.toml" --bin arca
  PATH=${CARGO_TARGET_DIR:-$root/target}/release:$PATH
fi
export ARCA_PASSWORD=bench RESTIC_PASSWORD=bench
runs=$work/runs
mkdir -p "$runs"

drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }

# measure NAME cmd...: one line, wall seconds and peak RSS (MiB).
measure() {
  local name=$1 rc=0; shift
  /usr/bin/time -f "%e %M" -o "$runs/time.$name" "$@" > "$runs/out.$name" 2>&1 || rc=$?
  read -r wall rss < <(tail -1 "$runs/time.$name")
  printf "%-28s wall=%7ss rss=%6sMiB rc=%s\n" "$name" "$wall" "$((rss / 1024))" "$rc"
}

# fresh TOOL: an empty repository for TOOL.
fresh() {
  rm -rf "$runs/repo.$1"
  case $1 in
    arca) arca -r "$runs/repo.arca" init > /dev/null ;;
    arca-base) arca -r "$runs/repo.arca-base" init > /dev/null ;;
    restic) restic -r "$runs/repo.restic" init > /dev/null ;;
  esac
}

# backup_cmd TOOL: the command line of TOOL's backup of the source (into the array `cmd`).
backup_cmd() {
  case $1 in
    arca) cmd=(arca -r "$runs/repo.arca" backup "$src") ;;
    arca-base) cmd=("$ARCA_BASE" -r "$runs/repo.arca-base" backup "$src") ;;
    restic) cmd=(restic -r "$runs/repo.restic" backup "$src") ;;
  esac
}

echo "source: $src, $(du -sh --apparent-size "$src" | cut -f1), $(find "$src" -type f | wc -l) files; tools: $tools"
echo "arca: $(arca --version); io threads: ${ARCA_IO_THREADS:-default}"
floors() { # round
  [ -n "${NO_FLOORS:-}" ] && return
  drop; measure "floor-1-reader-cold-r$1" sh -c "tar -cf - -C '$(dirname "$src")' '$(basename "$src")' | cat > /dev/null"
  drop; measure "floor-16-readers-cold-r$1" sh -c "find '$src' -type f -print0 | xargs -0 -P16 -n200 cat > /dev/null"
}

# ROUNDS rounds, interleaved, so that drift on a noisy machine hits every row alike; then the
# median of each row over the rounds.
rounds=${ROUNDS:-1}
if [ -n "${IO_SWEEP:-}" ]; then
  for ((r = 1; r <= rounds; r++)); do
    for n in $IO_SWEEP; do
      backup_cmd arca; fresh arca; drop; ARCA_IO_THREADS=$n measure "arca-cold-io$n-r$r" "${cmd[@]}"
    done
  done
else
  for ((r = 1; r <= rounds; r++)); do
    floors "$r"
    for tool in $tools; do
      backup_cmd "$tool"
      fresh "$tool"; drop; measure "$tool-backup-cold-r$r" "${cmd[@]}"
      # Warm: the tree was just read, so it is in the page cache; a fresh repository again.
      fresh "$tool"; measure "$tool-backup-warm-r$r" "${cmd[@]}"
      rm -rf "$runs/repo.$tool"
    done
  done
fi
echo "median of $rounds round(s):"
for f in "$runs"/time.*-r1; do
  name=${f#"$runs/time."}; name=${name%-r1}
  for ((r = 1; r <= rounds; r++)); do tail -1 "$runs/time.$name-r$r"; done |
    sort -n | awk -v n="$name" '{ w[NR] = $1; m[NR] = $2 } END {
      k = int((NR + 1) / 2); printf "  %-26s wall=%7.2fs rss=%6dMiB\n", n, w[k], m[k] / 1024 }'
done
