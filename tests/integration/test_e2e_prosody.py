#!/usr/bin/python3
"""End to end: real users on two sites, one of them behind s2sproxy (issue 5).

World (lib/s2stest/e2e.py): Knot serves a signed ``test.`` with SRV, A and TLSA
for a.test (the proxy), b.test and muc.b.test (Prosody B).  Site A is Prosody
serving a.test with native s2s disabled and contrib/prosody/mod_s2sproxy.lua,
linked to the s2sproxy daemon as its component s2s.a.test; the daemon runs
with a configuration written here (listen, host with component link, DNS via
libunbound with the zone's trust anchor, dialback secret file).  Site B is a
stock Prosody (native s2s, secure auth, DANE) with a MUC service muc.b.test.
slixmpp clients log in on both sides.

Cases, in both directions where the direction means something: chat messages;
presence subscription and presence updates; iq (ping to the user and the
server, disco#info, vcard-temp); a user of A in a MUC room on B exchanging
groupchat with a user of B; a message to a domain that does not exist bounces
with remote-server-not-found (A -> nowhere), and a message to a user A does
not have comes back with an error from a.test (B -> A); messages sent to a
user of A while A's Prosody restarts are each delivered after the restart or
bounced to the sender, none lost or duplicated; when A's server stays down past
the proxy's queue timeout, each is bounced with remote-server-timeout and never
delivered afterwards.  The proxy's log must show the
streams it authenticated (TLS, SASL EXTERNAL with DANE) and B's admin shell
must list its streams with a.test as TLS with a valid certificate.
"""

import asyncio
import os
import re
import sys
import time
import xml.etree.ElementTree as ET

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

from s2stest import clients as X  # noqa: E402
from s2stest import e2e as E  # noqa: E402
from s2stest import procs as P  # noqa: E402
from s2stest.runner import Runner  # noqa: E402

SRC = os.environ.get("S2S_SRCDIR", os.getcwd())
BIN = os.environ.get("S2S_BINDIR", os.path.join(SRC, "build"))
ROOM = f"lobby@{E.MUC}"
RESTART_MESSAGES = 5
OUTAGE_MESSAGES = 3
QUEUE_TIMEOUT = 6  # timeouts.queue: a restart takes less, the outage case waits it out


async def pair(w, a="alice@a.test", b="bob@b.test", plugins=()):
    return (await w.login(a, plugins=plugins), await w.login(b, plugins=plugins))


def case_messages(w, r):
    """Chat both ways; the proxy authenticated the streams with TLS and SASL EXTERNAL
    (DANE-checked certificate), and B sees its streams with a.test as TLS + valid."""
    mark = w.proxy.mark()

    async def scenario():
        alice, bob = await pair(w)
        out = await X.deliver(alice, bob, "hello bob, from a.test", timeout=15)
        back = await X.deliver(bob, alice, "hello alice, from b.test", timeout=15)
        # a second message each way rides the streams already up
        await X.deliver(alice, bob, "again a->b")
        await X.deliver(bob, alice, "again b->a")
        await X.close_all(alice, bob)
        return out, back
    out, back = X.run(scenario(), timeout=40)
    streams = [s for s in E.proxy_streams(w.proxy.log, mark) if s["remote"] == "b.test"]
    assert streams, "the proxy logged no authenticated stream with b.test"
    for s in streams:
        assert s["tls"].startswith("TLSv1."), s
        assert s["method"] == "sasl-external", s
    outs = [s for s in streams if s["dir"] == "out"]
    assert outs and outs[0]["cert"] == "valid" and "dane=yes" in outs[0]["rest"], outs
    sessions = w.b.s2s_sessions("a.test") or w.b.s2s_sessions()
    mine = [s for s in sessions if s["remote"] == "a.test"]
    assert mine, sessions
    for s in mine:
        assert s["secure"].startswith("TLSv1."), s
        assert s["cert"] == "Valid", s
    r.note(f"first a->b {out * 1000:.1f} ms (new route: DNS, TLS, DANE, SASL), "
           f"first b->a {back * 1000:.1f} ms; streams: "
           + ", ".join(f"{s['dir']} {s['method']} {s['tls']}" for s in streams))


