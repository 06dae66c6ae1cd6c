#!/usr/bin/python3
"""The local link (s2s/local.c) against a real Prosody 0.12 with the contrib glue.

World: one Prosody serving a.test on 127.0.0.2 as it runs behind the proxy: native
s2s disabled, contrib/prosody/mod_s2sproxy.lua on the VirtualHost and on a MUC
component, the proxy's component ``s2s.a.test`` with validate_from_addresses =
false.  The proxy side is the real s2s/local.c, driven by the cmocka program
``test_local_live`` (built from tests/unit/test_local_live.c): it connects to
Prosody's component port, prints one line per event on stdout (read here with
event waits) and takes commands from a named pipe.  A slixmpp client
user@a.test plays the local user.

Cases: with the proxy not connected a user's message to a remote domain bounces
with remote-server-timeout (mod_component); the link comes up; a user's message
to someone@remote.test reaches the proxy (stanza_take); a message the proxy
delivers from someone@remote.test reaches the user; a MUC room's mediated
invitation to a remote JID leaves through the proxy too; a wrong secret is
refused by Prosody and logged at error level by the link; Prosody restarts:
messages handed to the link while Prosody is down are delivered after the
reconnect (to the offline store, then to the user at login), in order; at the
end the link's counters add up (accepted = delivered + bounced + queued).
"""

import asyncio
import os
import re
import signal
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

from s2stest import ca as C  # noqa: E402
from s2stest import clients as X  # noqa: E402
from s2stest import procs as P  # noqa: E402
from s2stest import prosody as PR  # noqa: E402
from s2stest.runner import Runner  # noqa: E402

SRC = os.environ.get("S2S_SRCDIR", os.getcwd())
BIN = os.environ.get("S2S_BINDIR", os.path.join(SRC, "build"))
PW = "pw"
SECRET = "component-secret"
COMPONENT = "s2s.a.test"
MUC = "conference.a.test"
USER = "user@a.test"
REMOTE = "someone@remote.test"


class Driver:
    """test_local_live: s2s/local.c connected to a component port."""

    def __init__(self, procs, scratch, name, ip, port, secret, component=COMPONENT):
        self.procs = procs
        self.fifo = scratch.file(f"{name}.fifo")
        os.mkfifo(self.fifo)
        env = dict(os.environ, S2S_LOCAL_HOST=ip, S2S_LOCAL_PORT=str(port),
                   S2S_LOCAL_NAME=component, S2S_LOCAL_DOMAIN="a.test",
                   S2S_LOCAL_SECRET=secret, S2S_LOCAL_FIFO=self.fifo,
                   S2S_LOCAL_TIMEOUT="240")
        self.proc = procs.start(name, [os.path.join(BIN, "test_local_live")], env=env)
        self.out = self.proc.stdout_path
        self.err = self.proc.stderr_path
        self.wait("^started$", since=0)

    def mark(self):
        return P.log_mark(self.out)

    def wait(self, regex, since, timeout=15.0):
        return P.wait_log(self.out, regex, timeout, since=since, procs=[self.proc])

    async def await_line(self, regex, since, timeout=15.0):
        """wait() from inside a client scenario: polls in a thread so the clients'
        asyncio loop keeps running (and actually sends what they queued)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, lambda: self.wait(regex, since, timeout))

    def wait_err(self, regex, since=0, timeout=15.0):
        return P.wait_log(self.err, regex, timeout, since=since, procs=[self.proc])

    def cmd(self, line):
        with open(self.fifo, "w") as f:
            f.write(line + "\n")

    def quit(self, timeout=10.0):
        """Ask it to stop; returns the counters it printed, as ints."""
        since = self.mark()
        self.cmd("quit")
        m = self.wait(r"^stats (.*)$", since, timeout)
        self.wait("^done$", since, timeout)
        self.proc.popen.wait(timeout)
        self.proc.stopping = True
        assert self.proc.returncode() == 0, f"driver exit status {self.proc.returncode()}"
        return {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}


class World:
    def __init__(self, procs, scratch):
        self.procs, self.scratch = procs, scratch
        self.ca = C.CA(scratch.sub("ca"))
        leaf = self.ca.issue("a.test", dns=["a.test", "*.a.test"], xmppaddr=["a.test"])
        extra = (f"s2sproxy_component = {PR.lua(COMPONENT)}\n"
                 f"Component {PR.lua(MUC)} \"muc\"\n"
                 f"  modules_enabled = {{ \"s2sproxy\" }}\n")
        self.a = PR.Prosody(procs, scratch, "a", "127.0.0.2", {"a.test": leaf},
                            self.ca.cert, users={USER: PW}, dialback=False,
                            components=[PR.Component(COMPONENT, SECRET,
                                                     validate_from=False)],
                            modules=["s2sproxy"], modules_disabled=["s2s"],
                            plugin_paths=[os.path.join(SRC, "contrib", "prosody")],
                            extra_global=extra)
        self.a.start()
        self.driver = None

    async def login(self):
        return await X.login(USER, PW, self.a.ip, self.a.c2s_port, self.ca.cert)

    def start_driver(self, name="local", secret=SECRET):
        return Driver(self.procs, self.scratch, name, self.a.ip, self.a.component_port, secret)


def case_down_bounce(w):
    """No proxy connected: the sender hears remote-server-timeout, not silence."""
    async def scenario():
        user = await w.login()
        user.send_chat(REMOTE, "nobody there")
        cond, _ = await user.expect_error(sender=REMOTE)
        assert cond == "remote-server-timeout", cond
        await user.close()
    X.run(scenario(), timeout=20)


def case_link_up(w):
    w.driver = w.start_driver()
    w.driver.wait("^up$", since=0)
    w.a.wait_log(r"External component successfully authenticated", timeout=5)


def case_to_remote(w):
    """A user's message to a remote domain goes to the proxy via mod_s2sproxy."""
    async def scenario():
        user = await w.login()
        since = w.driver.mark()
        user.send_chat(REMOTE, "out-1")
        m = await w.driver.await_line(
            r"^take name=message from=(\S+) to=(\S+) id=\S+ type=chat body=out-1$", since)
        assert m.group(1).startswith(USER + "/"), m.group(0)
        assert m.group(2) == REMOTE, m.group(0)
        await user.close()
    X.run(scenario(), timeout=30)


