#!/usr/bin/env python3
"""What high availability costs, measured side by side in one run.

Starts a throwaway single-node etcd (scripts/etcd-install installs it) and,
in turn, one `numpool serve` with its local journal (fsync interval) and a
three-node `numpool serve --cluster` on loopback, and drives each with
loadgen over HTTP, one message per request:

  new-mapping   every send goes to a recipient never seen (each one writes)
  sticky-hit    a hundred recipients per profile, seen again and again (after
                their first sends, nothing to write)

With --secure, the two cases again on a 3-node cluster whose etcd
serves TLS, asks for client certificates and has user authentication on
(certificates made with openssl for the run).

Then, on the cluster:

  imports       with --imports ROWS: that many rows of message history (CSV)
                imported with `numpool import` into one server, and into a
                3-node cluster through its leader and through a standby;
                then the profile exported through the leader and by a
                standby (consistency=stale; with --baseline BIN, that
                build's too, first)
  reads         default reads of sticky mappings (wrk, 16 connections)
                through the leader and through a standby (forwarded), and
                stale reads through a standby; with --baseline BIN, the same
                reads against a cluster of that build, side by side
  failover      SIGKILL of the leader, --kills times, while clients send
                through every node: the time from each kill to the first
                send acknowledged after it
  switchover    `numpool cluster switchover`, --switchovers times, and
  sigterm       SIGTERM of the leader (restarted after), --sigterms times,
                under load: the longest gap between acknowledged sends, the
                failures clients saw (status, Retry-After), and whether
                every acknowledged mapping is still there

    loadgen/cluster-bench.py [--messages 100k] [--concurrency 16] [--kills 5]
                             [--switchovers 0] [--sigterms 0] [--reads]
                             [--baseline BIN] [--secure] [--lease-ttl 2s]
                             [--etcd-election-ms 1000] [--only-cluster]
                             [--etcd-profile SECONDS] [--imports ROWS]
                             [--json FILE]

etcd's smallest lease is 1.5 times its election timeout (1.5 s with etcd's
default of 1000 ms): a --lease-ttl below that is raised by etcd, and the
nodes say so in their logs. Measure a 1 s lease with --etcd-election-ms 500.

Builds the release binaries first. Everything it starts runs under a
temporary directory inside the target directory, and is stopped at the end.
"""

import argparse
import gzip
import json
import os
import resource
import shutil
import signal
import socket
import ssl
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


ETCD_PASSWORD = "cluster-bench-etcd-password"


