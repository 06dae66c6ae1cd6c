#!/usr/bin/python3
"""Operating the proxy (issue 9): admin socket, Prometheus metrics, JSON event log.

The world of test_federation.py (Knot with a signed ``test.``, Prosody b.test with
SASL EXTERNAL and DANE, Prosody a.test behind the proxy over its component link), with
the proxy's ``ctl``, ``metrics`` and ``eventlog`` sections switched on. Cases:

- after a message crosses a.test -> b.test, ``ctl streams --json`` shows the outbound
  stream with TLSv1.3, sasl-external, a valid certificate and its stanza counters;
- ``/metrics`` parses with prometheus_client's text parser (python3-prometheus-client),
  its counters equal ``ctl stats`` and grow by exactly the number of messages sent (and
  at the end the totals equal every message the test sent);
- ``/probe?domain=b.test`` runs the audit and answers its results as metrics;
- ``ctl close`` (by id, then by domain) closes the stream, and the next message still
  arrives, on a new stream;
- ``ctl reload`` with a broken configuration answers the error and the daemon keeps
  running (and reloads fine once the file is repaired);
- every event-log line is JSON with the documented fields;
- a user other than the daemon's (``nobody``) cannot use the socket (mode 0600);
- malformed commands get a clear error;
- a policy that refuses spam.test by a stanza rule ("no-spam") and denied.test by a
  domains entry ("denied"): after a message to each bounces not-allowed, ``ctl policy
  --json`` shows the rule's hit and both refusals by rule, ``/metrics`` the same
  decision counters, and the event log one ``policy_refusal`` line for each.
"""

import json
import os
import re
import shutil
import sys
import urllib.error
import urllib.request

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, HERE)

import test_federation as F  # noqa: E402
from s2stest import clients as X  # noqa: E402
from s2stest import procs as P  # noqa: E402
from s2stest.runner import Runner  # noqa: E402

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # Debian package python3-prometheus-client
    text_string_to_metric_families = None

BIN = F.BIN
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
EVENT_FIELDS = {
    "stream_opened": {"time", "event", "id", "direction", "peer"},
    "stream_authenticated": {"time", "event", "id", "direction", "peer", "local", "remote",
                             "method", "tls_version", "cipher", "certificate",
                             "fingerprint_sha256", "dnssec", "dane"},
    "stream_closed": {"time", "event", "id", "direction", "peer", "pairs", "reason",
                      "duration", "stanzas_in", "stanzas_out", "bytes_in", "bytes_out"},
    "bounce_batch": {"time", "event", "local", "remote", "count", "condition", "reason"},
    "policy_refusal": {"time", "event", "what", "action", "direction", "local", "remote",
                       "rule", "file", "line", "count"},
}
POLICY = """policy = {
  domains = ( { name = "denied"; match = "denied.test"; federate = "deny"; } );
  stanzas = ( { name = "no-spam"; remote = "spam.test"; action = "bounce";
                condition = "not-allowed"; } );
};
"""


class OpsProxy(F.Proxy):
    """test_federation's proxy with ctl, metrics and the event log on."""

    def __init__(self, procs, scratch, knot, ca, leaf, port, component=None):
        d = scratch.sub("proxy")
        os.chmod(d, 0o755)  # so that only the socket's own mode keeps `nobody` out
        self.sock = os.path.join(d, "ctl.sock")
        self.events = os.path.join(d, "events.jsonl")
        self.metrics_port = P.free_port("127.0.0.1")
        self.extra = (f'ctl = {{ socket = "{self.sock}"; }};\n'
                      f'metrics = {{ listen = "127.0.0.1:{self.metrics_port}"; '
                      f'domains = [ "b.test" ]; top_domains = 5; }};\n'
                      f'eventlog = {{ file = "{self.events}"; }};\n' + POLICY)
        real_open = open

        def patched_open(path, mode="r", *a, **kw):  # append our sections to the file
            f = real_open(path, mode, *a, **kw)
            if path.endswith("s2sproxy.conf") and "w" in mode:
                w = f.write
                f.write = lambda text: w(text + self.extra)
            return f
        F.open = patched_open
        try:
            super().__init__(procs, scratch, knot, ca, leaf, port, component)
        finally:
            del F.open
        P.wait_until(lambda: os.path.exists(self.sock), 10, "ctl socket", procs=[self.proc])

    def ctl(self, *args, user=None, check=True):
        argv = [os.path.join(BIN, "s2sproxy"), "ctl", "-c", self.cfg, *args]
        return P.run(argv, timeout=15, user=user, check=check)

    def ctl_json(self, *args, check=True):
        res = self.ctl(*args, "--json", check=check)
        return json.loads(res.stdout), res.returncode

    def metrics(self):
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.status == 200, resp.status
            assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = resp.read().decode()
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        return text, fams


