"""A Prosody 0.12 instance for tests: own 127.0.0.x address, ports, config, data.

Why: the proxy sits between real XMPP servers.  Prosody plays the remote
server (native s2s, STARTTLS or direct TLS, SASL EXTERNAL, dialback, DANE) and
the local server behind the proxy (a component link, XEP-0114).

Facts this module relies on (measured with Prosody 0.12.3 on Debian 12):

- Prosody refuses to run as root: it is started through setpriv as user
  ``prosody``, in the foreground (``-F``) so we hold its PID, and every file
  it reads or writes lives in its own directory owned by ``prosody``.
- DNS goes through libunbound (lua-unbound), pointed at Knot with
  ``forward``, the trust anchor as ONE string, and ``local-zone: "test."
  transparent`` (without it libunbound answers NXDOMAIN for .test itself).
- The TCP_NODELAY switch is ``network_settings = { nagle = false }`` (there
  is no ``tcp_nodelay`` setting); with Nagle on, handshakes stall ~40 ms.
- ``s2s_secure_auth`` defaults to false in 0.12 (Debian's stock config turns
  it on), so the config here always states it.
- Accounts use ``internal_plain`` storage, written directly as data files
  (``<data>/<host>/accounts/<user>.dat``): no prosodyctl start-up per user.
- ``prosodyctl shell CMD`` sends one line to mod_admin_shell over the admin
  socket and prints its output; ``s2s_sessions()`` parses ``s2s:show`` with
  chosen columns (fields are separated by `` | ``).
"""

import os
import pwd
import re
import shutil

from . import procs as P

USER = "prosody"

BASE_MODULES = ["roster", "saslauth", "tls", "disco", "ping", "admin_shell",
                "s2s_bidi", "presence", "message", "iq", "posix"]

S2S_COLUMNS = ["host", "dir", "remote", "secure", "cert", "s2s_sasl", "dialback"]


def lua(value):
    """A Python value (str, bool, int, list, dict) as a Lua literal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple, set)):
        return "{ " + "; ".join(lua(v) for v in value) + " }"
    if isinstance(value, dict):
        return "{ " + "; ".join(f"[{lua(k)}] = {lua(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no Lua literal for {value!r}")


def _datamanager_encode(s):
    """Prosody's util.datamanager encoding of host and user names in paths."""
    return re.sub(r"\W", lambda m: "%%%02x" % ord(m.group(0)), s)


class Component:
    """A ``Component "name"`` (XEP-0114) with its secret."""

    def __init__(self, name, secret, validate_from=True):
        self.name = name
        self.secret = secret
        self.validate_from = validate_from


