#!/usr/bin/env python3
"""What high availability costs, measured side by side in one run.

Starts a throwaway single-node etcd (scripts/etcd-install installs it) and,
in turn, one `numpool serve` with its local journal (fsync interval) and a
three-node `numpool serve --cluster` on loopback, and drives each with
loadgen over HTTP, one message per request:

  new-mapping   every send goes to a recipient never seen (each one writes)
  sticky-hit    a hundred recipients per profile, seen again and again (after
                their first sends, nothing to write)

Then it kills the cluster's leader (SIGKILL) five times while clients keep
sending through every node, and reports the time from each kill to the
first send acknowledged after it (the failover), with its median.

    loadgen/cluster-bench.py [--messages 100k] [--concurrency 16] [--kills 5]
                             [--lease-ttl 2s] [--json FILE]

Builds the release binaries first. Everything it starts runs under a
temporary directory inside the target directory, and is stopped at the end.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

KEY = "cluster-bench-key"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url, method="GET", body=None, timeout=2.0):
    """(status, parsed JSON or None); status 0 when nothing answered."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", f"Bearer {KEY}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None
    except (OSError, ValueError):
        return 0, None


def wait_for(what, cond, within=30.0):
    deadline = time.monotonic() + within
    while not cond():
        if time.monotonic() > deadline:
            sys.exit(f"cluster-bench: never: {what}")
        time.sleep(0.02)


class Etcd:
    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "etcd")
        client, peer = free_port(), free_port()
        self.url = f"http://127.0.0.1:{client}"
        peer_url = f"http://127.0.0.1:{peer}"
        self.log = open(os.path.join(workdir, "etcd.log"), "w")
        self.proc = subprocess.Popen(
            ["etcd", "--name", "b", "--data-dir", self.dir,
             "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
             "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
             "--initial-cluster", f"b={peer_url}"],
            stdout=subprocess.DEVNULL, stderr=self.log)
        wait_for("etcd is healthy",
                 lambda: (call(self.url + "/health")[1] or {}).get("health") == "true")

    def stop(self):
        self.proc.kill()
        self.proc.wait()


class Node:
    """One `numpool serve`, restartable on the same data directory."""

    def __init__(self, binary, workdir, name, cluster=None, etcd=None, lease_ttl="2s"):
        self.binary, self.name = binary, name
        self.dir = os.path.join(workdir, name)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [binary, "serve", "--listen", f"127.0.0.1:{self.port}",
                     "--data-dir", self.dir, "--api-key", KEY, "--fsync", "interval"]
        if cluster:
            self.args += ["--cluster", cluster, "--etcd", etcd.url, "--lease-ttl", lease_ttl]
        self.log = open(os.path.join(workdir, name + ".log"), "a")
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=self.log)
        wait_for(f"{self.name} answers", lambda: self.ready() is not None)

    def ready(self):
        status, body = call(self.url + "/readyz", timeout=0.5)
        return body if status in (200, 503) and body else None

    def role(self):
        return (self.ready() or {}).get("role")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def loadgen(binary, url, recipients, args, out):
    cmd = [binary, "--target", url + "/v2", "--api-key", KEY, "--batch", "1",
           "--concurrency", str(args.concurrency), "--messages", str(args.messages),
           "--recipients", str(recipients), "--dist", "uniform", "--quiet", "--json", out]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(out) as f:
        result = json.load(f)
    r = result["runs"][0]
    return {"throughput": r["throughput_per_sec"], "p50_ns": r["latency_ns"]["p50"],
            "p99_ns": r["latency_ns"]["p99"], "sticky_share": r["sticky_hit_ratio"]}