def sample(fams, family, **labels):
    for s in fams[family].samples:
        if s.name in (family, family + "_total") and all(
                s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise AssertionError(f"no sample {family}{labels}")


def send_messages(w, bodies):
    async def scenario():
        alice = await w.user(w.a, "alice")
        bob = await w.user(w.b, "bob")
        for body in bodies:
            await X.deliver(alice, bob, body, timeout=20)
        await X.close_all(alice, bob)
    X.run(scenario(), timeout=60 + 5 * len(bodies))
    w.sent = getattr(w, "sent", 0) + len(bodies)


def out_stream_to_b(streams):
    for st in streams:
        if st["direction"] == "out" and {"local": "a.test", "remote": "b.test"} in st["pairs"]:
            return st
    return None


# ---- cases --------------------------------------------------------------------------


def case_streams(w):
    send_messages(w, ["first message a->b"])
    ans, _ = w.proxy.ctl_json("streams")
    st = out_stream_to_b(ans["streams"])
    assert st is not None, ans
    assert st["tls_version"] == "TLSv1.3", st
    assert st["auth"] == "sasl-external", st
    assert st["certificate"] == "valid", st
    assert st["state"] == "READY", st
    assert st["dane"] is True and st["dnssec"] is True, st
    assert st["stanzas_out"] >= 1 and st["bytes_out"] > 0 and st["bytes_in"] > 0, st
    assert st["queue"] == 0 and st["age"] >= st["idle"] >= 0, st
    text = w.proxy.ctl("streams").stdout
    assert st["id"] in text and "sasl-external" in text, text
    dom, _ = w.proxy.ctl_json("domains")
    b = dom["domains"]["b.test"]
    assert b["tls_version"] == "TLSv1.3" and b["auth"] == "sasl-external", b
    assert b["streams_out"] >= 1, b
    w.first_stream = st["id"]


def case_metrics_agree(w, r):
    k = 5
    _, fams = w.proxy.metrics()
    stats, _ = w.proxy.ctl_json("stats")
    before = sample(fams, "s2sproxy_stanzas", direction="out", outcome="delivered")
    assert before == stats["outbound"]["delivered"], (before, stats)
    assert sample(fams, "s2sproxy_stanzas", direction="out", outcome="accepted") == \
        stats["outbound"]["accepted"]
    assert sample(fams, "s2sproxy_stanzas", direction="in", outcome="accepted") == \
        stats["inbound"]["accepted"]

    send_messages(w, [f"counted {i}" for i in range(k)])
    text, fams = w.proxy.metrics()
    stats, _ = w.proxy.ctl_json("stats")
    after = sample(fams, "s2sproxy_stanzas", direction="out", outcome="delivered")
    assert after == stats["outbound"]["delivered"], (after, stats)
    assert after - before == k, f"delivered grew by {after - before}, sent {k}"
    # every family has HELP and TYPE; the stream gauge and histograms are there
    for fam in fams.values():
        assert fam.documentation and fam.type in ("counter", "gauge", "histogram"), fam
    assert sample(fams, "s2sproxy_streams", direction="out", state="READY",
                  auth="sasl-external", tls_version="TLSv1.3") >= 1
    assert sample(fams, "s2sproxy_domain_stanzas", domain="b.test", direction="out") >= k
    assert sample(fams, "s2sproxy_local_link_up", domain="a.test") == 1
    assert sample(fams, "process_open_fds") > 0
    assert sample(fams, "process_resident_memory_bytes") > 1 << 20
    hs = [s for s in fams["s2sproxy_tls_handshake_seconds"].samples
          if s.name.endswith("_count")]
    assert hs and hs[0].value >= 1, hs
    r.note(f"/metrics: {len(fams)} families, {len(text)} bytes")


def case_probe(w, r):
    url = f"http://127.0.0.1:{w.proxy.metrics_port}/probe?domain=b.test"
    with urllib.request.urlopen(url, timeout=60) as resp:
        text = resp.read().decode()
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    assert sample(fams, "s2sproxy_probe_success", domain="b.test") == 1, text
    assert sample(fams, "s2sproxy_probe_endpoints", domain="b.test") >= 1, text
    assert 0 <= sample(fams, "s2sproxy_probe_grade", domain="b.test") <= 8, text
    days = sample(fams, "s2sproxy_probe_cert_days_left", domain="b.test")
    assert days > 0, text  # the test CA's fresh certificate
    r.note(f"/probe?domain=b.test: grade {sample(fams, 's2sproxy_probe_grade', domain='b.test')}"
           f", score {sample(fams, 's2sproxy_probe_score', domain='b.test')}, "
           f"{sample(fams, 's2sproxy_probe_duration_seconds', domain='b.test'):.2f} s")
    try:
        urllib.request.urlopen(url.replace("domain=", "dom="), timeout=10)
        raise AssertionError("/probe without domain accepted")
    except urllib.error.HTTPError as e:
        assert e.code == 400, e


def case_close_and_new_stream(w):
    old = w.first_stream
    res = w.proxy.ctl("close", old)
    assert f"closing {old}" in res.stdout, res.stdout

    def gone():
        ans, _ = w.proxy.ctl_json("streams")
        return all(s["id"] != old for s in ans["streams"])
    P.wait_until(gone, 10, f"{old} closed", procs=[w.proxy.proc])
    send_messages(w, ["after ctl close"])
    ans, _ = w.proxy.ctl_json("streams")
    st = out_stream_to_b(ans["streams"])
    assert st is not None and st["id"] != old, ans
    # by domain: every stream carrying b.test; the next message opens another one
    second = st["id"]
    res = w.proxy.ctl("close", "b.test")
    assert f"closing {second}" in res.stdout, res.stdout
    send_messages(w, ["after ctl close b.test"])
    ans, _ = w.proxy.ctl_json("streams")
    st = out_stream_to_b(ans["streams"])
    assert st is not None and st["id"] not in (old, second), ans
    # unknown targets are an error, not a silent success
    ans, rc = w.proxy.ctl_json("close", "nothing.example", check=False)
    assert rc == 1 and "no live stream" in ans["error"], ans


def case_reload_broken(w):
    with open(w.proxy.cfg) as f:
        good = f.read()
    shutil.copy(w.proxy.cfg, w.proxy.cfg + ".good")
    with open(w.proxy.cfg, "w") as f:
        f.write(good.replace("tls = {", 'tls = { min_version = "1.1";'))
    try:
        res = w.proxy.ctl("reload", check=False)
        assert res.returncode == 1, res
        assert "tls.min_version" in res.stderr and "kept" in res.stderr, res.stderr
        assert w.proxy.proc.alive()
        stats, rc = w.proxy.ctl_json("stats")
        assert rc == 0 and "outbound" in stats, stats
    finally:
        with open(w.proxy.cfg, "w") as f:
            f.write(good)
    res = w.proxy.ctl("reload")
    assert "reloaded" in res.stdout, res.stdout


def case_malformed(w):
    for args, want in ((["frobnicate"], "unknown command"), (["close"], "usage: close"),
                       (["stats", "extra"], "takes no argument")):
        ans, rc = w.proxy.ctl_json(*args, check=False)
        assert rc == 1 and want in ans["error"], (args, ans)
    pol, rc = w.proxy.ctl_json("policy")
    assert rc == 0 and pol["configured"] is True, pol
    assert [x["name"] for x in pol["rules"]] == ["no-spam", "default"], pol


def case_socket_refuses_nobody(w):
    mode = os.stat(w.proxy.sock).st_mode & 0o777
    assert mode == 0o600, oct(mode)
    argv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--",
            os.path.join(BIN, "s2sproxy"), "ctl", "-s", w.proxy.sock, "stats"]
    res = P.run(argv, timeout=15, check=False)
    assert res.returncode == 1 and "Permission denied" in res.stderr, res