def case_presence(w):
    """Subscription both ways (slixmpp authorizes and subscribes back), then a
    presence update in each direction carries its status text."""
    async def scenario():
        alice, bob = await pair(w, "anne@a.test", "bea@b.test")
        alice.subscribe("bea@b.test")
        await bob.expect_presence("subscribe", sender="anne@a.test", timeout=15)
        await alice.expect_presence("subscribed", sender="bea@b.test", timeout=15)
        await alice.expect_presence("available", sender="bea@b.test", timeout=15)
        # bea's automatic subscription back: a -> b authorization, then presence
        await alice.expect_presence("subscribe", sender="bea@b.test", timeout=15)
        await bob.expect_presence("subscribed", sender="anne@a.test", timeout=15)
        await bob.expect_presence("available", sender="anne@a.test", timeout=15)
        bob.send_presence(pstatus="status from b")
        p = await alice.expect_presence("available", sender="bea@b.test", timeout=15)
        while p["status"] != "status from b":
            p = await alice.expect_presence("available", sender="bea@b.test", timeout=15)
        alice.send_presence(pstatus="status from a")
        p = await bob.expect_presence("available", sender="anne@a.test", timeout=15)
        while p["status"] != "status from a":
            p = await bob.expect_presence("available", sender="anne@a.test", timeout=15)
        await X.close_all(alice, bob)
    X.run(scenario(), timeout=40)


def case_iq_ping(w):
    """XEP-0199 both ways, to the user's full JID (answered by the client) and to the
    server (answered by the remote server)."""
    async def scenario():
        alice, bob = await pair(w)
        await alice.ping(bob.boundjid.full)
        await alice.ping("b.test")
        await bob.ping(alice.boundjid.full)
        await bob.ping("a.test")
        await X.close_all(alice, bob)
    X.run(scenario(), timeout=30)


def case_iq_disco(w):
    """XEP-0030 disco#info of the other site's server and of B's MUC service."""
    async def scenario():
        alice, bob = await pair(w)
        ids, features = await alice.disco_info("b.test")
        assert "urn:xmpp:ping" in features, features
        ids, features = await alice.disco_info(E.MUC)
        assert any(i[0] == "conference" for i in ids), ids
        assert "http://jabber.org/protocol/muc" in features, features
        ids, features = await bob.disco_info("a.test")
        assert "urn:xmpp:ping" in features, features
        assert any(i[0] == "server" for i in ids), ids
        ids, features = await bob.disco_info(alice.boundjid.full)  # answered by slixmpp
        assert "http://jabber.org/protocol/disco#info" in features, features
        await X.close_all(alice, bob)
    X.run(scenario(), timeout=30)


def case_iq_vcard(w):
    """vcard-temp (XEP-0054): each user publishes a vCard on their own server, the
    other side fetches it across the federation (answered by the remote server)."""
    async def scenario():
        alice, bob = await pair(w, plugins=["xep_0054"])
        for client, fn in ((alice, "Alice of A"), (bob, "Bob of B")):
            card = client.plugin["xep_0054"].make_vcard()
            card["FN"] = fn
            await client.plugin["xep_0054"].publish_vcard(card, timeout=10)
        iq = await bob.plugin["xep_0054"].get_vcard("alice@a.test", timeout=15)
        assert iq["vcard_temp"]["FN"] == "Alice of A", iq
        iq = await alice.plugin["xep_0054"].get_vcard("bob@b.test", timeout=15)
        assert iq["vcard_temp"]["FN"] == "Bob of B", iq
        await X.close_all(alice, bob)
    X.run(scenario(), timeout=30)