class Prosody:
    """One Prosody.  Build with parameters, then ``start()``; see __init__ args.

    ``hosts``: {domain: ca.Leaf} (the certificate used for that VirtualHost).
    ``ca_file``: CA bundle used to verify peers.  ``knot``: a started knot.Knot
    (its address, port and trust anchor configure libunbound).
    ``users``: {jid: password} for accounts (``user@domain``).
    s2s options map one to one onto Prosody's: ``secure_auth`` →
    s2s_secure_auth, ``require_encryption`` → s2s_require_encryption,
    ``insecure_domains``/``secure_domains`` → s2s_(in)secure_domains,
    ``use_dane``; ``dialback=False`` leaves mod_dialback out; ``direct_tls``
    opens an s2s direct TLS port (XEP-0368).  ``components``: Component list
    (served on ``component_port``).  ``modules``, ``modules_disabled`` (e.g.
    ``["s2s"]`` behind the proxy) and ``plugin_paths`` (e.g. contrib/) as in
    Prosody.  ``extra_global``/``extra_host``
    are raw config text appended globally / inside every VirtualHost.
    """

    def __init__(self, procs, scratch, name, ip, hosts, ca_file, knot=None,
                 users=None, secure_auth=True, require_encryption=True,
                 dialback=True, insecure_domains=(), secure_domains=(),
                 use_dane=False, direct_tls=False, components=(),
                 modules=(), modules_disabled=(), plugin_paths=(), ipv6=False,
                 extra_global="", extra_host=""):
        self.procs = procs
        self.name = name
        self.ip = ip
        self.hosts = dict(hosts)
        self.ca_file = ca_file
        self.knot = knot
        self.users = dict(users or {})
        self.s2s = dict(secure_auth=secure_auth, require_encryption=require_encryption,
                        insecure_domains=list(insecure_domains),
                        secure_domains=list(secure_domains), use_dane=use_dane)
        self.dialback = dialback
        self.components = list(components)
        self.modules = list(modules)
        self.modules_disabled = list(modules_disabled)
        self.plugin_paths = list(plugin_paths)
        self.ipv6 = ipv6
        self.extra_global = extra_global
        self.extra_host = extra_host
        self.dir = scratch.sub("prosody-" + name)
        self.data = os.path.join(self.dir, "data")
        self.certs = os.path.join(self.dir, "certs")
        self.cfg = os.path.join(self.dir, "prosody.cfg.lua")
        self.log = os.path.join(self.dir, "prosody.log")
        self.pidfile = os.path.join(self.dir, "prosody.pid")
        self.admin_socket = os.path.join(self.data, "admin.sock")
        ports = P.free_ports(ip, 4)
        self.c2s_port, self.s2s_port = ports[0], ports[1]
        self.s2s_tls_port = ports[2] if direct_tls else None
        self.component_port = ports[3] if self.components else None
        self.proc = None

    # ---- configuration ---------------------------------------------------------------

    def config_text(self):
        """The whole prosody.cfg.lua."""
        modules = BASE_MODULES + (["dialback"] if self.dialback else []) + self.modules
        g = {
            "pidfile": self.pidfile,
            "data_path": self.data,
            "log": {"debug": self.log},
            "interfaces": [self.ip],
            "local_interfaces": [self.ip],
            "c2s_ports": [self.c2s_port],
            "c2s_interfaces": [self.ip],
            "s2s_ports": [self.s2s_port],
            "s2s_interfaces": [self.ip],
            "http_ports": [],
            "https_ports": [],
            "admin_socket": self.admin_socket,
            "modules_enabled": modules,
            "modules_disabled": self.modules_disabled,
            "authentication": "internal_plain",
            "storage": "internal",
            "certificates": self.certs,
            "network_settings": {"nagle": False},
            "use_ipv6": self.ipv6,
            "c2s_require_encryption": True,
            "s2s_secure_auth": self.s2s["secure_auth"],
            "s2s_require_encryption": self.s2s["require_encryption"],
            "s2s_insecure_domains": self.s2s["insecure_domains"],
            "s2s_secure_domains": self.s2s["secure_domains"],
            "use_dane": self.s2s["use_dane"],
            "ssl": {"cafile": self.ca_file},
        }
        if self.plugin_paths:
            g["plugin_paths"] = self.plugin_paths
        if self.s2s_tls_port:
            g["s2s_direct_tls_ports"] = [self.s2s_tls_port]
            g["s2s_direct_tls_interfaces"] = [self.ip]
        if self.component_port:
            g["component_ports"] = [self.component_port]
            g["component_interfaces"] = [self.ip]
        lines = [f"{k} = {lua(v)}" for k, v in g.items()]
        if self.knot:
            lines.append(self._unbound_config())
        lines.append(self.extra_global)
        for host in self.hosts:
            lines.append(f'\nVirtualHost {lua(host)}')
            lines.append(f"  ssl = {lua(self._host_ssl(host))}")
            lines.append(self.extra_host)
        for comp in self.components:
            lines.append(f'\nComponent {lua(comp.name)}')
            lines.append(f"  component_secret = {lua(comp.secret)}")
            lines.append(f"  validate_from_addresses = {lua(comp.validate_from)}")
        return "\n".join(lines) + "\n"

    def _unbound_config(self):
        k = self.knot
        opts = {"resolvconf": False, "hoststxt": False,
                "forward": f"{k.ip}@{k.port}"}
        if k.trust_anchor:
            opts["trusted"] = k.trust_anchor  # ONE string (a table breaks lua-unbound 1.0)
        top = k.top.name
        return ("unbound = { " + "; ".join(f"{key} = {lua(v)}" for key, v in opts.items())
                + f'; options = {{ ["local-zone:"] = {lua(top + " transparent")} }} }}')

    def _host_ssl(self, host):
        return {"certificate": os.path.join(self.certs, host + ".crt"),
                "key": os.path.join(self.certs, host + ".key"),
                "cafile": self.ca_file}

    def _write_files(self):
        os.makedirs(self.data, exist_ok=True)
        os.makedirs(self.certs, exist_ok=True)
        for host, leaf in self.hosts.items():
            shutil.copyfile(leaf.chain, os.path.join(self.certs, host + ".crt"))
            shutil.copyfile(leaf.key, os.path.join(self.certs, host + ".key"))
        with open(self.cfg, "w") as f:
            f.write(self.config_text())
        for jid, password in self.users.items():
            self._write_account(jid, password)
        _chown_tree(self.dir, USER)

    def _write_account(self, jid, password):
        user, host = jid.split("@", 1)
        path = os.path.join(self.data, _datamanager_encode(host), "accounts",
                            _datamanager_encode(user) + ".dat")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(f"return {{\n\t[\"password\"] = {lua(password)};\n}};\n")

    def publish(self, knot, tlsa=True):
        """Add this server's DNS records to ``knot`` (call ``knot.reload()`` if started):
        A of each host, SRV ``_xmpp-server`` (and ``_xmpps-server`` with direct
        TLS) to it, and with ``tlsa`` a TLSA 3 1 1 record for each s2s port."""
        for host, leaf in self.hosts.items():
            knot.a(host, self.ip)
            knot.srv(host, host, self.s2s_port)
            ports = [self.s2s_port]
            if self.s2s_tls_port:
                knot.srv(host, host, self.s2s_tls_port, service="_xmpps-server")
                ports.append(self.s2s_tls_port)
            for port in ports if tlsa else ():
                knot.tlsa(host, port, leaf.tlsa_311())

    # ---- running ---------------------------------------------------------------------

    def start(self, timeout=15.0):
        """Write config, data and certs; start; wait until every port accepts."""
        self._write_files()
        self.mark = P.log_mark(self.log)
        self.proc = self.procs.start(f"prosody-{self.name}",
                                     ["prosody", "-F", "--config", self.cfg],
                                     user=USER, extra_logs=[self.log])
        for port in self.ports():
            P.wait_port(self.ip, port, timeout, procs=[self.proc])
        P.wait_until(lambda: os.path.exists(self.admin_socket), timeout,
                     f"admin socket of {self.name}", procs=[self.proc])
        return self

    def ports(self):
        """The ports this Prosody listens on (``start`` waits for each): no s2s
        ports when native s2s is disabled (``modules_disabled = {"s2s"}``)."""
        s2s = () if "s2s" in self.modules_disabled else (self.s2s_port, self.s2s_tls_port)
        return [p for p in (self.c2s_port, *s2s, self.component_port) if p]

    def stop(self):
        if self.proc:
            self.procs.stop(self.proc)
            self.proc = None

    def restart(self, timeout=15.0):
        self.stop()
        return self.start(timeout)

    def check(self):
        """Raise ProcessDied if this Prosody has exited."""
        if self.proc:
            self.proc.check()

    # ---- inspection -------------------------------------------------------------------

    def wait_log(self, regex, timeout=10.0, since=None):
        """Event wait for a line of this Prosody's log (since its start by default)."""
        return P.wait_log(self.log, regex, timeout,
                          since=self.mark if since is None else since,
                          procs=[self.proc] if self.proc else ())

    def shell(self, command, timeout=10.0):
        """Run one mod_admin_shell command (e.g. ``s2s:show()``); returns its output."""
        res = P.run(["prosodyctl", "--config", self.cfg, "shell", command],
                    user=USER, timeout=timeout)
        return res.stdout

    def s2s_sessions(self, domain=None):
        """Live s2s streams as dicts: host, dir ('-->', '<--', '<->'), remote,
        secure ('TLSv1.3', 'insecure', ...), cert ('Valid', 'Invalid',
        'Untrusted', ...), s2s_sasl ('Succeeded', 'Failed', ''), dialback
        ('Not used', 'Completed', ...)."""
        cols = "; ".join(lua(c) for c in S2S_COLUMNS)
        out = self.shell(f"s2s:show({lua(domain) if domain else 'nil'}, {{ {cols} }})")
        rows = []
        for line in out.splitlines():
            fields = [f.strip() for f in line.split(" | ")]
            if len(fields) != len(S2S_COLUMNS) or fields[0] == "Host":
                continue
            rows.append(dict(zip(S2S_COLUMNS, fields)))
        return rows


    def close_s2s(self, local, remote, timeout=10.0):
        """Close every s2s stream between local and remote (both directions,
        ``s2s:close``) and wait until this Prosody lists none."""
        self.shell(f"s2s:close({lua(local)}, {lua(remote)})")
        self.shell(f"s2s:close({lua(remote)}, {lua(local)})")
        P.wait_until(lambda: not self.s2s_sessions(remote), timeout,
                     f"{self.name}: s2s streams with {remote} gone", procs=[self.proc])


def _chown_tree(path, user):
    pw = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, pw.pw_uid, pw.pw_gid)
        for name in files:
            os.chown(os.path.join(root, name), pw.pw_uid, pw.pw_gid)
