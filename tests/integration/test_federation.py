#!/usr/bin/python3
"""s2sproxy federating with a real Prosody 0.12 (issue 4).

World: Knot serves a DNSSEC-signed ``test.`` (the proxy validates with libunbound
and the zone's DS as trust anchor).  The proxy fronts ``a.test`` on 127.0.0.5
(SRV, A and TLSA 3 1 1 of its certificate published).  Prosody instances:

- b.test on 127.0.0.3: certificate from the test CA, s2s_secure_auth, DANE: it
  federates with the proxy by SASL EXTERNAL both ways;
- c.test on 127.0.0.4: a certificate for ``wrong.test``, s2s_secure_auth off:
  it can only use dialback (the proxy is receiving, authoritative and
  originating server in turn);
- a.test on 127.0.0.2 (only when the build has the local link, s2s/local.c):
  native s2s off, the proxy as its component ``s2s.a.test`` with
  contrib/prosody/mod_s2sproxy.lua.

Cases: a.test -> b.test and back through the proxy with SASL EXTERNAL (without
the local link: the proxy answers b.test's stanza with service-unavailable over
its own outbound stream to b.test, which crosses both directions all the
same); a.test -> c.test and back with dialback; with the local link, users on
both sides exchange messages, a one-way stanza to b.test is followed by the
proxy's XEP-0199 ping (timeouts.ping = 1), which Prosody answers, a domain
without servers bounces with remote-server-not-found, one that never answers
with remote-server-timeout.
Measured (``#`` lines): time from the first stanza on a new route to its
delivery, per method; memory per established idle TLS stream (N inbound
STARTTLS streams held open, RSS delta / N).
"""

import asyncio
import os
import re
import socket
import ssl
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

from s2stest import ca as C  # noqa: E402
from s2stest import clients as X  # noqa: E402
from s2stest import knot as K  # noqa: E402
from s2stest import procs as P  # noqa: E402
from s2stest import prosody as PR  # noqa: E402
from s2stest.runner import Runner  # noqa: E402

SRC = os.environ.get("S2S_SRCDIR", os.getcwd())
BIN = os.environ.get("S2S_BINDIR", os.path.join(SRC, "build"))
HAVE_LOCAL = os.path.exists(os.path.join(SRC, "s2s", "local.h"))
PW = "secret"
PROXY_IP = "127.0.0.5"
COMPONENT = "s2s.a.test"
COMPONENT_SECRET = "component-secret"
IDLE_STREAMS = 200


class Proxy:
    """The s2sproxy daemon under test, started with -d (debug log on stderr)."""

    def __init__(self, procs, scratch, knot, ca, leaf, port, component=None):
        self.procs = procs
        self.dir = scratch.sub("proxy")
        self.port = port
        self.cfg = os.path.join(self.dir, "s2sproxy.conf")
        comp = ""
        if component is not None:
            comp = (f'component = {{ host = "{component[0]}"; port = {component[1]}; '
                    f'secret = "{COMPONENT_SECRET}"; name = "{COMPONENT}"; }};')
        text = f"""
log = {{ level = "debug"; }};
hosts = ( {{ domain = "a.test"; certificate = "{leaf.chain}"; key = "{leaf.key}"; {comp} }} );
tls = {{ ca_file = "{ca.cert}"; }};
listen = {{ starttls = [ "{PROXY_IP}:{self.port}" ]; }};
limits = {{ connections_per_ip = {IDLE_STREAMS + 50}; }};
timeouts = {{ connect = 2; queue = 6; authenticate = 300; backoff_min = 0.5; backoff_max = 2;
             ping = 1; ping_answer = 5; }};
dns = {{ backend = "unbound"; servers = [ "{knot.ip}:{knot.port}" ];
        trust_anchor_file = "{knot.trust_anchor_file}";
        unbound_options = ( ("local-zone:", "test. transparent") ); timeout = 3; }};
"""
        with open(self.cfg, "w") as f:
            f.write(text)
        self.proc = procs.start("proxy", [os.path.join(BIN, "s2sproxy"), "-d", "-c", self.cfg])
        self.log = self.proc.stderr_path
        P.wait_port(PROXY_IP, self.port, 10, procs=[self.proc])

    def wait_log(self, regex, since=0, timeout=10.0):
        return P.wait_log(self.log, regex, timeout, since=since, procs=[self.proc])

    def mark(self):
        return P.log_mark(self.log)

    def rss_kib(self):
        with open(f"/proc/{self.proc.popen.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")


