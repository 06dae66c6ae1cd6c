"""A Knot DNS instance serving test zones on loopback, signed or not.

Why: the proxy's DNS (SRV, A/AAAA, TLSA, DNSSEC "secure" bit, DANE) is tested
against a real authoritative server with real DNSSEC, not mocks.  Zones are
described in Python; Knot signs them itself (ECDSA P-256, automatic policy).

The tree: the first zone added (normally ``test.``) is the top; its DS is the
trust anchor resolvers are given (``trust_anchor`` as one DS line,
``trust_anchor_file`` as a file of DS lines for ``ub_ctx_add_ta_file``).  A
zone added below an existing one is delegated from it (NS + glue) with, in the
parent, one of:

- ``ds="secure"``: the child's real DS (read with ``keymgr ... ds`` once Knot
  has signed the child), so the chain of trust holds;
- ``ds="none"``: no DS: the child is provably insecure;
- ``ds="bogus"``: a DS whose digest is wrong: answers from the child are bogus.

Knot runs in the foreground as a child process (we hold its PID).  Zone files
are rewritten on ``reload()``; with ``zonefile-load: difference-no-serial``
Knot applies the difference and re-signs, bumping the SOA serial itself.
``reload()`` waits (bounded, polling dig) until every changed zone shows a new
serial, so the next query sees the change.
"""

import os
import re

from . import procs as P

SOA_TIMERS = "3600 600 86400 60"


def fqdn(name):
    """``name`` with exactly one trailing dot, lower-case."""
    return name.rstrip(".").lower() + "."


def _is_below(name, zone):
    name, zone = fqdn(name), fqdn(zone)
    return name == zone or name.endswith("." + zone)


class Zone:
    """One zone: its name, signing, how its parent delegates it, and its records."""

    def __init__(self, name, signed, ds, parent):
        self.name = fqdn(name)
        self.signed = signed
        self.ds = ds            # "secure" | "none" | "bogus" (ignored for the top zone)
        self.parent = parent    # Zone or None
        self.records = []       # (owner, ttl, type, rdata)
        self.ds_records = {}    # child zone name -> its DS records, set once signed
        self.dirty = True

    def text(self, ns_name, ttl):
        lines = [f"$ORIGIN {self.name}", f"$TTL {ttl}",
                 f"@ SOA {ns_name} hostmaster.{self.name} 1 {SOA_TIMERS}",
                 f"@ NS {ns_name}"]
        for owner, rttl, rtype, rdata in self.records + sum(self.ds_records.values(), []):
            lines.append(f"{owner} {rttl} IN {rtype} {rdata}")
        return "\n".join(lines) + "\n"