def make_certs(out):
    """A CA, a server certificate for 127.0.0.1 and a client certificate
    without a CommonName (etcd's JSON gateway refuses one with a CN when
    authentication is on), with the openssl command."""
    os.makedirs(out, exist_ok=True)

    def run(*cmd):
        subprocess.run(cmd, cwd=out, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run("openssl", "req", "-x509", *ec, "-keyout", "ca-key.pem", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=cluster-bench CA")
    # Version 3 certificates (rustls takes no other): with extensions.
    with open(os.path.join(out, "server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    with open(os.path.join(out, "client.ext"), "w") as f:
        f.write("extendedKeyUsage=clientAuth\n")
    for name, subject in (("server", "/CN=localhost"), ("client", "/O=cluster-bench")):
        run("openssl", "req", *ec, "-keyout", f"{name}-key.pem", "-out", f"{name}.csr",
            "-subj", subject)
        run("openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey",
            "ca-key.pem", "-CAcreateserial", "-out", f"{name}.pem", "-days", "2",
            "-extfile", f"{name}.ext")
    return {k: os.path.join(out, f"{k}.pem")
            for k in ("ca", "server", "server-key", "client", "client-key")}


class Etcd:
    """A throwaway single-node etcd; with `secure`, over TLS asking for
    client certificates, with user authentication on."""

    def __init__(self, workdir, election_ms=1000, secure=False, pprof=False):
        os.makedirs(workdir, exist_ok=True)
        self.dir = os.path.join(workdir, "etcd")
        client, peer = free_port(), free_port()
        self.certs = make_certs(os.path.join(workdir, "certs")) if secure else None
        scheme = "https" if secure else "http"
        self.url = f"{scheme}://127.0.0.1:{client}"
        peer_url = f"http://127.0.0.1:{peer}"
        self.log = open(os.path.join(workdir, "etcd.log"), "w")
        tls = []
        if self.certs:
            tls = ["--cert-file", self.certs["server"], "--key-file", self.certs["server-key"],
                   "--trusted-ca-file", self.certs["ca"], "--client-cert-auth"]
        self.proc = subprocess.Popen(
            ["etcd", "--name", "b", "--data-dir", self.dir,
             "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
             "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
             "--initial-cluster", f"b={peer_url}",
             "--heartbeat-interval", str(max(10, election_ms // 10)),
             "--election-timeout", str(election_ms),
             *(["--enable-pprof"] if pprof else []), *tls],
            stdout=subprocess.DEVNULL, stderr=self.log)
        wait_for("etcd is healthy", lambda: self.etcdctl("endpoint", "health") == 0)
        if self.certs:
            for cmd in (("user", "add", f"root:{ETCD_PASSWORD}"),
                        ("user", "grant-role", "root", "root"), ("auth", "enable")):
                if self.etcdctl(*cmd) != 0:
                    sys.exit(f"cluster-bench: etcdctl {' '.join(cmd)} failed")
            self.password_file = os.path.join(workdir, "etcd-password")
            with open(self.password_file, "w") as f:
                f.write(ETCD_PASSWORD + "\n")

    def etcdctl(self, *args):
        tls = []
        if self.certs:
            tls = ["--cacert", self.certs["ca"], "--cert", self.certs["client"],
                   "--key", self.certs["client-key"]]
        return subprocess.run(["etcdctl", "--endpoints", self.url, *tls, *args],
                              env={**os.environ, "ETCDCTL_API": "3"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode

    def fetch(self, path, timeout=2):
        """The body etcd answers `path` with."""
        context = None
        if self.certs:
            context = ssl.create_default_context(cafile=self.certs["ca"])
            context.load_cert_chain(self.certs["client"], self.certs["client-key"])
        with urllib.request.urlopen(self.url + path, timeout=timeout, context=context) as r:
            return r.read()

    def metrics(self):
        """etcd's /metrics (Prometheus text)."""
        return self.fetch("/metrics").decode()

    def cpu_profile(self, seconds):
        """etcd's own CPU profile over the next `seconds` (pprof)."""
        return self.fetch(f"/debug/pprof/profile?seconds={seconds}", timeout=seconds + 10)

    def node_flags(self):
        """What a node needs to reach this etcd."""
        if not self.certs:
            return []
        return ["--etcd-ca", self.certs["ca"], "--etcd-cert", self.certs["client"],
                "--etcd-key", self.certs["client-key"], "--etcd-user", "root",
                "--etcd-password-file", self.password_file]

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
            self.args += ["--cluster", cluster, "--etcd", etcd.url, "--lease-ttl", lease_ttl,
                          *etcd.node_flags()]
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

    def leads(self):
        return call(self.url + "/cluster/leader", timeout=0.5)[0] == 200


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


def parse_count(text):
    """A count as loadgen takes it: 100k, 2M, 5000."""
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:].lower(), 1)
    return int(float(text.rstrip("kKmM")) * scale)


def etcd_counters(etcd):
    """What etcd has done so far, from its /metrics: transactions served,
    raft proposals committed, and the time its WAL fsyncs and backend
    commits took (sums and counts)."""
    text = etcd.metrics()
    wanted = {
        "received_bytes": lambda n: n == "etcd_network_client_grpc_received_bytes_total",
        "sent_bytes": lambda n: n == "etcd_network_client_grpc_sent_bytes_total",
        "txns": lambda n: n.startswith("grpc_server_handled_total") and 'grpc_method="Txn"' in n,
        "proposals": lambda n: n == "etcd_server_proposals_committed_total",
        "fsync_s": lambda n: n == "etcd_disk_wal_fsync_duration_seconds_sum",
        "fsyncs": lambda n: n == "etcd_disk_wal_fsync_duration_seconds_count",
        "backend_s": lambda n: n == "etcd_disk_backend_commit_duration_seconds_sum",
        "backend_commits": lambda n: n == "etcd_disk_backend_commit_duration_seconds_count",
    }
    out = dict.fromkeys(wanted, 0.0)
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        name, value = line.rsplit(" ", 1)
        for key, matches in wanted.items():
            if matches(name):
                out[key] += float(value)
    return out


def etcd_line(before, after, messages):
    """What etcd did for `messages` sends: transactions per send, raft
    proposals, and how long its fsyncs took on average."""
    d = {k: after[k] - before[k] for k in after}
    fsync_ms = 1e3 * d["fsync_s"] / d["fsyncs"] if d["fsyncs"] else 0.0
    backend_ms = 1e3 * d["backend_s"] / d["backend_commits"] if d["backend_commits"] else 0.0
    d["sends_per_txn"] = messages / d["txns"] if d["txns"] else 0.0
    d["fsync_mean_ms"], d["backend_mean_ms"] = fsync_ms, backend_ms
    line = (f"{'':<14} etcd: {d['txns']:,.0f} txns ({d['sends_per_txn']:.1f} sends each), "
            f"{d['proposals']:,.0f} proposals, "
            f"{d['received_bytes'] / messages:,.0f} B in and {d['sent_bytes'] / messages:,.0f} "
            f"B out a send, {d['fsyncs']:,.0f} WAL fsyncs "
            f"(mean {fsync_ms:.2f} ms), backend commits mean {backend_ms:.2f} ms")
    return d, line


# Where etcd's CPU goes, by the functions of etcd 3.4 to 3.6 each part
# runs under (a sample counts in every part on its stack).
ETCD_PARTS = (
    ("the WAL", "wal.(*WAL).Save"),
    ("the WAL's fsync", "wal.(*WAL).sync"),
    ("backend commits", "bbolt.(*Tx).Commit"),
    ("requests", "grpc.(*Server).processUnaryRPC"),
    ("applying", "etcdserver.(*EtcdServer).applyEntries"),
    ("socket writes", "transport.(*loopyWriter).run"),
    ("allocation", "runtime.mallocgc"),
    ("GC", "runtime.gcBgMarkWorker"),
    ("JSON gateway", "embed.(*accessController).ServeHTTP"),
    ("watch catch-up", "mvcc.(*watchableStore).syncWatchers"),
)


def pprof_shares(profile):
    """The share of a gzipped pprof CPU profile's samples under each of
    ETCD_PARTS (decoded here: no Go toolchain needed)."""

    def varint(b, i):
        value = shift = 0
        while True:
            byte = b[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value, i

    def fields(b):
        i = 0
        while i < len(b):
            key, i = varint(b, i)
            number, wire = key >> 3, key & 7
            if wire == 0:
                value, i = varint(b, i)
            elif wire == 2:
                n, i = varint(b, i)
                value, i = b[i:i + n], i + n
            else:  # fixed 64 or 32 bits
                n = 8 if wire == 1 else 4
                value, i = b[i:i + n], i + n
            yield number, wire, value

    def numbers(value, wire):
        if wire == 0:
            return [value]
        out, i = [], 0
        while i < len(value):
            n, i = varint(value, i)
            out.append(n)
        return out

    # Profile: sample 2 {location_id 1, value 2}, location 4 {id 1, line 4
    # {function_id 1}}, function 5 {id 1, name 2}, string_table 6.
    strings, samples, locations, functions = [], [], {}, {}
    for number, wire, value in fields(gzip.decompress(profile)):
        if number == 6:
            strings.append(value.decode(errors="replace"))
        elif number == 2:
            ids, values = [], []
            for n, w, v in fields(value):
                if n == 1:
                    ids += numbers(v, w)
                elif n == 2:
                    values += numbers(v, w)
            samples.append((ids, values[0] if values else 0))
        elif number == 4:
            location, called = 0, []
            for n, w, v in fields(value):
                if n == 1:
                    location = v
                elif n == 4:
                    called += [f for m, _, f in fields(v) if m == 1]
            locations[location] = called
        elif number == 5:
            function = name = 0
            for n, w, v in fields(value):
                if n == 1:
                    function = v
                elif n == 2:
                    name = v
            functions[function] = name
    total = sum(count for _, count in samples)
    if total == 0:
        return None
    shares = dict.fromkeys((part for part, _ in ETCD_PARTS), 0)
    for ids, count in samples:
        stack = {strings[functions[f]] for loc in ids for f in locations.get(loc, ())}
        for part, marker in ETCD_PARTS:
            if any(name.endswith(marker) for name in stack):
                shares[part] += count
    return {part: 100 * n / total for part, n in shares.items()}


def etcd_profile_line(result, profiled, spare_s):
    """What etcd's profile says (kept in `result`), or why there is none;
    `spare_s`: how long the case went on after the profile ended (below
    zero, the profile's tail sampled an idle cluster)."""
    if "error" in profiled:
        return f"no profile ({profiled['error']})"
    try:
        shares = pprof_shares(profiled["data"])
    except (OSError, EOFError, ValueError, IndexError, KeyError) as e:
        return f"no profile (unreadable: {e})"
    if shares is None:
        return "no samples"
    result["etcd_profile"] = shares
    line = ", ".join(f"{part} {share:.0f}%" for part, share in shares.items())
    if spare_s < 0:
        line += (f" (the case ended {-spare_s:.1f} s before the profile did: "
                 "its tail is of an idle cluster; use more --messages)")
    return line


def children_cpu_seconds():
    """CPU time (user + system) of the children waited for so far (the
    loadgen runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_seconds():
    """(busy, idle) CPU seconds of the whole machine so far, every core
    and every process, this run's or not."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK"), idle / os.sysconf("SC_CLK_TCK")


def measure(binary, url, args, workdir, label, processes, etcd=None):
    """Both cases against `url`; `processes` (name -> pid) have their CPU
    time during each case reported beside it, and with `etcd`, what etcd
    did during it."""
    out = {}
    for case, recipients in (("new-mapping", 100_000_000), ("sticky-hit", 100)):
        before = {name: cpu_seconds(pid) for name, pid in processes.items()}
        etcd_before = etcd_counters(etcd) if etcd else None
        clients_before, machine_before = children_cpu_seconds(), machine_seconds()
        profiled = {}
        profiler = None
        if etcd and args.etcd_profile > 0 and case == "new-mapping":
            def profile():
                time.sleep(2)
                try:
                    profiled["data"] = etcd.cpu_profile(args.etcd_profile)
                except (OSError, ValueError) as e:
                    profiled["error"] = e
            profiler = threading.Thread(target=profile)
            profiler.start()
        case_started = time.monotonic()
        out[case] = loadgen(binary, url, recipients, args,
                            os.path.join(workdir, f"{label.replace(' ', '-')}-{case}.json"))
        case_took = time.monotonic() - case_started
        r = out[case]
        r["cpu_s"] = {name: round(cpu_seconds(pid) - before[name], 2)
                      for name, pid in processes.items()}
        r["cpu_s"]["loadgen"] = round(children_cpu_seconds() - clients_before, 2)
        busy, idle = (after - b for after, b in zip(machine_seconds(), machine_before))
        r["cpu_s"]["machine idle %"] = round(100 * idle / (busy + idle))
        print(f"  {label:<12} {case:<12} {r['throughput']:>10,.0f} msg/s   "
              f"p50 {r['p50_ns'] / 1e3:>6.0f} µs   p99 {r['p99_ns'] / 1e3:>6.0f} µs   "
              f"sticky {100 * r['sticky_share']:>3.0f}%   cpu s: "
              + ", ".join(f"{k} {v}" for k, v in r["cpu_s"].items()), flush=True)
        if etcd:
            r["etcd"], line = etcd_line(etcd_before, etcd_counters(etcd),
                                        parse_count(args.messages))
            print(line, flush=True)
        if profiler:
            profiler.join()
            print(f"{'':<14} etcd's CPU ({args.etcd_profile} s profile from 2 s in): "
                  + etcd_profile_line(r, profiled, case_took - 2 - args.etcd_profile),
                  flush=True)
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


class Clients:
    """Threads sending to new recipients through every node, recording
    (completion time, recipient, sender) of each acknowledged send and
    (status, had Retry-After) of each failure."""

    def __init__(self, nodes, profile, threads_per_node=1):
        self.acked, self.failures = [], []
        self.stop_flag = threading.Event()
        self.counter = [0]
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(n, profile), daemon=True)
                        for n in nodes for _ in range(threads_per_node)]
        for t in self.threads:
            t.start()

    def run(self, node, profile):
        while not self.stop_flag.is_set():
            with self.lock:
                self.counter[0] += 1
                to = f"+1503{self.counter[0] % 10_000_000:07d}"
            data = json.dumps({"messaging_profile_id": profile, "to": to, "text": "x"}).encode()
            req = urllib.request.Request(node.url + "/v2/messages/number_pool", data=data,
                                         method="POST")
            req.add_header("Authorization", f"Bearer {KEY}")
            req.add_header("Content-Type", "application/json")
            try:
                with urllib.request.urlopen(req, timeout=2.0) as r:
                    body = json.loads(r.read())
                    with self.lock:
                        self.acked.append((time.monotonic(), to,
                                           body["data"]["from"]["phone_number"]))
            except urllib.error.HTTPError as e:
                with self.lock:
                    self.failures.append((e.code, e.headers.get("Retry-After") is not None))
                time.sleep(0.005)
            except (OSError, ValueError):
                # Not reached (a node that is gone): nothing was answered.
                time.sleep(0.005)

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(timeout=10)


def longest_gap(times, start, end):
    """The longest time between acknowledged sends completed in [start, end]."""
    inside = sorted(t for t in times if start <= t <= end)
    points = [start] + inside + [end]
    return max(b - a for a, b in zip(points, points[1:]))


def planned(nodes, profile, count, how, numpool_bin):
    """`count` switchovers (how="switchover") or SIGTERMs of the leader
    (how="sigterm") under load; each one's write gap, and the failures."""
    gaps, failures = [], {}
    lost = 0
    for k in range(count):
        wait_for("a leader", lambda: leader_of(nodes) is not None)
        old = leader_of(nodes)
        wait_for("every standby ready", lambda: all(
            call(n.url + "/cluster/standby", timeout=0.5)[0] == 200 for n in nodes if n is not old),
            within=30)
        clients = Clients([n for n in nodes], profile)
        time.sleep(1.0)
        event = time.monotonic()
        if how == "switchover":
            via = next(n for n in nodes if n is not old)
            done = subprocess.run([numpool_bin, "cluster", "switchover", "--node", via.url,
                                   "--api-key", KEY], capture_output=True, text=True)
            if done.returncode != 0:
                sys.exit(f"cluster-bench: switchover failed: {done.stdout}{done.stderr}")
        else:
            old.proc.send_signal(signal.SIGTERM)
        time.sleep(3.0)
        clients.stop()
        gap = longest_gap([a[0] for a in clients.acked], event - 0.5, event + 3.0)
        gaps.append(gap)
        for status, retry in clients.failures:
            key = f"{status}{' with Retry-After' if retry else ' WITHOUT Retry-After'}"
            failures[key] = failures.get(key, 0) + 1
        if how == "sigterm":
            code = old.proc.wait(timeout=20)
            if code != 0:
                sys.exit(f"cluster-bench: the leader exited {code} after SIGTERM")
            old.start()
        leader = None
        wait_for("a leader", lambda: leader_of(nodes) is not None)
        leader = leader_of(nodes)
        for _, to, sender in clients.acked:
            status, body = call(
                leader.url + f"/v2/messaging_profiles/{profile}/sticky_mappings/{to}")
            if status != 200 or body["data"]["from"] != sender:
                lost += 1
        print(f"  {how} {k + 1}: longest write gap {gap:.3f} s, {len(clients.acked)} acknowledged, "
              f"{len(clients.failures)} failures", flush=True)
    return {"gaps_s": gaps, "failures": failures, "lost": lost}


def wrk_reads(url, profile, recipients, stale, seconds=5):
    """wrk over sticky-mapping reads of `recipients`: requests/s and p50/p99 (ms)."""
    paths = ",".join(f'"/v2/messaging_profiles/{profile}/sticky_mappings/{to}'
                     f'{"?consistency=stale" if stale else ""}"' for to in recipients)
    script = os.path.join(tempfile.gettempdir(), f"cluster-bench-{os.getpid()}.lua")
    with open(script, "w") as f:
        f.write(f"""math.randomseed(7)
local paths = {{{paths}}}
request = function()
  return wrk.format("GET", paths[math.random(1, #paths)], {{["Authorization"]="Bearer {KEY}"}})
end
""")
    out = subprocess.run(["wrk", "-t1", "-c16", f"-d{seconds}s", "--latency", "-s", script, url],
                         capture_output=True, text=True, check=True).stdout
    os.remove(script)

    def ms(label):
        for line in out.splitlines():
            parts = line.split()
            if parts and parts[0] == label:
                v = parts[1]
                for unit, scale in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
                    if v.endswith(unit):
                        return float(v[:-len(unit)]) * scale
        return None
    rps = next(float(l.split()[1]) for l in out.splitlines() if l.startswith("Requests/sec:"))
    non2xx = next((int(l.split()[-1]) for l in out.splitlines() if "Non-2xx" in l), 0)
    return {"rps": rps, "p50_ms": ms("50%"), "p99_ms": ms("99%"), "non_2xx": non2xx}


def reads(numpool_bin, workdir, args, label):
    """Default and stale reads against a fresh 3-node cluster of `numpool_bin`."""
    etcd = Etcd(os.path.join(workdir, label), args.etcd_election_ms)
    nodes = [Node(numpool_bin, workdir, f"{label}-node{i}", "reads", etcd, args.lease_ttl)
             for i in range(3)]
    try:
        wait_for("a leader", lambda: leader_of(nodes) is not None)
        leader = leader_of(nodes)
        standby = next(n for n in nodes if n is not leader)
        profile = sticky_profile(leader.url, "failover", 0, 4)
        recipients = [f"+1971555{i:04d}" for i in range(100)]
        for to in recipients:
            call(leader.url + "/v2/messages/number_pool", "POST",
                 {"messaging_profile_id": profile, "to": to, "text": "x"})
        time.sleep(1.0)
        out = {}
        for case, node, stale in (("leader", leader, False), ("standby", standby, False),
                                  ("standby-stale", standby, True)):
            out[case] = wrk_reads(node.url, profile, recipients, stale)
            r = out[case]
            print(f"  {label:<9} read via {case:<14} {r['rps']:>9,.0f} req/s   "
                  f"p50 {r['p50_ms']:.2f} ms   p99 {r['p99_ms']:.2f} ms   non-2xx {r['non_2xx']}",
                  flush=True)
        return out
    finally:
        for n in nodes:
            n.kill()
        etcd.stop()


def etcd_received_bytes(etcd):
    """Bytes etcd has received from its clients so far (its gRPC counter;
    the JSON gateway's requests reach it through gRPC)."""
    text = etcd.metrics()
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith("etcd_network_client_grpc_received_bytes_total"))


def queue_bytes(numpool_bin, loadgen_bin, workdir, args, label):
    """etcd bytes received per second while one profile of 1,000 long codes
    (1 message a second each) is sent to without sticky sender, every
    sender's queue growing: what keeping queue ends replicated costs."""
    etcd = Etcd(os.path.join(workdir, f"qb-{label}"), args.etcd_election_ms)
    nodes = [Node(numpool_bin, workdir, f"qb-{label}-node{i}", "qbytes", etcd, args.lease_ttl)
             for i in range(3)]
    try:
        wait_for("a leader", lambda: leader_of(nodes) is not None)
        leader = leader_of(nodes)
        before, started = etcd_received_bytes(etcd), time.monotonic()
        out = os.path.join(workdir, f"qb-{label}.json")
        subprocess.run([loadgen_bin, "--target", leader.url + "/v2", "--api-key", KEY,
                        "--batch", "1", "--concurrency", "16", "--messages", "100k",
                        "--profiles", "1", "--numbers", "1000", "--sticky", "false",
                        "--recipients", "100M", "--dist", "uniform", "--quiet", "--json", out],
                       check=True, stdout=subprocess.DEVNULL)
        took = time.monotonic() - started
        sent = etcd_received_bytes(etcd) - before
        with open(out) as f:
            rate = json.load(f)["runs"][0]["throughput_per_sec"]
        print(f"  {label:<9} 1,000 backlogged senders: etcd received {sent / took / 1024:,.1f} KiB/s "
              f"over {took:.1f} s ({rate:,.0f} sends/s)", flush=True)
        return {"etcd_kib_per_s": sent / took / 1024, "sends_per_s": rate, "seconds": took}
    finally:
        for n in nodes:
            n.kill()
        etcd.stop()


def other_cluster(numpool_bin, loadgen_bin, workdir, args, label, secure):
    """Both cases on a fresh 3-node cluster of `numpool_bin` (on a secure
    etcd with `secure`), stopped after."""
    name = label.replace(" ", "-").replace("+", "")
    etcd = Etcd(os.path.join(workdir, name), args.etcd_election_ms, secure=secure,
                pprof=args.etcd_profile > 0)
    nodes = [Node(numpool_bin, workdir, f"{name}-node{i}", name, etcd, args.lease_ttl)
             for i in range(3)]
    try:
        wait_for("a leader", lambda: leader_of(nodes) is not None)
        leader = leader_of(nodes)
        return measure(loadgen_bin, leader.url, args, workdir, label,
                       cluster_processes(leader, nodes, etcd), etcd)
    finally:
        for n in nodes:
            n.kill()
        etcd.stop()


def cluster_processes(leader, nodes, etcd):
    """The processes of a cluster whose CPU a case reports, by name."""
    processes = {"leader": leader.proc.pid, "etcd": etcd.proc.pid}
    processes.update({f"standby{i}": n.proc.pid
                      for i, n in enumerate(n for n in nodes if n is not leader)})
    return processes


def print_ratios(this, other, what):
    for case in ("new-mapping", "sticky-hit"):
        ratio = this[case]["throughput"] / other[case]["throughput"]
        print(f"  {case}: {what} = {ratio:.2f}x", flush=True)


def sticky_profile(url, name, senders, count):
    """A sticky profile `name` of the `count` senders from +1312555`senders`
    on; its id."""
    status, body = call(url + "/v2/messaging_profiles", "POST",
                        {"name": name, "whitelisted_destinations": ["US"],
                         "number_pool_settings": {"sticky_sender": True}})
    if status != 200:
        sys.exit(f"cluster-bench: creating a profile answered {status}")
    profile = body["data"]["id"]
    for i in range(senders, senders + count):
        status, _ = call(url + f"/v2/phone_numbers/+1312555{i:04d}/messaging", "PATCH",
                         {"messaging_profile_id": profile})
        if status != 200:
            sys.exit(f"cluster-bench: assigning a sender answered {status}")
    return profile


def history_csv(path, rows, senders):
    """`rows` lines of message history: distinct recipients, sent a minute
    ago by the 50 senders from +1312555`senders` on."""
    sent = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    with open(path, "w") as f:
        f.write("from,to,sent_at\n")
        for i in range(rows):
            f.write(f"+1312555{senders + i % 50:04d},+1{2012000000 + i * 3},{sent}\n")


def timed_import(numpool_bin, url, csv, rows, senders=0):
    """Imports the file `csv` (made with `senders`) into a new profile
    through the node at `url`: rows per second, and the profile."""
    profile = sticky_profile(url, "imports", senders, 50)
    started = time.monotonic()
    out = subprocess.run([numpool_bin, "import", "--profile", profile, csv, "--node", url,
                          "--api-key", KEY], capture_output=True, text=True)
    took = time.monotonic() - started
    if out.returncode != 0 or f"{rows} rows: {rows} mapped" not in out.stdout:
        print(f"    import through {url} failed: {(out.stderr or out.stdout).strip()[-300:]}",
              flush=True)
        return None, profile
    return rows / took, profile


def timed_export(url, profile, rows, query=""):
    """An export of `profile` (`rows` mappings) through the node at `url`:
    lines per second (None if it failed or fell short), read as it
    arrives."""
    request = urllib.request.Request(
        f"{url}/v2/messaging_profiles/{profile}/sticky_mappings/export{query}",
        headers={"Authorization": f"Bearer {KEY}"})
    started, lines = time.monotonic(), 0
    try:
        with urllib.request.urlopen(request, timeout=600) as answer:
            while chunk := answer.read(1 << 16):
                lines += chunk.count(b"\n")
    except (urllib.error.URLError, OSError) as e:
        print(f"    export through {url} failed: {e}", flush=True)
        return None
    if lines != rows:
        print(f"    export through {url} gave {lines} lines of {rows}", flush=True)
        return None
    return lines / (time.monotonic() - started)


def imports(numpool_bin, workdir, args, label):
    """Imports and exports on one server and on a fresh 3-node cluster of
    `numpool_bin`."""
    rows = parse_count(args.imports)
    # The import through a standby goes to a second profile, of other
    # senders: the first stays whole for the exports.
    csv, other_csv = (os.path.join(workdir, f"history-{s}.csv") for s in (0, 50))
    if not os.path.exists(csv):
        history_csv(csv, rows, 0)
        history_csv(other_csv, rows, 50)
    out = {}
    single = Node(numpool_bin, workdir, f"{label}-imports-single")
    try:
        out["single"], _ = timed_import(numpool_bin, single.url, csv, rows)
    finally:
        single.kill()
    etcd = Etcd(os.path.join(workdir, f"{label}-imports"), args.etcd_election_ms)
    nodes = [Node(numpool_bin, workdir, f"{label}-imports-node{i}", "imports", etcd,
                  args.lease_ttl) for i in range(3)]
    try:
        wait_for("a leader", lambda: leader_of(nodes) is not None)
        leader = leader_of(nodes)
        standby = next(n for n in nodes if n is not leader)
        out["leader"], profile = timed_import(numpool_bin, leader.url, csv, rows)
        out["standby"], _ = timed_import(numpool_bin, standby.url, other_csv, rows, 50)
        out["export_leader"] = timed_export(leader.url, profile, rows)
        head = leader.ready()["applied"]
        wait_for("the standby applies the imports",
                 lambda: (standby.ready() or {}).get("applied", -1) >= head)
        out["export_standby"] = timed_export(standby.url, profile, rows, "?consistency=stale")
    finally:
        for n in nodes:
            n.kill()
        etcd.stop()
    rate = lambda r: "failed" if r is None else f"{r / 1e6:.2f} M/s"
    print(f"  {label:<9} import of {rows:,} rows: one server {rate(out['single'])}; "
          f"3-node through the leader {rate(out['leader'])}, through a standby "
          f"{rate(out['standby'])}; export through the leader {rate(out['export_leader'])}, "
          f"from a standby (stale) {rate(out['export_standby'])}", flush=True)
    if out["single"] and out["leader"]:
        print(f"  {label:<9} import: 3-node through the leader / one server = "
              f"{out['leader'] / out['single']:.2f}x", flush=True)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", default="100k")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--kills", type=int, default=5)
    p.add_argument("--switchovers", type=int, default=0)
    p.add_argument("--sigterms", type=int, default=0)
    p.add_argument("--reads", action="store_true")
    p.add_argument("--queue-bytes", action="store_true",
                   help="etcd bytes per second under a backlogged pool of 1,000 senders")
    p.add_argument("--baseline", help="another numpool binary whose cluster (and reads) are "
                   "measured too, before this one's")
    p.add_argument("--etcd-profile", type=int, default=0, metavar="SECONDS",
                   help="profile etcd's CPU for SECONDS of each cluster's new-mapping case "
                        "(from 2 s in; it says so when the case ended first) and print "
                        "where it goes; etcd then runs with --enable-pprof")
    p.add_argument("--lease-ttl", default="2s")
    p.add_argument("--etcd-election-ms", type=int, default=1000)
    p.add_argument("--secure", action="store_true",
                   help="the cluster cases again against etcd with TLS, client certificates "
                        "and users, before the plain cluster starts (needs openssl and etcdctl)")
    p.add_argument("--only-cluster", action="store_true",
                   help="skip the single node and the loadgen cases")
    p.add_argument("--imports", metavar="ROWS",
                   help="import ROWS rows of message history into one server and a cluster "
                        "(through its leader and a standby), then export them")
    p.add_argument("--json")
    args = p.parse_args()
    if shutil.which("etcd") is None or shutil.which("etcdctl") is None:
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
        results = {}
        if args.reads:
            results["reads"] = {"this": reads(numpool, workdir, args, "this")}
            if args.baseline:
                results["reads"]["baseline"] = reads(args.baseline, workdir, args, "baseline")
                for case, r in results["reads"]["this"].items():
                    b = results["reads"]["baseline"][case]
                    print(f"  read via {case}: this / baseline = {r['rps'] / b['rps']:.2f}x "
                          f"throughput, p50 {r['p50_ms']:.2f} vs {b['p50_ms']:.2f} ms", flush=True)
        if args.imports:
            results["imports"] = {}
            if args.baseline:
                results["imports"]["baseline"] = imports(args.baseline, workdir, args, "baseline")
            results["imports"]["this"] = imports(numpool, workdir, args, "this")
        if args.queue_bytes:
            results["queue_bytes"] = {"this": queue_bytes(numpool, loadgen_bin, workdir, args,
                                                          "this")}
            if args.baseline:
                results["queue_bytes"]["baseline"] = queue_bytes(args.baseline, loadgen_bin,
                                                                 workdir, args, "baseline")
        if not args.only_cluster:
            single = Node(numpool, workdir, "single")
            started.append(single)
            results["single"] = measure(loadgen_bin, single.url, args, workdir, "single node",
                                        {"numpool": single.proc.pid})
            single.stop()
        # The other clusters are measured before this build's plain one
        # starts: an idle cluster left running beside them would take a
        # share of the two cores.
        if args.baseline and not args.only_cluster:
            results["baseline_cluster"] = other_cluster(
                args.baseline, loadgen_bin, workdir, args, "baseline", secure=False)
        if args.secure and not args.only_cluster:
            results["secure_cluster"] = other_cluster(
                numpool, loadgen_bin, workdir, args, "3-node TLS+auth", secure=True)
        etcd = Etcd(workdir, args.etcd_election_ms, pprof=args.etcd_profile > 0)
        nodes = [Node(numpool, workdir, f"node{i}", "bench", etcd, args.lease_ttl)
                 for i in range(3)]
        started += nodes
        wait_for("a leader", lambda: leader_of(nodes) is not None)
        leader = leader_of(nodes)
        if not args.only_cluster:
            results["cluster"] = measure(loadgen_bin, leader.url, args, workdir, "3-node",
                                         cluster_processes(leader, nodes, etcd), etcd)
            for case in ("new-mapping", "sticky-hit"):
                ratio = (results["cluster"][case]["throughput"]
                         / results["single"][case]["throughput"])
                results.setdefault("ratio", {})[case] = ratio
                print(f"  {case}: 3-node / single node = {ratio:.2f}x", flush=True)
            if args.baseline:
                print_ratios(results["cluster"], results["baseline_cluster"],
                             "3-node this / baseline")
            if args.secure:
                print_ratios(results["secure_cluster"], results["cluster"],
                             "3-node on TLS+auth etcd / on plain etcd")
        profile = sticky_profile(leader.url, "failover", 0, 4)
        if args.kills > 0:
            times = failover(nodes, profile, args.kills)
            results["failover_s"] = times
            results["failover_median_s"] = statistics.median(times)
            print(f"  failover over {len(times)} kills (lease TTL {args.lease_ttl}): "
                  f"median {statistics.median(times):.2f} s, worst {max(times):.2f} s", flush=True)
        for how, count in (("switchover", args.switchovers), ("sigterm", args.sigterms)):
            if count > 0:
                r = planned(nodes, profile, count, how, numpool)
                results[how] = r
                print(f"  {how} x{count}: write gap median {statistics.median(r['gaps_s']):.3f} s, "
                      f"worst {max(r['gaps_s']):.3f} s; failures seen {r['failures']}; "
                      f"acknowledged and lost: {r['lost']}", flush=True)
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
