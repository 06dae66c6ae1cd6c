#!/usr/bin/python3
"""The demo behind ``scripts/demo``: two federated sites on loopback, left running.

    demo.py start STATE_DIR BINDIR SRCDIR   start everything, send messages, print
    demo.py stop STATE_DIR                  stop every process by PID, remove STATE_DIR

``start`` builds the world of the end-to-end tests (e2e.World: Knot with a signed
zone, Prosody for a.test behind s2sproxy, a stock Prosody for b.test with MUC),
with its processes detached from this one (own session, no parent-death signal)
and each PID written to ``STATE_DIR/pids`` as soon as it is started.  Then
alice@a.test and bob@b.test exchange a message each way, and the proxy's log and
Prosody B's admin shell (s2s:show) say which streams carried them, with which TLS
version and authentication method.  ``stop`` reads the pid file: SIGTERM to each
recorded process still running (same PID and start time), a bounded wait, SIGKILL for
stragglers.
Must run as root (Knot runs as root, Prosody as user prosody through setpriv).
"""

import os
import shutil
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from s2stest import procs as P  # noqa: E402
from s2stest import e2e as E  # noqa: E402

PIDS = "pids"
DEFAULT_STATE = "/tmp/s2sproxy-demo"  # scripts/demo's default


class StateDir(P.Scratch):
    """A Scratch at a fixed path, kept when the demo leaves (it is the demo's state)."""

    def __init__(self, path):  # noqa: super().__init__ would make a temp dir
        os.makedirs(path, exist_ok=True)
        os.chmod(path, 0o755)
        self.path = path
        self._failed = False

    def close(self):
        pass


class DetachedProcs(P.Procs):
    """Procs whose processes outlive this one: own session, no parent-death signal;
    every PID is appended to the pid file at once (``stop`` needs nothing else)."""

    def start(self, name, argv, user=None, env=None, cwd=None, extra_logs=()):
        argv = P.setpriv_argv(user, argv) if user else list(argv)
        logdir = self.scratch.sub("logs")
        out_path = os.path.join(logdir, f"{name}.stdout")
        err_path = os.path.join(logdir, f"{name}.stderr")
        with open(out_path, "ab") as out, open(err_path, "ab") as err:
            popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=err, env=env, cwd=cwd, start_new_session=True)
        with open(os.path.join(self.scratch.path, PIDS), "a") as f:
            f.write(f"{popen.pid} {name} {_starttime(popen.pid)}\n")
        proc = P.Proc(name, popen, out_path, err_path, extra_logs)
        self.procs.append(proc)
        return proc

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        return False


