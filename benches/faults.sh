#!/usr/bin/env bash
# Fault benchmark for parity (format-spec/22-parity.md): how much injected damage `arca repair
# packs` undoes byte-identically, against par2 at the same redundancy, on one repository.
#
#   benches/faults.sh [SRC] [WORKDIR]
#
# SRC (never written): default /work/bench/linux-source-6.1 if present, else the corpus of
# benches/e2e.sh (/tmp/arca-e2e/corpus, or generated under WORKDIR). WORKDIR (default
# /work/bench/faults) holds everything: two repositories, one scratch copy, par2 files, logs;
# it needs about 4 × the repository free. Prints, once: backup wall time with parity on and off
# (target ratio <= 1.1×) and the repository sizes; then per fault class and rate, on a fresh copy
# of the pristine repository (`cp -a`), faults injected by python3 with a fixed seed (the list
# of damaged files goes to WORKDIR/manifest), `arca repair packs` timed, the damaged files
# compared with the pristine ones (`cmp`) and `arca check --read-data`'s exit code; then the
# same injections repaired by `par2 repair` from par2 files (created outside the repository,
# `-B`) at the same redundancy; last, a Markdown summary (also in WORKDIR/summary.md).
# Fault classes (only data/, index/, snapshots/ are damaged, except parity-too):
#   flip:R       R single-bit flips per MiB of packs, uniform over the packs' bytes
#   zero4k:P%    P% of the packs get one zeroed 4 KiB range at a random offset
#   truncate:P%  P% of the packs lose a random tail of 1 B..64 KiB
#   delindex:N   N index files deleted (N = all: every one); if repair packs does not restore
#                them, `arca repair index` runs after it (its own row); delsnap:N the same for
#                snapshot files
#   parity-too:W one pack flipped and its parity file flipped, W = shard (in the recovery
#                shards, laid out as src/format/parity.rs writes them: right after the 64-byte
#                fixed part) or any (anywhere); par2's counterpart flips a bit of its .vol file
# Env: ARCA (binary; default: cargo build --release), RATES ("class:rate ...", default all
# below), ROUNDS (backup timings and seeds per fault, default 1), SEED (default 1), OVERHEAD
# (e.g. 5%, `init --parity`; default the repository default, 5%), PAR2=0 (skip par2),
# INIT_ARGS (more `arca init` options, e.g. "--pack-size 1" for a small test), KEEP=1 (keep
# the repositories and par2 files).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
src=${1:-}
work=${2:-/work/bench/faults}
target=${CARGO_TARGET_DIR:-$root/target}
rounds=${ROUNDS:-1} seed=${SEED:-1} use_par2=${PAR2:-1}
rates=${RATES:-flip:0.01 flip:0.1 flip:1 flip:10 zero4k:1% zero4k:10% zero4k:50% zero4k:100%
truncate:1% truncate:10% truncate:50% truncate:100% delindex:1 delindex:all delsnap:1
parity-too:shard parity-too:any}
if [ -z "${ARCA:-}" ]; then
  cargo build --release --locked --manifest-path "$root/Cargo.toml" --bin arca
  ARCA=$target/release/arca
fi
mkdir -p "$work/logs"
work=$(cd "$work" && pwd)
if [ -z "$src" ]; then
  if [ -d /work/bench/linux-source-6.1 ]; then src=/work/bench/linux-source-6.1
  elif [ -d /tmp/arca-e2e/corpus ]; then src=/tmp/arca-e2e/corpus
  else
    src=$work/corpus
    if [ ! -d "$src" ]; then
      cargo build --release --locked --manifest-path "$root/Cargo.toml" --example gen_corpus
      "$target/release/examples/gen_corpus" "$src"
    fi
  fi
