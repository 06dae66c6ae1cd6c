"""XMPP clients for tests (slixmpp 1.8, asyncio), every wait bounded.

Why: the end-to-end question of every federation test is "does a stanza sent by
a user on one server reach a user on another (or bounce with the right
error), and how fast".  These helpers log in real clients over c2s (STARTTLS,
certificate checked against the test CA) and await events, never sleep.

Use them inside one coroutine run with ``run(coro, timeout)``::

    async def scenario():
        alice = await login("alice@a.test", "pw", pa.ip, pa.c2s_port, ca.cert)
        bob = await login("bob@b.test", "pw", pb.ip, pb.c2s_port, ca.cert)
        seconds = await deliver(alice, bob, "hello")
        await close_all(alice, bob)
    run(scenario(), timeout=20)

Run this module with /usr/bin/python3 (Debian's slixmpp lives there).
"""

import asyncio
import logging
import time

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout

logging.getLogger("slixmpp").setLevel(logging.CRITICAL)


class XmppTimeout(AssertionError):
    """An awaited XMPP event did not happen in time."""


class Client(slixmpp.ClientXMPP):
    """A logged-in user.  Received messages, errors and presences are kept in
    order, with their arrival time (``time.monotonic()``) in ``stanza.arrived``."""

    def __init__(self, jid, password, ca_file=None):
        super().__init__(jid, password)
        self.ca_certs = ca_file
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0199")
        self.received = {"message": [], "error": [], "presence": []}
        self._changed = asyncio.Condition()
        self.add_event_handler("message", lambda m: self._keep("message", m))
        self.add_event_handler("message_error", lambda m: self._keep("error", m))
        for event in ("presence_subscribe", "presence_subscribed",
                      "presence_available", "presence_unavailable"):
            self.add_event_handler(event, lambda p: self._keep("presence", p))

    def _keep(self, kind, stanza):
        if kind == "message" and stanza["type"] == "error":
            return  # reported as message_error too
        stanza.arrived = time.monotonic()
        self.received[kind].append(stanza)
        asyncio.ensure_future(self._notify())

    async def _notify(self):
        async with self._changed:
            self._changed.notify_all()

    async def _take(self, kind, match, timeout, what):
        """Remove and return the first received ``kind`` stanza with match(s)."""
        async def find():
            async with self._changed:
                while True:
                    for stanza in self.received[kind]:
                        if match(stanza):
                            self.received[kind].remove(stanza)
                            return stanza
                    await self._changed.wait()
        try:
            return await asyncio.wait_for(find(), timeout)
        except asyncio.TimeoutError:
            raise XmppTimeout(f"{self.boundjid}: no {what} within {timeout}s") from None

    # ---- session ------------------------------------------------------------------

    async def login(self, ip, port, timeout=10.0):
        """Connect to ip:port (STARTTLS), authenticate, bind, send presence."""
        done = asyncio.get_running_loop().create_future()

        def fail(why):
            if not done.done():
                done.set_exception(AssertionError(f"{self.boundjid}: login failed: {why}"))

        def ok(_):
            if not done.done():
                done.set_result(True)

        self.add_event_handler("session_start", ok)
        self.add_event_handler("failed_auth", lambda e: fail("authentication"))
        self.add_event_handler("connection_failed", lambda e: fail(f"connection: {e}"))
        self.add_event_handler("ssl_invalid_chain", lambda e: fail(f"TLS: {e}"))
        self.add_event_handler("disconnected", lambda e: fail("disconnected"))
        self.connect(address=(ip, port))
        try:
            await asyncio.wait_for(done, timeout)
        except asyncio.TimeoutError:
            self.abort()
            raise XmppTimeout(f"{self.boundjid}: no session within {timeout}s") from None
        except AssertionError:
            self.abort()
            raise
        # Prosody sends subscription requests only to resources that fetched
        # the roster ("interested" resources, RFC 6121 section 2.2).
        await self.get_roster(timeout=timeout)
        self.send_presence()
        # A ping to our own server returns after it has processed the presence.
        await self.ping(self.boundjid.host, timeout)
        return self

    async def close(self, timeout=5.0):
        """Disconnect; wait (bounded) for the stream to close."""
        try:
            await asyncio.wait_for(self.disconnect(wait=timeout / 2), timeout)
        except (asyncio.TimeoutError, Exception):
            self.abort()

    # ---- messages -------------------------------------------------------------------

    def send_chat(self, to, body):
        """Send a chat message; returns the send time (time.monotonic())."""
        sent = time.monotonic()
        self.send_message(mto=to, mbody=body, mtype="chat")
        return sent

    async def expect_message(self, body=None, sender=None, timeout=10.0):
        """The next received message (with this body / from this bare JID)."""
        def match(m):
            return ((body is None or m["body"] == body)
                    and (sender is None or m["from"].bare == sender))
        return await self._take("message", match, timeout, f"message {body!r}")

    async def expect_error(self, sender=None, timeout=10.0):
        """The next bounced message: (condition name, stanza)."""
        def match(m):
            return sender is None or m["from"].bare == sender or m["from"].domain == sender
        stanza = await self._take("error", match, timeout, "message error")
        return stanza["error"]["condition"], stanza

    # ---- presence ---------------------------------------------------------------------

    def subscribe(self, jid):
        """Ask for ``jid``'s presence (the peer's slixmpp auto-accepts)."""
        self.send_presence(pto=jid, ptype="subscribe")

    async def expect_presence(self, ptype, sender=None, timeout=10.0):
        """Next presence of type ``ptype`` ('subscribed', 'available', ...)."""
        def match(p):
            return p["type"] == ptype and (sender is None or p["from"].bare == sender)
        return await self._take("presence", match, timeout, f"presence {ptype}")

    # ---- iq ----------------------------------------------------------------------------

    async def ping(self, jid, timeout=10.0):
        """XEP-0199 ping; returns the round trip in seconds, raises on error."""
        started = time.monotonic()
        try:
            await self.plugin["xep_0199"].send_ping(jid, timeout=timeout)
        except IqTimeout:
            raise XmppTimeout(f"{self.boundjid}: ping {jid} timed out") from None
        return time.monotonic() - started

    async def disco_info(self, jid, timeout=10.0):
        """XEP-0030 disco#info of ``jid``: (identities, features)."""
        try:
            iq = await self.plugin["xep_0030"].get_info(jid=jid, timeout=timeout)
        except IqTimeout:
            raise XmppTimeout(f"{self.boundjid}: disco#info {jid} timed out") from None
        info = iq["disco_info"]
        return info["identities"], info["features"]


