#!/usr/bin/env bash
# serve_load.sh: load test of `pdr serve` with wrk on loopback. Prints, per number of
# connections (1, 4, 16 by default): queries/s, p50 and p99 latency, errors (socket errors and
# 4xx/5xx replies), and the server's RSS before and after all the runs.
#
#   bench/serve_load.sh [TARGET.fasta | DBDIR] [QUERIES.fasta]
#
# TARGET.fasta is made into a database under bench/out/ once (reused on later runs); the default
# is data/demo/targets.fasta (1,049 proteins); train/work/corpus.fasta is the 516k-protein corpus.
# Each request is one query of 300-500 residues, drawn in turn from QUERIES.fasta (default:
# train/work/heldout.fasta when present, else the target FASTA), POSTed as text/x-fasta to
# /v1/search?k=10 over keep-alive connections.
#
# Env: PDR (binary, default build/pdr), DURATION (seconds per run, default 60), CONNECTIONS
#      (default "1 4 16"), THREADS (server worker threads, default: all cores), MODEL (for a new
#      database, default: pdr's default model), INDEX (FAISS factory string for a new database,
#      e.g. IVF1024,Flat; default: pdr makedb's choice), SERVE_ARGS (more `pdr serve` options, e.g.
#      "--nprobe 16"), MAX_QUERIES (distinct queries, default 2000).
# A soak test is the same run repeated, one row (and one p99, one RSS) per run:
#      DURATION=60 CONNECTIONS="$(printf '16 %.0s' $(seq 10))" bench/serve_load.sh DBDIR
# The server runs with -q (no request log) so that logging does not count against it; wrk and the
# server share the machine, so on a small machine wrk's own CPU use lowers the figures.
set -euo pipefail
cd "$(dirname "$0")/.."

PDR=${PDR:-build/pdr}
DURATION=${DURATION:-60}
CONNECTIONS=${CONNECTIONS:-1 4 16}
THREADS=${THREADS:-$(nproc)}
MAX_QUERIES=${MAX_QUERIES:-2000}
target=${1:-data/demo/targets.fasta}
queries=${2:-}
command -v wrk >/dev/null || { echo "serve_load: wrk not found (apt-get install wrk)" >&2; exit 2; }
[ -x "$PDR" ] || { echo "serve_load: $PDR not found: build first or set PDR" >&2; exit 2; }

mkdir -p bench/out
if [ -d "$target" ]; then
    db=$target
    [ -n "$queries" ] || queries=data/demo/targets.fasta
else
    name=$(basename "$target")
    name=${name%%.*}
    db=bench/out/serve_db_$name${INDEX:+_${INDEX//[^A-Za-z0-9]/_}}
    if [ ! -s "$db/calibration.txt" ]; then
        echo "== pdr makedb $target $db ${MODEL:+--model $MODEL} ${INDEX:+--index $INDEX}"
        "$PDR" makedb "$target" "$db" ${MODEL:+--model "$MODEL"} ${INDEX:+--index "$INDEX"}
    fi
    if [ -z "$queries" ]; then
        if [ -s train/work/heldout.fasta ]; then queries=train/work/heldout.fasta; else queries=$target; fi
    fi
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/pdr-serve-load.XXXXXX")
server=
cleanup() {
    [ -n "$server" ] && kill -TERM "$server" 2>/dev/null && wait "$server" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# Queries of 300-500 residues, one "id<TAB>sequence" line each, for the wrk script.
awk -v max="$MAX_QUERIES" '
    function flush() { if (id != "" && length(seq) >= 300 && length(seq) <= 500 && n < max) { print id "\t" seq; n++ } }
    /^>/ { flush(); id = substr($1, 2); seq = ""; next }
    { gsub(/[ \t\r]/, ""); seq = seq $0 }
    END { flush() }' "$queries" >"$work/queries.tsv"
n_queries=$(wc -l <"$work/queries.tsv")
[ "$n_queries" -gt 0 ] || { echo "serve_load: no 300-500 aa records in $queries" >&2; exit 1; }

cat >"$work/search.lua" <<'EOF'
-- One query per request, taken in turn from PDR_BENCH_QUERIES ("id<TAB>sequence" lines); each
-- wrk thread starts at a different place so that threads do not send the same query at once.
local queries = {}
for line in io.lines(os.getenv("PDR_BENCH_QUERIES")) do
  local id, seq = line:match("^(%S+)\t(%S+)$")
  if id then queries[#queries + 1] = ">" .. id .. "\n" .. seq .. "\n" end
end
local next_query = 0
local thread_no = 0
function setup(thread)
  thread:set("start", thread_no * 997)
  thread_no = thread_no + 1
end
function init(args)
  next_query = (start or 0) % #queries
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "text/x-fasta"
function request()
  next_query = next_query % #queries + 1
  return wrk.format(nil, nil, nil, queries[next_query])
end
-- errors.status counts replies with status >= 400 (no response() hook: it would cost a Lua call
-- per reply).
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %.1f %.2f %.2f %d %d %d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.connect + e.read + e.write + e.timeout, e.status, summary.requests))
end
EOF

# shellcheck disable=SC2086 # SERVE_ARGS is a list of options
"$PDR" serve "$db" --port 0 --threads "$THREADS" -q ${SERVE_ARGS:-} 2>"$work/serve.err" &
server=$!
port=
for _ in $(seq 1 3000); do
    [ -z "$port" ] && port=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' "$work/serve.err" 2>/dev/null | head -1)
    [ -n "$port" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v1/health")" = 200 ] && break
    kill -0 "$server" 2>/dev/null || { cat "$work/serve.err" >&2; exit 1; }
    sleep 0.1
done
url="http://127.0.0.1:$port/v1/search?k=10"
rss() { awk '/^VmRSS/ {print $2 / 1024}' "/proc/$server/status"; }
# One warm-up request per query shape so that first-touch costs are not in the first run.
head -1 "$work/queries.tsv" | awk -F'\t' '{print ">" $1 "\n" $2}' |
    curl -s -o /dev/null -H 'Content-Type: text/x-fasta' --data-binary @- "$url"
rss_before=$(rss)

echo "== pdr serve $db --threads $THREADS -q ${SERVE_ARGS:-}   ($(grep -o 'ready: .*' "$work/serve.err" | cut -d';' -f1))"
echo "== $n_queries distinct queries of 300-500 aa from $queries, k=10, ${DURATION}s per run"
printf '\n| connections | q/s | p50 ms | p99 ms | socket errors | 4xx/5xx | requests | server RSS MiB after |\n|---|---|---|---|---|---|---|---|\n'
for c in $CONNECTIONS; do
    t=$((c < 2 ? c : 2))
    line=$(PDR_BENCH_QUERIES="$work/queries.tsv" wrk -t "$t" -c "$c" -d "${DURATION}s" --timeout 10s \
        -s "$work/search.lua" "$url" | grep '^RESULT')
    read -r _ qps p50 p99 errs bad n <<<"$line"
    printf '| %d | %s | %s | %s | %s | %s | %s | %.1f |\n' "$c" "$qps" "$p50" "$p99" "$errs" "$bad" "$n" "$(rss)"
    echo "   (wrk -t $t -c $c -d ${DURATION}s --timeout 10s -s search.lua '$url')" >&2
done
rss_after=$(rss)
printf '\nserver RSS: %.1f MiB before, %.1f MiB after the runs\n' "$rss_before" "$rss_after"
curl -s "http://127.0.0.1:$port/metrics" | grep -E '^pdr_http_requests_total\{endpoint="search"|^pdr_queries_total' | sed 's/^/  /'
