"""Two federated sites on loopback: the world of the end-to-end tests and the demo.

- Knot serves a DNSSEC-signed ``test.``; its DS is the trust anchor of the proxy
  (libunbound) and of Prosody B (lua-unbound, DANE).
- Site A: a local server for ``a.test`` (Prosody with native s2s disabled and
  contrib/prosody/mod_s2sproxy.lua, or ejabberd with contrib/ejabberd) behind
  s2sproxy, its component ``s2s.a.test`` (XEP-0114).  DNS publishes the proxy
  as a.test's server: A, SRV ``_xmpp-server._tcp.a.test`` and TLSA 3 1 1.
- Site B: a stock Prosody for ``b.test`` (native s2s, s2s_secure_auth, DANE),
  with a MUC component ``muc.b.test``, published with A, SRV and TLSA too.
- One test CA signs every certificate; clients trust it.

``World(procs, scratch, bindir, srcdir, local="prosody"|callable, queue_timeout=20)``
builds it (``queue_timeout``: how long the proxy keeps a stanza for site A while its
link to A's server is down, then bounces it: ``timeouts.queue``),
``start()`` starts it.  ``local`` may be a callable ``(world, leaf) -> server``
returning another local server (ejabberd): it needs ``ip``, ``c2s_port``,
``component_port``, ``start()`` and ``stop()``, and must offer component
``COMPONENT`` with ``SECRET``.

The proxy runs with ``-d`` (debug log on its stderr, the file ``proxy.log``
returns); ``proxy_summary(log)`` reads back what the streams did (direction,
peer, TLS version, authentication method) for the demo and the tests.
"""

import os
import re

from . import ca as C
from . import knot as K
from . import procs as P
from . import prosody as PR

PW = "pw"
COMPONENT = "s2s.a.test"
SECRET = "component-secret"
A_IP, B_IP, PROXY_IP = "127.0.0.2", "127.0.0.3", "127.0.0.5"
MUC = "muc.b.test"
A_USERS = ("alice", "anne")
B_USERS = ("bob", "bea")


class Proxy:
    """The s2sproxy daemon fronting a.test: listen, hosts with the component link,
    DNS through libunbound to Knot with the trust anchor, a dialback secret file."""

    def __init__(self, procs, scratch, bindir, knot, ca_file, leaf, component,
                 domain="a.test", ip=PROXY_IP, queue_timeout=20):
        self.procs = procs
        self.bin = os.path.join(bindir, "s2sproxy")
        self.dir = scratch.sub("proxy")
        self.ip = ip
        self.port = P.free_port(ip)
        self.cfg = os.path.join(self.dir, "s2sproxy.conf")
        self.secret_file = os.path.join(self.dir, "dialback.secret")
        self.ctl_socket = os.path.join(self.dir, "ctl.sock")
        host, port = component
        text = f"""# s2sproxy for {domain}, written by tests/integration/lib/s2stest/e2e.py
log = {{ level = "debug"; }};
hosts = ( {{ domain = "{domain}"; certificate = "{leaf.chain}"; key = "{leaf.key}";
            component = {{ host = "{host}"; port = {port}; secret = "{SECRET}";
                           name = "{COMPONENT}"; }}; }} );
tls = {{ ca_file = "{ca_file}"; }};
listen = {{ starttls = [ "{ip}:{self.port}" ]; }};
timeouts = {{ connect = 2; queue = {queue_timeout}; backoff_min = 0.2; backoff_max = 1; }};
dialback = {{ secret_file = "{self.secret_file}"; }};
ctl = {{ socket = "{self.ctl_socket}"; }};
dns = {{ backend = "unbound"; servers = [ "{knot.ip}:{knot.port}" ];
        trust_anchor_file = "{knot.trust_anchor_file}";
        unbound_options = ( ("local-zone:", "test. transparent") ); timeout = 3; }};
"""
        with open(self.cfg, "w") as f:
            f.write(text)
        self.proc = None
        self.log = None

    def start(self, timeout=10.0):
        P.run([self.bin, "-t", "-c", self.cfg], timeout=timeout)
        self.proc = self.procs.start("s2sproxy", [self.bin, "-d", "-c", self.cfg])
        self.log = self.proc.stderr_path
        P.wait_port(self.ip, self.port, timeout, procs=[self.proc])
        return self

    def mark(self):
        return P.log_mark(self.log)

    def ctl(self, *args, timeout=10.0):
        """``s2sproxy ctl ARGS`` on the daemon's admin socket: its output."""
        return P.run([self.bin, "ctl", "-s", self.ctl_socket, *args], timeout=timeout).stdout

    def ctl_json(self, *args):
        import json
        return json.loads(self.ctl(*args, "--json"))

    def wait_log(self, regex, since=0, timeout=10.0):
        return P.wait_log(self.log, regex, timeout, since=since, procs=[self.proc])

    def wait_link_up(self, since=0, timeout=20.0):
        return self.wait_log(r"local: link up domain=a\.test .*", since, timeout)


