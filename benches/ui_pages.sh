#!/usr/bin/env bash
# Page timings of `arca ui` on a kernel-sized snapshot, and the memory of a large download.
#
#   benches/ui_pages.sh TREE [SNAPSHOTS] [RUNS]      e.g. benches/ui_pages.sh /work/bench/linux-source-6.1 3 30
#
# Backs TREE up SNAPSHOTS times into a new local repository (a file changed between them), starts
# `arca ui` on a loopback port, and fetches every kind of page RUNS times one after another
# (curl's time_total: connect, request, whole body), printing p50, p95 and max per page:
# health, snapshots, the root and the largest directory of the tree (its first and second
# page of 500 entries), a file with its preview, a file's versions, search in one snapshot and
# in all, diff, journal. Then the whole tree as a .tar download, against `arca dump --archive
# tar` of the same path, with the server's peak resident memory during the download (VmHWM,
# reset first through /proc/PID/clear_refs) against its resident memory before.
# Needs: ARCA (default target/release/arca), curl, python3.
set -euo pipefail
TREE=$(realpath "${1:?tree}"); SNAPS=${2:-3}; RUNS=${3:-30}
ARCA=$(realpath "${ARCA:-target/release/arca}")
W=$(mktemp -d /tmp/arca-uibench.XXXX)
UI_PID=
cleanup() { [ -n "$UI_PID" ] && kill "$UI_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT
export ARCA_PASSWORD=bench XDG_CACHE_HOME=$W/cache
R=$W/repo
"$ARCA" -r "$R" init -q
COPY=$W/src
cp -a "$TREE" "$COPY"
for i in $(seq 1 "$SNAPS"); do
  echo "change $i" >> "$COPY/Makefile"
  "$ARCA" -r "$R" backup -q "$COPY" >/dev/null
done
"$ARCA" -r "$R" ui --listen 127.0.0.1:0 > "$W/ui.out" 2>"$W/ui.err" &
UI_PID=$!
for _ in $(seq 1 100); do grep -q listening "$W/ui.out" 2>/dev/null && break; sleep 0.1; done
URL=$(sed -n 's/.*listening on \(http:[^ ]*\)\/ .*/\1/p' "$W/ui.out")
[ -n "$URL" ] || { cat "$W/ui.err"; exit 1; }
IDS=$("$ARCA" -r "$R" snapshots --json | python3 -c 'import json,sys; print(" ".join(s["id"] for s in json.load(sys.stdin)))')
NEW=${IDS##* }; OLD=${IDS%% *}
# The directory with the most entries (a second page exists when it has more than 500).
BIG=$(python3 - "$COPY" <<'PY'
import os, sys
best = max(((len(os.listdir(d)), d) for d, _, _ in os.walk(sys.argv[1])), default=(0, sys.argv[1]))
print(best[0], os.path.relpath(best[1], sys.argv[1]))
PY
)
echo "largest directory: $BIG"
BIG=${BIG#* }
enc() { python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1], safe="/"))' "$1"; }
ROOT=$(enc "$COPY"); BIGP=$(enc "$COPY/$BIG")
PAGES=(
  "health|/"
  "snapshots|/snapshots"
  "tree: root of the tree|/snap/$NEW/tree?path=$ROOT"
  "tree: largest dir, page 1|/snap/$NEW/tree?path=$BIGP"
  "tree: largest dir, page 2|/snap/$NEW/tree?path=$BIGP&start=500"
  "file + preview|/snap/$NEW/file?path=$ROOT/kernel/fork.c"
  "versions of a file|/versions?path=$ROOT/Makefile"
  "search, one snapshot|/search?q=Makefile&snapshot=$NEW"
  "search, all snapshots|/search?q=Makefile"
  "diff|/diff?a=$OLD&b=$NEW"
  "journal|/journal"
)
printf '%-28s %8s %8s %8s %9s\n' page p50_ms p95_ms max_ms bytes
for p in "${PAGES[@]}"; do
  name=${p%%|*}; path=${p#*|}
  curl -s -o /dev/null "$URL$path"   # warm: the first visit measures sizes, reads caches
  for _ in $(seq 1 "$RUNS"); do curl -s -o /dev/null -w '%{http_code} %{time_total} %{size_download}\n' "$URL$path"; done > "$W/t"
  python3 - "$name" "$W/t" <<'PY'
import sys
rows=[l.split() for l in open(sys.argv[2])]
bad=[r for r in rows if r[0]!="200"]
t=sorted(float(r[1])*1000 for r in rows)
p=lambda q: t[min(len(t)-1,int(round(q*(len(t)-1))))]
print(f"{sys.argv[1]:<28} {p(.5):8.1f} {p(.95):8.1f} {t[-1]:8.1f} {rows[-1][2]:>9}" + (f"  {len(bad)} not 200!" if bad else ""))
PY
done
rss() { awk -v k="$1" '$1==k":"{print $2}' /proc/"$UI_PID"/status; }
echo 5 > /proc/"$UI_PID"/clear_refs
before=$(rss VmRSS)
s=$(date +%s.%N)
curl -s -o "$W/ui.tar" "$URL/snap/$NEW/archive?path=$ROOT&format=tar"
e=$(date +%s.%N)
peak=$(rss VmHWM)
s2=$(date +%s.%N)
"$ARCA" -r "$R" dump -q --archive tar "$NEW:$COPY" > "$W/dump.tar"
e2=$(date +%s.%N)
cmp -s "$W/ui.tar" "$W/dump.tar" && same=identical || same=DIFFERENT
python3 - "$s" "$e" "$s2" "$e2" "$(stat -c %s "$W/ui.tar")" "$before" "$peak" "$same" <<'PY'
import sys
s,e,s2,e2=map(float,sys.argv[1:5]); n=int(sys.argv[5]); before,peak=int(sys.argv[6]),int(sys.argv[7])
print(f"tar download: {n/2**20:.0f} MiB in {e-s:.2f} s ({n/2**20/(e-s):.0f} MiB/s); arca dump: {e2-s2:.2f} s; bytes {sys.argv[8]}")
print(f"server memory: {before/1024:.0f} MiB resident before, peak {peak/1024:.0f} MiB during the download")
PY
