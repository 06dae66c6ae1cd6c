#!/usr/bin/python3
"""`s2sproxy audit` against real servers on loopback, with a real DNS server.

World: Knot serves a DNSSEC-signed ``test.`` (its DS is the audit's trust anchor) and an
unsigned, insecurely delegated ``uns.test.``.  Prosody instances:

- a.test (127.0.0.2): valid certificate, TLSA 3 1 1, STARTTLS and direct TLS, TLS 1.2+
  (Prosody's default), s2s_require_encryption: expect A+; with --as audit.test, SASL
  EXTERNAL from us succeeds;
- exp.test (127.0.0.3): an expired certificate: T mark and a chain finding;
- wrong.test (127.0.0.4): a certificate for other.test: T mark, name not valid;
- opt.test (127.0.0.5): s2s_require_encryption = false: capped at C;
- x.uns.test (127.0.0.6): in the unsigned zone: DNSSEC insecure, no DANE (TLSA unusable);
- badtlsa.test (127.0.0.7): a TLSA record that matches nothing: DANE mismatch, T mark.

- cn.test (127.0.0.11): a valid certificate and DANE, but its SRV target xmpp.cn.test is
  a CNAME of the Prosody's host name host.cn.test (RFC 2782 forbids aliases): the audit
  reaches it through the alias, reports the alias and grades A where it would be A+.

DNS only: nosrv.test has an SRV "." target (service not available), gone.test points at
a port nobody listens on (unreachable), nx.test does not exist.  And `openssl s_server`
as a direct-TLS endpoint of old.test (127.0.0.8) accepting TLS 1.0 to 1.2, if the local
OpenSSL can still speak TLS 1.0: the audit reports TLS 1.0/1.1 accepted and caps at B;
if it cannot, the audit must say "not testable" (asserted from what `openssl s_client`
here can do).  Every expected fact is asserted in the JSON output.
"""

import json
import os
import re
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

from s2stest import ca as C  # noqa: E402
from s2stest import knot as K  # noqa: E402
from s2stest import procs as P  # noqa: E402
from s2stest import prosody as PR  # noqa: E402
from s2stest.runner import Runner  # noqa: E402

SRCDIR = os.environ.get("S2S_SRCDIR", os.path.abspath(os.path.join(os.path.dirname(__file__),
                                                                   "..", "..")))
BINDIR = os.environ.get("S2S_BINDIR", os.path.join(SRCDIR, "build"))
PROXY = os.path.join(BINDIR, "s2sproxy")


def local_openssl_speaks_tls1(scratch):
    """Whether this machine's OpenSSL can negotiate TLS 1.0 with itself at SECLEVEL=0."""
    ca = C.CA(scratch.sub("probe-ca"))
    leaf = ca.issue("probe.test")
    port = P.free_port("127.0.0.1")
    srv = subprocess.Popen(["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert",
                            leaf.cert, "-key", leaf.key, "-tls1", "-cipher", "ALL:@SECLEVEL=0",
                            "-naccept", "2", "-quiet"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        P.wait_port("127.0.0.1", port, 10.0)
        cli = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1",
                              "-cipher", "ALL:@SECLEVEL=0"], input=b"", capture_output=True,
                             timeout=10)
        return re.search(rb"New, TLSv1(\.0)?, Cipher is [A-Z]", cli.stdout) is not None
    finally:
        srv.kill()
        srv.wait(5)