def _join(client, nick):
    p = client.make_presence(pto=f"{ROOM}/{nick}")
    p.append(ET.Element("{http://jabber.org/protocol/muc}x"))
    p.send()


async def _occupant(client, nick, timeout=15):
    """The room's presence for ``nick`` (MUC presences come from room@service/nick)."""
    while True:
        p = await client.expect_presence("available", sender=ROOM, timeout=timeout)
        if p["from"].resource == nick:
            return p


def case_muc(w):
    """alice@a.test joins lobby@muc.b.test where bob@b.test is; groupchat both ways
    (presence and messages from muc.b.test reach a.test through the proxy)."""
    async def scenario():
        alice, bob = await pair(w)
        _join(bob, "bob")
        await _occupant(bob, "bob")
        _join(alice, "alice")
        await _occupant(alice, "bob")       # the room lists bob to alice
        await _occupant(alice, "alice")     # and alice's own presence, last
        await _occupant(bob, "alice")       # bob sees alice arrive
        alice.send_message(mto=ROOM, mbody="hi from a.test", mtype="groupchat")
        m = await bob.expect_message(body="hi from a.test", sender=ROOM, timeout=15)
        assert m["from"].resource == "alice" and m["type"] == "groupchat", m
        await alice.expect_message(body="hi from a.test", sender=ROOM, timeout=15)  # echo
        bob.send_message(mto=ROOM, mbody="hi from b.test", mtype="groupchat")
        m = await alice.expect_message(body="hi from b.test", sender=ROOM, timeout=15)
        assert m["from"].resource == "bob" and m["type"] == "groupchat", m
        await X.close_all(alice, bob)
    X.run(scenario(), timeout=40)


def case_unknown_domain(w):
    """A -> a domain with no server: remote-server-not-found from the proxy."""
    async def scenario():
        alice = await w.login("alice@a.test")
        alice.send_chat("nobody@nonexistent.test", "into the void")
        cond, stanza = await alice.expect_error(sender="nonexistent.test", timeout=15)
        assert cond == "remote-server-not-found", (cond, stanza)
        await alice.close()
    X.run(scenario(), timeout=30)


def case_unknown_user(w, conditions=("service-unavailable",)):
    """B -> a user a.test does not have: a.test's error comes back through the proxy."""
    async def scenario():
        bob = await w.login("bob@b.test")
        bob.send_chat("nobody@a.test", "anyone?")
        cond, stanza = await bob.expect_error(sender="nobody@a.test", timeout=15)
        assert cond in conditions, (cond, stanza)
        await bob.close()
    X.run(scenario(), timeout=30)


def send_numbered(client, to, bodies):
    """Chat messages with ids derived from their bodies: a bounce carries the id of
    the stanza it answers (RFC 6120 §8.3.1) but not necessarily its body (the
    proxy's bounces carry no payload)."""
    for body in bodies:
        msg = client.make_message(mto=to, mbody=body, mtype="chat")
        msg["id"] = "id-" + body
        msg.send()


def bounced_body(stanza):
    return stanza["id"][3:] if stanza["id"].startswith("id-") else None


