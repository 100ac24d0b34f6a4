#!/usr/bin/env python3
"""Two measurements of a server under hostile clients, in one run.

1. Idempotency keys: resident memory (peak, VmHWM) of a `numpool serve`
   before and after N sends that each carry a distinct 255-character
   `Idempotency-Key` (the longest accepted), with the cache at its default
   bytes bound.
2. Listers: send latency on a profile holding M mappings, with no one
   listing its mappings, then while L threads list them page after page
   (`GET .../sticky_mappings?page[size]=1` and walking with a cursor),
   side by side in the same run.

    loadgen/hostile-probe.py [--keys 20000] [--mappings 500k] [--listers 8]
                             [--probes 3000]

Builds the release binaries, starts its own server on a free port (in
memory) and stops it at the end. Uses loadgen to fill the profile.
"""

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time

KEY = "hostile-probe-key"
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
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(self, method, path, body=None, headers=None):
        h = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
        h.update(headers or {})
        for attempt in (0, 1):
            try:
                self.conn.request(method, path, None if body is None else json.dumps(body), h)
                r = self.conn.getresponse()
                data = r.read()
                return r.status, (json.loads(data) if data else None)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # The server closed an idle keep-alive connection: open another.
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                if attempt:
                    raise


def memory(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            fields[name] = value.strip()
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024


def mib(n):
    return f"{n / (1 << 20):.1f} MiB"


def percentiles(samples):
    samples = sorted(samples)
    pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]
    return {"p50_us": pick(0.50) * 1e6, "p99_us": pick(0.99) * 1e6, "max_us": samples[-1] * 1e6}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--keys", default="20000")
    p.add_argument("--mappings", default="500k")
    p.add_argument("--listers", type=int, default=8)
    p.add_argument("--probes", type=int, default=3000)
    args = p.parse_args()
    subprocess.run(["cargo", "build", "--quiet", "--release", "-p", "numpool", "-p", "loadgen",
                    "--bins"], cwd=ROOT, check=True)
    meta = json.loads(subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"],
                                     cwd=ROOT, check=True, capture_output=True).stdout)
    release = os.path.join(meta["target_directory"], "release")
    port = free_port()
    server = subprocess.Popen(
        [os.path.join(release, "numpool"), "serve", "--listen", f"127.0.0.1:{port}",
         "--ephemeral", "--api-key", KEY, "--long-code-mps", "100000",
         "--toll-free-mps", "100000"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if Client(port).call("GET", "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                sys.exit("hostile-probe: the server did not start")
            time.sleep(0.05)

        # 1. Distinct 255-character idempotency keys.
        c = Client(port)
        status, body = c.call("POST", "/v2/messaging_profiles",
                              {"name": "keys", "whitelisted_destinations": ["*"],
                               "number_pool_settings": {"sticky_sender": True}})
        profile = body["data"]["id"]
        c.call("PATCH", "/v2/phone_numbers/+13125550001/messaging",
               {"messaging_profile_id": profile})
        rss0, hwm0 = memory(server.pid)
        keys = count(args.keys)
        for i in range(keys):
            key = f"{i:0>255}"
            status, _ = c.call("POST", "/v2/messages/number_pool",
                               {"messaging_profile_id": profile, "to": f"+1415{i % 10_000_000:07d}",
                                "text": "x" * 100}, {"Idempotency-Key": key})
            if status != 200:
                sys.exit(f"hostile-probe: a send with a key answered {status}")
        rss1, hwm1 = memory(server.pid)
        print(f"{keys} sends with distinct 255-char Idempotency-Keys: resident {mib(rss0)} -> "
              f"{mib(rss1)}, peak {mib(hwm0)} -> {mib(hwm1)}", flush=True)

        # 2. A profile of M mappings, filled by loadgen over HTTP.
        mappings = count(args.mappings)
        subprocess.run([os.path.join(release, "loadgen"), "--target", f"http://127.0.0.1:{port}/v2",
                        "--api-key", KEY, "--profiles", "1", "--numbers", "50",
                        "--recipients", str(mappings), "--dist", "uniform",
                        "--messages", str(mappings * 4), "--batch", "256", "--concurrency", "2",
                        "--max-queue", "30d", "--quiet"], check=True, stdout=subprocess.DEVNULL)
        status, body = c.call("GET", "/v2/messaging_profiles?filter[name][eq]=loadgen-0")
        big = body["data"][0]["id"]
        status, page = c.call("GET", f"/v2/messaging_profiles/{big}/sticky_mappings?page[size]=1")
        live = page["meta"]["total_results"]
        print(f"profile {big}: {live} mappings", flush=True)

        def probe():
            probe_client = Client(port)
            lat = []
            for i in range(args.probes):
                to = f"+1646{i % 10_000_000:07d}"
                t = time.perf_counter()
                status, _ = probe_client.call("POST", "/v2/messages/number_pool",
                                              {"messaging_profile_id": big, "to": to, "text": "x"})
                lat.append(time.perf_counter() - t)
                if status != 200:
                    sys.exit(f"hostile-probe: a probe send answered {status}")
            return lat

        quiet = percentiles(probe())
        stop = threading.Event()
        listed = [0]

        def lister(n):
            lc = Client(port)
            after = None
            while not stop.is_set():
                if n % 2 == 0:
                    path = f"/v2/messaging_profiles/{big}/sticky_mappings?page[size]=1"
                else:
                    q = f"&page[after]={after}" if after else ""
                    path = f"/v2/messaging_profiles/{big}/sticky_mappings?page[size]=250{q}"
                status, page = lc.call("GET", path)
                listed[0] += 1
                if n % 2 == 1:
                    after = (page or {}).get("meta", {}).get("next_page_after")

        threads = [threading.Thread(target=lister, args=(n,)) for n in range(args.listers)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        _, hwm_before = memory(server.pid)
        busy = percentiles(probe())
        stop.set()
        for t in threads:
            t.join()
        rss2, hwm2 = memory(server.pid)
        for label, r in (("no listers", quiet), (f"{args.listers} listers", busy)):
            print(f"send on the {live}-mapping profile, {label}: p50 {r['p50_us']:.0f} µs, "
                  f"p99 {r['p99_us']:.0f} µs, max {r['max_us']:.0f} µs", flush=True)
        print(f"pages listed meanwhile: {listed[0]}; p99 with listers / without: "
              f"{busy['p99_us'] / quiet['p99_us']:.2f}x; resident {mib(rss2)}, peak {mib(hwm2)}",
              flush=True)
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
