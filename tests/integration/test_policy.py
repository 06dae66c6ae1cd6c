#!/usr/bin/python3
"""The policy with real servers (issue 7), in the world of test_federation.py.

Knot serves the DNSSEC-signed ``test.``; the proxy fronts ``a.test`` with Prosody
a.test behind it (component link, native s2s off); Prosody b.test has a valid
certificate (SASL EXTERNAL), Prosody c.test only dialback (its certificate names
wrong.test).  The proxy's policy section includes ``policy.inc`` in its scratch
directory; each case rewrites it (and the block list it names) and sends SIGHUP.

Cases, in order (each starts from the policy it installs):
- open federation with a block list that does not name c.test: both peers deliver;
- the block list gains c.test (SIGHUP): a.test's message to c.test bounces with
  not-allowed; carol@c.test cannot deliver and gets an error; b.test's stream is not
  closed and still carries traffic (no new stream authenticated);
- a broken policy file on reload: refused with file and line, the old policy holds;
- closed federation (default deny, b.test allowed): only b.test gets through;
- certificates required for b.test and c.test: c.test (dialback only) is refused both
  ways with the term "auth" logged, b.test (certificate) passes; then c.test gets a
  valid certificate (re-issued, Prosody restarted) and the same policy accepts it;
- an outbound rate of 10 stanzas/s to b.test: 30 messages sent at once arrive at
  10/s (within 20%), every one delivered or bounced (counted);
- the same rate inbound from b.test (the policy's rate holds per direction): bob sends
  30 messages at once to alice through the proxy, which stops reading b.test's stream
  while over the rate; alice's client measures 10/s (within 20%), every message
  delivered (late) or bounced to bob (counted).
"""

import os
import signal
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, HERE)

import test_federation as F  # noqa: E402
from s2stest import clients as X  # noqa: E402
from s2stest import procs as P  # noqa: E402
from s2stest.runner import Runner  # noqa: E402

RATE = 10
RATE_N = 30


class PolicyProxy(F.Proxy):
    """test_federation's proxy with ``policy = { @include "policy.inc" };``."""

    def __init__(self, procs, scratch, knot, ca, leaf, port, component=None):
        self.procs, self.scratch = procs, scratch
        self.dir = scratch.sub("proxy")
        self.inc = os.path.join(self.dir, "policy.inc")
        self.blocklist = os.path.join(self.dir, "blocked.txt")
        with open(self.blocklist, "w") as f:
            f.write("# community block list\nspam.test\n")
        with open(self.inc, "w") as f:
            f.write(BLOCKLIST)
        # F.Proxy writes its configuration and starts: append the policy in between by
        # writing the file the way it does, then starting ourselves.
        self.port = port
        self.cfg = os.path.join(self.dir, "s2sproxy.conf")
        comp = (f'component = {{ host = "{component[0]}"; port = {component[1]}; '
                f'secret = "{F.COMPONENT_SECRET}"; name = "{F.COMPONENT}"; }};')
        text = f"""
log = {{ level = "debug"; }};
hosts = ( {{ domain = "a.test"; certificate = "{leaf.chain}"; key = "{leaf.key}"; {comp} }} );
tls = {{ ca_file = "{ca.cert}"; }};
listen = {{ starttls = [ "{F.PROXY_IP}:{port}" ]; }};
timeouts = {{ connect = 2; queue = 10; authenticate = 30; backoff_min = 0.2; backoff_max = 0.5; }};
dns = {{ backend = "unbound"; servers = [ "{knot.ip}:{knot.port}" ];
        trust_anchor_file = "{knot.trust_anchor_file}";
        unbound_options = ( ("local-zone:", "test. transparent") ); timeout = 3; }};
policy = {{
@include "policy.inc"
}};
"""
        with open(self.cfg, "w") as f:
            f.write(text)
        self.proc = procs.start("proxy", [os.path.join(F.BIN, "s2sproxy"), "-d", "-c", self.cfg])
        self.log = self.proc.stderr_path
        P.wait_port(F.PROXY_IP, self.port, 10, procs=[self.proc])

    def reload(self, inc=None, blocked=None, expect=r"reloaded configuration"):
        if blocked is not None:
            with open(self.blocklist, "w") as f:
                f.write("# community block list\n" + "".join(d + "\n" for d in blocked))
        if inc is not None:
            with open(self.inc, "w") as f:
                f.write(inc)
        mark = self.mark()
        os.kill(self.proc.popen.pid, signal.SIGHUP)
        return self.wait_log(expect, since=mark)