class World:
    """Knot, site A (local server + proxy), site B (Prosody with MUC)."""

    def __init__(self, procs, scratch, bindir, srcdir, local="prosody", queue_timeout=20):
        self.procs, self.scratch = procs, scratch
        self.ca = C.CA(scratch.sub("ca"))
        self.knot = K.Knot(procs, scratch)
        self.knot.add_zone("test.")
        self.a_leaf = self.ca.issue("a.test", dns=["a.test"], xmppaddr=["a.test"],
                                    srvname=["_xmpp-server.a.test"])
        b_leaf = self.ca.issue("b.test", dns=["b.test", MUC], xmppaddr=["b.test", MUC],
                               srvname=["_xmpp-server.b.test"])
        self.a_users = {f"{u}@a.test": PW for u in A_USERS}
        self.b_users = {f"{u}@b.test": PW for u in B_USERS}
        # B: stock Prosody, native s2s; muc.b.test rooms open at creation (no locking,
        # so a room exists as soon as its first occupant is in).
        muc = (f'Component {PR.lua(MUC)} "muc"\n'
               f"  muc_room_locking = false\n"
               f"  restrict_room_creation = false\n")
        self.b = PR.Prosody(procs, scratch, "b", B_IP, {"b.test": b_leaf}, self.ca.cert,
                            knot=self.knot, users=self.b_users, use_dane=True,
                            modules=["vcard"], extra_global=muc)
        if local == "prosody":
            self.a = PR.Prosody(
                procs, scratch, "a", A_IP, {"a.test": self.a_leaf}, self.ca.cert,
                users=self.a_users, dialback=False,
                components=[PR.Component(COMPONENT, SECRET, validate_from=False)],
                modules=["s2sproxy", "vcard"], modules_disabled=["s2s"],
                plugin_paths=[os.path.join(srcdir, "contrib", "prosody")],
                extra_global=f"s2sproxy_component = {PR.lua(COMPONENT)}\n")
        else:
            self.a = local(self, self.a_leaf)
        self.proxy = Proxy(procs, scratch, bindir, self.knot, self.ca.cert, self.a_leaf,
                           (self.a.ip, self.a.component_port), queue_timeout=queue_timeout)
        self._publish()

    def _publish(self):
        k, port = self.knot, self.proxy.port
        k.a("a.test", self.proxy.ip)
        k.srv("a.test", "a.test", port)
        k.tlsa("a.test", port, self.a_leaf.tlsa_311())
        self.b.publish(self.knot)
        # muc.b.test is served by B's s2s port too: its own A/SRV/TLSA records.
        leaf = self.b.hosts["b.test"]
        k.a(MUC, self.b.ip)
        k.srv(MUC, MUC, self.b.s2s_port)
        k.tlsa(MUC, self.b.s2s_port, leaf.tlsa_311())

    def start(self):
        self.knot.start()
        self.a.start()
        self.b.start()
        self.proxy.start()
        self.proxy.wait_link_up()
        return self

    def settle_link(self, timeout=10.0):
        """Wait until what crossed the proxy's link to A's server so far is known
        delivered: a ping iq from bob to a.test with a fresh id is written to the
        link after everything before it, and the proxy's debug line ``local:
        delivered ... id=ID`` says the server's answer to the proxy's ack ping covered
        it.  Stopping A's server before that may make the proxy write a stanza again
        after the restart (at least once), or bounce one A had delivered when A stays
        down past the queue timeout: a test counting deliveries and bounces settles
        the link first."""
        from . import clients as X
        self._settles = getattr(self, "_settles", 0) + 1
        iq_id = f"settle-{self._settles}"
        mark = self.proxy.mark()

        async def ping():
            bob = await self.login("bob@b.test")
            iq = bob.make_iq_get(ito="a.test")
            iq["id"] = iq_id
            iq.enable("ping")  # XEP-0199 (the client's xep_0199 plugin)
            await iq.send(timeout=timeout)
            await bob.close()
        X.run(ping(), timeout=timeout)
        self.proxy.wait_log(rf"local: delivered domain=a\.test iq id={iq_id} ", mark, timeout)

    async def login(self, jid, **kwargs):
        """A slixmpp client logged in on its own site (c2s, STARTTLS, test CA)."""
        from . import clients as X
        server = self.a if jid.endswith("@a.test") else self.b
        client = X.Client(jid, PW, self.ca.cert)
        for plugin in kwargs.get("plugins", ()):
            client.register_plugin(plugin)
        return await client.login(server.ip, server.c2s_port)


# ---- reading the proxy's log ---------------------------------------------------------

_AUTH_OUT = re.compile(r"out: authenticated local=(?P<local>\S+) remote=(?P<remote>\S+) "
                       r"peer=(?P<peer>\S+) method=(?P<method>\S+) tls=(?P<tls>\S+)"
                       r"(?: cert=(?P<cert>\S+))?(?P<rest>.*)$")
_AUTH_IN = re.compile(r"in: authenticated id=\S+ peer=(?P<peer>\S+) local=(?P<local>\S+) "
                      r"remote=(?P<remote>\S+) method=(?P<method>\S+) tls=(?P<tls>\S+)")


def proxy_streams(log_path, since=0):
    """Authenticated streams the proxy logged: dicts with dir ('out': the proxy
    connected to the peer, 'in': the peer connected to the proxy), local, remote,
    peer, method (sasl-external, dialback), tls (TLSv1.3, ...), and for 'out' the
    certificate check (cert, rest: e.g. ``dane=yes``)."""
    try:
        with open(log_path, "rb") as f:
            f.seek(since)
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    streams = []
    for line in text.splitlines():
        m = _AUTH_OUT.search(line)
        if m:
            streams.append(dict(m.groupdict(), dir="out", rest=(m.group("rest") or "").strip()))
            continue
        m = _AUTH_IN.search(line)
        if m:
            streams.append(dict(m.groupdict(), dir="in"))
    return streams


def local_link_lines(log_path, since=0):
    """The proxy's ``local: link up`` lines (the component link to site A's server)."""
    try:
        with open(log_path, "rb") as f:
            f.seek(since)
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [m.group(0) for m in re.finditer(r"local: link up .*", text)]