class ProxiedProsody(PR.Prosody):
    """Prosody behind the proxy: native s2s off, so no s2s port to wait for."""

    def ports(self):
        return [p for p in (self.c2s_port, self.component_port) if p]


class World:
    def __init__(self, procs, scratch):
        self.ca = C.CA(scratch.sub("ca"))
        self.knot = K.Knot(procs, scratch)
        self.knot.add_zone("test.")
        leaf = {d: self.ca.issue(d, dns=[d], xmppaddr=[d], srvname=["_xmpp-server." + d])
                for d in ("a.test", "b.test")}
        wrong = self.ca.issue("wrong.test")
        self.a_leaf = leaf["a.test"]
        common = dict(ca_file=self.ca.cert, knot=self.knot)
        self.b = PR.Prosody(procs, scratch, "b", "127.0.0.3", {"b.test": leaf["b.test"]},
                            users={"bob@b.test": PW}, use_dane=True, **common)
        self.c = PR.Prosody(procs, scratch, "c", "127.0.0.4", {"c.test": wrong},
                            users={"carol@c.test": PW}, secure_auth=False, **common)
        self.a = None
        if HAVE_LOCAL:
            extra = f"s2sproxy_component = {PR.lua(COMPONENT)}\n"
            self.a = ProxiedProsody(
                procs, scratch, "a", "127.0.0.2", {"a.test": self.a_leaf}, self.ca.cert,
                users={"alice@a.test": PW}, dialback=False,
                components=[PR.Component(COMPONENT, COMPONENT_SECRET, validate_from=False)],
                modules=["s2sproxy"], modules_disabled=["s2s"],
                plugin_paths=[os.path.join(SRC, "contrib", "prosody")], extra_global=extra)
        self.b.publish(self.knot)
        self.c.publish(self.knot, tlsa=False)
        # a.test is the proxy; silent.test accepts TCP and never says a word.
        self.silent = socket.socket()
        self.silent.bind(("127.0.0.6", 0))
        self.silent.listen(16)
        self.knot.a("silent.test", "127.0.0.6")
        self.knot.srv("silent.test", "silent.test", self.silent.getsockname()[1])
        self.procs, self.scratch = procs, scratch

    def start(self):
        port = P.free_port(PROXY_IP)
        self.knot.a("a.test", PROXY_IP)
        self.knot.srv("a.test", "a.test", port)
        self.knot.tlsa("a.test", port, self.a_leaf.tlsa_311())
        self.knot.start()
        if self.a is not None:
            self.a.start()
        for server in (self.b, self.c):
            server.start()
        comp = (self.a.ip, self.a.component_port) if self.a is not None else None
        self.proxy = Proxy(self.procs, self.scratch, self.knot, self.ca, self.a_leaf, port,
                           comp)
        if self.a is not None:
            self.proxy.wait_log(r"local.*(up|handshake)", timeout=15)

    async def user(self, server, local):
        jid = f"{local}@{next(iter(server.hosts))}"
        return await X.login(jid, PW, server.ip, server.c2s_port, self.ca.cert)


# ---- cases ---------------------------------------------------------------------------


def case_b_sasl_external(w, r):
    """b.test -> proxy: TLS, SASL EXTERNAL; the answer goes proxy -> b.test, SASL
    EXTERNAL again (the proxy checks b.test's certificate by DANE)."""
    mark = w.proxy.mark()

    async def scenario():
        bob = await w.user(w.b, "bob")
        if w.a is None:
            sent = bob.send_chat("alice@a.test", "b->a, no local link")
            cond, _ = await bob.expect_error(timeout=15)
            took = time.monotonic() - sent
            await bob.close()
            return cond, took
        alice = await w.user(w.a, "alice")
        out = await X.deliver(alice, bob, "a->b via proxy", timeout=15)
        back = await X.deliver(bob, alice, "b->a via proxy", timeout=15)
        await X.close_all(alice, bob)
        return out, back
    res = X.run(scenario(), timeout=40)
    w.proxy.wait_log(r"out: authenticated local=a\.test remote=b\.test .*"
                     r"method=sasl-external .*cert=valid dane=yes", since=mark)
    if w.a is None:
        w.proxy.wait_log(r"in: authenticated .* local=a\.test remote=b\.test "
                         r"method=sasl-external", since=mark)
    else:
        # XEP-0288: b.test answered over the proxy's own stream (mod_s2s_bidi).
        w.proxy.wait_log(r"out: bidi requested local=a\.test remote=b\.test", since=mark)
        assert not P.log_search(w.proxy.log, r"in: authenticated .* remote=b\.test",
                                since=mark), "b.test opened a stream of its own"
    if w.a is None:
        assert res[0] == "service-unavailable", res
        r.note(f"SASL EXTERNAL: b->proxy stanza and the proxy's answer over a new route "
               f"back to b.test: {res[1] * 1000:.1f} ms (both streams new, DNS cold)")
    else:
        r.note(f"SASL EXTERNAL, first stanza to delivery: a->b {res[0] * 1000:.1f} ms "
               f"(new outbound route: DNS, TLS, DANE, SASL), b->a {res[1] * 1000:.1f} ms "
               f"(back over the same stream, XEP-0288)")


