#!/usr/bin/env python3
"""What large and hostile inputs cost a running server, measured on one
build (or two side by side: --baseline BIN), each in a fresh server:

1. scrapers: send latency on a server of --profiles profiles (50k), with
   no one scraping /metrics, then while 8 threads scrape it (no key);
2. opt-out listers: send latency on a profile of --opt-outs opt-outs
   (200k), then while 8 threads page its opt-outs;
3. repeated destinations: resident memory after 200 profiles each made
   with a whitelist of 43,000 x "US" (a 258 KB body), then while 4 threads
   list a page of 250 profiles;
4. restart: the time from start to /readyz of a server whose snapshot
   holds the opt-outs of case 2.

    loadgen/hostile-scale.py [--profiles 50k] [--opt-outs 200k]
                             [--probes 2000] [--baseline BIN]

Builds the release binary, starts its servers on free ports with data
directories under the target directory, and stops them at the end.
"""

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

KEY = "hostile-scale-key"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def count(text):
    text = text.lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("km")) * scale)


class Client:
    """One keep-alive connection."""

    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def call(self, method, path, body=None, raw=None):
        h = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
        data = raw if raw is not None else (None if body is None else json.dumps(body))
        for attempt in (0, 1):
            try:
                self.conn.request(method, path, data, h)
                r = self.conn.getresponse()
                out = r.read()
                return r.status, out
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                if attempt:
                    raise

    def json(self, method, path, body=None):
        status, out = self.call(method, path, body)
        return status, (json.loads(out) if out else None)


def memory(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            fields[name] = value.strip()
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024


def mib(n):
    return f"{n / (1 << 20):.0f} MiB"


def pct(samples):
    samples = sorted(samples)
    pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]
    return pick(0.50) * 1e3, pick(0.99) * 1e3


