#!/usr/bin/env bash
# Mount benchmark: `arca mount` against `restic mount` of the same snapshots, one run.
#
#   benches/mount.sh SRC WORKDIR [TOOL ...]      TOOL: arca restic (default: both)
#
# Measures, per tool, REPS times (default 3; medians printed):
#   find  `find MOUNT/tags/tree/latest/ | wc -l` over the snapshot of SRC (e.g. the kernel tree);
#   cat   `cat MOUNT/tags/big/latest/…/big.bin > /dev/null` of a BIG_MIB (default 1024) MiB
#         random file, reported as MiB/s.
# Every measurement runs on a fresh mount (started, waited for in /proc/self/mountinfo, then
# unmounted with SIGINT after it): no kernel dentry/page cache and no tool cache carries over;
# the repositories' own files stay in the OS page cache. Put WORKDIR on tmpfs (/dev/shm/...):
# it needs about 2 × (SRC compressed + BIG_MIB), and the figures are then CPU and FUSE cost,
# not disk. Backups (not timed) use fast key derivation. Env: ARCA (default `arca` on PATH),
# REPS, BIG_MIB. Needs /dev/fuse and fusermount3 (Debian fuse3); runs as root or a FUSE user.
set -u -o pipefail
[ $# -ge 2 ] || { sed -n '2,16p' "$0"; exit 2; }
src=$(cd "$1" && pwd) work=$2; shift 2
tools=${*:-arca restic}
reps=${REPS:-3}
big_mib=${BIG_MIB:-1024}
ARCA=${ARCA:-arca}
mkdir -p "$work"
work=$(cd "$work" && pwd)
results=$work/results.txt # one line per measurement: tool phase rep rc seconds
: > "$results"
echo bench > "$work/pw"
export RESTIC_PASSWORD_FILE=$work/pw ARCA_PASSWORD_FILE=$work/pw

mkdir -p "$work/big"
[ -s "$work/big/big.bin" ] || head -c "$((big_mib << 20))" /dev/urandom > "$work/big/big.bin"

run() { # tool ARGS...: the tool on its repository
    local t=$1; shift
    case $t in
        arca) "$ARCA" -r "$work/arca/repo" -q "$@" ;;
        restic) restic -r "$work/restic/repo" --cache-dir "$work/restic/cache" -q "$@" ;;
    esac
}

mounted() { awk -v p="$1" '$5 == p { found = 1 } END { exit !found }' /proc/self/mountinfo; }

mount_start() { # tool: mounts at $work/$tool/mnt, sets $mpid
    local t=$1 m=$work/$1/mnt i
    mkdir -p "$m"
    # Started directly (not through `run`, a function: its subshell would get the signal).
    case $t in
        arca) "$ARCA" -r "$work/arca/repo" mount "$m" > "$work/$t/mount.log" 2>&1 & ;;
        restic) restic -r "$work/restic/repo" --cache-dir "$work/restic/cache" mount "$m" > "$work/$t/mount.log" 2>&1 & ;;
    esac
    mpid=$!
    for ((i = 0; i < 600; i++)); do
        mounted "$m" && [ -e "$m/tags/tree/latest/" ] && return 0
        sleep 0.05
    done
    echo "$t mount did not come up:" >&2; cat "$work/$t/mount.log" >&2; exit 1
}

mount_stop() { # tool
    local m=$work/$1/mnt
    kill -INT "$mpid"; wait "$mpid" 2>/dev/null
    mounted "$m" && { fusermount3 -u -z "$m"; echo "$1: still mounted after SIGINT" >&2; }
}

now() { date +%s.%N; }

for t in $tools; do
    rm -rf "${work:?}/$t"; mkdir -p "$work/$t"
    case $t in
        arca) run arca init --kdf-memory 8 --kdf-iterations 1 > /dev/null ;;
        restic) run restic init > /dev/null ;;
    esac
    run "$t" backup --tag tree "$src" > /dev/null || { echo "$t: backup of $src failed" >&2; exit 1; }
    run "$t" backup --tag big "$work/big" > /dev/null || { echo "$t: backup of big failed" >&2; exit 1; }
    for ((r = 1; r <= reps; r++)); do
        mount_start "$t"
        s=$(now); n=$(find "$work/$t/mnt/tags/tree/latest/" | wc -l); rc=$?; e=$(now)
        echo "$t find $r $rc $(echo "$e - $s" | bc)" >> "$results"
        echo "$t find rep $r: $n entries in $(echo "$e - $s" | bc) s"
        mount_stop "$t"
        mount_start "$t"
        s=$(now); cat "$work/$t/mnt/tags/big/latest$work/big/big.bin" > /dev/null; rc=$?; e=$(now)
        echo "$t cat $r $rc $(echo "$e - $s" | bc)" >> "$results"
        echo "$t cat rep $r: rc $rc, $(echo "$e - $s" | bc) s"
        mount_stop "$t"
    done
done

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo
echo "find entries of $src: $(find "$src" | wc -l); big file: $big_mib MiB; medians of $reps fresh mounts"
printf '%-8s %10s %10s %10s\n' tool find_s cat_s cat_MiB/s
for t in $tools; do
    f=$(awk -v t="$t" '$1 == t && $2 == "find" { print $5 }' "$results" | median)
    c=$(awk -v t="$t" '$1 == t && $2 == "cat" { print $5 }' "$results" | median)
    bad=$(awk -v t="$t" '$1 == t && $4 != 0' "$results" | wc -l)
    printf '%-8s %10.3f %10.3f %10.0f%s\n' "$t" "$f" "$c" "$(echo "$big_mib / $c" | bc -l)" \
        "$([ "$bad" -gt 0 ] && echo "  ($bad failed runs)")"
done