fi
src=$(cd "$src" && pwd)
case $work/ in "$src"/*) echo "WORKDIR must not be inside SRC" >&2; exit 2 ;; esac
if [ "$use_par2" = 1 ] && ! command -v par2 >/dev/null; then echo "no par2: skipped"; use_par2=0; fi
export ARCA_PASSWORD=bench
pristine=$work/repo-on copy=$work/copy par2dir=$work/par2 par2s=$work/par2-scratch
results=$work/results.tsv # case tool round damaged identical check_ok repair_ms note
cleanup() {
  rm -rf "$copy" "$par2s"
  [ -n "${KEEP:-}" ] || rm -rf "$work/repo-on" "$work/repo-off" "$par2dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
now() { date +%s%N; }
median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
size() { du -scb "$@" 2>/dev/null | tail -1 | cut -f1 || true; }
arca() { "$ARCA" -q -r "$@"; }

cat > "$work/inject.py" <<'EOF'
# inject.py REPO CLASS RATE SEED MANIFEST [EXTRA]: damage REPO deterministically; write the
# damaged protected files (relative paths) to MANIFEST, a damaged parity (or EXTRA) file to
# MANIFEST.extra; print a one-line description.
import bisect, os, random, struct, sys
repo, cls, rate, seed, manifest = sys.argv[1:6]
extra = sys.argv[6] if len(sys.argv) > 6 else None
rng = random.Random(f"{seed}:{cls}:{rate}")
def files(d):
    out = []
    for dp, _, fn in os.walk(os.path.join(repo, d)):
        out += [os.path.relpath(os.path.join(dp, f), repo) for f in fn]
    return sorted(out)
packs, indexes, snaps = files("data"), files("index"), files("snapshots")
size = {p: os.path.getsize(os.path.join(repo, p)) for p in packs}
damaged, faults, extra_hit = [], 0, ""
def hit(p):
    if p not in damaged:
        damaged.append(p)
def flip(path, off):
    with open(path, "r+b") as f:
        f.seek(off); b = f.read(1)[0]; f.seek(off); f.write(bytes([b ^ (1 << rng.randrange(8))]))
def count(items):  # "P%" of the items (at least one), "all", or a number
    if rate == "all": return len(items)
    if rate.endswith("%"): return max(1, min(len(items), round(len(items) * float(rate[:-1]) / 100)))
    return min(len(items), int(rate))
if cls == "flip":
    starts, total = [], 0
    for p in packs: starts.append(total); total += size[p]
    n = max(1, round(float(rate) * total / 2**20))
    for g in sorted(rng.sample(range(total), n)):
        i = bisect.bisect_right(starts, g) - 1
        flip(os.path.join(repo, packs[i]), g - starts[i]); hit(packs[i]); faults += 1
elif cls == "zero4k":
    for p in rng.sample(packs, count(packs)):
        path, ln = os.path.join(repo, p), min(4096, size[p])
        with open(path, "r+b") as f:
            for _ in range(16):  # a range that is not already all zeros
                off = rng.randrange(size[p] - ln + 1); f.seek(off)
                if f.read(ln).count(0) < ln: break
            f.seek(off); f.write(bytes(ln))
        hit(p); faults += 1
elif cls == "truncate":
    for p in rng.sample(packs, count(packs)):
        os.truncate(os.path.join(repo, p), size[p] - rng.randint(1, min(65536, size[p] - 1)))
        hit(p); faults += 1
elif cls in ("delindex", "delsnap"):
    items = indexes if cls == "delindex" else snaps
    for p in rng.sample(items, count(items)):
        os.remove(os.path.join(repo, p)); hit(p); faults += 1
elif cls == "parity-too":
    p = rng.choice(packs)
    flip(os.path.join(repo, p), rng.randrange(size[p])); hit(p)
    pid = os.path.basename(p)
    extra_hit = extra or os.path.join("parity", pid[:2], pid)
    path = extra_hit if extra else os.path.join(repo, extra_hit)
    start, end = 0, os.path.getsize(path)
    if rate == "shard" and not extra:  # in the recovery shards: [64, 64 + g·m·S), then the
        with open(path, "rb") as f: h = f.read(64)  # checksum table and its hash (parity.rs)
        assert h[:8] == bytes.fromhex("4152434108010000"), "not a parity file"
        (s,), (n,), (g, m) = struct.unpack_from("<I", h, 12), struct.unpack_from("<Q", h, 48), struct.unpack_from("<II", h, 56)
        assert end == 64 + g * m * s + 16 * (-(-n // s) + g * m) + 32, "unexpected parity file length"
        start, end = 64, 64 + g * m * s
    flip(path, rng.randrange(start, end)); faults += 2
else:
    sys.exit(f"unknown fault class {cls}")
with open(manifest, "w") as f: f.write("".join(p + "\n" for p in damaged))
with open(manifest + ".extra", "w") as f: f.write(extra_hit + "\n" if extra_hit else "")
print(f"{faults} fault(s) in {len(damaged)} file(s)" + (f" + {extra_hit}" if extra_hit else ""))
EOF

echo "source: $src, $(du -sh --apparent-size "$src" | cut -f1), $(find "$src" -type f | wc -l) files"
echo "arca: $ARCA ($("$ARCA" --version)); overhead: ${OVERHEAD:-default}; rounds: $rounds; seed: $seed"
tar cf - -C "$(dirname "$src")" "$(basename "$src")" | cat > /dev/null # warm page cache for both
: > "$work/backup-on.ns"; : > "$work/backup-off.ns"
for ((r = 1; r <= rounds; r++)); do
  for mode in off on; do
    repo=$work/repo-$mode popt=()
    rm -rf "$repo"
    if [ $mode = off ]; then popt=(--parity off); elif [ -n "${OVERHEAD:-}" ]; then popt=(--parity "${OVERHEAD%\%}%"); fi
    # shellcheck disable=SC2086
    arca "$repo" init --kdf-memory 8 --kdf-iterations 1 "${popt[@]}" ${INIT_ARGS:-} > /dev/null
    t=$(now); arca "$repo" backup "$src"; echo $(($(now) - t)) >> "$work/backup-$mode.ns"
  done
done
on_s=$(awk '{print $1 / 1e9}' "$work/backup-on.ns" | median | awk '{printf "%.2f", $1}')
off_s=$(awk '{print $1 / 1e9}' "$work/backup-off.ns" | median | awk '{printf "%.2f", $1}')
ratio=$(awk -v a="$on_s" -v b="$off_s" 'BEGIN {printf "%.3f", a / b}')
prot=$(size "$pristine"/data "$pristine"/index "$pristine"/snapshots)
on_b=$(size "$pristine") off_b=$(size "$work/repo-off") par_b=$(size "$pristine/parity")
par_pct=$(awk -v a="$par_b" -v b="$prot" 'BEGIN {printf "%.2f", 100 * a / b}')
echo "backup (median of $rounds): parity on ${on_s}s, off ${off_s}s, ratio ${ratio}x (target <= 1.1x)"
echo "repository: with parity $on_b B, without $off_b B; parity/ $par_b B = $par_pct% of the protected files ($prot B)"
arca "$pristine" parity status || true
arca "$pristine" check --read-data > "$work/logs/pristine.check" 2>&1 || { echo "pristine check failed" >&2; exit 1; }

par2_line="par2: skipped"
if [ "$use_par2" = 1 ]; then
  pct=${OVERHEAD:-5}; pct=${pct%\%}
  mapfile -t pfiles < <(cd "$pristine" && find data index snapshots -type f | sort)
  # Block size: a multiple of 4 KiB (at least 4 KiB) keeping the source blocks under par2's
  # 32768 (each file takes at least one); recovery blocks: pct% of the source blocks.
  read -r bs nblocks nrec < <(cd "$pristine" && python3 -c '
import math, os, sys
pct, names = float(sys.argv[1]), sys.argv[2:]
sizes = [os.path.getsize(n) for n in names]
assert len(names) < 32000, "too many files for one par2 recovery set"
bs = max(4096, -(-math.ceil(sum(sizes) / (32000 - len(names))) // 4096) * 4096)
blocks = sum(max(1, -(-s // bs)) for s in sizes)
print(bs, blocks, max(1, math.ceil(blocks * pct / 100)))' "$pct" "${pfiles[@]}")
  rm -rf "$par2dir"; mkdir -p "$par2dir"
  t=$(now)
  (cd "$pristine" && par2 create -q -q -s"$bs" -c"$nrec" -n1 -B "$pristine" "$par2dir/repo.par2" -- "${pfiles[@]}")
  p2_s=$(awk -v n=$(($(now) - t)) 'BEGIN {printf "%.2f", n / 1e9}')
  p2_b=$(size "$par2dir")
  p2_pct=$(awk -v a="$p2_b" -v b="$prot" 'BEGIN {printf "%.2f", 100 * a / b}')
  par2_line="par2 -r$pct: create ${p2_s}s, $p2_b B = $p2_pct% of the protected files (block $bs B, $nblocks source + $nrec recovery blocks)"
  echo "$par2_line"
fi

: > "$results"
printf "%-18s %-18s %5s %7s %6s %-5s %8s  %s\n" case tool round damaged ident check repair_s note
# record CASE TOOL ROUND DAMAGED IDENT CHECK_OK MS NOTE
record() {
  printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n" "$@" >> "$results"
  printf "%-18s %-18s %5s %7s %6s %-5s %8.2f  %s\n" "$1" "$2" "$3" "$4" "$5" \
    "$([ "$6" = 1 ] && echo yes || echo no)" "$(awk -v m="$7" 'BEGIN {print m / 1000}')" "$8"
}
# identical: how many files of the manifest are byte-identical to the pristine ones.
identical() {
  local n=0 f
  while read -r f; do if cmp -s "$copy/$f" "$pristine/$f"; then n=$((n + 1)); fi; done < "$work/manifest"
  echo $n
}
checked() { if arca "$copy" check --read-data > "$work/logs/$1.check" 2>&1; then echo 1; else echo 0; fi; }

# run_case TOOL CLASS RATE ROUND: copy, inject, repair with TOOL (arca or par2), measure.
run_case() {
  local tool=$1 cls=$2 rate=$3 r=$4 rc=0 t ms dmg idn ok note="" extra=() log
  log=$work/logs/$tool-$cls-${rate%\%}-r$r
  rm -rf "$copy"; cp -a "$pristine" "$copy"
  if [ "$tool" = par2 ]; then
    rm -rf "$par2s"; cp -a "$par2dir" "$par2s"
    if [ "$cls" = parity-too ]; then extra=("$(ls "$par2s"/repo.vol*.par2)"); fi
  fi
  if ! note=$(python3 "$work/inject.py" "$copy" "$cls" "$rate" "$seed:$r" "$work/manifest" "${extra[@]}" 2> "$log.inject"); then
    echo "$cls:$rate $tool: injection failed: $(tail -1 "$log.inject")"; return
  fi
  dmg=$(wc -l < "$work/manifest")
  t=$(now)
  if [ "$tool" = arca ]; then
    arca "$copy" repair packs > "$log.repair" 2>&1 || rc=$?
  else
    (cd "$copy" && par2 repair -q -q -B "$copy" "$par2s/repo.par2") > "$log.repair" 2>&1 || rc=$?
    find "$copy"/data "$copy"/index "$copy"/snapshots -type f -name '*.[0-9]*' -delete # par2's backups
  fi
  ms=$((($(now) - t) / 1000000))
  idn=$(identical)
  ok=$(checked "${log##*/}")
  note="rc=$rc; $note"
  if [ "$tool" = arca ] && [ -s "$work/manifest.extra" ]; then
    local x; x=$(cat "$work/manifest.extra")
    note="$note; parity file restored: $(cmp -s "$copy/$x" "$pristine/$x" && echo yes || echo no)"
  fi
  record "$cls:$rate" "$tool" "$r" "$dmg" "$idn" "$ok" "$ms" "$note"
  if [ "$tool" = arca ] && [ "$cls" = delindex ] && [ "$idn" -lt "$dmg" ]; then
    rc=0; t=$(now)
    arca "$copy" repair index > "$log.repair-index" 2>&1 || rc=$?
    ms=$((($(now) - t) / 1000000))
    record "$cls:$rate" arca+repair-index "$r" "$dmg" - "$(checked "${log##*/}.ri")" "$ms" "rc=$rc"
  fi
}