def case_totals(w):
    """Everything a.test sent to b.test in this run is the test's messages: the totals of
    ctl stats and /metrics are exactly that number, nothing bounced or dropped."""
    stats, _ = w.proxy.ctl_json("stats")
    _, fams = w.proxy.metrics()
    out = stats["outbound"]
    assert out["accepted"] == out["delivered"] == w.sent, (out, w.sent)
    assert out["bounced"] == out["dropped"] == 0, out
    assert sample(fams, "s2sproxy_stanzas", direction="out", outcome="delivered") == w.sent


def bounce_condition(w, to):
    """alice@a.test sends to ``to``: the error condition she gets back."""
    async def scenario():
        u = await w.user(w.a, "alice")
        u.send_chat(to, "should bounce")
        cond, _ = await u.expect_error(timeout=20)
        await u.close()
        return cond
    return X.run(scenario(), timeout=40)


def no_spam_hits(pol):
    return [x["hits"] for x in pol["rules"] if x["name"] == "no-spam"][0]


def refusals(pol, rule, kind):
    rows = [x for x in pol["refusals"] if x["rule"] == rule]
    return rows[0][kind] if rows else 0


def case_policy_refusals(w, r):
    """After this, outbound counts include the two bounces: run after case_totals."""
    pol, _ = w.proxy.ctl_json("policy")
    hits0, stanza0 = no_spam_hits(pol), refusals(pol, "no-spam", "stanza")
    route0 = refusals(pol, "denied", "route")
    cond = bounce_condition(w, "eve@spam.test")
    assert cond == "not-allowed", cond
    assert bounce_condition(w, "mallory@denied.test") == "not-allowed"
    pol, _ = w.proxy.ctl_json("policy")
    assert no_spam_hits(pol) == hits0 + 1, pol
    assert refusals(pol, "no-spam", "stanza") == stanza0 + 1, pol
    assert refusals(pol, "denied", "route") == route0 + 1, pol
    text = w.proxy.ctl("policy").stdout
    assert "no-spam" in text and "denied" in text, text
    _, fams = w.proxy.metrics()
    assert sample(fams, "s2sproxy_policy_rule_hits", rule="no-spam") == no_spam_hits(pol)
    assert sample(fams, "s2sproxy_policy_refusals", rule="no-spam", kind="stanza") == \
        refusals(pol, "no-spam", "stanza")
    assert sample(fams, "s2sproxy_policy_refusals", rule="denied", kind="route") == \
        refusals(pol, "denied", "route")
    stats, _ = w.proxy.ctl_json("stats")
    assert sample(fams, "s2sproxy_policy_actions", action="bounced") == \
        stats["policy"]["bounced"] >= 2, stats
    assert stats["outbound"]["bounced_by"].get("not-allowed", 0) >= 2, stats

    def logged():
        with open(w.proxy.events) as f:
            evs = [json.loads(x) for x in f.read().splitlines()]
        return [e for e in evs if e["event"] == "policy_refusal"]
    P.wait_until(lambda: len(logged()) >= 2, 10, "policy_refusal events",
                 procs=[w.proxy.proc])
    evs = logged()
    st = [e for e in evs if e["what"] == "stanza" and e["rule"] == "no-spam"]
    rt = [e for e in evs if e["what"] == "route" and e["rule"] == "denied"]
    assert len(st) == 1 and st[0]["count"] == 1 and st[0]["action"] == "bounce", evs
    assert st[0]["remote"] == "spam.test" and st[0]["direction"] == "out", st
    assert st[0]["file"].endswith("s2sproxy.conf") and st[0]["line"] > 0, st
    assert len(rt) == 1 and rt[0]["remote"] == "denied.test" and rt[0]["term"] == "federate", rt
    r.note(f"policy: {len(evs)} policy_refusal lines; no-spam hits {no_spam_hits(pol)}")