def case_from_remote(w):
    """A message the proxy delivers from a remote JID reaches the user."""
    async def scenario():
        user = await w.login()
        since = w.driver.mark()
        w.driver.cmd(f"send {REMOTE}/phone {USER} in-1 hello from remote")
        w.driver.wait(r"^accepted id=in-1 up=1$", since)
        msg = await user.expect_message(body="hello from remote", sender=REMOTE)
        assert str(msg["from"]) == REMOTE + "/phone", msg
        await user.close()
    X.run(scenario(), timeout=30)


def case_muc_to_remote(w):
    """A MUC room (a component with the module loaded) answers a remote JID through the
    proxy: a chat message from someone@remote.test to a room it is not in comes back
    as an error from room@conference.a.test, routed by mod_s2sproxy on the MUC host."""
    since = w.driver.mark()
    w.driver.cmd(f"send {REMOTE}/phone room@{MUC} muc-1 hello room")
    m = w.driver.wait(r"^take name=message from=(\S+) to=(\S+) id=muc-1 type=(\S+) ", since)
    assert m.group(1).startswith(f"room@{MUC}"), m.group(0)
    assert m.group(2) == REMOTE + "/phone", m.group(0)
    assert m.group(3) == "error", m.group(0)


def case_wrong_secret(w):
    """Prosody refuses a wrong secret; the link logs it at error level and retries."""
    bad = w.start_driver(name="local-badsecret", secret="wrong")
    bad.wait_err(r"ERR.*handshake refused.*not-authorized|handshake refused.*not-authorized",
                 timeout=15)
    bad.wait_err(r"(?s)handshake refused.*handshake refused", timeout=15)  # retried
    stats = bad.quit()
    assert stats["handshakes"] == 0 and stats["handshake_failures"] >= 2, stats
    assert w.driver.proc.alive()