BLOCKLIST = """
federate = "allow";
domains = ( { name = "blocked"; list = "blocked.txt"; federate = "deny"; } );
"""
CLOSED = """
federate = "deny";
domains = ( { name = "partner"; match = "b.test"; federate = "allow"; } );
"""
CERTS = """
domains = ( { name = "need-cert"; match = [ "b.test", "c.test" ]; auth = "certificate"; } );
"""
RATED = f"""
domains = ( {{ name = "slow-b"; match = "b.test"; rate = {{ stanzas = {RATE}; stanza_burst = 1; }}; }} );
"""
BROKEN = """
domains = ( { name = "oops"; match = "b.test"; federate = "perhaps"; } );
"""


class PolicyWorld(F.World):
    def start(self):
        port = P.free_port(F.PROXY_IP)
        self.knot.a("a.test", F.PROXY_IP)
        self.knot.srv("a.test", "a.test", port)
        self.knot.tlsa("a.test", port, self.a_leaf.tlsa_311())
        self.knot.start()
        self.a.start()
        for server in (self.b, self.c):
            server.start()
        self.proxy = PolicyProxy(self.procs, self.scratch, self.knot, self.ca, self.a_leaf, port,
                                 (self.a.ip, self.a.component_port))
        self.proxy.wait_log(r"local.*(up|handshake)", timeout=15)


async def _nothing_from(receiver, sender_jid, secs):
    try:
        m = await receiver.expect_message(sender=sender_jid, timeout=secs)
    except X.XmppTimeout:
        return None
    return m["body"]


def _bounce(w, frm, to, timeout=20):
    """frm's user sends to ``to``: the error condition it gets back."""
    async def scenario():
        u = await w.user(*frm)
        u.send_chat(to, "should bounce")
        cond, _ = await u.expect_error(timeout=timeout)
        await u.close()
        return cond
    return X.run(scenario(), timeout=timeout + 20)


def _delivers(w, frm, to, body, timeout=20):
    async def scenario():
        a, b = await w.user(*frm), await w.user(*to)
        took = await X.deliver(a, b, body, timeout=timeout)
        await X.close_all(a, b)
        return took
    return X.run(scenario(), timeout=timeout + 20)


def _refused_inbound(w, server, user, timeout=25):
    """A remote user's message to alice: the sender gets an error, alice nothing."""
    async def scenario():
        alice, u = await w.user(w.a, "alice"), await w.user(server, user)
        u.send_chat("alice@a.test", "must not arrive")
        cond, _ = await u.expect_error(timeout=timeout)
        got = await _nothing_from(alice, f"{user}@{next(iter(server.hosts))}", 2)
        await X.close_all(alice, u)
        return cond, got
    return X.run(scenario(), timeout=timeout + 30)


# ---- cases ---------------------------------------------------------------------------


def case_open_federation(w):
    _delivers(w, (w.a, "alice"), (w.b, "bob"), "a->b open")
    _delivers(w, (w.b, "bob"), (w.a, "alice"), "b->a open")
    _delivers(w, (w.a, "alice"), (w.c, "carol"), "a->c open", timeout=25)
    _delivers(w, (w.c, "carol"), (w.a, "alice"), "c->a open", timeout=25)