class Knot:
    """A Knot instance: ``Knot(procs, scratch)``, add zones and records, ``start()``."""

    def __init__(self, procs, scratch, ip="127.0.0.1", port=None, ttl=60):
        self.procs = procs
        self.ip = ip
        self.port = port or P.free_port(ip)
        self.ttl = ttl
        self.dir = scratch.sub("knot")
        self.conf = os.path.join(self.dir, "knot.conf")
        self.sock = os.path.join(self.dir, "knot.sock")
        self.log = os.path.join(self.dir, "knot.log")
        self.zones = {}  # name -> Zone, in insertion order
        self.proc = None
        self.trust_anchor = None
        self.trust_anchor_file = os.path.join(self.dir, "trust-anchor.ds")

    # ---- describing zones and records -------------------------------------------

    @property
    def top(self):
        return next(iter(self.zones.values()))

    @property
    def ns_name(self):
        return "ns." + self.top.name

    def add_zone(self, name, signed=True, ds="secure"):
        """Add a zone; below an existing zone it is delegated from it (see module doc)."""
        if ds not in ("secure", "none", "bogus"):
            raise ValueError(f"ds must be secure, none or bogus, not {ds!r}")
        zone = Zone(name, signed, ds, self.zone_of(name))
        if not self.zones:
            zone.records.append(("ns." + zone.name, self.ttl, "A", self.ip))
        elif zone.parent is None:
            raise ValueError(f"{name} is not below the top zone {self.top.name}")
        else:
            zone.parent.records.append((zone.name, self.ttl, "NS", self.ns_name))
            zone.parent.dirty = True
        self.zones[zone.name] = zone
        return zone

    def zone_of(self, name):
        """The most specific zone ``name`` belongs to (None if none)."""
        best = None
        for zone in self.zones.values():
            if _is_below(name, zone.name) and (best is None or len(zone.name) > len(best.name)):
                best = zone
        return best

    def record(self, owner, rtype, rdata, ttl=None):
        """Add ``owner rtype rdata`` to the zone it belongs to (reload() to publish)."""
        zone = self.zone_of(owner)
        if zone is None:
            raise ValueError(f"no zone for {owner}")
        zone.records.append((fqdn(owner), ttl or self.ttl, rtype.upper(), rdata))
        zone.dirty = True

    def remove(self, owner, rtype=None):
        """Remove all records of ``owner`` (of ``rtype`` if given)."""
        zone = self.zone_of(owner)
        zone.records = [r for r in zone.records
                        if not (r[0] == fqdn(owner) and rtype in (None, r[2]))]
        zone.dirty = True

    def a(self, name, ip):
        self.record(name, "A", ip)

    def aaaa(self, name, ip):
        self.record(name, "AAAA", ip)

    def srv(self, domain, target, port, service="_xmpp-server", priority=0, weight=0):
        """SRV ``service._tcp.domain`` → target:port (``_xmpps-server`` for direct TLS)."""
        self.record(f"{service}._tcp.{fqdn(domain)}", "SRV",
                    f"{priority} {weight} {port} {fqdn(target)}")

    def tlsa(self, host, port, data, usage=3, selector=1, mtype=1):
        """TLSA ``_port._tcp.host`` (defaults: 3 1 1, i.e. DANE-EE SPKI SHA-256)."""
        self.record(f"_{port}._tcp.{fqdn(host)}", "TLSA", f"{usage} {selector} {mtype} {data}")

    # ---- running --------------------------------------------------------------------

    def start(self, timeout=10.0):
        """Write config and zones, start knotd, wait until every zone answers
        (signed ones with a DNSKEY), then publish the children's DS records."""
        self._write_conf()
        self._write_zones()
        self.proc = self.procs.start("knotd", ["knotd", "-c", self.conf],
                                     extra_logs=[self.log])
        P.wait_port(self.ip, self.port, timeout, procs=[self.proc])
        for zone in self.zones.values():
            rtype = "DNSKEY" if zone.signed else "SOA"
            P.wait_until(lambda: self.query(zone.name, rtype), timeout,
                         f"{rtype} of {zone.name} from knot", procs=[self.proc])
        self._publish_ds(timeout)
        top = self.top
        if top.signed:
            self.trust_anchor = self.ds_of(top.name)[0]
            with open(self.trust_anchor_file, "w") as f:
                f.write(self.trust_anchor + "\n")

    def stop(self):
        if self.proc:
            self.procs.stop(self.proc)
            self.proc = None

    def reload(self, timeout=10.0):
        """Publish changed zones and wait until Knot serves their new serial."""
        dirty = [z for z in self.zones.values() if z.dirty]
        before = {z.name: self.serial(z.name) for z in dirty}
        self._write_zones()
        for zone in dirty:
            self.knotc("zone-reload", zone.name)
        for zone in dirty:
            P.wait_until(lambda: self.serial(zone.name) != before[zone.name], timeout,
                         f"new serial of {zone.name}", procs=[self.proc])

    def knotc(self, *args):
        return P.run(["knotc", "-c", self.conf, "-t", "5"] + list(args)).stdout

    def ds_of(self, zone_name):
        """DS lines (``name. DS tag alg 2 hex``, SHA-256 only) of a signed zone."""
        out = P.run(["keymgr", "-c", self.conf, fqdn(zone_name), "ds"]).stdout
        lines = [" ".join(l.split()) for l in out.splitlines() if " DS " in l]
        return [l for l in lines if l.split()[4] == "2"]

    # ---- queries ----------------------------------------------------------------------

    def query(self, name, rtype, dnssec=False):
        """Answer lines of ``dig +short`` for name/rtype straight from Knot."""
        argv = ["dig", f"@{self.ip}", "-p", str(self.port), "+norec", "+time=1",
                "+tries=1", "+short", fqdn(name), rtype]
        if dnssec:
            argv.insert(-2, "+dnssec")
        res = P.run(argv, timeout=5, check=False)
        return [l for l in res.stdout.splitlines() if l and not l.startswith(";")]

    def validate(self, name, rtype="A"):
        """DNSSEC status of an answer as a validating resolver sees it (delv with
        our trust anchor): 'secure', 'insecure', 'bogus' or 'failed'."""
        ta = self.trust_anchor.split()
        conf = os.path.join(self.dir, "delv-anchor.conf")
        with open(conf, "w") as f:
            f.write(f'trust-anchors {{ {ta[0]} static-ds {ta[2]} {ta[3]} {ta[4]} "{ta[5]}"; }};\n')
        res = P.run(["delv", f"@{self.ip}", "-p", str(self.port), "-a", conf,
                     f"+root={self.top.name}", fqdn(name), rtype], timeout=10, check=False)
        out = res.stdout + res.stderr
        if "; fully validated" in out:
            return "secure"
        if "; unsigned answer" in out:
            return "insecure"
        if "broken trust chain" in out or "no valid" in out:
            return "bogus"
        return "failed"

    def serial(self, zone_name):
        answer = self.query(zone_name, "SOA")
        return int(answer[0].split()[2]) if answer else None

    def wait_answer(self, name, rtype, regex=".", timeout=10.0):
        """Event wait: until Knot's answer for name/rtype has a line matching regex."""
        def found():
            return [l for l in self.query(name, rtype) if re.search(regex, l)]
        return P.wait_until(found, timeout, f"{rtype} {name} ~ /{regex}/",
                            procs=[self.proc] if self.proc else ())

    # ---- files --------------------------------------------------------------------------

    def _publish_ds(self, timeout):
        changed = False
        for zone in self.zones.values():
            if zone.parent is None or zone.ds == "none" or not zone.signed:
                continue
            ds = [" ".join(l.split()[2:]) for l in self.ds_of(zone.name)]
            if zone.ds == "bogus":
                ds = [_corrupt(d) for d in ds]
            zone.parent.ds_records[zone.name] = [(zone.name, self.ttl, "DS", d) for d in ds]
            zone.parent.dirty = True
            changed = True
        if changed:
            self.reload(timeout)

    def _write_zones(self):
        for zone in self.zones.values():
            if not zone.dirty:
                continue
            path = os.path.join(self.dir, "zones", zone.name + "zone")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(zone.text(self.ns_name, self.ttl))
            zone.dirty = False

    def _write_conf(self):
        os.makedirs(os.path.join(self.dir, "storage"), exist_ok=True)
        zones = []
        for zone in self.zones.values():
            z = [f"  - domain: {zone.name}", "    template: storage"]
            if zone.signed:
                z += ["    dnssec-signing: on", "    dnssec-policy: test"]
            zones.append("\n".join(z))
        with open(self.conf, "w") as f:
            f.write(KNOT_CONF.format(dir=self.dir, ip=self.ip, port=self.port,
                                     sock=self.sock, log=self.log,
                                     zones="\n".join(zones)))


def _corrupt(ds_rdata):
    """The same DS with its digest's last hex digit changed (a bogus DS)."""
    last = ds_rdata[-1]
    return ds_rdata[:-1] + ("0" if last != "0" else "1")


KNOT_CONF = """\
server:
  user: root:root
  rundir: {dir}
  pidfile: {dir}/knot.pid
  listen: {ip}@{port}
  tcp-reuseport: off
control:
  listen: {sock}
log:
  - target: {log}
    any: info
database:
  storage: {dir}/storage
policy:
  - id: test
    algorithm: ecdsap256sha256
    ksk-lifetime: 0
    zsk-lifetime: 0
    nsec3: off
template:
  - id: storage
    storage: {dir}/zones
    zonefile-sync: -1
    zonefile-load: difference-no-serial
    journal-content: all
    semantic-checks: off
zone:
{zones}
"""
