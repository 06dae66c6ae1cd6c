#!/usr/bin/python3
"""Proves the integration harness with no s2sproxy: native Prosody federation.

World: Knot serves a DNSSEC-signed ``test.`` (trust anchor given to Prosody's
libunbound) with A, SRV and TLSA for a.test and b.test, and child zones
delegated securely, insecurely and bogusly.  Three Prosody instances:

- a.test on 127.0.0.2 and b.test on 127.0.0.3: certificates from the test CA,
  s2s_secure_auth, DANE on;
- c.test on 127.0.0.4: a certificate for ``wrong.test`` (no TLSA), so it can
  only authenticate by dialback; b.test lists it in s2s_insecure_domains.

Cases: the CA and DNS tools behave; messages cross a→b and b→a (first message
on a new s2s link and a second one timed: the native baseline the proxy will
be compared with); the admin shell shows TLS + certificate auth (SASL
EXTERNAL); a message to an NXDOMAIN domain bounces with
remote-server-not-found; presence subscription, ping and disco across s2s;
c.test reaches b.test by dialback (over c.test's direct TLS port); a component
(XEP-0114) receives a user's message; a restarted peer is reached again.
"""

import asyncio
import os
import re
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

from s2stest import ca as C  # noqa: E402
from s2stest import clients as X  # noqa: E402
from s2stest import knot as K  # noqa: E402
from s2stest import procs as P  # noqa: E402
from s2stest import prosody as PR  # noqa: E402
from s2stest.runner import Runner  # noqa: E402

PW = "secret"
USERS = {"a": {"alice@a.test": PW}, "b": {"bob@b.test": PW}, "c": {"carol@c.test": PW}}


class World:
    """Everything the cases share, built once."""

    def __init__(self, procs, scratch):
        self.ca = C.CA(scratch.sub("ca"))
        self.rogue = C.CA(scratch.sub("rogue"), "untrusted CA")
        self.knot = K.Knot(procs, scratch)
        self.knot.add_zone("test.")
        for child, ds, signed in (("sec", "secure", True), ("ins", "none", True),
                                  ("bog", "bogus", True), ("uns", "secure", False)):
            self.knot.add_zone(f"{child}.test.", ds=ds, signed=signed)
            self.knot.a(f"{child}.test", "127.0.0.9")
        leaf = {d: self.ca.issue(d, dns=[d, "*." + d], xmppaddr=[d],
                                 srvname=["_xmpp-server." + d]) for d in ("a.test", "b.test")}
        wrong = self.ca.issue("wrong.test")
        common = dict(ca_file=self.ca.cert, knot=self.knot, use_dane=True)
        self.a = PR.Prosody(procs, scratch, "a", "127.0.0.2", {"a.test": leaf["a.test"]},
                            users=USERS["a"], components=[PR.Component("proxy.a.test", "s3")],
                            **common)
        self.b = PR.Prosody(procs, scratch, "b", "127.0.0.3", {"b.test": leaf["b.test"]},
                            users=USERS["b"], insecure_domains=["c.test"], **common)
        self.c = PR.Prosody(procs, scratch, "c", "127.0.0.4", {"c.test": wrong},
                            users=USERS["c"], secure_auth=False, ca_file=self.ca.cert,
                            knot=self.knot, direct_tls=True)
        self.a.publish(self.knot)
        self.b.publish(self.knot)
        self.c.publish(self.knot, tlsa=False)
        self.knot.start()
        for server in (self.a, self.b, self.c):
            server.start()

    async def user(self, server, local):
        jid = f"{local}@{next(iter(server.hosts))}"
        return await X.login(jid, PW, server.ip, server.c2s_port, self.ca.cert)