def case_restart(w, r):
    """Prosody stops: messages handed to the link meanwhile wait, and are delivered
    after the reconnect, in order (to the offline store: the user is logged out)."""
    since = w.driver.mark()
    w.a.stop()
    w.driver.wait("^down$", since)
    for i in range(3):
        w.driver.cmd(f"send {REMOTE}/phone {USER} r{i} while-down-{i}")
        w.driver.wait(rf"^accepted id=r{i} up=0$", since)
    w.a.start()
    w.driver.wait("(?s)down.*^up$", since, timeout=20)

    async def scenario():
        user = await w.login()
        bodies = []
        for i in range(3):
            msg = await user.expect_message(sender=REMOTE, timeout=10)
            bodies.append(msg["body"])
        assert bodies == [f"while-down-{i}" for i in range(3)], bodies
        # and the link works both ways after the restart
        since2 = w.driver.mark()
        user.send_chat(REMOTE, "after-restart")
        await w.driver.await_line(r"^take name=message .* body=after-restart$", since2)
        await user.close()
    X.run(scenario(), timeout=40)


def case_crash(w, r):
    """The server freezes with stanzas just written to it, then dies (SIGKILL): they
    were in its socket buffer, never handled. The link had no answer to its ack ping,
    so it writes them again after the restart: delivered, in order."""
    since = w.driver.mark()
    os.kill(w.a.proc.pid, signal.SIGSTOP)
    try:
        for i in range(3):
            w.driver.cmd(f"send {REMOTE}/phone {USER} k{i} in-the-crash-{i}")
            w.driver.wait(rf"^accepted id=k{i} up=1$", since)
        w.driver.cmd("stats")
        m = w.driver.wait(r"^stats .*inflight=(\d+)", since)
        assert int(m.group(1)) == 3, m.group(0)  # written, unacknowledged
    finally:
        os.kill(w.a.proc.pid, signal.SIGKILL)
        os.kill(w.a.proc.pid, signal.SIGCONT)
    w.a.stop()
    w.driver.wait("^down$", since)
    w.a.start()
    w.driver.wait("(?s)down.*^up$", since, timeout=20)

    async def scenario():
        user = await w.login()
        # Only ours: a server killed this way may also replay older offline messages
        # whose removal it had not yet made durable (ejabberd's mnesia does).
        bodies = []
        while len(bodies) < 3:
            msg = await user.expect_message(sender=REMOTE, timeout=10)
            if msg["body"].startswith("in-the-crash-"):
                bodies.append(msg["body"])
        assert bodies == [f"in-the-crash-{i}" for i in range(3)], bodies
        await user.close()
    X.run(scenario(), timeout=40)


def case_counters(w, r):
    stats = w.driver.quit()
    r.note("link counters: " + " ".join(f"{k}={v}" for k, v in stats.items()))
    assert stats["to_local"] == 8, stats
    assert stats["delivered"] == 8, stats
    assert stats["bounced_timeout"] == 0 and stats["bounced_shutdown"] == 0, stats
    assert stats["queued"] == 0 and stats["inflight"] == 0, stats
    assert stats["disconnects"] == 2, stats
    assert stats["requeued"] == 3, stats  # the crash case's unacknowledged stanzas
    assert stats["rejected"] == 0 and stats["dropped"] == 0, stats
    assert stats["passed_up"] == stats["from_local"], stats


def case_prosody_log_clean(w):
    """No error or traceback in Prosody's log: the module and the link behaved."""
    with open(w.a.log, errors="replace") as f:
        bad = [line for line in f if "\terror\t" in line or "Traceback" in line]
    assert not bad, "".join(bad[:5])


def main():
    r = Runner()
    if not os.access(os.path.join(BIN, "test_local_live"), os.X_OK):
        r.fail("setup", f"no {BIN}/test_local_live (build first)")
        return r.finish()
    with P.Scratch("local_prosody") as scratch, P.Procs(scratch) as procs:
        try:
            w = World(procs, scratch)
        except Exception as exc:
            scratch.failed()
            r.fail("setup", f"{type(exc).__name__}: {exc}")
            return r.finish()
        r.case("component_down_bounce", case_down_bounce, w)
        if r.case("link_up", case_link_up, w):
            r.case("user_to_remote", case_to_remote, w)
            r.case("remote_to_user", case_from_remote, w)
            r.case("muc_to_remote", case_muc_to_remote, w)
            r.case("wrong_secret", case_wrong_secret, w)
            r.case("prosody_restart", case_restart, w, r)
            r.case("prosody_crash_unacked", case_crash, w, r)
            r.case("counters", case_counters, w, r)
        r.case("prosody_log_clean", case_prosody_log_clean, w)
        r.case("all_processes_alive", procs.check)
        if r.failed:
            scratch.failed()
        return r.finish()


if __name__ == "__main__":
    sys.exit(main())
