# Helpers shared by benches/lifecycle.sh and benches/prune_kill.sh (sourced, not run).
# Everything here is deterministic: the same tree and seed give the same edits, byte for byte,
# so every tool backs up exactly the same data.

# edit DIR SEED: modify ~10% of the regular files (20 bytes overwritten in the middle), delete
# ~5%, and add ~5% new files (a letter-rotated copy of an existing file, new content of the
# same kind and compressibility). Files are chosen by awk's seeded rand() over the sorted list.
edit() {
  local dir=$1 seed=$2 list
  list=$(mktemp)
  local lower=abcdefghijklmnopqrstuvwxyz upper=ABCDEFGHIJKLMNOPQRSTUVWXYZ k=$((seed % 25 + 1))
  local rot=${lower:k}${lower:0:k}${upper:k}${upper:0:k}
  find "$dir" -type f -printf '%s\t%P\n' | LC_ALL=C sort -t "$(printf '\t')" -k2 |
    awk -F'\t' -v seed="$seed" 'BEGIN { srand(seed) }
      { r = rand(); a = r < 0.10 ? "M" : r < 0.15 ? "D" : r < 0.20 ? "A" : ""; if (a != "") print a "\t" $0 }' > "$list"
  local act size path f
  while IFS="$(printf '\t')" read -r act size path; do
    f=$dir/$path
    case $act in
      M) printf 'lifecycle edit, seed %06d\n' "$seed" |
           dd of="$f" bs=1 seek=$((size / 2)) conv=notrunc status=none ;;
      D) rm -f "$f" ;;
      A) LC_ALL=C tr "a-zA-Z" "$rot" < "$f" > "$(dirname "$f")/new$seed-$(basename "$f")" ;;
    esac
  done < "$list"
  rm -f "$list"
}

# stream DIR: a tar of DIR to stdout whose bytes depend only on the files' names and contents
# (sorted, fixed owner and mtime), so every tool gets the same stream.
stream() {
  tar -c --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$(dirname "$1")" "$(basename "$1")"
}

# largest_subdir DIR: the largest top-level directory of DIR (the part streamed), or DIR itself.
largest_subdir() {
  local d
  d=$(find "$1" -mindepth 1 -maxdepth 1 -type d -exec du -s --apparent-size {} + 2>/dev/null | sort -n | tail -1 | cut -f2)
  echo "${d:-$1}"
}

# mib BYTES: bytes as MiB with one decimal.
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }

# bytes PATH: apparent size of a file tree in bytes.
bytes() { du -s --apparent-size -B1 "$1" | cut -f1; }

# arca_forget_fallback REPO: TEMPORARY stand-in for `arca forget --keep-last 1`, used only when
# `arca forget --help` fails (forget not on main yet): removes every snapshot file but the
# newest of each (hostname, paths) group. Needs ARCA_PASSWORD and arca on $ARCA.
arca_forget_fallback() {
  local repo=$1 id
  for id in $("$ARCA" -r "$repo" snapshots --json |
    jq -r 'group_by([.hostname, .paths]) | map(sort_by(.time_ns) | .[:-1][]) | .[].id'); do
    rm -f "$repo/snapshots/$id"
  done
}

# arca_forget REPO: forget all but the newest snapshot of each group, with the real command when
# it exists.
arca_forget() {
  if "$ARCA" forget --help > /dev/null 2>&1; then
    "$ARCA" -r "$1" forget --keep-last 1
  else
    arca_forget_fallback "$1"
  fi
}

# measure TOOL PHASE REP CMD... (needs $work and $results): run CMD (a program or an exported t_* function) under
# /usr/bin/time, log its output, record a result line. Peak RSS is that of the largest process.
measure() {
  local tool=$1 phase=$2 rep=$3; shift 3
  local log=$work/log.$tool.$phase.$rep
  /usr/bin/time -f "%e %M" -o "$log.time" bash -c '"$@"' _ "$@" > "$log" 2>&1
  local rc=$? wall rss
  read -r wall rss < <(tail -1 "$log.time")
  echo "$tool $phase $rep $rc $wall $rss" >> "$results"
  printf "%-7s %-${PHASE_WIDTH:-14}s rep=%s rc=%-3s wall=%7ss rss=%5s MiB\n" "$tool" "$phase" "$rep" "$rc" "$wall" "$((rss / 1024))"
  [ "$rc" = 0 ] || { echo "  FAILED, last lines of $log:"; tail -5 "$log" | sed 's/^/  /'; }
  return "$rc"
}