class World:
    def __init__(self, procs, scratch):
        self.scratch = scratch
        self.ca = C.CA(scratch.sub("ca"))
        k = self.knot = K.Knot(procs, scratch)
        k.add_zone("test.")
        k.add_zone("uns.test.", signed=False, ds="none")

        def leaf(name, **kw):
            kw.setdefault("dns", [name])
            kw.setdefault("xmppaddr", [name])
            return self.ca.issue(name, **kw)

        common = dict(ca_file=self.ca.cert, knot=k)
        self.a = PR.Prosody(procs, scratch, "a", "127.0.0.2", {"a.test": leaf("a.test")},
                            direct_tls=True, **common)
        self.exp = PR.Prosody(procs, scratch, "exp", "127.0.0.3",
                              {"exp.test": leaf("exp.test", expired=True)}, **common)
        self.wrong = PR.Prosody(procs, scratch, "wrong", "127.0.0.4",
                                {"wrong.test": leaf("other.test")}, **common)
        self.opt = PR.Prosody(procs, scratch, "opt", "127.0.0.5", {"opt.test": leaf("opt.test")},
                              require_encryption=False, secure_auth=False, **common)
        self.uns = PR.Prosody(procs, scratch, "uns", "127.0.0.6",
                              {"x.uns.test": leaf("x.uns.test")}, **common)
        self.bad = PR.Prosody(procs, scratch, "bad", "127.0.0.7",
                              {"badtlsa.test": leaf("badtlsa.test")}, **common)
        cn_leaf = leaf("cn.test")
        self.cn = PR.Prosody(procs, scratch, "cn", "127.0.0.11", {"cn.test": cn_leaf}, **common)
        self.servers = [self.a, self.exp, self.wrong, self.opt, self.uns, self.bad, self.cn]
        for s in self.servers:
            if s is not self.cn:
                s.publish(k, tlsa=s is not self.bad and s is not self.exp)
        k.tlsa("badtlsa.test", self.bad.s2s_port, "00" * 32)
        k.record("_xmpp-server._tcp.nosrv.test", "SRV", "0 0 0 .")
        k.srv("cn.test", "xmpp.cn.test", self.cn.s2s_port)
        k.record("xmpp.cn.test", "CNAME", "host.cn.test.")
        k.a("host.cn.test", "127.0.0.11")
        k.tlsa("xmpp.cn.test", self.cn.s2s_port, cn_leaf.tlsa_311())
        k.a("gone.test", "127.0.0.9")
        k.srv("gone.test", "gone.test", P.free_port("127.0.0.9"))

        # A legacy direct-TLS endpoint (XEP-0368 SRV _xmpps-server only).
        self.tls1_ok = local_openssl_speaks_tls1(scratch)
        old_leaf = leaf("old.test")
        self.old_port = P.free_port("127.0.0.8")
        k.a("old.test", "127.0.0.8")
        k.srv("old.test", "old.test", self.old_port, service="_xmpps-server")
        self.old = procs.start("s_server-old", [
            "openssl", "s_server", "-accept", f"127.0.0.8:{self.old_port}", "-cert",
            old_leaf.cert, "-cert_chain", self.ca.cert, "-key", old_leaf.key, "-min_protocol",
            "TLSv1", "-max_protocol", "TLSv1.2", "-cipher", "HIGH:!aNULL:@SECLEVEL=0", "-www",
            "-quiet"])
        # And one stuck on TLS 1.0/1.1 (when this OpenSSL can still speak them).
        self.older = None
        if self.tls1_ok:
            older_leaf = leaf("older.test")
            self.older_port = P.free_port("127.0.0.10")
            k.a("older.test", "127.0.0.10")
            k.srv("older.test", "older.test", self.older_port, service="_xmpps-server")
            self.older = procs.start("s_server-older", [
                "openssl", "s_server", "-accept", f"127.0.0.10:{self.older_port}", "-cert",
                older_leaf.cert, "-cert_chain", self.ca.cert, "-key", older_leaf.key,
                "-min_protocol", "TLSv1", "-max_protocol", "TLSv1.1", "-cipher",
                "HIGH:!aNULL:@SECLEVEL=0", "-www", "-quiet"])

        k.start()
        for s in self.servers:
            s.start()
        P.wait_port("127.0.0.8", self.old_port, 10.0, procs=[self.old])
        if self.older:
            P.wait_port("127.0.0.10", self.older_port, 10.0, procs=[self.older])

        # Our configuration: the signed zone's trust anchor, the test CA, a hosted domain.
        ours = self.ca.issue("audit.test", dns=["audit.test"], xmppaddr=["audit.test"])
        self.conf = scratch.file("audit.conf")
        with open(self.conf, "w") as f:
            f.write(f"""
hosts = ( {{ domain = "audit.test"; certificate = "{ours.chain}"; key = "{ours.key}"; }} );
tls = {{ ca_file = "{self.ca.cert}"; }};
dns = {{ backend = "unbound"; servers = [ "{k.ip}:{k.port}" ]; timeout = 2;
        trust_anchor_file = "{k.trust_anchor_file}";
        unbound_options = ( ("local-zone:", "test. transparent") ); }};
""")

    def audit(self, *args, expect_rc=None, timeout=60, step_timeout="3"):
        argv = [PROXY, "audit", "-c", self.conf, "--json", "--timeout", step_timeout, *args]
        t0 = time.monotonic()
        res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        took = time.monotonic() - t0
        if expect_rc is not None and res.returncode != expect_rc:
            raise AssertionError(f"exit {res.returncode}, expected {expect_rc}\n"
                                 f"{res.stdout[-3000:]}\n{res.stderr[-2000:]}")
        return json.loads(res.stdout), took, res


def eq(what, got, want):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