def case_c_dialback(w, r):
    """c.test's certificate is not valid for c.test: dialback in every role."""
    mark = w.proxy.mark()

    async def scenario():
        carol = await w.user(w.c, "carol")
        if w.a is None:
            sent = carol.send_chat("alice@a.test", "c->a, no local link")
            cond, _ = await carol.expect_error(timeout=20)
            took = time.monotonic() - sent
            await carol.close()
            return cond, took
        alice = await w.user(w.a, "alice")
        out = await X.deliver(alice, carol, "a->c by dialback", timeout=20)
        back = await X.deliver(carol, alice, "c->a by dialback", timeout=20)
        await X.close_all(alice, carol)
        return out, back
    res = X.run(scenario(), timeout=50)
    # receiving: the proxy asked c.test's authoritative server (db:verify)
    w.proxy.wait_log(r"in: dialback id=\w+ .*local=a\.test remote=c\.test result=valid",
                     since=mark)
    # originating: the proxy's own stream to c.test authenticated by dialback
    w.proxy.wait_log(r"out: authenticated local=a\.test remote=c\.test .*method=dialback",
                     since=mark)
    # authoritative: c.test checked the proxy's key with the proxy
    w.proxy.wait_log(r"dialback authoritative .*receiving=c\.test originating=a\.test "
                     r".*result=valid", since=mark)
    if w.a is None:
        assert res[0] == "service-unavailable", res
        r.note(f"dialback: c->proxy stanza and the answer over a new route back to "
               f"c.test: {res[1] * 1000:.1f} ms (both streams new)")
    else:
        r.note(f"dialback, first stanza to delivery: a->c {res[0] * 1000:.1f} ms (new "
               f"outbound route: DNS, TLS, db:result, c.test's db:verify back to the proxy), "
               f"c->a {res[1] * 1000:.1f} ms (c.test's stream into the proxy, which it may have "
               f"opened already to verify the proxy's key)")


def case_ping_answered(w, r):
    """XEP-0199: a one-way stanza a->b on the proxy's own stream to b.test; after
    timeouts.ping (1 s) without a word back, the proxy pings b.test, Prosody answers
    (mod_ping) and the stream stays."""
    mark = w.proxy.mark()

    async def scenario():
        alice, bob = await w.user(w.a, "alice"), await w.user(w.b, "bob")
        took = await X.deliver(alice, bob, "a->b, no answer expected", timeout=15)
        await X.close_all(alice, bob)
        return took
    X.run(scenario(), timeout=40)
    m = w.proxy.wait_log(r"ping: local=a\.test remote=b\.test ping id=s2sproxy-ping-\d+ "
                         r"answered \((result|error)\) after (\d+) ms", since=mark, timeout=10)
    assert not P.log_search(w.proxy.log, r"stale: no answer to XEP-0199 ping", since=mark)
    assert not P.log_search(w.proxy.log, r"out: closing local=a\.test remote=b\.test",
                            since=mark), "the stream to b.test was closed"
    r.note(f"XEP-0199 ping to b.test (Prosody) answered ({m.group(1)}) after "
           f"{m.group(2)} ms")