def cpu_seconds(pid):
    """CPU time (user + system) a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(binary, url, args, workdir, label, processes):
    """Both cases against `url`; `processes` (name -> pid) have their CPU
    time during each case reported beside it."""
    out = {}
    for case, recipients in (("new-mapping", 100_000_000), ("sticky-hit", 100)):
        before = {name: cpu_seconds(pid) for name, pid in processes.items()}
        out[case] = loadgen(binary, url, recipients, args,
                            os.path.join(workdir, f"{label.replace(' ', '-')}-{case}.json"))
        r = out[case]
        r["cpu_s"] = {name: round(cpu_seconds(pid) - before[name], 2)
                      for name, pid in processes.items()}
        print(f"  {label:<12} {case:<12} {r['throughput']:>10,.0f} msg/s   "
              f"p50 {r['p50_ns'] / 1e3:>6.0f} µs   p99 {r['p99_ns'] / 1e3:>6.0f} µs   "
              f"sticky {100 * r['sticky_share']:>3.0f}%   cpu s: "
              + ", ".join(f"{k} {v}" for k, v in r["cpu_s"].items()), flush=True)
    return out


def leader_of(nodes):
    for n in nodes:
        if n.role() == "leader":
            return n
    return None


def failover(nodes, profile, kills):
    """Kill the leader `kills` times; each time, the time from the kill to
    the first send acknowledged after it, by any node."""
    times = []
    counter = [0]
    for k in range(kills):
        wait_for("a leader", lambda: leader_of(nodes) is not None)
        old = leader_of(nodes)
        wait_for("every node caught up", lambda: all(
            (n.ready() or {}).get("applied") == (old.ready() or {}).get("applied") for n in nodes))
        acked = []
        stop = threading.Event()
        killed = [None]

        def client(node):
            while not stop.is_set():
                counter[0] += 1
                to = f"+1971{counter[0] % 10_000_000:07d}"
                # Only a send begun after the leader is dead counts: one in
                # flight before may still have been answered by it.
                begun_after_kill = killed[0] is not None
                status, _ = call(node.url + "/v2/messages/number_pool", "POST",
                                 {"messaging_profile_id": profile, "to": to, "text": "x"},
                                 timeout=1.0)
                if status == 200 and begun_after_kill:
                    acked.append(time.monotonic())
                    stop.set()
                elif status != 200:
                    time.sleep(0.005)

        threads = [threading.Thread(target=client, args=(n,)) for n in nodes if n is not old]
        for t in threads:
            t.start()
        time.sleep(0.3)
        started = time.monotonic()
        old.kill()
        killed[0] = started
        for t in threads:
            t.join(timeout=30)
        stop.set()
        if not acked:
            sys.exit("cluster-bench: no send was acknowledged after a kill")
        times.append(min(acked) - started)
        print(f"  kill {k + 1}: first acknowledged send after {times[-1]:.2f} s", flush=True)
        old.start()
    return times


def setup_profile(url):
    status, body = call(url + "/v2/messaging_profiles", "POST",
                        {"name": "failover", "whitelisted_destinations": ["US"],
                         "number_pool_settings": {"sticky_sender": True}})
    if status != 200:
        sys.exit(f"cluster-bench: creating a profile answered {status}")
    profile = body["data"]["id"]
    for i in range(4):
        call(url + f"/v2/phone_numbers/+1312555{i:04d}/messaging", "PATCH",
             {"messaging_profile_id": profile})
    return profile


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", default="100k")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--kills", type=int, default=5)
    p.add_argument("--lease-ttl", default="2s")
    p.add_argument("--json")
    args = p.parse_args()
    if shutil.which("etcd") is None:
        subprocess.run([os.path.join(ROOT, "scripts", "etcd-install")], check=True)
    subprocess.run(["cargo", "build", "--quiet", "--release", "-p", "numpool", "-p", "loadgen",
                    "--bins"], cwd=ROOT, check=True)
    meta = json.loads(subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"],
                                     cwd=ROOT, check=True, capture_output=True).stdout)
    target = meta["target_directory"]
    numpool = os.path.join(target, "release", "numpool")
    loadgen_bin = os.path.join(target, "release", "loadgen")
    workdir = tempfile.mkdtemp(prefix="cluster-bench-", dir=target)
    started = []
    try:
        print(f"cluster-bench: {args.messages} messages per case, one per request, "
              f"{args.concurrency} clients; logs in {workdir}", flush=True)
        single = Node(numpool, workdir, "single")
        started.append(single)
        results = {"single": measure(loadgen_bin, single.url, args, workdir, "single node",
                                     {"numpool": single.proc.pid})}
        single.stop()
        etcd = Etcd(workdir)
        nodes = [Node(numpool, workdir, f"node{i}", "bench", etcd, args.lease_ttl)
                 for i in range(3)]
        started += nodes
        wait_for("a leader", lambda: leader_of(nodes) is not None)
        leader = leader_of(nodes)
        processes = {"leader": leader.proc.pid, "etcd": etcd.proc.pid}
        processes.update({f"standby{i}": n.proc.pid
                          for i, n in enumerate(n for n in nodes if n is not leader)})
        results["cluster"] = measure(loadgen_bin, leader.url, args, workdir, "3-node", processes)
        for case in ("new-mapping", "sticky-hit"):
            ratio = results["cluster"][case]["throughput"] / results["single"][case]["throughput"]
            results.setdefault("ratio", {})[case] = ratio
            print(f"  {case}: 3-node / single node = {ratio:.2f}x", flush=True)
        if args.kills > 0:
            profile = setup_profile(leader.url)
            times = failover(nodes, profile, args.kills)
            results["failover_s"] = times
            results["failover_median_s"] = statistics.median(times)
            print(f"  failover median of {len(times)}: {statistics.median(times):.2f} s "
                  f"(lease TTL {args.lease_ttl})", flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=2)
        for n in started:
            n.stop()
        etcd.stop()
    finally:
        for n in started:
            if n.proc and n.proc.poll() is None:
                n.kill()
        if "etcd" in locals():
            etcd.proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