def case_eventlog(w):
    with open(w.proxy.events) as f:
        lines = f.read().splitlines()
    assert lines, "empty event log"
    seen = {}
    for line in lines:
        ev = json.loads(line)
        kind = ev["event"]
        assert kind in EVENT_FIELDS, ev
        missing = EVENT_FIELDS[kind] - set(ev)
        assert not missing, (missing, ev)
        assert RFC3339.match(ev["time"]), ev["time"]
        seen.setdefault(kind, []).append(ev)
    auth = [e for e in seen.get("stream_authenticated", [])
            if e["direction"] == "out" and e["remote"] == "b.test"]
    assert auth and auth[0]["method"] == "sasl-external" and auth[0]["certificate"] == "valid"
    assert re.fullmatch(r"[0-9a-f]{64}", auth[0]["fingerprint_sha256"] or ""), auth[0]
    closed = [e for e in seen.get("stream_closed", []) if e["id"] == w.first_stream]
    assert closed and "ctl close" in closed[0]["reason"], seen.get("stream_closed")
    assert closed[0]["stanzas_out"] >= 1 and closed[0]["duration"] > 0, closed
    assert closed[0]["bytes_out"] > 0 and closed[0]["bytes_in"] > 0, closed


def main():
    r = Runner()
    if text_string_to_metric_families is None:
        r.fail("setup", "python3-prometheus-client is not installed")
        return r.finish()
    if not F.HAVE_LOCAL:
        r.note("no local link in this tree: skipped")
        return r.finish()
    F.Proxy = OpsProxy
    with P.Scratch("operating") as scratch, P.Procs(scratch) as procs:
        try:
            w = F.World(procs, scratch)
            w.start()
        except Exception as exc:
            scratch.failed()
            r.fail("setup", f"{type(exc).__name__}: {exc}")
            return r.finish()
        r.case("ctl_streams_after_a_message", case_streams, w)
        r.case("metrics_agree_with_ctl_and_messages", case_metrics_agree, w, r)
        r.case("metrics_probe_runs_the_audit", case_probe, w, r)
        r.case("ctl_close_then_new_stream", case_close_and_new_stream, w)
        r.case("ctl_reload_broken_config", case_reload_broken, w)
        r.case("ctl_malformed_commands", case_malformed, w)
        r.case("ctl_socket_refuses_nobody", case_socket_refuses_nobody, w)
        r.case("totals_equal_messages_sent", case_totals, w)
        r.case("policy_refusal_counted_and_logged", case_policy_refusals, w, r)
        r.case("eventlog_lines_are_json", case_eventlog, w)
        if os.environ.get("S2S_SHOW"):  # examples for the README
            for args in (["streams"], ["domains"], ["stats"], ["policy"]):
                print(w.proxy.ctl(*args).stdout)
            print(w.proxy.metrics()[0])
            with open(w.proxy.events) as f:
                print(f.read())
        r.case("all_processes_alive", procs.check)
        w.silent.close()
        if r.failed:
            scratch.failed()
        return r.finish()


if __name__ == "__main__":
    sys.exit(main())