def case_inbound_bidi(w, r):
    """b.test restarts (the proxy's stream to it goes away), then speaks first: its new
    stream into the proxy asks for bidi (XEP-0288), and the proxy's answer a->b goes
    back over that stream instead of a new outbound one."""
    w.b.restart()
    w.proxy.wait_log(r"out: .*remote=b\.test.*(stream error from the peer|peer closed the "
                     r"stream|connection lost)", timeout=15)
    mark = w.proxy.mark()

    async def scenario():
        alice, bob = await w.user(w.a, "alice"), await w.user(w.b, "bob")
        first = await X.deliver(bob, alice, "b->a first", timeout=15)
        back = await X.deliver(alice, bob, "a->b over b's stream", timeout=15)
        await X.close_all(alice, bob)
        return first, back
    first, back = X.run(scenario(), timeout=40)
    w.proxy.wait_log(r"in: authenticated .* local=a\.test remote=b\.test "
                     r"method=sasl-external", since=mark)
    w.proxy.wait_log(r"pool: route local=a\.test remote=b\.test uses the peer's "
                     r"bidirectional stream", since=mark)
    assert not P.log_search(w.proxy.log, r"out: authenticated local=a\.test remote=b\.test",
                            since=mark), "the proxy opened a stream of its own"
    r.note(f"inbound bidi: b->a {first * 1000:.1f} ms (b.test's new stream into the proxy), "
           f"a->b {back * 1000:.1f} ms (back over it)")


def case_not_found(w):
    async def scenario():
        alice = await w.user(w.a, "alice")
        alice.send_chat("nobody@nonexistent.test", "into the void")
        cond, _ = await alice.expect_error(timeout=15)
        await alice.close()
        return cond
    cond = X.run(scenario(), timeout=30)
    assert cond == "remote-server-not-found", cond


def case_timeout(w):
    async def scenario():
        alice = await w.user(w.a, "alice")
        alice.send_chat("someone@silent.test", "hello?")
        cond, _ = await alice.expect_error(timeout=30)
        await alice.close()
        return cond
    cond = X.run(scenario(), timeout=45)
    assert cond == "remote-server-timeout", cond


def _idle_tls_stream(ctx):
    """One inbound stream to the proxy, up to TLS and the post-TLS features."""
    hdr = ("<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
           "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "
           "to='a.test' from='idle.test' version='1.0'>").encode()
    s = socket.create_connection((PROXY_IP, _idle_tls_stream.port), timeout=10)
    s.sendall(hdr)
    _read_until(s, b"</stream:features>")
    s.sendall(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    _read_until(s, b"<proceed")
    t = ctx.wrap_socket(s, server_hostname="a.test")
    t.sendall(hdr)
    _read_until(t, b"</stream:features>")
    return t


def _read_until(s, token):
    buf = b""
    while token not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise AssertionError(f"closed before {token!r}: {buf[-200:]!r}")
        buf += chunk
    return buf


def case_idle_stream_memory(w, r):
    ctx = ssl.create_default_context(cafile=w.ca.cert)
    _idle_tls_stream.port = w.proxy.port
    warm = [_idle_tls_stream(ctx) for _ in range(10)]  # allocator and caches warm
    before = w.proxy.rss_kib()
    streams = [_idle_tls_stream(ctx) for _ in range(IDLE_STREAMS)]
    after = w.proxy.rss_kib()
    for s in streams + warm:
        s.close()
    per = (after - before) * 1024 / IDLE_STREAMS
    assert per > 0, (before, after)
    r.note(f"memory per idle inbound TLS stream (TLS 1.3, features sent, parser waiting): "
           f"{per / 1024:.1f} KiB ({IDLE_STREAMS} streams, RSS {before} -> {after} KiB)")


def main():
    r = Runner()
    with P.Scratch("federation") as scratch, P.Procs(scratch) as procs:
        try:
            w = World(procs, scratch)
            w.start()
        except Exception as exc:
            scratch.failed()
            r.fail("setup", f"{type(exc).__name__}: {exc}")
            return r.finish()
        if not HAVE_LOCAL:
            r.note("no s2s/local.c in this tree: cases needing the local server are skipped")
        r.case("b_test_sasl_external_both_ways", case_b_sasl_external, w, r)
        r.case("c_test_dialback_all_roles", case_c_dialback, w, r)
        if HAVE_LOCAL:
            r.case("xep0199_ping_answered", case_ping_answered, w, r)
            r.case("inbound_bidi_stream", case_inbound_bidi, w, r)
            r.case("remote_server_not_found", case_not_found, w)
            r.case("remote_server_timeout", case_timeout, w)
        r.case("idle_tls_stream_memory", case_idle_stream_memory, w, r)
        r.case("all_processes_alive", procs.check)
        w.silent.close()
        if r.failed:
            scratch.failed()
        return r.finish()


if __name__ == "__main__":
    sys.exit(main())