def _starttime(pid):
    """When the process started (clock ticks since boot, /proc/PID/stat field 22):
    with the PID it names one process for good (exec keeps it, a reused PID has
    another), so ``stop`` never signals someone else's process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "-"


def _read_pids(state):
    try:
        with open(os.path.join(state, PIDS)) as f:
            rows = [line.split() for line in f if line.strip()]
    except FileNotFoundError:
        return []
    return [(int(r[0]), r[1], r[2] if len(r) > 2 else "-") for r in rows]


def _alive(pid, started):
    """True if the process recorded as (pid, start time) still runs."""
    return _running(pid) and (started == "-" or _starttime(pid) == started)


# ---- start ------------------------------------------------------------------------------


def start(state, bindir, srcdir):
    if any(_alive(pid, started) for pid, _, started in _read_pids(state)):
        print(f"the demo is already running (state {state}); stop it with: scripts/demo stop",
              file=sys.stderr)
        return 1
    closed = _closed_parent(state)
    if closed:
        print(f"demo: {closed} is not searchable by others: Prosody (user prosody) could "
              f"not read its files; pick another S2S_DEMO_STATE", file=sys.stderr)
        return 1
    shutil.rmtree(state, ignore_errors=True)
    scratch = StateDir(state)
    procs = DetachedProcs(scratch)
    try:
        w = E.World(procs, scratch, bindir, srcdir).start()
        trip = run_messages(w)
        summary(w, trip, state)
    except Exception as exc:
        print(f"demo: start failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        for proc in procs.procs:
            tail = P.tail(proc.stderr_path, 15)
            if tail:
                print(f"--- {proc.name} ({proc.stderr_path}):\n{tail}", file=sys.stderr)
        stop(state, quiet=True)
        return 1
    return 0


def _closed_parent(path):
    """The first existing parent of ``path`` that others cannot traverse, or None."""
    parent = os.path.dirname(path)
    while parent and parent != "/":
        if os.path.isdir(parent) and not os.stat(parent).st_mode & 0o001:
            return parent
        parent = os.path.dirname(parent)
    return None


def run_messages(w):
    from s2stest import clients as X

    async def scenario():
        alice = await w.login("alice@a.test")
        bob = await w.login("bob@b.test")
        out = await X.deliver(alice, bob, "Hello Bob, this is Alice on a.test", timeout=20)
        back = await X.deliver(bob, alice, "Hi Alice, Bob on b.test here", timeout=20)
        await X.close_all(alice, bob)
        return out, back
    return X.run(scenario(), timeout=60)


def summary(w, trip, state):
    a, b, k, proxy = w.a, w.b, w.knot, w.proxy
    ca = w.ca.cert
    say = print
    say(f"s2sproxy demo is running (state and logs in {state})")
    say("")
    say(f"  DNS     Knot {k.ip}:{k.port}, zone test. signed with DNSSEC "
        f"(trust anchor {k.trust_anchor_file})")
    say(f"  site A  a.test: Prosody {a.ip} (c2s port {a.c2s_port}, native s2s off)")
    say(f"          behind s2sproxy {proxy.ip}:{proxy.port} (SRV, A and TLSA of a.test "
        f"point there), component s2s.a.test on port {a.component_port}")
    say(f"  site B  b.test: stock Prosody {b.ip} (c2s port {b.c2s_port}, s2s port "
        f"{b.s2s_port}), MUC service {E.MUC}")
    say("")
    say(f"  message alice@a.test -> bob@b.test: delivered in {trip[0] * 1000:.1f} ms "
        f"(new route: DNS, TLS, DANE, authentication)")
    say(f"  message bob@b.test -> alice@a.test: delivered in {trip[1] * 1000:.1f} ms")
    say("")
    say("  streams the proxy authenticated (its log):")
    for s in E.proxy_streams(proxy.log):
        arrow = f"{s['local']} -> {s['remote']}" if s["dir"] == "out" else \
            f"{s['remote']} -> {s['local']}"
        extra = f" cert={s['cert']}{' ' + s['rest'] if s.get('rest') else ''}" \
            if s["dir"] == "out" else ""
        say(f"    {s['dir']:3} {arrow:24} peer={s['peer']} tls={s['tls']} "
            f"auth={s['method']}{extra}")
    for line in E.local_link_lines(proxy.log):
        say(f"    component link: {line}")
    say(f"  the proxy's view now (s2sproxy ctl -s {proxy.ctl_socket} streams / stats):")
    for cmd in ("streams", "stats"):
        try:
            text = proxy.ctl(cmd)
        except Exception as exc:  # an older daemon without ctl: the log says enough
            text = f"(ctl {cmd}: {exc})"
        for line in text.rstrip().splitlines():
            say(f"    {line}")
    say("  streams Prosody B lists (prosodyctl shell 's2s:show()'):")
    for s in b.s2s_sessions():
        say(f"    {s['host']} {s['dir']} {s['remote']}  tls={s['secure']} cert={s['cert']} "
            f"sasl={s['s2s_sasl'] or '-'} dialback={s['dialback']}")
    say("    (<-> is one stream carrying both directions, XEP-0288)")
    say("")
    say("  log in with any XMPP client (STARTTLS; trust the demo CA or accept its certificate):")
    for jid in list(w.a_users) + list(w.b_users):
        server = a if jid.endswith("@a.test") else b
        say(f"    {jid:14} password {E.PW}   server {server.ip} port {server.c2s_port}")
    say(f"    CA certificate: {ca}")
    say(f"    group chat: join lobby@{E.MUC}")
    say("")
    say(f"  logs: {os.path.join(state, 'logs')} (s2sproxy.stderr is the proxy's), "
        f"{a.log}, {b.log}")
    env = "" if state == DEFAULT_STATE else f"S2S_DEMO_STATE={state} "
    say(f"  stop: {env}scripts/demo stop")


# ---- stop -------------------------------------------------------------------------------


def stop(state, quiet=False, timeout=10.0):
    rows = _read_pids(state)
    live = [(pid, name) for pid, name, started in rows if _alive(pid, started)]
    for pid, _ in live:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while any(_running(pid) for pid, _ in live) and time.monotonic() < deadline:
        time.sleep(P.POLL_INTERVAL)  # bounded poll for the processes to exit
    for pid, name in live:
        if _running(pid):
            print(f"demo: {name} (pid {pid}) ignored SIGTERM, killing", file=sys.stderr)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    shutil.rmtree(state, ignore_errors=True)
    if not quiet:
        names = ", ".join(f"{name} ({pid})" for pid, name in live) or "nothing was running"
        print(f"demo stopped: {names}; removed {state}")
    return 0


def _running(pid):
    """Alive and not a zombie (children of this process are reaped by the kernel's
    init once we are not their parent; ours are reaped here)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def main(argv):
    if len(argv) >= 5 and argv[1] == "start":
        return start(os.path.abspath(argv[2]), os.path.abspath(argv[3]),
                     os.path.abspath(argv[4]))
    if len(argv) >= 3 and argv[1] == "stop":
        return stop(os.path.abspath(argv[2]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