def ok(what, cond):
    if not cond:
        raise AssertionError(what)


def findings_of(d):
    return [f["what"] for f in d["findings"]]


def case_aplus(w, r):
    d, took, _ = w.audit("a.test", expect_rc=0)
    r.note(f"a.test audited in {took:.2f}s wall, {d['elapsed_ms']:.0f} ms inside")
    eq("schema", d["schema"], "s2sproxy-audit/1")
    eq("grade", d["grade"], "A+")
    eq("trust mark", d["trust_mark"], False)
    eq("SRV dnssec", d["dns"]["srv_xmpp"]["dnssec"], "secure")
    eq("SRV xmpps dnssec", d["dns"]["srv_xmpps"]["dnssec"], "secure")
    modes = sorted(e["mode"] for e in d["endpoints"])
    eq("modes", modes, ["direct", "starttls"])
    for e in d["endpoints"]:
        at = f"{e['address']}:{e['port']}"
        eq(f"{at} grade", e["grade"], "A+")
        eq(f"{at} DANE", e["dane"]["state"], "match")
        eq(f"{at} chain", e["certificate"]["chain_valid"], True)
        eq(f"{at} name", e["certificate"]["name_valid"], True)
        ok(f"{at} XmppAddr listed", "a.test" in e["certificate"]["xmpp_addrs"])
        eq(f"{at} TLS 1.0", e["protocols"]["TLSv1.0"] in ("rejected", "not testable"), True)
        eq(f"{at} TLS 1.1", e["protocols"]["TLSv1.1"] in ("rejected", "not testable"), True)
        eq(f"{at} TLS 1.2", e["protocols"]["TLSv1.2"], "accepted")
        eq(f"{at} TLS 1.3", e["protocols"]["TLSv1.3"], "accepted")
        ok(f"{at} TLS 1.3 suites", len(e["ciphers"]["TLSv1.3"]) >= 2)
        ok(f"{at} TLS 1.2 ciphers", len(e["ciphers"]["TLSv1.2"]) >= 1)
        ok(f"{at} all forward secret", all(c["forward_secrecy"]
                                            for v in e["ciphers"].values() for c in v))
        eq(f"{at} version", e["tls"]["version"], "TLSv1.3")
        eq(f"{at} stream from", e["stream"]["from"], "a.test")
        eq(f"{at} stream version", e["stream"]["version"], "1.0")
        # Prosody with s2s_secure_auth closes a stream whose peer showed no valid
        # certificate: without --as the audit sees the header, not the features.
        ok(f"{at} stream error recorded", "not-authorized" in (e["stream"]["error"] or ""))
        if e["mode"] == "starttls":
            eq(f"{at} starttls required", e["features_before_tls"]["starttls_required"], True)
        else:
            # Prosody 0.12.3 selects no ALPN protocol on its direct TLS port.
            ok(f"{at} ALPN", e["tls"]["alpn"] in (None, "xmpp-server"))
            eq(f"{at} no plaintext features", e["features_before_tls"], None)


def case_as_external(w, r):
    d, _, _ = w.audit("--as", "audit.test", "-4", "a.test", expect_rc=0)
    eq("as", d["as"], "audit.test")
    for e in d["endpoints"]:
        eq(f"{e['mode']} SASL EXTERNAL offered", e["features_after_tls"]["sasl_external"], True)
        eq(f"{e['mode']} SASL EXTERNAL from us", e["sasl_external"]["state"], "success")
        f = e["features_after_tls"]
        eq(f"{e['mode']} dialback after TLS", f["dialback"], True)
        eq(f"{e['mode']} bidi after TLS", f["bidi"], True)
        eq(f"{e['mode']} no compression", f["compression"], False)
        eq(f"{e['mode']} no starttls after TLS", f["starttls"], False)
        eq(f"{e['mode']} stream completed", e["stream"]["error"], None)


def case_expired(w, r):
    d, _, _ = w.audit("exp.test", expect_rc=0)
    eq("grade", d["grade"], "T")
    eq("trust mark", d["trust_mark"], True)
    e = d["endpoints"][0]
    eq("chain", e["certificate"]["chain_valid"], False)
    ok("verify error says expired", "expired" in e["certificate"]["verify_error"])
    ok("days left negative", e["certificate"]["days_left"] < 0)
    ok("finding", any("does not verify" in f and "expired" in f for f in findings_of(d)))
    ok("T finding has a fix", all(f["fix"] for f in d["findings"]))