def case_restart(w, r):
    """bob sends to alice while A's server is down and restarting: every message is
    delivered after the restart or bounced to bob, none lost, none twice."""
    w.settle_link()  # nothing from earlier cases may be written again, or bounced
    since = w.proxy.mark()
    w.a.stop()
    w.proxy.wait_log(r"local: link down domain=a\.test", since)
    bodies = [f"during-restart-{i}" for i in range(RESTART_MESSAGES)]

    async def send_while_down():
        bob = await w.login("bob@b.test")
        send_numbered(bob, "alice@a.test", bodies)
        await bob.ping("b.test")  # B has taken them all
        return bob

    async def collect(bob):
        alice = await w.login("alice@a.test")  # offline messages come at login
        delivered, bounced = [], []

        def settled():
            for s in list(alice.received["message"]):
                if s["body"] in bodies:
                    alice.received["message"].remove(s)
                    delivered.append(s["body"])
            for s in list(bob.received["error"]):
                if bounced_body(s) in bodies:
                    bob.received["error"].remove(s)
                    bounced.append(bounced_body(s))
            return len(delivered) + len(bounced) >= len(bodies)

        deadline = time.monotonic() + 30
        while not settled() and time.monotonic() < deadline:
            await asyncio.sleep(P.POLL_INTERVAL)  # a bounded poll, as in procs.wait_until
        await X.close_all(alice, bob)
        return delivered, bounced

    # One event loop across the restart, so bob stays online to get any bounce; the
    # server is started from the main thread (its parent-death signal is per thread).
    loop = asyncio.new_event_loop()
    try:
        bob = loop.run_until_complete(asyncio.wait_for(send_while_down(), 30))
        w.a.start()
        up = w.proxy.wait_link_up(since)
        delivered, bounced = loop.run_until_complete(asyncio.wait_for(collect(bob), 40))
    finally:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()
    assert len(set(delivered)) == len(delivered), f"duplicates: {delivered}"
    assert sorted(delivered + bounced) == sorted(bodies), (delivered, bounced)
    if not bounced:
        assert delivered == bodies, f"out of order: {delivered}"
        # they waited in the proxy's queue for the link, not somewhere else
        queued = int(re.search(r"queued=(\d+)", up.group(0)).group(1))
        assert queued == len(bodies), up.group(0)
    r.note(f"restart: {len(delivered)} delivered after the restart, {len(bounced)} "
           f"bounced, of {len(bodies)} sent while a.test's server was down")

    async def after():  # and both directions work again
        alice, bob = await pair(w)
        await X.deliver(alice, bob, "a->b after restart", timeout=15)
        await X.deliver(bob, alice, "b->a after restart", timeout=15)
        await X.close_all(alice, bob)
    X.run(after(), timeout=30)


def case_outage_bounce(w, r):
    """A's server stays down longer than the proxy's queue timeout: each message bob
    sent is bounced to him with remote-server-timeout, from the JID he wrote to, and
    none of them reaches alice once the server is back (bounced means not delivered)."""
    w.settle_link()  # nothing from earlier cases may be written again, or bounced
    since = w.proxy.mark()
    w.a.stop()
    w.proxy.wait_log(r"local: link down domain=a\.test", since)
    bodies = [f"during-outage-{i}" for i in range(OUTAGE_MESSAGES)]

    async def bounced():
        bob = await w.login("bob@b.test")
        sent = time.monotonic()
        send_numbered(bob, "alice@a.test", bodies)
        got = []
        for _ in bodies:
            cond, stanza = await bob.expect_error(sender="alice@a.test",
                                                  timeout=QUEUE_TIMEOUT + 10)
            assert cond == "remote-server-timeout", (cond, stanza)
            got.append(bounced_body(stanza))
        await bob.close()
        return sorted(got), time.monotonic() - sent
    got, took = X.run(bounced(), timeout=QUEUE_TIMEOUT + 20)
    assert got == sorted(bodies), got
    with open(w.proxy.log, "rb") as f:
        f.seek(since)
        text = f.read().decode("utf-8", "replace")
    bounces = re.findall(r"local: bounce domain=a\.test to=alice@a\.test", text)
    assert len(bounces) == len(bodies), bounces
    w.a.start()
    w.proxy.wait_link_up(since)

    async def none_delivered():
        alice, bob = await pair(w)
        await X.deliver(bob, alice, "after the outage", timeout=15)  # after any offline ones
        late = [m["body"] for m in alice.received["message"] if m["body"] in bodies]
        await X.close_all(alice, bob)
        return late
    late = X.run(none_delivered(), timeout=30)
    assert not late, f"bounced and delivered: {late}"
    r.note(f"outage: {len(bodies)} messages bounced with remote-server-timeout after "
           f"{took:.1f} s (timeouts.queue = {QUEUE_TIMEOUT} s)")


