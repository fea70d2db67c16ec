#!/usr/bin/env bash
# Backup, restore and `check --read-data` of one tree through each remote backend, against the server alone moving
# the same number of bytes, and against restic on the same server where restic 0.14 can reach
# it; optionally with added round-trip latency (examples/delay_proxy in front of the server's
# port: half the RTT each way, one RTT per new connection).
#
#   benches/backends.sh KIND TREE [RTT_MS]     KIND: sftp | rclone | azure   (S3: benches/s3.sh)
#
# - sftp:   a private OpenSSH sshd on a loopback port, generated keys; arca and restic both run the
#           system ssh reading the same ssh_config; the server alone is 8 OpenSSH `sftp` sessions
#           putting, then getting, 8 files of 16 MiB each.
# - rclone: a local rclone remote (rclone serves it over loopback WebDAV for arca, over its stdio
#           REST protocol for restic); no latency can be added between them (no network hop is
#           there to slow), so RTT must be 0; the server alone is `rclone copy --transfers 8`.
# - azure:  Azurite (ARCA_TEST_AZURITE, else azurite-blob on PATH, else target/azurite);
#           restic 0.14 cannot be pointed at an emulator's endpoint, so only arca is timed; the
#           server alone is `rclone copy --transfers 8` to Azurite's blob endpoint.
# Restores go to /dev/shm when there is one (the store's side is measured, not the disk's
# writeback). Needs: ARCA (default target/release/arca), restic, rclone, bc, DELAY_PROXY for RTT.
set -euo pipefail
KIND=${1:?kind: sftp, rclone or azure}; TREE=${2:?tree}; RTT=${3:-0}
ARCA=$(realpath "${ARCA:-target/release/arca}")
DELAY_PROXY=$(realpath "${DELAY_PROXY:-target/release/examples/delay_proxy}")
W=$(mktemp -d /tmp/arca-bebench.XXXX)
RT=$(mktemp -d "${RESTORE_DIR:-/dev/shm}/arca-bebench.XXXX" 2>/dev/null || mktemp -d "$W/restore.XXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$W" "$RT"; }
trap cleanup EXIT
export ARCA_PASSWORD=x RESTIC_PASSWORD=x
free_port() { echo $((20000 + RANDOM % 20000)); }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }
# EP: the port clients use, the server's or a delaying proxy's in front of it (not run in a
# command substitution, which would wait for the proxy's output to end).
front() {
  EP=$1
  [ "$RTT" = 0 ] && return
  EP=$(( $1 + 1 ))
  "$DELAY_PROXY" "$EP" "$1" "$RTT" >/dev/null 2>&1 & PIDS+=($!)
  wait_port "$EP"
}
t() {
  local s=$(date +%s.%N) e
  "$@" >"$W/out" 2>&1 || { echo "FAILED: $*" >&2; tail -n 20 "$W/out" >&2; exit 1; }
  e=$(echo "$(date +%s.%N) - $s" | bc); echo "  $e s: ${*:1:6}" >&2; echo "$e"
}
# 64 files of 16 MiB for the server-alone transfers.
mkdir -p "$W/alone"
head -c $((16 << 20)) /dev/urandom >"$W/alone/0"
for i in $(seq 1 63); do ln "$W/alone/0" "$W/alone/$i"; done

case $KIND in
sftp)
  d=$W/ssh; mkdir -p "$d/repo"
  ssh-keygen -q -t ed25519 -N '' -f "$d/host"; ssh-keygen -q -t ed25519 -N '' -f "$d/client"
  cp "$d/client.pub" "$d/authorized_keys"
  echo "bench $(cat "$d/host.pub")" >"$d/known_hosts"
  port=$(free_port)
  printf 'Port %s\nListenAddress 127.0.0.1\nHostKey %s/host\nAuthorizedKeysFile %s/authorized_keys\nPidFile none\nStrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nPermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\nLogLevel ERROR\n' \
    "$port" "$d" "$d" >"$d/sshd_config"
  mkdir -p /run/sshd 2>/dev/null || true
  /usr/sbin/sshd -D -e -f "$d/sshd_config" 2>/dev/null & PIDS+=($!)
  wait_port "$port"; front "$port"; ep=$EP
  printf 'Host bench\n  HostName 127.0.0.1\n  Port %s\n  User %s\n  IdentityFile %s/client\n  IdentitiesOnly yes\n  HostKeyAlias bench\n  UserKnownHostsFile %s/known_hosts\n  GlobalKnownHostsFile /dev/null\n  BatchMode yes\n' \
    "$ep" "$(id -un)" "$d" "$d" >"$d/ssh_config"
  mkdir -p "$d/bin"; printf '#!/bin/sh\nexec /usr/bin/ssh -F %s/ssh_config "$@"\n' "$d" >"$d/bin/ssh"; chmod +x "$d/bin/ssh"
  export PATH="$d/bin:$PATH"
  A="sftp:bench:$d/repo/arca"; R="sftp:bench:$d/repo/restic"
  RESTIC=(restic -o "sftp.command=ssh bench -s sftp")
  ON_DISK=$d/repo
  alone_put() { seq 0 7 | xargs -P 8 -I{} sh -c "for j in 0 1 2 3 4 5 6 7; do echo \"put $W/alone/\$((8*{}+j)) $d/repo/alone-\$((8*{}+j))\"; done | sftp -F $d/ssh_config -q -b - bench >/dev/null"; }
  alone_get() { seq 0 7 | xargs -P 8 -I{} sh -c "for j in 0 1 2 3 4 5 6 7; do echo \"get $d/repo/alone-\$((8*{}+j)) /dev/null\"; done | sftp -F $d/ssh_config -q -b - bench >/dev/null"; }
  ;;