def case_wrong_name(w, r):
    d, _, _ = w.audit("--min-grade", "C", "wrong.test", expect_rc=1)
    eq("grade", d["grade"], "T")
    e = d["endpoints"][0]
    eq("chain valid", e["certificate"]["chain_valid"], True)
    eq("name", e["certificate"]["name_valid"], False)
    eq("name match", e["certificate"]["name_match"], "none")
    ok("finding", any("not valid for wrong.test" in f for f in findings_of(d)))
    eq("DANE-EE matches whatever the name", e["dane"]["state"], "match")
    ok("grade beside T", d["grade_ignoring_trust"] in ("A", "B", "C"))


def case_not_required(w, r):
    d, _, _ = w.audit("--min-grade", "B", "opt.test", expect_rc=1)
    eq("grade", d["grade"], "C")
    e = d["endpoints"][0]
    eq("starttls offered", e["features_before_tls"]["starttls"], True)
    eq("starttls required", e["features_before_tls"]["starttls_required"], False)
    ok("finding with cap C", any(f["cap"] == "C" and "not required" in f["what"]
                                 for f in d["findings"]))
    # The same domain meets --min-grade C: exit 0.
    w.audit("--min-grade", "C", "opt.test", expect_rc=0)


def case_unsigned(w, r):
    d, _, _ = w.audit("x.uns.test")
    eq("SRV dnssec", d["dns"]["srv_xmpp"]["dnssec"], "insecure")
    e = d["endpoints"][0]
    eq("DANE", e["dane"]["state"], "insecure")
    eq("TLSA dnssec", e["dane"]["tlsa_dnssec"], "insecure")
    eq("grade", d["grade"], "A")
    ok("A+ finding names DNSSEC", any("DNSSEC" in f for f in findings_of(d)))


def case_tlsa_mismatch(w, r):
    d, _, _ = w.audit("badtlsa.test")
    e = d["endpoints"][0]
    eq("DANE", e["dane"]["state"], "mismatch")
    eq("TLSA secure", e["dane"]["tlsa_dnssec"], "secure")
    eq("chain still valid", e["certificate"]["chain_valid"], True)
    eq("grade", d["grade"], "T")
    ok("DANE finding", any("DANE" in f and "matches" in f for f in findings_of(d)))


def case_alias_target(w, r):
    d, _, _ = w.audit("cn.test")
    eq("targets", [(t["host"], t["cname"]) for t in d["dns"]["targets"]],
       [("xmpp.cn.test", "host.cn.test")])
    eq("target addresses", d["dns"]["targets"][0]["addresses"], 1)
    eq("endpoints", len(d["endpoints"]), 1)
    e = d["endpoints"][0]
    eq("endpoint host", e["host"], "xmpp.cn.test")
    eq("endpoint cname", e["cname"], "host.cn.test")
    eq("endpoint address", e["address"], "127.0.0.11")
    eq("address dnssec", e["address_dnssec"], "secure")
    eq("certificate", e["certificate"]["dns_names"], ["cn.test"])
    eq("DANE", e["dane"]["state"], "match")
    alias = [f for f in d["findings"] if "is an alias (CNAME) of host.cn.test" in f["what"]]
    eq("one alias finding", len(alias), 1)
    eq("alias finding cap", alias[0]["cap"], "A")
    eq("alias finding is the domain's", alias[0]["endpoint"], None)
    eq("grade: A+ but for the alias", d["grade"], "A")
    eq("the alias is the only thing short of A+", [f for f in d["findings"] if f["cap"]], alias)
    a, _, _ = w.audit("-4", "a.test")
    ok("a.test targets are not aliases", all(t["cname"] is None for t in a["dns"]["targets"]))
    res = subprocess.run([PROXY, "audit", "-c", w.conf, "--timeout", "3", "cn.test"],
                         capture_output=True, text=True, timeout=60)
    ok("text names the alias", "target xmpp.cn.test port " in res.stdout
       and "alias (CNAME) of host.cn.test (RFC 2782: MUST NOT be an alias)" in res.stdout)


def case_no_service(w, r):
    d, _, _ = w.audit("nosrv.test", expect_rc=1)
    eq("service available", d["dns"]["service_available"], False)
    eq("grade", d["grade"], "-")
    ok("error says so", "service not available" in d["error"])


def case_unreachable(w, r):
    docs, _, _ = w.audit("gone.test", "nx.test", expect_rc=1)
    eq("array of two", len(docs), 2)
    gone, nx = docs
    eq("gone grade", gone["grade"], "-")
    eq("gone reachable", gone["reachable"], False)
    ok("gone endpoint error", "connect" in gone["endpoints"][0]["error"])
    eq("nx reachable", nx["reachable"], False)
    eq("nx endpoints", nx["endpoints"], [])
    eq("nx dns status", nx["dns"]["status"] in ("nxdomain", "NXDOMAIN", "error"), True)


