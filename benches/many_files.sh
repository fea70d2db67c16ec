#!/usr/bin/env bash
# Restore memory at scale: DIRS directories of FILES small files each (default 1,000 × 1,000 =
# 1,000,000 files), backed up once, then restored by arca (and restic, if installed) with peak RSS.
# usage: benches/many_files.sh WORKDIR [DIRS] [FILES]   (WORKDIR on tmpfs is fastest; needs ~2 GiB)
# Put the arca to measure on PATH (cargo build --release; PATH=$PWD/target/release:$PATH).
set -euo pipefail
work=$1 dirs=${2:-1000} files=${3:-1000}
src=$work/src
export ARCA_PASSWORD=bench RESTIC_PASSWORD=bench
if [ ! -d "$src" ]; then
  mkdir -p "$src"
  for ((d = 0; d < dirs; d++)); do
    mkdir "$src/d$d"
    for ((f = 0; f < files; f++)); do echo "file $d/$f" > "$src/d$d/f$f"; done
  done
fi
run() { # name cmd...
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/time.$name" "$@" > "$work/out.$name" 2>&1 || echo "$name: exit $?"
  read -r wall rss < "$work/time.$name"
  printf "%-16s wall=%7ss peak_rss=%6s MiB\n" "$name" "$wall" "$((rss / 1024))"
}
rm -rf "$work/repo.arca" "$work/restore.arca"
run arca-init arca -r "$work/repo.arca" init
run arca-backup arca -r "$work/repo.arca" backup "$src"
run arca-restore arca -r "$work/repo.arca" restore latest --target "$work/restore.arca"
rm -rf "$work/restore.arca"
if command -v restic >/dev/null; then
  rm -rf "$work/repo.restic" "$work/restore.restic"
  run restic-init restic -r "$work/repo.restic" init
  run restic-backup restic -r "$work/repo.restic" backup "$src"
  run restic-restore restic -r "$work/repo.restic" restore latest --target "$work/restore.restic"
  rm -rf "$work/restore.restic"
fi
