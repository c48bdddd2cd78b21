#!/usr/bin/env bash
# e2e_browser.sh: the search page (GET /) in a real browser. Starts the real `pdr serve` on a
# database made by `pdr makedb data/demo/targets.fasta`, drives headless Chromium through the
# DevTools protocol the way a person would: load the page, paste the demo queries into the
# textarea, set k, click Search (real mouse events), and asserts that the hits table shows, for
# every query, the top hit `pdr search` finds; then pastes a malformed record and asserts that the
# page shows the error naming it. Also: no console errors and no /favicon.ico request; k typed
# as "1e1" is sent as 10; a new #q=...&k=N fragment typed into the open page runs that search;
# a non-JSON error reply (libmicrohttpd's own 431 page) shows "HTTP 431 ..."; and against a
# second server with --max-k 5 --token-file: the banner loads once the token is entered, the
# default k becomes 5, and #q= links with k missing, empty, 50 or "abc" still search (k 5).
# CORS: a document from the first server's origin calls a third server (--cors-origin that origin,
# --token-file) with fetch(): a JSON search with the token is answered (after the browser's
# preflight), a 401's JSON and WWW-Authenticate are readable; a server without --cors-origin, and
# the third one from an origin it does not list, are blocked by the browser.
# A screenshot of the result is left in $PDR_TMP/e2e_browser.png (a build directory, outside git).
# Skipped (exit 0, "skipped" line) only when /usr/bin/chromium is absent (Debian: apt-get
# install chromium). The DevTools client is Python's standard library (/usr/bin/python3).
# Env: PDR (binary), PDR_DATA (data dir), PDR_TMP (scratch). Ends with "N passed, N failed".
set -u
PDR=${PDR:-build/pdr}
DATA=${PDR_DATA:-data}
CHROMIUM=${PDR_CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM" ]; then
    echo "e2e_browser: skipped: $CHROMIUM not found (install Debian's chromium package to run this test)"
    echo "0 passed, 0 failed"
    exit 0
fi
OUT=${PDR_TMP:-/tmp}
T=$(mktemp -d "$OUT/e2e_browser.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT

# the targets with a description in each header ("protein number N"), which the table shows
awk '/^>/{n++; print $1 " protein number " n; next} {print}' "$DATA/demo/targets.fasta" >"$T/targets.fasta"
"$PDR" makedb "$T/targets.fasta" "$T/db" --model kmer3 --threads 2 2>"$T/makedb.err" || {
    cat "$T/makedb.err" >&2
    echo "0 passed, 1 failed"
    exit 1
}
"$PDR" search "$T/db" "$DATA/demo/query.fasta" "$T/expected.tsv" -k 5 2>/dev/null

# Start `pdr serve` with stderr in $1 (more options after it); sets $server and $port once
# /v1/health answers 200, or fails the test.
start_server() {
    local log=$1
    shift
    "$PDR" serve "$T/db" --port 0 --threads 2 "$@" 2>"$log" &
    server=$!
    pids+=("$server")
    port=
    for _ in $(seq 1 600); do
        [ -z "$port" ] && port=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' "$log" 2>/dev/null | head -1)
        [ -n "$port" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v1/health")" = 200 ] && return 0
        sleep 0.1
    done
    cat "$log" >&2
    echo "0 passed, 1 failed"
    exit 1
}
printf 'tok-%s\n' "$$" >"$T/token"
start_server "$T/serve2.err" --max-k 5 --token-file "$T/token"
server2=$server port2=$port
start_server "$T/serve.err"
server1=$server port1=$port
start_server "$T/serve3.err" --token-file "$T/token" --cors-origin "http://127.0.0.1:$port1"
server3=$server port3=$port
server=$server1 port=$port1

# --remote-debugging-port=0: Chromium picks a port and writes it to DevToolsActivePort.
"$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run \
    --no-default-browser-check --disable-extensions --user-data-dir="$T/profile" \
    --remote-debugging-port=0 --window-size=1200,900 about:blank 2>"$T/chromium.err" &
pids+=("$!")
disown "$!" # killed at exit; no "Killed" notice from the shell
for _ in $(seq 1 300); do
    [ -s "$T/profile/DevToolsActivePort" ] && break
    sleep 0.1
done
devtools_port=$(head -1 "$T/profile/DevToolsActivePort" 2>/dev/null)
if [ -z "$devtools_port" ]; then
    echo "FAIL: Chromium did not start its DevTools endpoint:" >&2
    tail -20 "$T/chromium.err" >&2
    echo "0 passed, 1 failed"
    exit 1
fi

cat >"$T/drive.py" <<'EOF'
"""Drive the page through the Chrome DevTools protocol (stdlib websocket client)."""
import base64, json, os, socket, struct, sys, time, urllib.request

devtools_port, page_url, query_path, expected_tsv, screenshot, serve_log, page2_url, token = sys.argv[1:9]
cors_url, cors_log = sys.argv[9:11]
passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"FAIL: {name} {detail}", file=sys.stderr)


class WebSocket:
    def __init__(self, url):
        rest = url.split("://", 1)[1]
        hostport, path = rest.split("/", 1)
        host, port = hostport.rsplit(":", 1)
        self.s = socket.create_connection((host, int(port)), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall((f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.s.recv(4096)
            if not chunk:
                raise OSError("websocket handshake: connection closed")
            head += chunk
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise OSError("websocket handshake refused: " + head.decode(errors="replace"))
        self.buf = head.split(b"\r\n\r\n", 1)[1]

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(65536)
            if not chunk:
                raise OSError("websocket closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, text):
        data = text.encode()
        head = bytes([0x81])
        n = len(data)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        self.s.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def recv(self):
        message = b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            payload = self._read(n)
            opcode = b0 & 0x0F
            if opcode == 8:
                raise OSError("websocket closed by the browser")
            if opcode in (0, 1, 2):
                message += payload
                if b0 & 0x80:
                    return message.decode()


class Page:
    def __init__(self, ws):
        self.ws, self.next_id = ws, 0
        self.events = []  # DevTools events seen while waiting for replies (console, network)

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if "method" in msg:
                self.events.append(msg)
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def eval(self, expression):
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait_for(self, expression, seconds=15):
        end = time.time() + seconds
        while time.time() < end:
            value = self.eval(expression)
            if value:
                return value
            time.sleep(0.05)
        return None

    def paste_into(self, element_id, text):
        """Focus the field, select what is there, and insert text as a paste does."""
        self.eval(f"(() => {{ const e = document.getElementById('{element_id}'); e.focus(); e.select(); }})()")
        self.call("Input.insertText", text=text)

    def click(self, element_id):
        r = json.loads(self.eval(f"JSON.stringify(document.getElementById('{element_id}').getBoundingClientRect())"))
        x, y = r["x"] + r["width"] / 2, r["y"] + r["height"] / 2
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)


targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{devtools_port}/json/list", timeout=30))
page_target = next(t for t in targets if t.get("type") == "page")
page = Page(WebSocket(page_target["webSocketDebuggerUrl"]))
page.call("Page.enable")
page.call("Runtime.enable")
page.call("Log.enable")
page.call("Network.enable")
page.call("Page.navigate", url=page_url)
check("page loads", page.wait_for("document.readyState === 'complete' && !!document.getElementById('search')"))
check("info banner shows the database size",
      page.wait_for("document.getElementById('info').textContent.includes('1,049 proteins')"),
      repr(page.eval("document.getElementById('info').textContent")))

# Paste the demo queries, ask for 5 hits each, press Search.
fasta = open(query_path).read()
page.paste_into("fasta", fasta)
check("textarea holds the pasted FASTA", page.eval("document.getElementById('fasta').value") == fasta)
page.paste_into("k", "5")
page.click("search")
state = page.wait_for("['done', 'error'].includes(document.body.dataset.state) && document.body.dataset.state")
error = page.eval("document.getElementById('error').textContent")
check("search completes", state == "done", f"state {state}: {error}")
rows = json.loads(page.eval("JSON.stringify([...document.querySelectorAll('#hits-body tr')]"
                            ".map(tr => [...tr.cells].map(td => td.textContent)))"))
expected = [line.split("\t") for line in open(expected_tsv).read().splitlines()]
check("table shows 5 hits per query", len(rows) == len(expected) == 15, f"{len(rows)} rows, {len(expected)} expected")
check("table is visible", page.eval("!document.getElementById('hits').hidden"))
for exp in (e for e in expected if e[4] == "1"):
    shown = [r for r in rows if r[0] == exp[0] and r[1] == "1"]
    check(f"top hit of {exp[0]} is {exp[1]}", len(shown) == 1 and shown[0][2] == exp[1] and shown[0][3] == exp[2],
          f"table row {shown}, pdr search {exp[:4]}")
check("every table row matches pdr search (query, rank, target, score)",
      [r[:4] for r in rows] == [[e[0], e[4], e[1], e[2]] for e in expected])
numbers = {}
for line in open(query_path.replace("query.fasta", "targets.fasta")):
    if line.startswith(">"):
        numbers[line[1:].split()[0]] = len(numbers) + 1
check("the description column shows each target's FASTA description",
      not page.eval("document.getElementById('desc-head').hidden") and
      all(len(r) == 7 and r[6] == f"protein number {numbers[r[2]]}" for r in rows), repr(rows[:2]))
status = page.eval("document.getElementById('status').textContent")
check("status line counts queries and hits", status.startswith("3 queries, 15 hits"), repr(status))
shot = page.call("Page.captureScreenshot", format="png")
with open(screenshot, "wb") as f:
    f.write(base64.b64decode(shot["data"]))

# A malformed record: the page shows the service's error, naming the record.
page.paste_into("fasta", ">fine\nMKVLAAGIVG\n>broken_rec\nMKV1LA\n")
page.click("search")
state = page.wait_for("document.body.dataset.state === 'error' && document.body.dataset.state")
error = page.eval("document.getElementById('error').textContent")
check("malformed FASTA: error shown", state == "error" and "invalid_fasta" in error and "record 2 (broken_rec)" in error,
      repr(error))
check("malformed FASTA: no stale table", page.eval("document.getElementById('hits').hidden"))

def console_errors():
    """Console and browser-log errors seen so far (a 404 for /favicon.ico, a CSP violation), less
    the 4xx replies of the API calls the tests provoke (the page shows those itself)."""
    out = []
    for e in page.events:
        if e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error":
            entry = e["params"]["entry"]
            if entry.get("text", "").startswith("Failed to load resource") and "/v1/" in entry.get("url", ""):
                continue
            out.append(entry.get("text", "") + " " + entry.get("url", ""))
        elif e["method"] == "Runtime.exceptionThrown":
            out.append(str(e["params"]["exceptionDetails"].get("text")))
        elif e["method"] == "Runtime.consoleAPICalled" and e["params"]["type"] == "error":
            out.append(str(e["params"]["args"]))
    return out


def search_urls():
    return [e["params"]["request"]["url"] for e in page.events
            if e["method"] == "Network.requestWillBeSent" and "/v1/search" in e["params"]["request"]["url"]]


def rows_per_query():
    rows = json.loads(page.eval("JSON.stringify([...document.querySelectorAll('#hits-body tr')]"
                                ".map(tr => tr.cells[0].textContent))"))
    return {q: rows.count(q) for q in rows}


def run_and_wait(action):
    """Mark the page idle, do action (a click, a new fragment), wait for the search to end."""
    page.eval("document.body.dataset.state = 'idle'")
    action()
    state = page.wait_for("['done', 'error'].includes(document.body.dataset.state) && document.body.dataset.state")
    return state, page.eval("document.getElementById('error').textContent")


def set_hash(fragment):
    page.eval(f"location.hash = {json.dumps(fragment)}")


def q_fragment(fasta, k=None):
    import urllib.parse
    return "#q=" + urllib.parse.quote(fasta) + ("" if k is None else "&k=" + urllib.parse.quote(k))


# The favicon: no request for /favicon.ico (its 404 was a console error on every load).
time.sleep(0.3)
check("no console errors on load", console_errors() == [], repr(console_errors()))
check("no /favicon.ico request", "/favicon.ico" not in open(serve_log).read())

# k typed as "1e1": a number to the browser; the page sends the integer 10.
one = ">one\nMKVLAAGIVGLLLAQWERTYHHHHKLMNPQRSTV\n"
page.paste_into("fasta", one)
page.paste_into("k", "1e1")
state, error = run_and_wait(lambda: page.click("search"))
check("k 1e1: search runs with k=10", state == "done" and rows_per_query() == {"one": 10} and
      search_urls() and search_urls()[-1].endswith("k=10"), f"{state} {error} {search_urls()[-1:]}")
page.paste_into("k", "2.5")
state, error = run_and_wait(lambda: page.click("search"))
check("k 2.5: the page says k must be a whole number", state == "error" and "whole number" in error, repr(error))

# The max E-value field: sent as evalue=, hits over it left out; a bad value is the page's error.
page.paste_into("k", "10")
page.paste_into("evalue", "1e-300")
state, error = run_and_wait(lambda: page.click("search"))
check("max E-value 1e-300: sent, and no hit is that good for an unrelated query",
      state == "done" and search_urls()[-1].endswith("&evalue=1e-300") and rows_per_query() == {},
      f"{state} {error} {search_urls()[-1:]} {rows_per_query()}")
page.paste_into("evalue", "0")
state, error = run_and_wait(lambda: page.click("search"))
check("max E-value 0: the page says it must be > 0", state == "error" and "> 0" in error, repr(error))
page.eval("document.getElementById('evalue').value = ''")

# A new #q= fragment typed into the open page runs that search (hashchange).
state, error = run_and_wait(lambda: set_hash(q_fragment(">hash1\nMKVLAAGIVGLLLAQWERTY\n", "2")))
check("hashchange: the fragment's query runs with its k", state == "done" and rows_per_query() == {"hash1": 2} and
      page.eval("document.getElementById('k').value") == "2", f"{state} {error} {rows_per_query()}")
state, error = run_and_wait(lambda: set_hash(q_fragment(">hash2\nMKVLAAGIVGLLLAQWERTY\n", "3")))
check("hashchange again: the new query runs", state == "done" and rows_per_query() == {"hash2": 3}, f"{state} {error}")

# A reply that is not JSON (libmicrohttpd's HTML 431 for headers past 32 KiB): HTTP status text.
page.paste_into("k", "5")
page.eval("document.getElementById('token').value = 'x'.repeat(40000)")
state, error = run_and_wait(lambda: page.click("search"))
check("HTML error reply: 'HTTP 431 ...', not a JSON parse error",
      state == "error" and error.startswith("HTTP 431") and "JSON" not in error, repr(error))
page.eval("document.getElementById('token').value = ''")

# Second server: --max-k 5 --token-file. The banner waits for the token, then the default k is 5.
page.events.clear()
page.call("Page.navigate", url=page2_url)
check("token server: page loads and asks for the token",
      page.wait_for("document.readyState === 'complete' && !document.getElementById('token-row').hidden"))
check("token server: k starts at the page default", page.eval("document.getElementById('k').value") == "10")
page.paste_into("token", token)
page.eval("document.getElementById('token').blur()")  # 'change': the page retries /v1/info
check("token server: banner loads once the token is entered",
      page.wait_for("document.getElementById('info').textContent.includes('k up to 5')"),
      repr(page.eval("document.getElementById('info').textContent")))
check("token server: default k clamped to max-k 5", page.eval("document.getElementById('k').value") == "5")
page.paste_into("fasta", one)
state, error = run_and_wait(lambda: page.click("search"))
check("max-k 5: Search with the default k runs", state == "done" and rows_per_query() == {"one": 5}, f"{state} {error}")
for k in (None, "50", "abc", ""):
    state, error = run_and_wait(lambda: set_hash(q_fragment(f">link{k}\nMKVLAAGIVGLLLAQWERTY\n", k)))
    check(f"max-k 5: #q= link with k {k} searches with k 5", state == "done" and rows_per_query() == {f"link{k}": 5},
          f"{state} {error} {rows_per_query()}")
check("no console errors on the token server's page", console_errors() == [], repr(console_errors()))

# CORS: fetch() from a document of the first server's origin (its /openapi.json: a page without
# a Content-Security-Policy, which would block connections to other origins).
def fetch(url, headers, body=None):
    """fetch() in the page: 'STATUS|header|body' of the reply, or 'blocked: ...' when it throws."""
    init = {"method": "POST" if body is not None else "GET", "headers": headers}
    if body is not None:
        init["body"] = body
    return page.eval(f"fetch({json.dumps(url)}, {json.dumps(init)})"
                     ".then(async r => r.status + '|' + r.headers.get('WWW-Authenticate') + '|' + await r.text())"
                     ".catch(e => 'blocked: ' + e)")


page.call("Page.navigate", url=page_url + "openapi.json")
check("CORS: the calling document loads", page.wait_for("document.readyState === 'complete'"))
query = json.dumps({"fasta": ">c\nMKVLAAGIVGLLLAQWERTY", "k": 2})
got = fetch(cors_url + "v1/search", {"Content-Type": "application/json", "Authorization": "Bearer " + token}, query)
status, _, body = (got or "").split("|", 2) if got and not got.startswith("blocked") else (got, "", "")
check("CORS: a JSON search with the token from a listed origin is answered",
      status == "200" and len(json.loads(body)["results"][0]["hits"]) == 2, repr(got)[:300])
def log_has(path, text, seconds=20):
    """The server writes a request's log line once the reply is out, which may be after the
    browser has it (under valgrind, well after): wait for it."""
    end = time.time() + seconds
    while True:
        if text in open(path).read():
            return True
        if time.time() > end:
            return False
        time.sleep(0.1)


check("CORS: the browser sent a preflight first, answered 204", log_has(cors_log, "OPTIONS /v1/search 204"))
got = fetch(cors_url + "v1/search", {"Content-Type": "application/json"}, query)
parts = (got or "").split("|", 2)
check("CORS: a 401 and its JSON and WWW-Authenticate are readable",
      len(parts) == 3 and parts[0] == "401" and parts[1] == "Bearer" and
      json.loads(parts[2])["error"]["code"] == "unauthorized", repr(got)[:300])
got = fetch(page2_url + "v1/health", {})
check("CORS: a server without --cors-origin is blocked", (got or "").startswith("blocked"), repr(got)[:300])
page.call("Page.navigate", url=page_url.replace("127.0.0.1", "localhost") + "openapi.json")
page.wait_for("document.readyState === 'complete' && location.hostname === 'localhost'")
got = fetch(cors_url + "v1/search", {"Content-Type": "application/json", "Authorization": "Bearer " + token}, query)
check("CORS: an origin not listed is blocked (its preflight is a 403)",
      (got or "").startswith("blocked") and log_has(cors_log, "OPTIONS /v1/search 403"), repr(got)[:300])

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
EOF

/usr/bin/python3 "$T/drive.py" "$devtools_port" "http://127.0.0.1:$port/" "$DATA/demo/query.fasta" \
    "$T/expected.tsv" "$OUT/e2e_browser.png" "$T/serve.err" "http://127.0.0.1:$port2/" "tok-$$" \
    "http://127.0.0.1:$port3/" "$T/serve3.err"
rc=$?
[ $rc -eq 0 ] && echo "e2e_browser: screenshot in $OUT/e2e_browser.png"
kill -TERM "$server" "$server2" "$server3"
wait "$server" "$server2" "$server3" 2>/dev/null
exit $rc
