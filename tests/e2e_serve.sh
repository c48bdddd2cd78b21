#!/usr/bin/env bash
# e2e_serve.sh: the real `pdr serve` binary on a database made by the real `pdr makedb` from
# data/demo/targets.fasta, talked to with curl: every endpoint, the client errors, agreement with
# `pdr search`, concurrent clients, the request log, a bearer token, a clean stop on SIGTERM
# (and SIGINT) with a slow request in flight that must still get its answer, and SIGHUP's reload.
# Env: PDR (binary), PDR_DATA (data dir), PDR_TMP (scratch). Ends with "N passed, N failed".
set -u
PDR=${PDR:-build/pdr}
DATA=${PDR_DATA:-data}
# The kmer3 baseline keeps the database build fast under sanitizers; the service code path is the
# same for every model. PDR_E2E_MODEL=data/pdr_cnn_v1.h5 runs it with the trained model.
MODEL=${PDR_E2E_MODEL:-kmer3}
T=$(mktemp -d "${PDR_TMP:-/tmp}/e2e_serve.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { if eval "$2"; then ok; else bad "$1"; fi; }
PY=/usr/bin/python3

# Start `pdr serve DB --port 0 ARGS...` with stderr in $1; sets $pid and $port once /v1/health
# answers 200 (or fails the test after 60 s).
start_server() {
    local log=$1
    shift
    "$PDR" serve "${SERVE_DB:-$T/db}" --port 0 --threads 2 "$@" 2>"$log" &
    pid=$!
    pids+=("$pid")
    port=
    for _ in $(seq 1 600); do
        [ -z "$port" ] && port=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' "$log" 2>/dev/null | head -1)
        if [ -n "$port" ] && [ "$(curl -s -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v1/health")" = 200 ]; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "server did not come up (port '$port', pid $pid $(kill -0 "$pid" 2>/dev/null && echo alive || echo gone)):" >&2
    cat "$log" >&2
    [ -n "$port" ] && curl -sv -m 5 "http://127.0.0.1:$port/v1/health" >&2 2>&1 | tail -5 >&2
    return 1
}

# curl helper: prints the status code, body to $T/body, headers to $T/head.
call() { curl -s -o "$T/body" -D "$T/head" -w '%{http_code}' "$@"; }
# The error code of the JSON error body in $T/body.
err_code() { $PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["error"]["code"])' "$T/body" 2>/dev/null; }

# --- database and usage errors
"$PDR" makedb "$DATA/demo/targets.fasta" "$T/db" --model "$MODEL" --threads 2 2>"$T/makedb.err"
check "makedb exits 0" "[ $? -eq 0 ]"
"$PDR" serve >/dev/null 2>&1
check "serve without DBDIR is a usage error (2)" "[ $? -eq 2 ]"
"$PDR" serve "$T/db" --port 70000 >/dev/null 2>&1
check "bad port is a usage error (2)" "[ $? -eq 2 ]"
"$PDR" serve --help | grep -q 'POST /v1/search'
check "--help lists the endpoints" "[ $? -eq 0 ]"
"$PDR" serve "$T/nodb" --port 0 2>"$T/nodb.err"
check "missing database exits 1" "[ $? -eq 1 ]"
check "missing database is named" "grep -q 'nodb' '$T/nodb.err'"

start_server "$T/serve.err" || { echo "0 passed, 1 failed"; exit 1; }
base="http://127.0.0.1:$port"

# --- GET endpoints
check "health 200" "[ \"\$(call $base/v1/health)\" = 200 ] && grep -q '\"database_loaded\":true' '$T/body'"
check "info 200 with size and model" "[ \"\$(call $base/v1/info)\" = 200 ] && grep -q '\"proteins\":1049' '$T/body' && grep -q '\"dim\":' '$T/body'"
check "info: 50 candidates aligned per query" "grep -q '\"align\":50' '$T/body'"
check "info: not an expanded database" "grep -q '\"expanded\":false' '$T/body'"
check "Host: another name 403 on 127.0.0.1 (DNS rebinding)" "[ \"\$(call -H 'Host: evil.example:8080' $base/v1/health)\" = 403 ] && [ \"\$(err_code)\" = host_not_allowed ]"
check "Host: an IP address 200" "[ \"\$(call -H 'Host: 127.0.0.1' $base/v1/health)\" = 200 ]"
check "CORS off by default: an Origin gets no Access-Control-* header" "[ \"\$(call -H 'Origin: http://localhost:8888' $base/v1/health)\" = 200 ] && ! grep -qi '^access-control-' '$T/head'"
check "CORS off by default: OPTIONS 405 with Allow" "[ \"\$(call -X OPTIONS -H 'Origin: http://localhost:8888' -H 'Access-Control-Request-Method: POST' $base/v1/search)\" = 405 ] && grep -qi '^allow: POST' '$T/head' && ! grep -qi '^access-control-' '$T/head'"
# what clients write: Python's urlencode gives expand=True, scripts leave empty pairs
check "expand=True is read as true (400 not_expanded here, not bad_expand)" "[ \"\$(call -H 'Content-Type: text/x-fasta' --data-binary @$DATA/demo/query.fasta '$base/v1/search?expand=True')\" = 400 ] && [ \"\$(err_code)\" = not_expanded ]"
check "empty query-string pairs are ignored" "[ \"\$(call -H 'Content-Type: text/x-fasta' --data-binary @$DATA/demo/query.fasta '$base/v1/search?&k=2&&format=tsv')\" = 200 ] && [ \$(wc -l <'$T/body') -eq 6 ]"
check "page 200 html" "[ \"\$(call $base/)\" = 200 ] && grep -qi 'content-type: text/html' '$T/head' && grep -q '<textarea' '$T/body'"
check "openapi is JSON with the paths" "[ \"\$(call $base/openapi.json)\" = 200 ] && $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); assert {\"/v1/search\",\"/v1/embed\",\"/v1/health\",\"/v1/info\",\"/metrics\",\"/\",\"/openapi.json\"} <= set(d[\"paths\"])' '$T/body'"
# a valid OpenAPI 3.0 document (where python3-openapi-spec-validator is installed): 3.1's numeric
# exclusiveMinimum once made the whole document invalid for Swagger UI and code generators
if $PY -c 'import openapi_spec_validator' 2>/dev/null; then
    check "openapi validates as OpenAPI 3.0" "$PY -c 'import json,sys; from openapi_spec_validator import validate; validate(json.load(open(sys.argv[1])))' '$T/body'"
fi

# --- search: same hits as `pdr search`, JSON well formed
"$PDR" search "$T/db" "$DATA/demo/query.fasta" "$T/cli.tsv" -k 5 2>/dev/null
code=$(call -H 'Content-Type: text/x-fasta' --data-binary @"$DATA/demo/query.fasta" "$base/v1/search?k=5&format=tsv")
check "search tsv 200" "[ $code = 200 ]"
check "search tsv is byte-identical to pdr search" "cmp -s '$T/body' '$T/cli.tsv'"
"$PDR" search "$T/db" "$DATA/demo/query.fasta" "$T/cli_b6.tsv" -k 15 --format blast6 2>/dev/null
code=$(call -H 'Content-Type: text/x-fasta' --data-binary @"$DATA/demo/query.fasta" "$base/v1/search?k=15&format=blast6")
check "search blast6 (k above --align: all aligned) is byte-identical to pdr search --format blast6" "[ $code = 200 ] && [ \$(wc -l <'$T/body') -eq 45 ] && cmp -s '$T/body' '$T/cli_b6.tsv'"
code=$(call -H 'Content-Type: text/x-fasta' --data-binary @"$DATA/demo/query.fasta" "$base/v1/search?k=5")
check "search json 200" "[ $code = 200 ]"
check "search json: 3 queries in order, 5 ranked hits each, aligned, E-values ascending" "$PY - '$T/body' <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
assert [r['query'] for r in d['results']] == ['Q00356', 'A0Q3L2', 'Q8YSI5'], d['results']
for r in d['results']:
    assert [h['rank'] for h in r['hits']] == [1, 2, 3, 4, 5]
    e = [h['evalue'] for h in r['hits']]
    assert e == sorted(e)
    assert all(h['bits'] > 0 for h in r['hits'])
assert d['took_ms'] >= 0 and d['model'] and d['database']
EOF"
check "json top hits equal the TSV's" "[ \"\$($PY -c 'import json,sys; d=json.load(open(sys.argv[1])); print(\" \".join(r[\"query\"]+\":\"+r[\"hits\"][0][\"target\"] for r in d[\"results\"]))' '$T/body')\" = \"\$(awk -F'\t' '\$5==1{printf \"%s%s:%s\", (n++?\" \":\"\"), \$1, \$2}' '$T/cli.tsv')\" ]"
code=$(call -H 'Content-Type: application/json' -d '{"fasta": ">j1\nMKVLAAGIVGLLLAQ\n>j2\nACDEFGHIKLMNPQRSTVWY", "k": 2, "min_score": 0.0}' "$base/v1/search")
check "search with a JSON body" "[ $code = 200 ] && $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); assert [len(r[\"hits\"]) for r in d[\"results\"]]==[2,2]' '$T/body'"

# --- embed
code=$(call -H 'Content-Type: text/x-fasta' --data-binary @"$DATA/demo/query.fasta" "$base/v1/embed")
check "embed: 3 unit vectors of dim D" "[ $code = 200 ] && $PY -c '
import json, sys, math
d = json.load(open(sys.argv[1]))
assert [e[\"id\"] for e in d[\"embeddings\"]] == [\"Q00356\", \"A0Q3L2\", \"Q8YSI5\"]
for e in d[\"embeddings\"]:
    assert len(e[\"vector\"]) == d[\"dim\"]
    assert abs(math.sqrt(sum(x * x for x in e[\"vector\"])) - 1) < 1e-5
' '$T/body'"

# --- client errors: 4xx with a JSON error naming the problem, never 5xx
check "empty body 400" "[ \"\$(call -H 'Content-Type: text/x-fasta' --data-binary '' $base/v1/search)\" = 400 ] && [ \"\$(err_code)\" = empty_body ]"
printf '>good\nMKV\n>bad_rec\nMK9V\n' >"$T/bad.fa"
check "malformed FASTA 400 naming record and id" "[ \"\$(call -H 'Content-Type: text/x-fasta' --data-binary @$T/bad.fa $base/v1/search)\" = 400 ] && [ \"\$(err_code)\" = invalid_fasta ] && grep -q 'record 2 (bad_rec)' '$T/body'"
{ printf '>big\n'; head -c 2000000 /dev/zero | tr '\0' 'A'; } >"$T/big.fa"
check "2 MB body 413" "[ \"\$(call -H 'Content-Type: text/x-fasta' --data-binary @$T/big.fa $base/v1/search)\" = 413 ] && [ \"\$(err_code)\" = body_too_large ]"
# chunked, 6 MB (past 4x the limit, where the connection used to be dropped): read, then refused
$PY -c "print(('>s\n' + 'A' * 300 + '\n') * 20000)" >"$T/big6.fa"
check "6 MB chunked body 413" "[ \"\$(call -H 'Content-Type: text/x-fasta' -H 'Transfer-Encoding: chunked' --data-binary @$T/big6.fa $base/v1/search)\" = 413 ] && [ \"\$(err_code)\" = body_too_large ]"
check "k with an encoded NUL 400" "[ \"\$(call -H 'Content-Type: text/x-fasta' --data-binary @$DATA/demo/query.fasta '$base/v1/search?k=5%00junk')\" = 400 ] && [ \"\$(err_code)\" = bad_k ]"
check "format with an encoded NUL 400" "[ \"\$(call -H 'Content-Type: text/x-fasta' --data-binary @$DATA/demo/query.fasta '$base/v1/search?format=tsv%00x')\" = 400 ] && [ \"\$(err_code)\" = bad_format ]"
for i in $(seq 1 101); do printf '>q%d\nMKVLAAGIVG\n' "$i"; done >"$T/many.fa"
check "101 queries 400" "[ \"\$(call -H 'Content-Type: text/x-fasta' --data-binary @$T/many.fa $base/v1/search)\" = 400 ] && [ \"\$(err_code)\" = too_many_queries ]"
{ printf '>long1\n'; head -c 10001 /dev/zero | tr '\0' 'M'; echo; } >"$T/long.fa"
check "10,001 aa 400" "[ \"\$(call -H 'Content-Type: text/x-fasta' --data-binary @$T/long.fa $base/v1/search)\" = 400 ] && [ \"\$(err_code)\" = sequence_too_long ] && grep -q 'long1' '$T/body'"
check "unknown JSON field 400" "[ \"\$(call -H 'Content-Type: application/json' -d '{\"fasta\":\">a\\nMKV\",\"topk\":3}' $base/v1/search)\" = 400 ] && [ \"\$(err_code)\" = unknown_field ]"
check "bad k 400" "[ \"\$(call -H 'Content-Type: text/x-fasta' --data-binary @$DATA/demo/query.fasta '$base/v1/search?k=0')\" = 400 ] && [ \"\$(err_code)\" = bad_k ]"
check "wrong method 405" "[ \"\$(call $base/v1/search)\" = 405 ] && grep -qi '^allow: POST' '$T/head'"
check "unknown path 404" "[ \"\$(call $base/v1/nothing)\" = 404 ] && [ \"\$(err_code)\" = not_found ]"
check "form content type 415" "[ \"\$(call --data-binary @$DATA/demo/query.fasta $base/v1/search)\" = 415 ] && [ \"\$(err_code)\" = unsupported_media_type ]"

# --- concurrent clients all answered
for i in $(seq 1 8); do
    curl -s -o "$T/par$i" -w '%{http_code}\n' -H 'Content-Type: text/x-fasta' --data-binary @"$DATA/demo/query.fasta" \
        "$base/v1/search?k=5&format=tsv" >"$T/par$i.code" &
done
wait_ok=1
for i in $(seq 1 8); do
    while [ ! -s "$T/par$i.code" ]; do sleep 0.05; done
done
sleep 0.2
for i in $(seq 1 8); do
    [ "$(cat "$T/par$i.code")" = 200 ] && cmp -s "$T/par$i" "$T/cli.tsv" || wait_ok=0
done
check "8 concurrent searches: all 200 and identical to pdr search" "[ $wait_ok = 1 ]"

# --- a request whose client goes away before the reply; a reply libmicrohttpd makes itself (505)
# (Python, not bash's /dev/tcp: a write racing the server's close must not SIGPIPE the script)
$PY - "$port" >"$T/h2.reply" <<'EOF'
import socket, sys, time
port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(b"POST /v1/search HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/x-fasta\r\nContent-Length: 100\r\n\r\n>gone\nMKV")
time.sleep(0.2)
s.close()
s = socket.create_connection(("127.0.0.1", port), timeout=10)
try:
    s.sendall(b"GET / HTTP/2.0\r\nHost: localhost\r\n\r\n")
except OSError:
    pass
print(s.recv(64).split(b"\r\n")[0].decode())
s.close()
EOF
check "HTTP/2.0 request line: libmicrohttpd's 505" "grep -q '^HTTP/1.1 505' '$T/h2.reply'"
sleep 0.3

# --- metrics and request log
call "$base/metrics" >/dev/null
check "metrics count searches by status" "grep -Eq '^pdr_http_requests_total\{endpoint=\"search\",code=\"200\"\} [0-9]+' '$T/body' && grep -Eq '^pdr_http_requests_total\{endpoint=\"search\",code=\"413\"\} 2$' '$T/body'"
check "metrics count the request closed before its reply" "grep -Eq '^pdr_http_requests_closed_total\{endpoint=\"search\"\} 1$' '$T/body'"
check "metrics count connections without a request (the 505)" "grep -Eq '^pdr_http_connections_without_request_total [1-9]' '$T/body' && grep -Eq '^pdr_http_connections_total [1-9][0-9]' '$T/body'"
check "metrics are valid Prometheus text" "$PY - '$T/body' <<'EOF'
import re, sys
declared = set()
for line in open(sys.argv[1]).read().splitlines():
    m = re.match(r'# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$', line)
    if m:
        declared.add(m.group(1))
        continue
    if line.startswith('# HELP '):
        continue
    m = re.match(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-z_]+=\"[^\"]*\"(,[a-z_]+=\"[^\"]*\")*\})? (\S+)$', line)
    assert m, line
    float(m.group(4))
    name = re.sub(r'_(bucket|sum|count)$', '', m.group(1))
    assert m.group(1) in declared or name in declared, line
EOF"
check "metrics have the latency histogram and work counters" "grep -q '^pdr_http_request_duration_seconds_bucket{le=\"+Inf\"}' '$T/body' && grep -Eq '^pdr_queries_total [1-9]' '$T/body' && grep -Eq '^pdr_residues_embedded_total [1-9]' '$T/body'"
check "log: one line per request with method, path, status, ms, queries" "grep -Eq 'POST /v1/search 200 [0-9.]+ms queries=3$' '$T/serve.err' && grep -Eq 'GET /v1/nothing 404 [0-9.]+ms queries=0$' '$T/serve.err'"
check "log: the closed request as status 0" "grep -Eq 'POST /v1/search 0 [0-9.]+ms queries=0 \(connection closed before the reply was sent\)$' '$T/serve.err'"

# --- busy port
"$PDR" serve "$T/db" --port "$port" 2>"$T/busy.err"
check "a busy port exits 1 and says so" "[ $? -eq 1 ] && grep -q \"port $port\" '$T/busy.err'"

# --- SIGTERM with a slow upload in flight: the request is answered, the server exits 0
for i in $(seq 1 40); do printf '>slow%d\nMKVLAAGIVGLLLAQWERTYHHHHKLMNPQRSTV\n' "$i"; done >"$T/slow.fa"
curl -s -o "$T/slow.out" -w '%{http_code}' --limit-rate 600 -H 'Content-Type: text/x-fasta' \
    --data-binary @"$T/slow.fa" "$base/v1/search?k=1" >"$T/slow.code" &
curl_pid=$!
# Wait until the server holds it (the scrape itself is the other request in flight).
for _ in $(seq 1 100); do
    curl -s "$base/metrics" | grep -q '^pdr_http_requests_in_flight 2$' && break
    sleep 0.05
done
kill -TERM "$pid"
wait "$curl_pid"
wait "$pid"
rc=$?
check "slow in-flight request answered 200 after SIGTERM" "[ \"\$(cat '$T/slow.code')\" = 200 ] && grep -q '\"query\":\"slow40\"' '$T/slow.out'"
check "SIGTERM: exit 0" "[ $rc -eq 0 ]"
# (at least 1: under load the metrics scrape can still count as in flight for a moment after
# curl has its reply)
grep 'SIGTERM' "$T/serve.err" >&2 # the line, for a failure's log
check "SIGTERM: stop logged, with the slow request in flight" "grep -Eq 'SIGTERM: no new connections; finishing [1-9][0-9]* requests in flight' '$T/serve.err' && grep -q 'pdr serve: stopped' '$T/serve.err'"
check "stopped server no longer listens" "! curl -s -o /dev/null $base/v1/health"
check "no sanitizer report" "! grep -q 'Sanitizer' '$T/serve.err'"

# --- SIGTERM at once, while the database loads (or just after): a clean stop, exit 0, never a
# death by the signal (a library thread that does not block it must not take the default action)
for i in 1 2 3; do
    "$PDR" serve "$T/db" --port 0 --threads 2 2>"$T/early$i.err" &
    p=$!
    pids+=("$p")
    for _ in $(seq 1 500); do
        grep -q 'listening on' "$T/early$i.err" 2>/dev/null && break
        sleep 0.01
    done
    kill -TERM "$p"
    wait "$p"
    rc=$?
    check "SIGTERM at start (try $i): exit 0 and 'stopped' (rc $rc)" "[ $rc -eq 0 ] && grep -q 'pdr serve: stopped' '$T/early$i.err'"
done

# --- the database's name in info is its directory's, however the path was given
if SERVE_DB="$T/db/." start_server "$T/serve_dot.err"; then
    check "info names the database 'db' when served as db/." "[ \"\$(call http://127.0.0.1:$port/v1/info)\" = 200 ] && grep -q '\"database\":\"db\"' '$T/body'"
    kill -TERM "$pid"
    wait "$pid"
else
    bad "server on db/. did not come up"
fi

# --- the Host check (DNS rebinding): on 127.0.0.1 only localhost and IP addresses are answered
check "Host check: ready line says so" "grep -q 'Host: localhost and IP addresses' '$T/serve_dot.err'"
if SERVE_DB="$T/db" start_server "$T/serve_host.err" --allow-host pdr.lab.example --allow-host .example.org; then
    hb="http://127.0.0.1:$port"
    check "Host: an allowed name 200" "[ \"\$(call -H 'Host: pdr.lab.example:8080' $hb/v1/health)\" = 200 ]"
    check "Host: a name under an allowed domain 200" "[ \"\$(call -H 'Host: a.example.org' $hb/v1/info)\" = 200 ]"
    check "Host: localhost 200" "[ \"\$(call -H \"Host: localhost:$port\" $hb/v1/health)\" = 200 ]"
    check "Host: another name 403 host_not_allowed" "[ \"\$(call -H 'Host: evil.example' -H 'Content-Type: text/x-fasta' --data-binary @$DATA/demo/query.fasta $hb/v1/search)\" = 403 ] && [ \"\$(err_code)\" = host_not_allowed ]"
    check "Host: the refusal is logged" "grep -q 'POST /v1/search 403' '$T/serve_host.err'"
    kill -TERM "$pid"
    wait "$pid"
else
    bad "server with --allow-host did not come up"
fi
# the default worker count is the cores this process may run on (taskset), not every core
if command -v taskset >/dev/null && [ "$(nproc --all)" -gt 1 ]; then
    taskset -c 0 "$PDR" serve "$T/db" --port 0 2>"$T/taskset.err" & tpid=$!
    pids+=("$tpid")
    for _ in $(seq 1 300); do grep -q 'ready:' "$T/taskset.err" && break; sleep 0.1; done
    check "taskset -c 0: 1 worker thread by default" "grep -q ', 1 worker threads' '$T/taskset.err'"
    kill -TERM "$tpid"
    wait "$tpid"
fi
"$PDR" serve "$T/db" --port 0 --allow-host 'bad name' 2>"$T/allow.err"
check "--allow-host with a bad name: exit 2, named" "[ $? -eq 2 ] && grep -q \"'bad name' is not a host name\" '$T/allow.err'"

# --- CORS (--cors-origin): off by default (above), on for the listed origins
for bad_origin in 'http://localhost:8888/' 'https://lab.example.org/search' '' 'localhost:8888' 'null'; do
    "$PDR" serve "$T/db" --port 0 --cors-origin "$bad_origin" 2>"$T/cors_bad.err"
    check "--cors-origin '$bad_origin': exit 2, named" "[ $? -eq 2 ] && grep -q \"cors-origin: '$bad_origin' is not an origin\" '$T/cors_bad.err'"
done
if SERVE_DB="$T/db" start_server "$T/serve_cors.err" --cors-origin http://localhost:8888 --cors-origin https://lab.example.org; then
    cb="http://127.0.0.1:$port"
    check "CORS: ready line counts the origins" "grep -q 'CORS: 2 origins' '$T/serve_cors.err'"
    check "CORS: preflight 204 with the methods and headers" "[ \"\$(call -X OPTIONS -H 'Origin: http://localhost:8888' -H 'Access-Control-Request-Method: POST' -H 'Access-Control-Request-Headers: content-type' $cb/v1/search)\" = 204 ] && grep -qi '^access-control-allow-origin: http://localhost:8888' '$T/head' && grep -qi '^access-control-allow-methods: POST' '$T/head' && grep -qi '^access-control-allow-headers: .*content-type' '$T/head'"
    check "CORS: search from an allowed origin echoes it" "[ \"\$(call -H 'Origin: https://lab.example.org' -H 'Content-Type: text/x-fasta' --data-binary @$DATA/demo/query.fasta $cb/v1/search)\" = 200 ] && grep -qi '^access-control-allow-origin: https://lab.example.org' '$T/head'"
    check "CORS: an error to an allowed origin echoes it too" "[ \"\$(call -H 'Origin: https://lab.example.org' -H 'Content-Type: text/x-fasta' --data-binary '' $cb/v1/search)\" = 400 ] && grep -qi '^access-control-allow-origin: https://lab.example.org' '$T/head'"
    check "CORS: another origin's preflight 403 origin_not_allowed, no CORS headers" "[ \"\$(call -X OPTIONS -H 'Origin: http://evil.example' -H 'Access-Control-Request-Method: POST' $cb/v1/search)\" = 403 ] && [ \"\$(err_code)\" = origin_not_allowed ] && ! grep -qi '^access-control-' '$T/head'"
    kill -TERM "$pid"
    wait "$pid"
else
    bad "server with --cors-origin did not come up"
fi
if SERVE_DB="$T/db" start_server "$T/serve_cors_any.err" --cors-origin '*'; then
    check "CORS '*' without a token: warned, ready line says any" "grep -q \"warning: --cors-origin '\\*' without --token-file\" '$T/serve_cors_any.err' && grep -q 'CORS: any origin' '$T/serve_cors_any.err'"
    check "CORS '*': Access-Control-Allow-Origin *" "[ \"\$(call -H 'Origin: http://anything.example' http://127.0.0.1:$port/v1/health)\" = 200 ] && grep -qi '^access-control-allow-origin: \\*' '$T/head'"
    kill -TERM "$pid"
    wait "$pid"
else
    bad "server with --cors-origin '*' did not come up"
fi

# --- bearer token; SIGINT stops too
printf 'tok-%s\n' "$$" >"$T/token"
start_server "$T/serve2.err" --token-file "$T/token" || { echo "$pass passed, $((fail + 1)) failed"; exit 1; }
base="http://127.0.0.1:$port"
check "token: search without it 401" "[ \"\$(call -H 'Content-Type: text/x-fasta' --data-binary @$DATA/demo/query.fasta $base/v1/search)\" = 401 ] && [ \"\$(err_code)\" = unauthorized ]"
check "token: search with it 200" "[ \"\$(call -H \"Authorization: Bearer tok-$$\" -H 'Content-Type: text/x-fasta' --data-binary @$DATA/demo/query.fasta $base/v1/search)\" = 200 ]"
check "token: a trailing space after it is not part of it (200)" "[ \"\$(call -H \"Authorization: Bearer tok-$$ \" -H 'Content-Type: text/x-fasta' --data-binary @$DATA/demo/query.fasta $base/v1/search)\" = 200 ]"
check "token: health open" "[ \"\$(call $base/v1/health)\" = 200 ]"
kill -INT "$pid"
wait "$pid"
check "SIGINT: exit 0" "[ $? -eq 0 ] && grep -q 'pdr serve: stopped' '$T/serve2.err'"

# --- format=blast6 aligns k hits per query: past the alignment budget of the largest request of
# the default format (--max-queries x --max-length x --align = 2 x 1000 x 50) it is refused
start_server "$T/serve3.err" --max-queries 2 --max-length 1000 || { echo "$pass passed, $((fail + 1)) failed"; exit 1; }
base="http://127.0.0.1:$port"
$PY -c 'print(">big\n" + "MKVLAAGIVGLLLAQ" * 40)' >"$T/big600.fa"
check "blast6, 600 residues x k 500: 400 too_much_alignment" "[ \"\$(call -H 'Content-Type: text/x-fasta' --data-binary @$T/big600.fa '$base/v1/search?format=blast6&k=500')\" = 400 ] && [ \"\$(err_code)\" = too_much_alignment ]"
check "blast6, 600 residues x k 150 (within): 200" "[ \"\$(call -H 'Content-Type: text/x-fasta' --data-binary @$T/big600.fa '$base/v1/search?format=blast6&k=150')\" = 200 ]"
check "json, k 500 (aligns --align, not k): 200" "[ \"\$(call -H 'Content-Type: text/x-fasta' --data-binary @$T/big600.fa '$base/v1/search?k=500')\" = 200 ]"
kill -TERM "$pid"
wait "$pid"
# --align 0 turns alignment off: format=blast6, which aligns every hit, is refused
start_server "$T/serve_a0.err" --align 0 || { echo "$pass passed, $((fail + 1)) failed"; exit 1; }
check "--align 0: format=blast6 is 400 alignment_off" "[ \"\$(call -H 'Content-Type: text/x-fasta' --data-binary @$DATA/demo/query.fasta 'http://127.0.0.1:$port/v1/search?format=blast6')\" = 400 ] && [ \"\$(err_code)\" = alignment_off ]"
check "--align 0: format=tsv answers, nothing aligned" "[ \"\$(call -H 'Content-Type: text/x-fasta' --data-binary @$DATA/demo/query.fasta 'http://127.0.0.1:$port/v1/search?format=tsv&k=2')\" = 200 ] && awk -F'\\t' '\$9!=\"-\"{exit 1}' '$T/body'"
kill -TERM "$pid"
wait "$pid"

# --- a segment database (makedb --segments) answers as `pdr search` does; needs a model with a
# segment background (the shipped one), so not under valgrind (kmer3 there)
if "$PDR" version 2>/dev/null | grep -q 'segment databases (--segments): available'; then
    "$PDR" makedb "$DATA/test/small.fasta" "$T/segdb" --segments --threads 2 2>"$T/segmk.err"
    check "makedb --segments exits 0" "[ $? -eq 0 ]"
    if SERVE_DB="$T/segdb" start_server "$T/serve3.err"; then
        base="http://127.0.0.1:$port"
        "$PDR" search "$T/segdb" "$DATA/test/small.fasta" "$T/seg_cli.tsv" -k 3 2>/dev/null
        check "segment database: search TSV equals pdr search" "[ \"\$(call -H 'Content-Type: text/x-fasta' --data-binary @$DATA/test/small.fasta '$base/v1/search?k=3&format=tsv')\" = 200 ] && cmp -s '$T/body' '$T/seg_cli.tsv'"
        check "segment database: info says segments" "[ \"\$(call $base/v1/info)\" = 200 ] && grep -q '\"segments\":true' '$T/body'"
        kill -TERM "$pid"
        wait "$pid"
    else
        bad "segment database server did not come up"
    fi
    # a model of the same name and version whose background was edited: every search would
    # refuse it, so serve refuses it while loading (it went ready and answered 500s)
    for which in background background_segments; do
        cp "$DATA/pdr_cnn_v1.h5" "$T/otherbg.h5"
        $PY -c 'import h5py,sys; f=h5py.File(sys.argv[1], "r+"); b=f[sys.argv[2]]; a=b[()]; a[0]*=1.01; b[...]=a' "$T/otherbg.h5" "$which"
        timeout 120 "$PDR" serve "$T/segdb" --port 0 --model "$T/otherbg.h5" 2>"$T/otherbg.err"
        check "serve with a model whose $which was edited: exit 1 while loading, says to rebuild" "[ $? -eq 1 ] && grep -q 'do not come from this model' '$T/otherbg.err'"
    done
fi

# --- an expanded database (makedb --expand) answers as `pdr search` does, expanded queries and all;
# needs a model with a background (the shipped one)
if "$PDR" version 2>/dev/null | grep -q 'scores: background-adjusted'; then
    "$PDR" makedb "$DATA/test/small.fasta" "$T/xdb" --expand --threads 2 2>"$T/xmk.err"
    check "makedb --expand exits 0" "[ $? -eq 0 ]"
    if SERVE_DB="$T/xdb" start_server "$T/serve4.err"; then
        base="http://127.0.0.1:$port"
        "$PDR" search "$T/xdb" "$DATA/test/small.fasta" "$T/x_cli.tsv" -k 3 2>/dev/null
        check "expanded database: search TSV equals pdr search" "[ \"\$(call -H 'Content-Type: text/x-fasta' --data-binary @$DATA/test/small.fasta '$base/v1/search?k=3&format=tsv')\" = 200 ] && cmp -s '$T/body' '$T/x_cli.tsv'"
        check "expanded database: info says expanded" "[ \"\$(call $base/v1/info)\" = 200 ] && grep -q '\"expanded\":true' '$T/body'"
        "$PDR" search "$T/xdb" "$DATA/test/small.fasta" "$T/x_plain.tsv" -k 3 --no-expand 2>/dev/null
        check "expanded database: --no-expand changes the hits" "! cmp -s '$T/x_plain.tsv' '$T/x_cli.tsv'"
        check "expanded database: expand=false equals pdr search --no-expand" "[ \"\$(call -H 'Content-Type: text/x-fasta' --data-binary @$DATA/test/small.fasta '$base/v1/search?k=3&format=tsv&expand=false')\" = 200 ] && cmp -s '$T/body' '$T/x_plain.tsv'"
        $PY -c 'import json,sys; print(json.dumps({"fasta": open(sys.argv[1]).read(), "k": 3, "expand": True}))' "$DATA/test/small.fasta" > "$T/x_req.json"
        check "expanded database: JSON expand true equals pdr search" "[ \"\$(call -H 'Content-Type: application/json' --data-binary @$T/x_req.json '$base/v1/search?format=tsv')\" = 200 ] && cmp -s '$T/body' '$T/x_cli.tsv'"
        kill -TERM "$pid"
        wait "$pid"
    else
        bad "expanded database server did not come up"
    fi
fi

# --- SIGHUP: the database is loaded again after a makedb extended it, without a restart; one that
# does not load (a makedb in progress: no calibration yet) leaves the old one served
awk '/^>/{n++; if (n <= 20) print $0 " protein number " n; next} n<=20' "$DATA/demo/targets.fasta" >"$T/first20.fa"
awk '/^>/{n++} n>20 && n<=30' "$DATA/demo/targets.fasta" >"$T/next10.fa"
"$PDR" makedb "$T/first20.fa" "$T/hupdb" --model "$MODEL" --threads 2 2>/dev/null
new_id=$(head -1 "$T/next10.fa" | cut -c2- | cut -d' ' -f1)
# a service manager's notification socket (systemd Type=notify): what pdr says there is logged
$PY - "$T/notify.sock" "$T/notify.log" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(120)
with open(sys.argv[2], "a") as out:
    while True:
        try:
            data = s.recv(4096)
        except socket.timeout:
            break
        out.write(data.decode().replace("\n", "|") + "\n")
        out.flush()
PY
pids+=("$!")
for _ in $(seq 1 100); do [ -S "$T/notify.sock" ] && break; sleep 0.1; done
if NOTIFY_SOCKET="$T/notify.sock" SERVE_DB="$T/hupdb" start_server "$T/hup.err" --log-forwarded-for; then
    check "sd_notify: READY=1 once loaded, with the size in STATUS" "grep -qx 'READY=1|STATUS=serving 20 proteins' '$T/notify.log'"
    base="http://127.0.0.1:$port"
    call -H 'X-Forwarded-For: 203.0.113.7' "$base/openapi.json" >/dev/null
    sleep 0.2
    check "--log-forwarded-for: the log line names the proxy's client" "grep -q 'GET /openapi.json 200 .* for=203.0.113.7\$' '$T/hup.err'"
    check "SIGHUP: 20 proteins before" "[ \"\$(call $base/v1/health)\" = 200 ] && grep -q '\"proteins\":20}' '$T/body'"
    awk '/^>/{n++} n==3' "$T/first20.fa" >"$T/third.fa"
    check "JSON hits carry the target's FASTA description" "[ \"\$(call -H 'Content-Type: text/x-fasta' --data-binary @$T/third.fa '$base/v1/search?k=1')\" = 200 ] && grep -q '\"description\":\"protein number 3\"' '$T/body'"
    cat "$T/first20.fa" "$T/next10.fa" >"$T/first30.fa"
    "$PDR" makedb "$T/first30.fa" "$T/hupdb" --model "$MODEL" --threads 2 2>/dev/null
    check "SIGHUP: still 20 after the makedb (loaded once)" "[ \"\$(call $base/v1/health)\" = 200 ] && grep -q '\"proteins\":20}' '$T/body'"
    kill -HUP "$pid"
    for _ in $(seq 1 300); do grep -q 'SIGHUP: reloaded' "$T/hup.err" && break; sleep 0.1; done
    check "SIGHUP: reload logged" "grep -q 'SIGHUP: reloaded: 30 proteins (before: 20)' '$T/hup.err'"
    check "sd_notify: RELOADING=1, then READY=1 with the new size" "grep -q '^RELOADING=1|' '$T/notify.log' && grep -qx 'READY=1|STATUS=reloaded; serving 30 proteins' '$T/notify.log'"
    check "SIGHUP: health says 30" "[ \"\$(call $base/v1/health)\" = 200 ] && grep -q '\"proteins\":30}' '$T/body'"
    "$PDR" search "$T/hupdb" "$T/next10.fa" "$T/hup_cli.tsv" -k 3 --model "$MODEL" 2>/dev/null
    check "SIGHUP: a new protein finds itself, and the TSV equals pdr search on the new database" "[ \"\$(call -H 'Content-Type: text/x-fasta' --data-binary @$T/next10.fa '$base/v1/search?k=3&format=tsv')\" = 200 ] && cmp -s '$T/body' '$T/hup_cli.tsv' && grep -q \"^$new_id	$new_id	\" '$T/body'"
    mv "$T/hupdb/calibration.txt" "$T/calibration.keep"
    kill -HUP "$pid"
    for _ in $(seq 1 300); do grep -q 'SIGHUP: reload failed' "$T/hup.err" && break; sleep 0.1; done
    check "SIGHUP on an incomplete database: refused, logged, the old one still served" "grep -q 'SIGHUP: reload failed, still serving the database loaded before (30 proteins): .*incomplete' '$T/hup.err' && [ \"\$(call -H 'Content-Type: text/x-fasta' --data-binary @$T/next10.fa '$base/v1/search?k=3&format=tsv')\" = 200 ] && cmp -s '$T/body' '$T/hup_cli.tsv'"
    check "SIGHUP: the server is still up" "kill -0 $pid"
    check "sd_notify: a failed reload says so in STATUS, still READY" "grep -q '^READY=1|STATUS=reload failed (.*incomplete.*); serving 30 proteins' '$T/notify.log'"
    # a stop signal during a reload: the reload is dropped (no swap, no wait for the old
    # database's requests) and the server stops. The calibration is a FIFO, so that the reload
    # waits in it until the SIGTERM is in.
    mkfifo "$T/hupdb/calibration.txt"
    n_loading=$(grep -c 'SIGHUP: loading' "$T/hup.err")
    kill -HUP "$pid"
    for _ in $(seq 1 300); do [ "$(grep -c 'SIGHUP: loading' "$T/hup.err")" -gt "$n_loading" ] && break; sleep 0.1; done
    kill -TERM "$pid"
    sleep 0.5
    timeout 10 sh -c 'cat "$1" >"$2"' sh "$T/calibration.keep" "$T/hupdb/calibration.txt"
    wait "$pid"
    check "SIGHUP: then SIGTERM during a reload stops it, exit 0, without swapping in the new database" "[ $? -eq 0 ] && grep -q 'SIGTERM during the reload' '$T/hup.err' && [ \"\$(grep -c 'SIGHUP: reloaded' '$T/hup.err')\" = 1 ]"
    sleep 0.2
    check "sd_notify: STOPPING=1 on the way out" "grep -q '^STOPPING=1' '$T/notify.log'"
else
    bad "SIGHUP server did not come up"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