def case_counters(w, r):
    """The daemon's own books (``s2sproxy ctl stats``) balance after everything above:
    outbound accepted = delivered + bounced + dropped (nothing left queued), with the
    unknown domain's remote-server-not-found among the bounces; on the link to A,
    to_local = delivered + bounced + queued + inflight = inbound accepted + outbound
    bounced, exactly the outage's messages bounced, one disconnect per stop of A's
    server."""
    w.settle_link()

    def balanced():
        st = w.proxy.ctl_json("stats")
        o = st["outbound"]
        return st if o["accepted"] == o["delivered"] + o["bounced"] + o["dropped"] else None
    st = P.wait_until(balanced, 10, "outbound counters to balance", procs=[w.proxy.proc])
    o, link = st["outbound"], st["links"][0]
    assert o["bounced_by"].get("remote-server-not-found", 0) >= 1, o
    assert o["dropped"] == 0, o
    assert link["domain"] == "a.test" and link["up"], link
    assert link["to_local"] == (link["delivered"] + link["bounced"] + link["queued"]
                                + link["inflight"]), link
    assert link["bounced"] == OUTAGE_MESSAGES, link
    assert link["disconnects"] == 2, link
    # everything for a.test goes over the link: what B sent, and the proxy's bounces of
    # what A's users sent (remote-server-not-found)
    assert link["to_local"] == st["inbound"]["accepted"] + o["bounced"], st
    r.note("proxy counters: outbound accepted {accepted} = delivered {delivered} + bounced "
           "{bounced} + dropped {dropped}; ".format(**o)
           + "link a.test: to_local {to_local} = delivered {delivered} + bounced {bounced} "
           "+ queued {queued} + inflight {inflight}".format(**link))


def case_logs_clean(w):
    """No error or traceback in A's Prosody log; the proxy never logged a bug."""
    with open(w.a.log, errors="replace") as f:
        bad = [line for line in f if "\terror\t" in line or "Traceback" in line]
    assert not bad, "".join(bad[:5])
    assert not P.log_search(w.proxy.log, r"AddressSanitizer|runtime error|\[crit\]|[Aa]ssertion"), \
        P.tail(w.proxy.log)


def run(name, local="prosody", extra_cases=True, log_check=case_logs_clean,
        unknown_user_conditions=("service-unavailable",)):
    r = Runner()
    if not os.access(os.path.join(BIN, "s2sproxy"), os.X_OK):
        r.fail("setup", f"no {BIN}/s2sproxy (build first)")
        return r.finish()
    with P.Scratch(name) as scratch, P.Procs(scratch) as procs:
        try:
            w = E.World(procs, scratch, BIN, SRC, local=local,
                        queue_timeout=QUEUE_TIMEOUT).start()
        except Exception as exc:
            scratch.failed()
            r.fail("setup", f"{type(exc).__name__}: {exc}")
            return r.finish()
        r.case("messages_both_ways", case_messages, w, r)
        r.case("presence_both_ways", case_presence, w)
        r.case("iq_ping_both_ways", case_iq_ping, w)
        if extra_cases:
            r.case("iq_disco_info_both_ways", case_iq_disco, w)
            r.case("iq_vcard_both_ways", case_iq_vcard, w)
            r.case("muc_a_user_in_b_room", case_muc, w)
        r.case("unknown_domain_bounce", case_unknown_domain, w)
        r.case("unknown_user_on_a", case_unknown_user, w, unknown_user_conditions)
        r.case("restart_local_server", case_restart, w, r)
        r.case("local_server_outage_bounce", case_outage_bounce, w, r)
        r.case("proxy_counters_balance", case_counters, w, r)
        r.case("logs_clean", log_check, w)
        r.case("all_processes_alive", procs.check)
        if r.failed:
            scratch.failed()
        return r.finish()


if __name__ == "__main__":
    sys.exit(run("e2e_prosody"))
