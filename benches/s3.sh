#!/usr/bin/env bash
# arca against restic on the same S3 server (s3s-fs on loopback), optionally with added
# round-trip latency (examples/delay_proxy in front of the server: half the RTT each way, one RTT
# per new connection): initial backup, unchanged re-backup, restore, check --read-data, then
# what the server alone takes (curl PUT/GET of 16 MiB objects, 8 at a time, same path).
# Prints seconds per phase, the ratio, and arca's MiB/s on the wire against the server alone.
#
#   benches/s3.sh TREE [RTT_MS]      e.g. benches/s3.sh /work/bench/linux-source-6.1 50
#
# Needs: s3s-fs (ARCA_TEST_S3S_FS or PATH), restic, curl, bc; ARCA=path/to/arca;
# DELAY_PROXY=path (default target/release/examples/delay_proxy: `cargo build --release
# --example delay_proxy`). restic lists packs with an empty `delimiter=` parameter, which
# s3s-fs 0.14.1 takes as a delimiter (AWS ignores it), so `restic check` sees no packs: use an
# s3s-fs with `input.delimiter.as_deref().filter(|d| !d.is_empty())` in list_objects_v2.
set -euo pipefail
TREE=${1:?tree}; RTT=${2:-0}
ARCA=${ARCA:-target/release/arca}
DELAY_PROXY=${DELAY_PROXY:-target/release/examples/delay_proxy}
S3S=${ARCA_TEST_S3S_FS:-s3s-fs}
W=$(mktemp -d /tmp/arca-s3bench.XXXX)
PORT=$((20000 + RANDOM % 20000))
mkdir -p "$W/root/bkt"
"$S3S" --host 127.0.0.1 --port $PORT --access-key k --secret-key secretkey "$W/root" >/dev/null 2>&1 &
SRV=$!
PROXY=
RT=
cleanup() { kill $SRV $PROXY 2>/dev/null || true; rm -rf "$W" ${RT:+"$RT"}; }
trap cleanup EXIT
EP=$PORT
if [ "$RTT" != 0 ]; then
  EP=$((PORT + 1))
  "$DELAY_PROXY" $EP $PORT "$RTT" &
  PROXY=$!
fi
# Until the server (and the proxy) accept connections.
for port in $PORT $EP; do
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.2; done
done
export AWS_ACCESS_KEY_ID=k AWS_SECRET_ACCESS_KEY=secretkey AWS_DEFAULT_REGION=us-east-1
export ARCA_PASSWORD=x RESTIC_PASSWORD=x
A="s3:http://127.0.0.1:$EP/bkt/arca"; R="s3:http://127.0.0.1:$EP/bkt/restic"
t() {
  local s=$(date +%s.%N) e
  "$@" >"$W/out" 2>&1 || { echo "FAILED: $*" >&2; tail -n 20 "$W/out" >&2; exit 1; }
  e=$(echo "$(date +%s.%N) - $s" | bc); echo "  $e s: ${*:1:5}" >&2; echo "$e"
}
$ARCA -r "$A" init --kdf-memory 8 --kdf-iterations 1 >/dev/null
restic -r "$R" init >/dev/null
declare -A T
T[arca_backup]=$(t $ARCA -r "$A" -q backup "$TREE")
T[restic_backup]=$(t restic -r "$R" -q backup "$TREE")
T[arca_rebackup]=$(t $ARCA -r "$A" -q backup "$TREE")
T[restic_rebackup]=$(t restic -r "$R" -q backup "$TREE")
# Restores go to tmpfs when there is one: the store's side is measured, not the disk's writeback
# (which varies 3x between runs of the same restore on this VM).
RT=$(mktemp -d "${RESTORE_DIR:-/dev/shm}/arca-s3bench.XXXX" 2>/dev/null || mktemp -d "$W/restore.XXXX")
T[arca_restore]=$(t $ARCA -r "$A" -q restore latest --target "$RT/ra")
rm -rf "$RT/ra"
T[restic_restore]=$(t restic -r "$R" -q restore latest --target "$RT/rr")
rm -rf "$RT"
T[arca_check]=$(t $ARCA -r "$A" -q check --read-data)
T[restic_check]=$(t restic -r "$R" -q check --read-data)
# What the server alone takes: 64 objects of 16 MiB (restic's and arca's pack size range), 8 at
# a time, PUT then GET with curl (SigV4, unsigned payload), on the same port and latency.
head -c $((16 << 20)) /dev/urandom >"$W/obj"
curl_s3() { curl -sS --fail --aws-sigv4 "aws:amz:us-east-1:s3" --user k:secretkey -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"; }
export -f curl_s3; export W EP
T[server_put]=$(t bash -c 'seq 1 64 | xargs -P 8 -I{} bash -c "curl_s3 -T \$W/obj http://127.0.0.1:\$EP/bkt/alone/{}"')
T[server_get]=$(t bash -c 'seq 1 64 | xargs -P 8 -I{} bash -c "curl_s3 -o /dev/null http://127.0.0.1:\$EP/bkt/alone/{}"')
echo "tree=$TREE rtt=${RTT}ms ($(du -sm "$W/root/bkt/arca" | cut -f1) MiB arca, $(du -sm "$W/root/bkt/restic" | cut -f1) MiB restic)"
for p in backup rebackup restore check; do
  printf '%-9s arca %7.2f s  restic %7.2f s  ratio %.2f\n' $p ${T[arca_$p]} ${T[restic_$p]} $(echo "${T[arca_$p]} / ${T[restic_$p]}" | bc -l)
done
am=$(du -sm "$W/root/bkt/arca" | cut -f1)
printf 'server alone: PUT %.0f MiB/s, GET %.0f MiB/s (1 GiB, 8 at a time); arca moved %.0f MiB/s up in backup, %.0f down in restore, %.0f down in check\n' \
  $(echo "1024 / ${T[server_put]}" | bc -l) $(echo "1024 / ${T[server_get]}" | bc -l) \
  $(echo "$am / ${T[arca_backup]}" | bc -l) $(echo "$am / ${T[arca_restore]}" | bc -l) $(echo "$am / ${T[arca_check]}" | bc -l)