def case_reload_blocklist(w, r):
    px = w.proxy
    mark = px.mark()
    px.reload(blocked=["spam.test", "c.test"])
    # c.test's live streams are closed by the re-check; b.test's are not.
    cond = _bounce(w, (w.a, "alice"), "carol@c.test")
    assert cond == "not-allowed", cond
    cond, got = _refused_inbound(w, w.c, "carol")
    assert got is None, f"alice received {got!r} from a blocked domain"
    r.note(f"blocked c.test: alice's message bounced not-allowed; carol got {cond}")
    px.wait_log(r"refused: .*term=federate rule=blocked", since=mark)
    _delivers(w, (w.a, "alice"), (w.b, "bob"), "a->b after reload")
    _delivers(w, (w.b, "bob"), (w.a, "alice"), "b->a after reload")
    assert not P.log_search(px.log, r"(out: authenticated|in: authenticated).*remote=b\.test",
                            since=mark), "b.test needed a new stream after the reload"
    assert not P.log_search(px.log, r"reload: .*remote=b\.test", since=mark), \
        "the reload closed b.test's stream"


def case_broken_reload(w):
    px = w.proxy
    px.reload(inc=BROKEN, expect=r"reload refused.*policy\.inc:2: .*federate")
    cond = _bounce(w, (w.a, "alice"), "carol@c.test")
    assert cond == "not-allowed", f"old policy not kept: {cond}"
    _delivers(w, (w.a, "alice"), (w.b, "bob"), "a->b after broken reload")


def case_closed_federation(w):
    w.proxy.reload(inc=CLOSED, blocked=["spam.test"])
    _delivers(w, (w.a, "alice"), (w.b, "bob"), "a->b closed federation")
    _delivers(w, (w.b, "bob"), (w.a, "alice"), "b->a closed federation")
    cond = _bounce(w, (w.a, "alice"), "carol@c.test")
    assert cond == "not-allowed", cond
    cond = _bounce(w, (w.a, "alice"), "x@nonexistent.test")
    assert cond == "not-allowed", f"default deny must bounce before DNS: {cond}"
    cond, got = _refused_inbound(w, w.c, "carol")
    assert got is None, got


def case_require_certificates(w, r):
    px = w.proxy
    mark = px.mark()
    px.reload(inc=CERTS)
    cond, got = _refused_inbound(w, w.c, "carol")
    assert got is None, got
    px.wait_log(r"router: remote=c\.test: policy rule=need-cert requires a certificate "
                r"\(term=auth\)", since=mark)
    px.wait_log(r"in: dialback .*remote=c\.test result=error error=not-authorized", since=mark)
    out = _bounce(w, (w.a, "alice"), "carol@c.test", timeout=25)
    # the policy made c.test "secure" for the outbound stream: no dialback fallback
    assert out == "remote-server-not-found", out
    px.wait_log(r"pool: route local=a\.test remote=c\.test: policy rule=need-cert .*"
                r"requires a certificate \(term=auth\)", since=mark)
    _delivers(w, (w.b, "bob"), (w.a, "alice"), "b->a with a certificate")
    _delivers(w, (w.a, "alice"), (w.b, "bob"), "a->b with a certificate")
    r.note(f"certificates required: c.test (dialback only) refused in ({cond}) and out "
           f"({out}); b.test (SASL EXTERNAL) passes")


def case_certificate_fixed(w, r):
    """c.test gets a valid certificate (re-issued by the test CA, Prosody restarted):
    the same policy now accepts it both ways."""
    px = w.proxy
    mark = px.mark()
    w.c.hosts["c.test"] = w.ca.issue("c.test", dns=["c.test"], xmppaddr=["c.test"],
                                     srvname=["_xmpp-server.c.test"])
    w.c.restart()
    back = _delivers(w, (w.c, "carol"), (w.a, "alice"), "c->a with a certificate", timeout=25)
    out = _delivers(w, (w.a, "alice"), (w.c, "carol"), "a->c with a certificate", timeout=25)
    px.wait_log(r"in: authenticated .*remote=c\.test method=(sasl-external|dialback-cert)",
                since=mark)
    r.note(f"c.test re-certified: accepted by the same policy, c->a {back * 1000:.0f} ms, "
           f"a->c {out * 1000:.0f} ms")