def case_legacy(w, r):
    # s_server -www does not speak XMPP: the step after TLS waits for its timeout.
    d, _, _ = w.audit("old.test", step_timeout="1")
    e = d["endpoints"][0]
    eq("mode", e["mode"], "direct")
    eq("TLS 1.2", e["protocols"]["TLSv1.2"], "accepted")
    if w.tls1_ok:
        r.note("local OpenSSL speaks TLS 1.0: expecting it accepted")
        eq("TLS 1.0", e["protocols"]["TLSv1.0"], "accepted")
        eq("TLS 1.1", e["protocols"]["TLSv1.1"], "accepted")
        ok("TLS 1.0 ciphers listed", len(e["ciphers"]["TLSv1.0"]) >= 1)
        ok("cap B finding", any(f["cap"] == "B" and "TLS 1.0" in f["what"]
                                for f in d["findings"]))
        eq("grade capped at B", d["grade_ignoring_trust"], "B")
    else:
        r.note("local OpenSSL cannot speak TLS 1.0: expecting 'not testable'")
        eq("TLS 1.0", e["protocols"]["TLSv1.0"], "not testable")
    eq("TLS 1.3 rejected", e["protocols"]["TLSv1.3"], "rejected")


def case_legacy_only(w, r):
    if not w.older:
        r.note("local OpenSSL cannot speak TLS 1.0: no TLS 1.0/1.1-only server to audit")
        return
    d, _, _ = w.audit("older.test", step_timeout="1")
    e = d["endpoints"][0]
    eq("TLS 1.2", e["protocols"]["TLSv1.2"], "rejected")
    eq("TLS 1.1", e["protocols"]["TLSv1.1"], "accepted")
    # The main probe retried as an old peer: the certificate is known and trusted.
    eq("main handshake", e["tls"]["version"], "TLSv1.1")
    eq("certificate seen", e["certificate"]["chain_valid"], True)
    eq("no T mark", d["trust_mark"], False)
    eq("capped at B", d["grade"], "B")


def case_text(w, r):
    res = subprocess.run([PROXY, "audit", "-c", w.conf, "a.test"], capture_output=True,
                         text=True, timeout=60)
    eq("exit", res.returncode, 0)
    ok("text starts with the grade", res.stdout.startswith("a.test: grade A+"))


def case_usage(w, r):
    for argv in (["audit"], ["audit", "--min-grade", "Z", "a.test"], ["audit", "-4", "-6", "x"],
                 ["audit", "--as", "audit.test", "a.test"],
                 ["audit", "-c", w.conf, "--as", "notours.test", "a.test"]):
        res = subprocess.run([PROXY, *argv], capture_output=True, text=True, timeout=30)
        eq(" ".join(argv), res.returncode, 2)


def case_list(w, r):
    lst = w.scratch.file("domains.txt")
    with open(lst, "w") as f:
        f.write("# test list\na.test\n\nopt.test  # comment\n")
    docs, _, res = w.audit("-f", lst, "-j", "2", expect_rc=0)
    eq("domains", [d["domain"] for d in docs], ["a.test", "opt.test"])
    eq("no progress line when stderr is not a terminal", res.stderr, "")


def main():
    r = Runner()
    with P.Scratch("audit") as scratch, P.Procs(scratch) as procs:
        w = World(procs, scratch)
        for name, fn in [("A+: signed zone, DANE, valid cert, TLS 1.2+", case_aplus),
                         ("--as: SASL EXTERNAL accepted", case_as_external),
                         ("expired certificate: T mark", case_expired),
                         ("certificate for another name: T mark", case_wrong_name),
                         ("TLS not required: capped at C", case_not_required),
                         ("unsigned zone: insecure, no DANE", case_unsigned),
                         ("TLSA mismatch: DANE failure", case_tlsa_mismatch),
                         ("SRV target is a CNAME: reported (RFC 2782)", case_alias_target),
                         ("SRV '.': service not available", case_no_service),
                         ("no server / no domain: unreachable, exit 1", case_unreachable),
                         ("openssl s_server: old TLS versions", case_legacy),
                         ("openssl s_server: TLS 1.0/1.1 only", case_legacy_only),
                         ("text output begins with the grade", case_text),
                         ("usage errors exit 2", case_usage),
                         ("-f list with -j", case_list)]:
            r.case(name, fn, w, r)
            procs.check()
    return r.finish()


if __name__ == "__main__":
    sys.exit(main())
