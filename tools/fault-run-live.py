#!/usr/bin/env python3
"""The fault run on the real switch (issue 10): 200 calls through one voxbridge while the
store's disk is full for 10 s, then recovers. Afterwards: no call of the run is left on
the switch, and every call has its CDR and its hangup callback.

Run as root from the project root, holding the shared switch's lock, with the shipped
dialplan installed (7001 -> socket 127.0.0.1:8084) and nothing else on 8084:

    cargo build && flock /tmp/fs-live.lock python3 tools/fault-run-live.py

Stdlib only. The store lives on a 16 MiB tmpfs mounted for the run; the disk is made to
fail by filling it, and to recover by deleting the filler.
"""
import http.server, json, os, signal, socket, sqlite3, subprocess, sys, tempfile
import threading, time, urllib.parse, uuid

CALLS, RATE, FAIL_AT, FAIL_FOR = 200, 10.0, 10, 10.0
ESL, PASSWORD, SIP = ("127.0.0.1", 8021), "ClueCon", "127.0.0.1:5060"
TAG = "h3-fault"

work = tempfile.mkdtemp(prefix="voxbridge-fault-")
disk = os.path.join(work, "disk")
os.mkdir(disk)
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", disk], check=True)

hangups = {}  # CallUUID -> set of DeliveryIDs
lock = threading.Lock()

class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        form = dict(urllib.parse.parse_qsl(body))
        if form.get("Event") == "Hangup":
            with lock:
                hangups.setdefault(form["CallUUID"], set()).add(form.get("DeliveryID"))
        self.send_response(200); self.end_headers()
    def log_message(self, *a):
        pass

httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
threading.Thread(target=httpd.serve_forever, daemon=True).start()
doc = os.path.join(work, "doc.xml")
open(doc, "w").write("<Response><Speak>Hello.</Speak><Hangup/></Response>")
config = os.path.join(work, "voxbridge.toml")
open(config, "w").write(f"""
[esl]
listen = "127.0.0.1:8084"
[api]
listen = "127.0.0.1:0"
[store]
url = "sqlite://{disk}/voxbridge.db"
[app]
default_answer_url = "file://{doc}"
default_hangup_url = "http://127.0.0.1:{httpd.server_port}/hangup"
""")
log = open(os.path.join(work, "voxbridge.log"), "w")
vb = subprocess.Popen(["target/debug/voxbridge", "serve", "--config", config],
                      stdout=subprocess.PIPE, stderr=log, text=True)

def cleanup():
    if vb.poll() is None:
        vb.send_signal(signal.SIGTERM)
        try: vb.wait(timeout=60)
        except subprocess.TimeoutExpired: vb.kill()
    subprocess.run(["umount", "-l", disk])

import atexit
atexit.register(cleanup)
print("voxbridge:", vb.stdout.readline().strip(), flush=True)

class Esl:
    def __init__(self):
        self.s = socket.create_connection(ESL); self.buf = b""
        self.frame(); self.cmd(f"auth {PASSWORD}")
    def frame(self):
        while b"\n\n" not in self.buf:
            self.buf += self.s.recv(65536)
        head, self.buf = self.buf.split(b"\n\n", 1)
        h = dict(l.split(": ", 1) for l in head.decode().splitlines() if ": " in l)
        n = int(h.get("Content-Length", 0))
        while len(self.buf) < n:
            self.buf += self.s.recv(65536)
        body, self.buf = self.buf[:n], self.buf[n:]
        return h, body.decode()
    def cmd(self, line):
        self.s.sendall(line.encode() + b"\n\n")
        while True:
            h, body = self.frame()
            if h.get("Content-Type") in ("command/reply", "api/response"):
                return body or h.get("Reply-Text", "")

def ours(esl):
    rows = json.loads(esl.cmd("api show channels as json")).get("rows", [])
    return [r for r in rows if r.get("cid_name") == TAG]

