#!/usr/bin/env bash
# arca against restic on the same S3 server (s3s-fs on loopback), optionally with added
# round-trip latency (tc netem on the server's port, both directions): initial backup,
# unchanged re-backup, restore, check --read-data. Prints seconds per phase and the ratio.
#
#   benches/s3.sh TREE [RTT_MS]      e.g. benches/s3.sh /work/bench/linux-source-6.1 50
#
# Needs: s3s-fs (ARCA_TEST_S3S_FS or PATH), restic, root for tc. ARCA=path/to/arca.
set -euo pipefail
TREE=${1:?tree}; RTT=${2:-0}
ARCA=${ARCA:-target/release/arca}
S3S=${ARCA_TEST_S3S_FS:-s3s-fs}
W=$(mktemp -d /tmp/arca-s3bench.XXXX)
PORT=$((20000 + RANDOM % 20000))
mkdir -p "$W/root/bkt"
"$S3S" --host 127.0.0.1 --port $PORT --access-key k --secret-key secretkey "$W/root" >/dev/null 2>&1 &
SRV=$!
cleanup() { kill $SRV 2>/dev/null || true; [ "$RTT" = 0 ] || tc qdisc del dev lo root 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
sleep 1
if [ "$RTT" != 0 ]; then
  half=$((RTT / 2))
  tc qdisc add dev lo root handle 1: prio
  tc qdisc add dev lo parent 1:3 handle 30: netem delay ${half}ms
  tc filter add dev lo protocol ip parent 1:0 prio 3 u32 match ip dport $PORT 0xffff flowid 1:3
  tc filter add dev lo protocol ip parent 1:0 prio 3 u32 match ip sport $PORT 0xffff flowid 1:3
fi
export AWS_ACCESS_KEY_ID=k AWS_SECRET_ACCESS_KEY=secretkey AWS_DEFAULT_REGION=us-east-1
export ARCA_PASSWORD=x RESTIC_PASSWORD=x
A="s3:http://127.0.0.1:$PORT/bkt/arca"; R="s3:http://127.0.0.1:$PORT/bkt/restic"
t() { local s=$(date +%s.%N); "$@" >/dev/null 2>&1 || { echo "FAILED: $*" >&2; exit 1; }; echo "$(date +%s.%N) - $s" | bc; }
$ARCA -r "$A" init --kdf-memory 8 --kdf-iterations 1 >/dev/null
restic -r "$R" init >/dev/null
declare -A T
T[arca_backup]=$(t $ARCA -r "$A" -q backup "$TREE")
T[restic_backup]=$(t restic -r "$R" -q backup "$TREE")
T[arca_rebackup]=$(t $ARCA -r "$A" -q backup "$TREE")
T[restic_rebackup]=$(t restic -r "$R" -q backup "$TREE")
T[arca_restore]=$(t $ARCA -r "$A" -q restore latest --target "$W/ra")
T[restic_restore]=$(t restic -r "$R" -q restore latest --target "$W/rr")
T[arca_check]=$(t $ARCA -r "$A" -q check --read-data)
T[restic_check]=$(t restic -r "$R" -q check --read-data)
echo "tree=$TREE rtt=${RTT}ms ($(du -sm "$W/root/bkt/arca" | cut -f1) MiB arca, $(du -sm "$W/root/bkt/restic" | cut -f1) MiB restic)"
for p in backup rebackup restore check; do
  printf '%-9s arca %7.2f s  restic %7.2f s  ratio %.2f\n' $p ${T[arca_$p]} ${T[restic_$p]} $(echo "${T[arca_$p]} / ${T[restic_$p]}" | bc -l)
done