class Component(slixmpp.ComponentXMPP):
    """An external component (XEP-0114) that keeps every message it receives;
    stands in for the proxy's local link when testing the Prosody side."""

    def __init__(self, jid, secret):
        super().__init__(jid, secret)
        self.received = []
        self._changed = asyncio.Condition()
        self.add_event_handler("message", self._keep)

    def _keep(self, msg):
        msg.arrived = time.monotonic()
        self.received.append(msg)
        asyncio.ensure_future(self._notify())

    _notify = Client._notify

    async def login(self, ip, port, timeout=10.0):
        """Connect and complete the handshake (SHA-1 of stream id + secret)."""
        done = asyncio.get_running_loop().create_future()
        self.add_event_handler("session_start",
                               lambda _: done.done() or done.set_result(True))
        self.add_event_handler("disconnected", lambda _: done.done() or done.set_exception(
            AssertionError(f"component {self.boundjid}: disconnected")))
        self.connect(ip, port)
        try:
            await asyncio.wait_for(done, timeout)
        except asyncio.TimeoutError:
            raise XmppTimeout(f"component {self.boundjid}: no handshake in {timeout}s") from None
        return self

    async def expect_message(self, body=None, timeout=10.0):
        """The next message received (with this body)."""
        async def find():
            async with self._changed:
                while True:
                    for msg in self.received:
                        if body is None or msg["body"] == body:
                            self.received.remove(msg)
                            return msg
                    await self._changed.wait()
        try:
            return await asyncio.wait_for(find(), timeout)
        except asyncio.TimeoutError:
            raise XmppTimeout(f"component {self.boundjid}: no message {body!r}") from None

    close = Client.close


def iq_error_condition(exc):
    """The condition name of an IqError (e.g. 'remote-server-not-found')."""
    if isinstance(exc, IqError):
        return exc.iq["error"]["condition"]
    return None


async def login(jid, password, ip, port, ca_file, timeout=10.0):
    """A Client logged in at ip:port (c2s, STARTTLS verified with ca_file)."""
    return await Client(jid, password, ca_file).login(ip, port, timeout)


async def deliver(sender, receiver, body, timeout=10.0):
    """Send ``body`` from sender to receiver's bare JID and await its arrival.

    Returns the seconds from send to arrival."""
    sent = sender.send_chat(receiver.boundjid.bare, body)
    msg = await receiver.expect_message(body=body, sender=sender.boundjid.bare,
                                        timeout=timeout)
    return msg.arrived - sent


async def close_all(*clients):
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


def run(coro, timeout=30.0):
    """Run one scenario coroutine in a fresh event loop, bounded by ``timeout``."""
    async def bounded():
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(bounded())