def case_procs(procs):
    """The registry sees a process die (with its stderr) and SIGKILLs a
    process that ignores SIGTERM, within the bounded wait."""
    dying = procs.start("dying", ["sh", "-c", "echo boom >&2; exit 3"])
    try:
        P.wait_port("127.0.0.1", P.free_port(), timeout=5, procs=[dying])
        raise AssertionError("wait_port ignored a dead process")
    except P.ProcessDied as exc:
        assert "boom" in str(exc) and "exit status 3" in str(exc), exc
    procs.stop(dying)
    stubborn = procs.start("stubborn", ["sh", "-c", "trap '' TERM; echo up; exec sleep 60"])
    P.wait_log(stubborn.stdout_path, "^up$", timeout=5, procs=[stubborn])
    status = procs.stop(stubborn, timeout=0.3)
    assert status == -9, status


def case_ca(w):
    leaf = w.ca.issue("x.test", dns=["*.x.test"])
    ok, out = C.verify(w.ca.cert, leaf.cert, "foo.x.test")
    assert ok, out
    ok, out = C.verify(w.ca.cert, w.ca.issue("old.test", expired=True).cert)
    assert not ok and "expired" in out, out
    ok, out = C.verify(w.ca.cert, w.rogue.issue("a.test", basename="rogue-a").cert)
    assert not ok and "local issuer" in out, out


def case_dns(w):
    k = w.knot
    srv = k.query("_xmpp-server._tcp.a.test", "SRV")
    assert srv == [f"0 0 {w.a.s2s_port} a.test."], srv
    assert k.query(f"_{w.a.s2s_port}._tcp.a.test", "TLSA")
    want = {"a.test": "secure", "sec.test": "secure", "ins.test": "insecure",
            "bog.test": "bogus", "uns.test": "insecure"}
    got = {n: k.validate(n) for n in want}
    assert got == want, got
    assert k.query("nonexistent.test", "A") == []


def case_a_to_b(w, r):
    async def scenario():
        alice, bob = await w.user(w.a, "alice"), await w.user(w.b, "bob")
        first = await X.deliver(alice, bob, "first a->b")
        then = [await X.deliver(alice, bob, f"a->b {i}") for i in range(20)]
        # A new link again, DNS now in libunbound's cache.
        await asyncio.get_running_loop().run_in_executor(
            None, w.a.close_s2s, "a.test", "b.test")
        relink = await X.deliver(alice, bob, "a->b on a new link")
        await X.close_all(alice, bob)
        return first, sorted(then), relink
    first, then, relink = X.run(scenario(), timeout=20)
    r.note(f"native baseline a->b: first message on a new s2s link {first * 1000:.1f} ms "
           f"(DNS not cached), {relink * 1000:.1f} ms (DNS cached); then one at a time "
           f"(20): min {then[0] * 1000:.2f} ms, median {then[10] * 1000:.2f} ms, "
           f"max {then[-1] * 1000:.2f} ms")


def case_b_to_a(w, r):
    async def scenario():
        alice, bob = await w.user(w.a, "alice"), await w.user(w.b, "bob")
        times = [await X.deliver(bob, alice, f"b->a {i}") for i in range(2)]
        await X.close_all(alice, bob)
        return times
    times = X.run(scenario(), timeout=20)
    r.note("b->a: " + ", ".join(f"{t * 1000:.2f} ms" for t in times))


def _secure_cert_stream(rows, remote, where):
    rows = [s for s in rows if s["remote"] == remote]
    assert rows, f"{where}: no s2s stream with {remote}"
    for s in rows:
        assert s["secure"].startswith("TLSv1."), (where, s)
        if s["dir"] in ("-->", "<->"):
            assert s["s2s_sasl"] == "Succeeded" and s["cert"] == "Valid", (where, s)
        assert s["dialback"] == "Not used", (where, s)


def case_s2s_state(w):
    # a.test found a secure TLSA answer for b.test's port and used it (b.test
    # made no connection of its own: s2s_bidi reuses a.test's stream).
    w.a.wait_log(r"Enabling DANE with 1 TLSA records", timeout=1)
    _secure_cert_stream(w.a.s2s_sessions(), "b.test", "a.test")
    _secure_cert_stream(w.b.s2s_sessions(), "a.test", "b.test")