def case_rate_limit(w, r):
    w.proxy.reload(inc=RATED)

    async def scenario():
        alice, bob = await w.user(w.a, "alice"), await w.user(w.b, "bob")
        await X.deliver(alice, bob, "warm", timeout=20)  # the route is READY
        await X.deliver(alice, bob, "warm2", timeout=20)
        for i in range(RATE_N):
            alice.send_chat("bob@b.test", f"rate {i}")
        times, errors = [], 0
        for i in range(RATE_N):
            try:
                m = await bob.expect_message(body=f"rate {i}", timeout=10)
                times.append(m.arrived)
            except X.XmppTimeout:
                break
        while True:
            try:
                await alice.expect_error(timeout=1)
                errors += 1
            except X.XmppTimeout:
                break
        await X.close_all(alice, bob)
        return times, errors
    times, errors = X.run(scenario(), timeout=120)
    assert len(times) + errors == RATE_N, f"lost: {len(times)} delivered + {errors} bounced"
    assert len(times) >= RATE_N // 2, f"only {len(times)} delivered"
    rate = (len(times) - 1) / (times[-1] - times[0])
    r.note(f"rate limit {RATE}/s to b.test: {len(times)} delivered, {errors} bounced, "
           f"measured {rate:.2f}/s")
    assert abs(rate - RATE) <= 0.2 * RATE, f"delivered rate {rate:.2f}/s, configured {RATE}/s"


def case_inbound_rate_limit(w, r):
    """RATED is in force (case_rate_limit): b.test is limited to RATE stanzas/s in each
    direction. Inbound excess is slowed by backpressure, not dropped."""
    px = w.proxy
    mark = px.mark()

    async def scenario():
        alice, bob = await w.user(w.a, "alice"), await w.user(w.b, "bob")
        await X.deliver(bob, alice, "warm in", timeout=20)  # streams up both ways
        for i in range(RATE_N):
            bob.send_chat("alice@a.test", f"in {i}")
        times, errors = [], 0
        for i in range(RATE_N):
            try:
                m = await alice.expect_message(body=f"in {i}", timeout=10)
                times.append(m.arrived)
            except X.XmppTimeout:
                break
        while True:
            try:
                await bob.expect_error(timeout=1)
                errors += 1
            except X.XmppTimeout:
                break
        await X.close_all(alice, bob)
        return times, errors
    times, errors = X.run(scenario(), timeout=120)
    assert len(times) + errors == RATE_N, f"lost: {len(times)} delivered + {errors} bounced"
    assert len(times) >= RATE_N // 2, f"only {len(times)} delivered"
    rate = (len(times) - 1) / (times[-1] - times[0])
    paused = P.log_search(px.log, r"router: rate limit remote=b\.test", since=mark)
    r.note(f"inbound rate limit {RATE}/s from b.test: {len(times)} delivered, {errors} "
           f"bounced, measured {rate:.2f}/s at alice's client"
           f"{' (reading paused)' if paused else ''}")
    assert abs(rate - RATE) <= 0.2 * RATE, f"delivered rate {rate:.2f}/s, configured {RATE}/s"


def main():
    r = Runner()
    if not F.HAVE_LOCAL:
        r.note("no local link in this tree")
        return r.finish()
    with P.Scratch("policy") as scratch, P.Procs(scratch) as procs:
        try:
            w = PolicyWorld(procs, scratch)
            w.start()
        except Exception as exc:
            scratch.failed()
            r.fail("setup", f"{type(exc).__name__}: {exc}")
            return r.finish()
        w.silent.close()
        r.case("open_federation_with_block_list", case_open_federation, w)
        r.case("reload_adds_blocked_domain", case_reload_blocklist, w, r)
        r.case("broken_policy_on_reload_keeps_old", case_broken_reload, w)
        r.case("closed_federation", case_closed_federation, w)
        r.case("certificates_required", case_require_certificates, w, r)
        r.case("certificate_fixed_accepted", case_certificate_fixed, w, r)
        r.case("outbound_rate_limit", case_rate_limit, w, r)
        r.case("inbound_rate_limit", case_inbound_rate_limit, w, r)
        r.case("all_processes_alive", procs.check)
        if r.failed:
            scratch.failed()
        return r.finish()


if __name__ == "__main__":
    sys.exit(main())