for c in $rates; do
  for ((r = 1; r <= rounds; r++)); do
    run_case arca "${c%%:*}" "${c#*:}" "$r"
    if [ "$use_par2" = 1 ]; then run_case par2 "${c%%:*}" "${c#*:}" "$r"; fi
  done
done

{
  echo "Source: $(basename "$src") ($(du -sh --apparent-size "$src" | cut -f1)); $rounds round(s), seed $seed."
  echo
  echo "| | parity on | parity off | ratio |"
  echo "|---|---|---|---|"
  echo "| backup wall time (s) | $on_s | $off_s | ${ratio}× |"
  echo "| repository size (B) | $on_b | $off_b | $(awk -v a="$on_b" -v b="$off_b" 'BEGIN {printf "%.3f", a / b}')× |"
  echo
  echo "arca parity/: $par_b B = $par_pct% of the protected files. $par2_line."
  echo
  echo "| fault | rate | damaged files | arca byte-identical | arca check clean | arca repair (s) | par2 byte-identical | par2 check clean | par2 repair (s) |"
  echo "|---|---|---|---|---|---|---|---|---|"
  awk -F'\t' '
    { k = $1 SUBSEP $2; if (!($1 in first)) { first[$1] = $2; order[++n] = $1 }
      d[k] += $4; i[k] += $5; ok[k] += $6; ms[k] += $7; cnt[k]++ }
    function cells(c, t,   k) {
      k = c SUBSEP t
      if (!(k in cnt)) return "| — | — | —"
      return sprintf("| %s | %d/%d | %.2f", (t == "arca+repair-index") ? "—" : \
        sprintf("%d/%d (%.0f%%)", i[k], d[k], d[k] ? 100 * i[k] / d[k] : 100), ok[k], cnt[k], ms[k] / cnt[k] / 1000)
    }
    END { for (j = 1; j <= n; j++) {
      c = order[j]; split(c, f, ":"); a = c SUBSEP first[c]
      printf "| %s | %s | %g %s %s |\n", f[1], f[2], d[a] / cnt[a], cells(c, "arca"), cells(c, "par2")
      if ((c SUBSEP "arca+repair-index") in cnt)
        printf "| %s + repair index | %s | %g %s %s |\n", f[1], f[2], d[a] / cnt[a], cells(c, "arca+repair-index"), "| — | — | —"
    } }' "$results"
} > "$work/summary.md"
echo; cat "$work/summary.md"
