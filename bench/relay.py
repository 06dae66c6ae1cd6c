#!/usr/bin/python3
"""Relay benchmark (bench/README.md "Relay"): the same s2s load through three relays.

  bench_relay (remote servers r1..rS.test, TLS + SASL EXTERNAL)
      -> (a) s2sproxy serving a.test -> its XEP-0114 local link -> bench_sink (-l)
      -> (b) Prosody 0.12, Component "a.test" = bench_sink (-c), native s2s in
      -> (c) bench_tcprelay (plain TCP, no TLS, no XML) -> bench_sink (-r)

Reverse direction (not through the TCP floor: copying is symmetric):
  bench_sink as the source (user@a.test -> u@rK.test) over the proxy's local link /
  its component link into Prosody -> s2s out (DNS from Knot, TLS, SASL EXTERNAL)
  -> bench_relay -L (the remote servers' receiving side), which counts.

For each: full speed (window of W stanzas in flight) -> stanzas/s, MB/s, CPU seconds
of the relaying process per 100k stanzas (/proc/PID/task/*/schedstat around the
sending phase only); fixed rate -> added latency p50/p99/p99.9; peak RSS (VmHWM).
Then (proxy only) memory per idle authenticated TLS stream.
Numbers are printed, never asserted.

Usage (root, from the repository root, after a Release build in build-rel):
    bench/relay.py [--reps 3] [--streams 4] [--size 200] [--full N] [--rate 10000]
                   [--secs 3] [--idle 5000] [--bin build-rel] [--pin]
                   [--only proxy,prosody,tcp,reverse]
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

sys.dont_write_bytecode = True
SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(SRC, "tests", "integration", "lib"))

from s2stest import ca as C  # noqa: E402
from s2stest import knot as K  # noqa: E402
from s2stest import procs as P  # noqa: E402
from s2stest import prosody as PR  # noqa: E402

IP = "127.0.0.9"        # proxy, sink, relay
PROSODY_IP = "127.0.0.10"
RECV_IP = "127.0.0.11"  # the remote servers' receiving side (reverse direction)
SECRET = "component-secret"


def cpu_s(pid):
    """CPU seconds of every thread of pid, in ns resolution (/proc/PID/task/*/schedstat,
    first field: time on CPU; utime+stime in /proc/PID/stat only count 10 ms ticks)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except FileNotFoundError:
            pass  # a thread that just ended
    return total / 1e9


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


class QuietProsody(PR.Prosody):
    """Prosody as users run it: log at warn level (the harness logs debug), a.test a
    Component (the sink) with its own certificate, host.test the VirtualHost."""

    def __init__(self, *args, comp_leaf, **kw):
        self.comp_leaf = comp_leaf
        super().__init__(*args, **kw)

    def config_text(self):
        text = super().config_text()
        text = text.replace(f'log = {{ ["debug"] = {PR.lua(self.log)} }}',
                            f'log = {{ ["warn"] = {PR.lua(self.log)} }}')
        assert '["warn"]' in text, "log line not found"
        ssl = {"certificate": self.comp_leaf.chain, "key": self.comp_leaf.key,
               "cafile": self.ca_file}
        return text + f"  ssl = {PR.lua(ssl)}\n"


def run_gen(bin_dir, target, shm, pid, args):
    """One generator run; CPU of pid sampled around the sending phase. Returns a dict."""
    argv = [os.path.join(bin_dir, "bench_relay"), "-G", "-a", target, "-m", shm] + args
    g = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    pin(g.pid, "load")
    try:
        ready = g.stdout.readline()
        if not ready.startswith("ready"):
            raise RuntimeError(f"generator failed: {' '.join(argv)}")
        c0 = cpu_s(pid)
        g.stdin.write("\n")
        g.stdin.flush()
        line = g.stdout.readline()
        c1 = cpu_s(pid)
        g.wait(timeout=60)
    finally:
        if g.poll() is None:
            g.kill()
            g.wait()
    if not line.startswith("result"):
        raise RuntimeError(f"generator gave no result: {' '.join(argv)}")
    res = parse_result(line)
    res["cpu_s"] = c1 - c0
    res["cpu_per_100k"] = (c1 - c0) / max(res["received"], 1) * 100000
    return res


PIN = {}  # role -> CPU set, filled by --pin


def pin(pid, role):
    """--pin: the relaying process on one core, the load tools on the other."""
    cpus = PIN.get(role)
    if not cpus:
        return
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except (ProcessLookupError, FileNotFoundError):
            pass


def parse_result(line):
    return {k: float(v) if v.replace(".", "").isdigit() else v
            for k, v in (kv.split("=", 1) for kv in line.split()[1:])}


def run_rev(sink, fifo, pid, role, n, rate, size, domains, window, rshm):
    """One reverse run driven through the sink's command FIFO."""
    mark = P.log_mark(sink.stderr_path)
    c0 = cpu_s(pid)
    with open(fifo, "w") as f:
        f.write(f"send {role} {n} {rate} {size} {domains} {window} {rshm}\n")
    m = P.wait_log(sink.stderr_path, r"^(result .*|bench_sink: (no|source|bad).*)$", 120,
                   since=mark, procs=[sink])
    c1 = cpu_s(pid)
    if not m.group(1).startswith("result"):
        raise RuntimeError(f"reverse run failed: {m.group(1)}")
    res = parse_result(m.group(1))
    res["cpu_s"] = c1 - c0
    res["cpu_per_100k"] = (c1 - c0) / max(res["received"], 1) * 100000
    return res


def idle_streams(bin_dir, target, pid, n, tls_args):
    """n idle authenticated TLS streams held open: proxy RSS delta per stream."""
    warm = subprocess.Popen([os.path.join(bin_dir, "bench_relay"), "-I", "-a", target, "-S",
                             "20", "-F", "1"] + tls_args,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    warm.stdout.readline()
    before = status_kib(pid, "VmRSS")
    t0 = time.monotonic()
    g = subprocess.Popen([os.path.join(bin_dir, "bench_relay"), "-I", "-a", target, "-S",
                          str(n), "-F", "1"] + tls_args,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    ready = g.stdout.readline()
    after = status_kib(pid, "VmRSS")
    took = time.monotonic() - t0
    for p in (g, warm):
        p.stdin.close()
        p.wait(timeout=30)
    if not ready.startswith("ready"):
        raise RuntimeError("idle streams: generator failed")
    return before, after, took


def fmt_row(name, full, rate):
    def med(rows, key):
        return statistics.median(r[key] for r in rows)

    def rng(rows, key):
        v = [r[key] for r in rows]
        return f"{min(v):.0f}-{max(v):.0f}"
    return (f"| {name} | {med(full, 'stanzas_per_s'):.0f} ({rng(full, 'stanzas_per_s')}) "
            f"| {med(full, 'mb_per_s'):.1f} | {med(full, 'cpu_per_100k'):.3f} "
            f"| {med(rate, 'lat_p50_us'):.0f} | {med(rate, 'lat_p99_us'):.0f} "
            f"({min(r['lat_p99_us'] for r in rate):.0f}) "
            f"| {med(rate, 'lat_p999_us'):.0f} | {med(rate, 'cpu_per_100k'):.3f} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--full", type=int, default=200000, help="stanzas per full-speed run")
    ap.add_argument("--prosody-full", type=int, default=40000)
    ap.add_argument("--window", type=int, default=2000)
    ap.add_argument("--rate", type=int, default=10000)
    ap.add_argument("--secs", type=float, default=3.0, help="seconds per fixed-rate run")
    ap.add_argument("--idle", type=int, default=5000)
    ap.add_argument("--bin", default=os.path.join(SRC, "build-rel"))
    ap.add_argument("--pin", action="store_true",
                    help="relaying process on CPU 1, generator/sink/receiver on CPU 0")
    ap.add_argument("--only", default="proxy,prosody,tcp,reverse")
    ap.add_argument("--proxy-extra", default="",
                    help="text appended to the proxy's configuration (e.g. metrics, eventlog)")
    a = ap.parse_args()
    only = a.only.split(",")
    if a.pin:
        PIN.update(relay={1}, load={0})
    bin_dir = os.path.abspath(a.bin)

    with P.Scratch("relaybench") as scratch, P.Procs(scratch) as procs:
        ca = C.CA(scratch.sub("ca"))
        a_leaf = ca.issue("a.test", dns=["a.test"], xmppaddr=["a.test"])
        remotes = [f"r{i}.test" for i in range(1, a.streams + 1)]
        r_leaf = ca.issue("r1.test", dns=remotes, xmppaddr=remotes)
        tls_args = ["-C", r_leaf.chain, "-K", r_leaf.key, "-A", ca.cert]
        shm = scratch.file("sink.shm")
        rshm = scratch.file("receiver.shm")
        fifo = scratch.file("sink.cmd")
        sink_port, raw_port, proxy_port, relay_port = P.free_ports(IP, 4)
        recv_port = P.free_port(RECV_IP)
        reverse = "reverse" in only

        knot = None
        if reverse:
            knot = K.Knot(procs, scratch)
            knot.add_zone("test.")
            for r in remotes:
                knot.a(r, RECV_IP)
                knot.srv(r, r, recv_port)
            knot.start()
            receiver = procs.start("receiver", [os.path.join(bin_dir, "bench_relay"), "-L",
                                                f"{RECV_IP}:{recv_port}", "-m", rshm,
                                                "-C", r_leaf.chain, "-K", r_leaf.key])
            P.wait_log(receiver.stderr_path, r"ready", 10, procs=[receiver])
            pin(receiver.popen.pid, "load")

        pros = None
        if "prosody" in only:
            host_leaf = ca.issue("host.test")
            pros = QuietProsody(procs, scratch, "a", PROSODY_IP, {"host.test": host_leaf},
                                ca.cert, components=[PR.Component("a.test", SECRET)],
                                comp_leaf=a_leaf, knot=knot)
            pros.start()
            pin(pros.proc.popen.pid, "relay")
        sink_argv = [os.path.join(bin_dir, "bench_sink"), "-m", shm, "-s", SECRET,
                     "-l", f"{IP}:{sink_port}", "-r", f"{IP}:{raw_port}", "-x", fifo]
        if pros:
            sink_argv += ["-c", f"{PROSODY_IP}:{pros.component_port}", "-n", "a.test"]
        sink = procs.start("sink", sink_argv)
        P.wait_log(sink.stderr_path, r"ready", 10, procs=[sink])
        pin(sink.popen.pid, "load")
        if pros:
            P.wait_log(sink.stderr_path, r"component a\.test accepted", 10, procs=[sink])

        pdir = scratch.sub("proxy")
        cfg = os.path.join(pdir, "s2sproxy.conf")
        with open(cfg, "w") as f:
            f.write(f"""
log = {{ level = "warning"; }};
hosts = ( {{ domain = "a.test"; certificate = "{a_leaf.chain}"; key = "{a_leaf.key}";
            component = {{ host = "{IP}"; port = {sink_port}; secret = "{SECRET}";
                           name = "s2s.a.test"; }}; }} );
tls = {{ ca_file = "{ca.cert}"; }};
listen = {{ starttls = [ "{IP}:{proxy_port}" ]; }};
limits = {{ connections_per_ip = {a.idle + 100}; }};
dialback = {{ secret = "relay-benchmark-dialback-secret"; }};
""")
            f.write(a.proxy_extra.replace("@DIR@", pdir) + "\n")
            if knot:
                f.write(f"""dns = {{ backend = "unbound"; servers = [ "{knot.ip}:{knot.port}" ];
        trust_anchor_file = "{knot.trust_anchor_file}";
        unbound_options = ( ("local-zone:", "test. transparent") ); timeout = 3; }};
""")
        proxy = procs.start("proxy", [os.path.join(bin_dir, "s2sproxy"), "-c", cfg])
        P.wait_port(IP, proxy_port, 10, procs=[proxy])
        pin(proxy.popen.pid, "relay")
        P.wait_log(sink.stderr_path, r"component link up", 10, procs=[sink, proxy])
        relay = procs.start("tcprelay", [os.path.join(bin_dir, "bench_tcprelay"),
                                         f"{IP}:{relay_port}", f"{IP}:{raw_port}"])
        P.wait_port(IP, relay_port, 10, procs=[relay])
        pin(relay.popen.pid, "relay")

        common = ["-S", str(a.streams), "-s", str(a.size), "-w", str(a.window)]
        rate_n = int(a.rate * a.secs)
        systems = []
        if "proxy" in only:
            systems.append(("s2sproxy", f"{IP}:{proxy_port}", proxy.popen.pid, tls_args,
                            a.full))
        if pros:
            systems.append(("Prosody 0.12", f"{PROSODY_IP}:{pros.s2s_port}",
                            pros.proc.popen.pid, tls_args, a.prosody_full))
        if "tcp" in only:
            systems.append(("TCP relay (floor)", f"{IP}:{relay_port}", relay.popen.pid,
                            ["-P"], a.full))
        rev = []
        if reverse and "proxy" in only:
            rev.append(("s2sproxy (reverse)", "server", proxy.popen.pid, a.full))
        if reverse and pros:
            rev.append(("Prosody 0.12 (reverse)", "component", pros.proc.popen.pid,
                        a.prosody_full))
        results = {name: ([], []) for name, *_ in systems + rev}
        # warm-up: routes, allocator, Prosody's JIT-less Lua caches
        for name, target, pid, extra, n in systems:
            run_gen(bin_dir, target, shm, pid, common + extra + ["-n", str(n // 10)])
        for name, role, pid, n in rev:  # warm-up: DNS, outbound streams
            run_rev(sink, fifo, pid, role, n // 10, 0, a.size, a.streams, a.window, rshm)
        for rep in range(a.reps):
            for name, role, pid, n in rev:
                full = run_rev(sink, fifo, pid, role, n, 0, a.size, a.streams, a.window, rshm)
                rate = run_rev(sink, fifo, pid, role, rate_n, a.rate, a.size, a.streams,
                               a.window, rshm)
                results[name][0].append(full)
                results[name][1].append(rate)
                print(f"# rep {rep + 1} {name}: full {full['stanzas_per_s']:.0f}/s "
                      f"{full['mb_per_s']:.1f} MB/s cpu/100k {full['cpu_per_100k']:.3f} s "
                      f"(received {full['received']:.0f}); rate {a.rate}/s p50 "
                      f"{rate['lat_p50_us']:.0f} p99 {rate['lat_p99_us']:.0f} p99.9 "
                      f"{rate['lat_p999_us']:.0f} max {rate['lat_max_us']:.0f} us "
                      f"cpu/100k {rate['cpu_per_100k']:.3f} s pings {rate['pings']:.0f}", flush=True)
            for name, target, pid, extra, n in systems:
                full = run_gen(bin_dir, target, shm, pid, common + extra + ["-n", str(n)])
                rate = run_gen(bin_dir, target, shm, pid,
                               common + extra + ["-n", str(rate_n), "-r", str(a.rate)])
                results[name][0].append(full)
                results[name][1].append(rate)
                print(f"# rep {rep + 1} {name}: full {full['stanzas_per_s']:.0f}/s "
                      f"{full['mb_per_s']:.1f} MB/s cpu/100k {full['cpu_per_100k']:.3f} s "
                      f"(received {full['received']:.0f}); rate {a.rate}/s p50 "
                      f"{rate['lat_p50_us']:.0f} p99 {rate['lat_p99_us']:.0f} p99.9 "
                      f"{rate['lat_p999_us']:.0f} max {rate['lat_max_us']:.0f} us "
                      f"cpu/100k {rate['cpu_per_100k']:.3f} s pings {rate['pings']:.0f}", flush=True)
        hwm = {name: status_kib(pid, "VmHWM") for name, _, pid, *_ in systems}

        print(f"\n{a.streams} streams, {a.size}-B messages, window {a.window}; "
              f"{'pinned (relay CPU 1, load CPU 0); ' if a.pin else ''}"
              f"latency at {a.rate}/s for {a.secs:.0f} s; medians of {a.reps} (range / best rep)\n")
        print("| relay | stanzas/s full speed | MB/s | CPU s/100k (full) | p50 µs | p99 µs (best) "
              "| p99.9 µs | CPU s/100k (at rate) |")
        print("|---|---|---|---|---|---|---|---|")
        for name in results:
            print(fmt_row(name, *results[name]))
        print()
        for name in hwm:
            print(f"# peak RSS (VmHWM) {name}: {hwm[name]} KiB")

        def med(name, i, key):
            return statistics.median(r[key] for r in results[name][i])
        if "s2sproxy" in results:
            px = med("s2sproxy", 0, "cpu_per_100k")
            print(f"# s2sproxy: {100000 / px:.0f} stanzas per CPU-second (full speed)")
            if "Prosody 0.12" in results:
                pr = med("Prosody 0.12", 0, "cpu_per_100k")
                print(f"# Prosody: {100000 / pr:.0f} stanzas per CPU-second; "
                      f"proxy/Prosody = {pr / px:.1f}x (target >= 10x); throughput ratio "
                      f"{med('s2sproxy', 0, 'stanzas_per_s') / med('Prosody 0.12', 0, 'stanzas_per_s'):.1f}x")
            if "TCP relay (floor)" in results:
                tc = med("TCP relay (floor)", 0, "cpu_per_100k")
                print(f"# TCP floor: {100000 / tc:.0f} stanzas per CPU-second; proxy costs "
                      f"{px / tc:.1f}x the floor's CPU per stanza; throughput "
                      f"{med('s2sproxy', 0, 'stanzas_per_s') / med('TCP relay (floor)', 0, 'stanzas_per_s'):.2f}x the floor")
        if a.idle and "proxy" in only:
            before, after, took = idle_streams(bin_dir, f"{IP}:{proxy_port}",
                                               proxy.popen.pid, a.idle, tls_args)
            print(f"# idle: {a.idle} authenticated TLS s2s streams (SASL EXTERNAL) held by "
                  f"the proxy: RSS {before} -> {after} KiB, "
                  f"{(after - before) / a.idle:.1f} KiB per stream (target <= 64); opened "
                  f"in {took:.1f} s")
        procs.check()


if __name__ == "__main__":
    main()