esl = Esl()
# What each caller (the A-leg) got: its final SIP status and cause.
a_legs = {}
def watch_a_legs():
    ev = Esl()
    ev.cmd("event plain CHANNEL_HANGUP_COMPLETE")
    while True:
        h, body = ev.frame()
        if h.get("Content-Type") != "text/event-plain":
            continue
        e = {k: urllib.parse.unquote(v) for k, v in
             (l.split(": ", 1) for l in body.splitlines() if ": " in l)}
        if e.get("Caller-Caller-ID-Name") == TAG and e.get("Call-Direction") == "outbound":
            key = f"{e.get('variable_sip_term_status', '?')} {e.get('Hangup-Cause')}"
            with lock:
                a_legs[key] = a_legs.get(key, 0) + 1
threading.Thread(target=watch_a_legs, daemon=True).start()
time.sleep(0.5)
numbers = set()
start = time.monotonic()
failed_at = recovered_at = None
for i in range(CALLS):
    time.sleep(max(0, start + i / RATE - time.monotonic()))
    if i == FAIL_AT:
        with open(os.path.join(disk, "filler"), "wb", buffering=0) as f:
            try:
                while True: f.write(b"\0" * 65536)
            except OSError: pass
            try:
                while True: f.write(b"\0" * 512)
            except OSError: pass
        failed_at = time.monotonic() - start
    if failed_at and not recovered_at and time.monotonic() - start >= failed_at + FAIL_FOR:
        os.remove(os.path.join(disk, "filler")); recovered_at = time.monotonic() - start
    number = f"1555{4000 + i:04d}"; numbers.add(number)
    esl.cmd(f"bgapi originate {{origination_uuid={uuid.uuid4()},origination_caller_id_number="
            f"{number},origination_caller_id_name={TAG},originate_timeout=30}}"
            f"sofia/external/7001@{SIP} &park()")
if not recovered_at:
    time.sleep(max(0, failed_at + FAIL_FOR - (time.monotonic() - start)))
    os.remove(os.path.join(disk, "filler")); recovered_at = time.monotonic() - start
placed = time.monotonic() - start

deadline = time.monotonic() + 90
while ours(esl) and time.monotonic() < deadline:
    time.sleep(0.5)
left = len(ours(esl))
drained = time.monotonic() - start

db = sqlite3.connect(f"file:{disk}/voxbridge.db?mode=ro", uri=True)
deadline = time.monotonic() + 60
def counts():
    rows = db.execute("SELECT call_uuid, from_number, hangup_source, hangup_cause_name FROM cdrs").fetchall()
    return [r for r in rows if r[1] in numbers]
while len(counts()) < CALLS and time.monotonic() < deadline:
    time.sleep(0.5)
cdrs = counts()
records_at = time.monotonic() - start
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    with lock:
        got = sum(1 for c in cdrs if c[0] in hangups)
    if got == len(cdrs): break
    time.sleep(0.5)
callbacks_at = time.monotonic() - start
with lock:
    delivered = sum(1 for c in cdrs if c[0] in hangups)
    twice = sum(1 for c in cdrs if len(hangups.get(c[0], ())) > 1)
by = {}
for c in cdrs:
    by[f"{c[2]} / {c[3]}"] = by.get(f"{c[2]} / {c[3]}", 0) + 1
live = db.execute("SELECT COUNT(*) FROM live_calls").fetchone()[0]
vb.send_signal(signal.SIGTERM); vb.wait(timeout=60)
logtext = open(os.path.join(work, "voxbridge.log")).read()
print(json.dumps({
    "calls": CALLS, "disk_full_from_s": round(failed_at, 1), "disk_back_at_s": round(recovered_at, 1),
    "placed_in_s": round(placed, 1), "switch_channels_left": left, "all_gone_at_s": round(drained, 1),
    "callers_refused_got": {k: v for k, v in a_legs.items() if not k.startswith("?")},
    "all_cdrs_at_s": round(records_at, 1), "all_callbacks_at_s": round(callbacks_at, 1), "cdrs": len(cdrs), "cdrs_by_source": by, "live_rows_left": live,
    "hangup_callbacks_delivered": delivered, "calls_with_two_delivery_ids": twice,
    "store_errors_logged": logtext.count("STORE ERROR"),
    "refusing_logged": "THE STORE CANNOT WRITE" in logtext,
    "recovered_logged": "the store writes again" in logtext,
    "voxbridge_exit": vb.returncode,
}, indent=1))
ok = left == 0 and len(cdrs) == CALLS and delivered == CALLS and twice == 0 and live == 0
sys.exit(0 if ok else 1)