rclone)
  [ "$RTT" = 0 ] || { echo "rclone: a local remote has no network hop to delay; use RTT 0" >&2; exit 2; }
  export RCLONE_CONFIG=$W/rclone.conf; : >"$RCLONE_CONFIG"
  mkdir -p "$W/rc"
  A="rclone:$W/rc/arca"; R="rclone:$W/rc/restic"
  RESTIC=(restic)
  ON_DISK=$W/rc
  alone_put() { rclone copy --transfers 8 "$W/alone" "$W/rc/alone"; }
  alone_get() { rclone copy --transfers 8 "$W/rc/alone" "$W/back"; rm -rf "$W/back"; }
  ;;
azure)
  az=${ARCA_TEST_AZURITE:-$(command -v azurite-blob || echo target/azurite/node_modules/.bin/azurite-blob)}
  # rclone (the server-alone client) reaches an emulator only at Azurite's default port 10000:
  # Azurite there, or the delaying proxy there in front of it.
  mkdir -p "$W/azurite"
  if [ "$RTT" = 0 ]; then port=10000; else port=$(free_port); fi
  "$az" --blobHost 127.0.0.1 --blobPort "$port" --silent --skipApiVersionCheck --location "$W/azurite" >/dev/null 2>&1 & PIDS+=($!)
  wait_port "$port"; ep=$port
  if [ "$RTT" != 0 ]; then
    "$DELAY_PROXY" 10000 "$port" "$RTT" >/dev/null 2>&1 & PIDS+=($!)
    wait_port 10000; ep=10000
  fi
  export AZURE_ACCOUNT_NAME=devstoreaccount1
  export AZURE_ACCOUNT_KEY=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==
  export AZURE_ENDPOINT=http://127.0.0.1:$ep/devstoreaccount1
  A="azure:bench/arca"; R=
  ON_DISK=$W/azurite
  # The server alone: curl with Shared Key signatures (rclone 1.60 cannot reach an emulator).
  az_curl() { # METHOD BLOB [FILE]
    local len= date sts sig; date=$(LC_ALL=C date -u '+%a, %d %b %Y %H:%M:%S GMT')
    [ -n "${3:-}" ] && len=$(stat -c %s "$3")
    local hdrs="x-ms-date:$date\nx-ms-version:2021-08-06"
    [ "$1" = PUT ] && hdrs="x-ms-blob-type:BlockBlob\n$hdrs"
    sts="$1\n\n\n$len\n\n\n\n\n\n\n\n\n$hdrs\n/$AZURE_ACCOUNT_NAME/$AZURE_ACCOUNT_NAME/$2"
    sig=$(printf "$sts" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$(echo "$AZURE_ACCOUNT_KEY" | base64 -d | od -An -vtx1 | tr -d ' \n')" -binary | base64 -w0)
    local args=(-sS --fail -X "$1" -H "x-ms-date: $date" -H "x-ms-version: 2021-08-06" -H "Authorization: SharedKey $AZURE_ACCOUNT_NAME:$sig")
    if [ "$1" = PUT ]; then args+=(-H "x-ms-blob-type: BlockBlob" -H "Content-Type:" --data-binary "@$3"); else args+=(-o /dev/null); fi
    curl "${args[@]}" "$AZURE_ENDPOINT/$2"
  }
  export -f az_curl; export W
  alone_put() { seq 0 63 | xargs -P 8 -I{} bash -c 'az_curl PUT bench/alone-{} $W/alone/{}'; }
  alone_get() { seq 0 63 | xargs -P 8 -I{} bash -c 'az_curl GET bench/alone-{}'; }
  ;;
*) echo "unknown kind $KIND" >&2; exit 2 ;;
esac

"$ARCA" -r "$A" init --kdf-memory 8 --kdf-iterations 1 >/dev/null
declare -A T
T[arca_backup]=$(t "$ARCA" -r "$A" -q backup "$TREE")
T[arca_restore]=$(t "$ARCA" -r "$A" -q restore latest --target "$RT/a")
rm -rf "$RT/a"
T[arca_check]=$(t "$ARCA" -r "$A" -q check --read-data)
if [ -n "$R" ]; then
  "${RESTIC[@]}" -r "$R" init >/dev/null
  T[restic_backup]=$(t "${RESTIC[@]}" -r "$R" -q backup "$TREE")
  T[restic_restore]=$(t "${RESTIC[@]}" -r "$R" -q restore latest --target "$RT/r")
  rm -rf "$RT/r"
  T[restic_check]=$(t "${RESTIC[@]}" -r "$R" -q check --read-data)
fi
T[alone_put]=$(t alone_put)
T[alone_get]=$(t alone_get)
size=$(du -sm "$TREE" | cut -f1)
echo "$KIND rtt=${RTT}ms tree=$TREE ($size MiB; stored: $(du -sm "$ON_DISK" | cut -f1) MiB with the 1 GiB of the server-alone run)"
row() { printf '%-8s arca %7.2f s (%4.0f MiB/s)' "$1" "${T[arca_$1]}" "$(echo "$size / ${T[arca_$1]}" | bc -l)"
  if [ -n "${T[restic_$1]:-}" ]; then printf '   restic %7.2f s   ratio %.2f' "${T[restic_$1]}" "$(echo "${T[arca_$1]} / ${T[restic_$1]}" | bc -l)"; fi
  echo; }
row backup; row restore; row check
printf 'server alone: put %.0f MiB/s, get %.0f MiB/s (1 GiB in 16 MiB files, 8 at a time)\n' \
  "$(echo "1024 / ${T[alone_put]}" | bc -l)" "$(echo "1024 / ${T[alone_get]}" | bc -l)"