def case_nxdomain(w):
    async def scenario():
        alice = await w.user(w.a, "alice")
        alice.send_chat("nobody@nonexistent.test", "into the void")
        condition, _ = await alice.expect_error(timeout=10)
        await alice.close()
        return condition
    condition = X.run(scenario(), timeout=20)
    assert condition == "remote-server-not-found", condition


def case_presence_iq(w):
    async def scenario():
        alice, bob = await w.user(w.a, "alice"), await w.user(w.b, "bob")
        alice.subscribe("bob@b.test")
        await alice.expect_presence("subscribed", sender="bob@b.test")
        await alice.ping("b.test")
        _, features = await alice.disco_info("b.test")
        assert "urn:xmpp:ping" in features, features
        await X.close_all(alice, bob)
    X.run(scenario(), timeout=20)


def case_dialback(w):
    mark = P.log_mark(w.b.log)

    async def scenario():
        bob, carol = await w.user(w.b, "bob"), await w.user(w.c, "carol")
        await X.deliver(carol, bob, "c->b by dialback")
        await X.close_all(bob, carol)
    X.run(scenario(), timeout=20)
    # b.test verified c.test's key over its own stream to c.test (XEP-0220
    # receiving role); the admin shell forgets dialback keys once done, so the
    # log is the witness.
    w.b.wait_log(r"asking c\.test if key \w+ belongs to them", since=mark, timeout=1)
    w.b.wait_log(r"connection c\.test->b\.test is now authenticated", since=mark, timeout=1)
    rows = [s for s in w.b.s2s_sessions() if s["remote"] == "c.test"]
    inbound = [s for s in rows if s["cert"] == "Invalid" and s["s2s_sasl"] == ""]
    assert inbound, rows
    # b.test's stream to c.test used c.test's direct TLS port (_xmpps-server, XEP-0368).
    w.b.wait_log(r"Results for _xmpps-server\._tcp\.c\.test IN SRV: 1 items", since=mark,
                 timeout=1)
    w.b.wait_log(rf"Connected \(FD \d+ \({re.escape(w.c.ip)}, {w.c.s2s_tls_port},",
                 since=mark, timeout=1)


def case_restart(w):
    """After b.test restarts, a.test builds a new link and delivers again."""
    w.b.restart()

    async def scenario():
        alice, bob = await w.user(w.a, "alice"), await w.user(w.b, "bob")
        await X.deliver(alice, bob, "after restart")
        await X.close_all(alice, bob)
    X.run(scenario(), timeout=20)


def case_component(w):
    async def scenario():
        comp = await X.Component("proxy.a.test", "s3").login(w.a.ip, w.a.component_port)
        alice = await w.user(w.a, "alice")
        alice.send_chat("someone@proxy.a.test", "to the component")
        msg = await comp.expect_message("to the component")
        assert msg["from"].bare == "alice@a.test", msg
        await X.close_all(alice, comp)
    X.run(scenario(), timeout=20)


def main():
    r = Runner()
    with P.Scratch("harness_native") as scratch, P.Procs(scratch) as procs:
        try:
            w = World(procs, scratch)
        except Exception as exc:
            scratch.failed()
            r.fail("setup", f"{type(exc).__name__}: {exc}")
            return r.finish()
        r.case("harness_procs", case_procs, procs)
        r.case("ca_certificates", case_ca, w)
        r.case("dns_srv_tlsa_dnssec", case_dns, w)
        r.case("message_a_to_b", case_a_to_b, w, r)
        r.case("message_b_to_a", case_b_to_a, w, r)
        r.case("s2s_tls_cert_auth", case_s2s_state, w)
        r.case("nxdomain_bounce", case_nxdomain, w)
        r.case("presence_ping_disco", case_presence_iq, w)
        r.case("dialback_insecure_domain", case_dialback, w)
        r.case("component_link", case_component, w)
        r.case("peer_restart", case_restart, w)
        r.case("all_processes_alive", procs.check)
        if r.failed:
            scratch.failed()
        return r.finish()


if __name__ == "__main__":
    sys.exit(main())
