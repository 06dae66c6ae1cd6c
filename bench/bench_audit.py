#!/usr/bin/python3
"""Timings of `s2sproxy audit` on loopback (numbers go to bench/README-audit.md).

World (the integration harness): Knot with a signed ``test.`` zone, one Prosody
(a.test on 127.0.0.2, STARTTLS only: one endpoint, TLSA 3 1 1, certificate also valid for
``*.bench.test``), and N domains ``dNNN.bench.test`` whose SRV records point at it.

1. one domain, one endpoint, full report with protocol and cipher enumeration: the wall
   time of the whole command, RUNS times (median, min, max);
2. N domains (default 100) with -j J (default 20): total wall time.

Usage: bench/bench_audit.py [--runs 5] [--domains 100] [-j 20]   (as root, from the repo)
"""

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SRCDIR, "tests", "integration", "lib"))

from s2stest import ca as C  # noqa: E402
from s2stest import knot as K  # noqa: E402
from s2stest import procs as P  # noqa: E402
from s2stest import prosody as PR  # noqa: E402

BINDIR = os.environ.get("S2S_BINDIR", os.path.join(SRCDIR, "build"))
PROXY = os.path.join(BINDIR, "s2sproxy")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--domains", type=int, default=100)
    ap.add_argument("-j", type=int, default=20)
    args = ap.parse_args()

    with P.Scratch("bench-audit") as scratch, P.Procs(scratch) as procs:
        ca = C.CA(scratch.sub("ca"))
        knot = K.Knot(procs, scratch)
        knot.add_zone("test.")
        leaf = ca.issue("a.test", dns=["a.test", "*.bench.test"], xmppaddr=["a.test"])
        names = [f"d{i:03d}.bench.test" for i in range(args.domains)]
        # The one Prosody hosts every domain (it refuses streams to hosts it does not
        # serve), all with the same wildcard certificate.
        hosts = {"a.test": leaf}
        hosts.update({n: leaf for n in names})
        a = PR.Prosody(procs, scratch, "a", "127.0.0.2", hosts, ca_file=ca.cert, knot=knot)
        knot.a("a.test", a.ip)
        knot.srv("a.test", "a.test", a.s2s_port)
        knot.tlsa("a.test", a.s2s_port, leaf.tlsa_311())
        for n in names:
            knot.srv(n, "a.test", a.s2s_port)
        knot.start()
        a.start()
        conf = scratch.file("audit.conf")
        with open(conf, "w") as f:
            f.write(f"""
hosts = ( {{ domain = "audit.test"; certificate = "{leaf.chain}"; key = "{leaf.key}"; }} );
tls = {{ ca_file = "{ca.cert}"; }};
dns = {{ backend = "unbound"; servers = [ "{knot.ip}:{knot.port}" ]; timeout = 2;
        trust_anchor_file = "{knot.trust_anchor_file}";
        unbound_options = ( ("local-zone:", "test. transparent") ); }};
""")
        base = [PROXY, "audit", "-c", conf, "--json"]

        times, inner, probes, grade = [], [], 0, None
        for _ in range(args.runs):
            t0 = time.monotonic()
            res = subprocess.run(base + ["a.test"], capture_output=True, text=True, timeout=120)
            times.append(time.monotonic() - t0)
            doc = json.loads(res.stdout)
            probes = doc["endpoints"][0]["probes"]
            inner.append((doc["elapsed_ms"], doc["endpoints"][0]["probe_ms"]))
            grade = doc["grade"]
        print(f"one domain, one endpoint, full enumeration ({probes} handshakes, grade "
              f"{grade}): median {statistics.median(times):.3f} s, min {min(times):.3f} s, "
              f"max {max(times):.3f} s over {args.runs} runs "
              f"({', '.join(f'{t:.3f}' for t in times)})")
        print("  inside (elapsed ms, main probe ms): "
              + ", ".join(f"({e:.0f}, {p:.0f})" for e, p in inner))

        lst = scratch.file("domains.txt")
        with open(lst, "w") as f:
            f.write("\n".join(names) + "\n")
        t0 = time.monotonic()
        res = subprocess.run(base + ["-f", lst, "-j", str(args.j)], capture_output=True,
                             text=True, timeout=1800)
        took = time.monotonic() - t0
        docs = json.loads(res.stdout)
        grades = collections.Counter(d["grade"] for d in docs)
        hs = sum(e["probes"] for d in docs for e in d["endpoints"])
        print(f"{len(names)} domains, -j {args.j}: {took:.2f} s total, grades {dict(grades)}, "
              f"{hs} enumeration handshakes ({hs / took:.0f}/s, at most 4 at a time per "
              f"address), exit {res.returncode}")


if __name__ == "__main__":
    main()