class Server:
    def __init__(self, binary, workdir, name, extra=()):
        self.binary, self.port = binary, free_port()
        self.dir = os.path.join(workdir, name)
        storage = [] if "--ephemeral" in extra else ["--data-dir", self.dir]
        self.args = [binary, "serve", "--listen", f"127.0.0.1:{self.port}", *storage,
                     "--api-key", KEY, "--long-code-mps", "100000", "--toll-free-mps", "100000",
                     *extra]
        self.log = open(os.path.join(workdir, name + ".log"), "a")
        self.start()

    def start(self):
        started = time.monotonic()
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=self.log)
        while True:
            try:
                if Client(self.port).call("GET", "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            if self.proc.poll() is not None:
                self.log.flush()
                with open(self.log.name) as f:
                    tail = f.read()[-2000:]
                sys.exit(f"hostile-scale: {self.binary} did not start:\n{tail}")
            time.sleep(0.02)
        return time.monotonic() - started

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def probe(port, profile, probes):
    c = Client(port)
    lat = []
    for i in range(probes):
        t = time.perf_counter()
        status, _ = c.call("POST", "/v2/messages/number_pool",
                           {"messaging_profile_id": profile, "to": f"+1646{i % 10_000_000:07d}",
                            "text": "x"})
        lat.append(time.perf_counter() - t)
        if status != 200:
            sys.exit(f"hostile-scale: a probe send answered {status}")
    return pct(lat)


def with_load(port, worker, threads, measure):
    stop = threading.Event()
    done = [0]

    def loop(n):
        c = Client(port)
        state = {}
        while not stop.is_set():
            worker(c, n, state)
            done[0] += 1

    ts = [threading.Thread(target=loop, args=(n,), daemon=True) for n in range(threads)]
    for t in ts:
        t.start()
    time.sleep(0.5)
    result = measure()
    stop.set()
    for t in ts:
        t.join(timeout=60)
    return result, done[0]


def profile_with_number(c, name, number):
    status, body = c.json("POST", "/v2/messaging_profiles",
                          {"name": name, "whitelisted_destinations": ["*"],
                           "number_pool_settings": {"sticky_sender": True}})
    p = body["data"]["id"]
    c.json("PATCH", f"/v2/phone_numbers/{number}/messaging", {"messaging_profile_id": p})
    return p


def parallel(n, threads, port, work):
    """Runs work(client, i) for i in range(n) over `threads` connections."""
    def run(k):
        c = Client(port)
        for i in range(k, n, threads):
            work(c, i)
    ts = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def measure(binary, label, args, workdir):
    out = {}
    # 1. Scrapers on a server of many profiles.
    s = Server(binary, workdir, f"{label}-profiles", ["--ephemeral"])
    try:
        n = count(args.profiles)
        parallel(n, 4, s.port, lambda c, i: c.call(
            "POST", "/v2/messaging_profiles", {"name": f"p{i}", "whitelisted_destinations": ["*"]}))
        target = profile_with_number(Client(s.port), "probe", "+13125550001")
        quiet = probe(s.port, target, args.probes)
        busy, scrapes = with_load(s.port, lambda c, n, st: c.call("GET", "/metrics"), 8,
                                  lambda: probe(s.port, target, args.probes))
        out["scrapers"] = {"profiles": n, "quiet_ms": quiet, "busy_ms": busy, "scrapes": scrapes}
        print(f"  {label:<9} {n} profiles, send p50/p99: alone {quiet[0]:.2f}/{quiet[1]:.2f} ms, "
              f"with 8 /metrics scrapers {busy[0]:.2f}/{busy[1]:.2f} ms ({scrapes} scrapes)",
              flush=True)
    finally:
        s.stop()
    # 2. Opt-out listers, and 4. the restart with those opt-outs.
    s = Server(binary, workdir, f"{label}-optouts", ["--snapshot-every", "3s"])
    try:
        p = profile_with_number(Client(s.port), "optouts", "+13125550002")
        n = count(args.opt_outs)
        parallel(n, 4, s.port, lambda c, i: c.call(
            "PUT", f"/v2/messaging_profiles/{p}/opt_outs/%2B1206{i:07d}"))
        quiet = probe(s.port, p, args.probes)

        def lister(c, k, st):
            q = f"&page[after]={st['after']}" if st.get("after") else ""
            status, page = c.json("GET", f"/v2/messaging_profiles/{p}/opt_outs?page[size]=250{q}")
            st["after"] = ((page or {}).get("meta") or {}).get("next_page_after")

        busy, pages = with_load(s.port, lister, 8, lambda: probe(s.port, p, args.probes))
        out["opt_out_listers"] = {"opt_outs": n, "quiet_ms": quiet, "busy_ms": busy, "pages": pages}
        print(f"  {label:<9} {n} opt-outs, send p50/p99: alone {quiet[0]:.2f}/{quiet[1]:.2f} ms, "
              f"with 8 listers {busy[0]:.2f}/{busy[1]:.2f} ms ({pages} pages)", flush=True)
        # A snapshot (every 3 s) holds them; the restart loads it.
        time.sleep(4)
        s.stop()
        took = s.start()
        out["restart_s"] = took
        print(f"  {label:<9} restart with {n} opt-outs in its snapshot: {took:.2f} s to ready",
              flush=True)
    finally:
        s.stop()
    # 3. Repeated destinations.
    s = Server(binary, workdir, f"{label}-dupes", ["--ephemeral", "--body-limit", "1048576"])
    try:
        rss0, _ = memory(s.proc.pid)
        dupes = json.dumps({"name": "dupes", "whitelisted_destinations": ["US"] * 43_000})
        parallel(200, 4, s.port, lambda c, i: c.call("POST", "/v2/messaging_profiles", raw=dupes))
        rss1, _ = memory(s.proc.pid)
        _, lists = with_load(
            s.port, lambda c, n, st: c.call("GET", "/v2/messaging_profiles?page[size]=250"), 4,
            lambda: time.sleep(5))
        rss2, hwm2 = memory(s.proc.pid)
        out["dupes"] = {"rss0": rss0, "rss1": rss1, "rss2": rss2, "hwm2": hwm2, "lists": lists}
        print(f"  {label:<9} 200 profiles with 43,000 x \"US\": resident {mib(rss0)} -> {mib(rss1)}; "
              f"after 4 listers ({lists} pages of 250) {mib(rss2)}, peak {mib(hwm2)}", flush=True)
    finally:
        s.stop()
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profiles", default="50k")
    p.add_argument("--opt-outs", default="200k")
    p.add_argument("--probes", type=int, default=2000)
    p.add_argument("--baseline", help="another numpool binary, measured the same way")
    p.add_argument("--json")
    args = p.parse_args()
    subprocess.run(["cargo", "build", "--quiet", "--release", "-p", "numpool", "--bins"],
                   cwd=ROOT, check=True)
    meta = json.loads(subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"],
                                     cwd=ROOT, check=True, capture_output=True).stdout)
    numpool = os.path.join(meta["target_directory"], "release", "numpool")
    workdir = tempfile.mkdtemp(prefix="hostile-scale-", dir=meta["target_directory"])
    try:
        results = {"this": measure(numpool, "this", args, workdir)}
        if args.baseline:
            results["baseline"] = measure(args.baseline, "baseline", args, workdir)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=2)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
