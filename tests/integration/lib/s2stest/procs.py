"""Processes, scratch directories, ports and event waits for integration tests.

Every integration test starts real daemons (Knot, Prosody, s2sproxy) on loopback.
This module keeps that honest:

- ``Scratch`` is the per-test temporary directory.  It is removed at the end; on
  failure with ``S2S_KEEP=1`` in the environment it is kept and its path printed.
- ``Procs`` is the registry of started processes.  It logs each one's stdout and
  stderr to files in the scratch directory, stops every process *by its PID*
  (SIGTERM, a bounded wait, then SIGKILL) and, when a process died while the
  test still needed it, prints the tail of its logs.
- ``wait_port``, ``wait_log`` and ``wait_until`` are *event waits*: they poll
  for a condition (a port accepting, a log line, any predicate) at short
  intervals and return as soon as it holds, failing after a bounded timeout.
  They are never used as a fixed delay: a test never sleeps to "let things
  settle"; it waits for the event that says they have.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

POLL_INTERVAL = 0.01  # seconds between two polls of an event wait


class WaitTimeout(AssertionError):
    """An event did not happen within its bounded wait."""


class ProcessDied(AssertionError):
    """A process the test depends on exited before it was stopped."""


def keep_requested():
    """True if the user asked to keep scratch directories of failed tests."""
    return os.environ.get("S2S_KEEP", "") not in ("", "0")


class Scratch:
    """A per-test temporary directory: ``with Scratch("name") as d: d.path``.

    Call ``failed()`` (or leave the block with an exception) to mark the test as
    failed: the directory is then kept if ``S2S_KEEP=1`` and its path printed.
    """

    def __init__(self, name="s2stest"):
        self.path = tempfile.mkdtemp(prefix=name + ".")
        os.chmod(self.path, 0o755)
        self._failed = False

    def failed(self):
        self._failed = True

    def sub(self, *parts, mkdir=True):
        """Path of a sub-directory (created) inside the scratch directory."""
        path = os.path.join(self.path, *parts)
        if mkdir:
            os.makedirs(path, exist_ok=True)
        return path

    def file(self, *parts):
        """Path of a file inside the scratch directory (parents created)."""
        path = os.path.join(self.path, *parts)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path

    def close(self):
        if self._failed and keep_requested():
            print(f"# kept scratch directory: {self.path}", flush=True)
            return
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self._failed = True
        self.close()
        return False


def tail(path, lines=30):
    """The last ``lines`` lines of a text file ('' if it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 16384))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


class Proc:
    """One started process: its name, Popen object, PID and log files."""

    def __init__(self, name, popen, stdout_path, stderr_path, extra_logs):
        self.name = name
        self.popen = popen
        self.pid = popen.pid
        self.stdout_path = stdout_path
        self.stderr_path = stderr_path
        self.extra_logs = list(extra_logs)
        self.stopping = False

    def alive(self):
        return self.popen.poll() is None

    def returncode(self):
        return self.popen.poll()

    def describe(self):
        """Exit status and the tails of every log this process writes."""
        out = [f"--- {self.name} (pid {self.pid}) exit status {self.returncode()}"]
        for path in [self.stdout_path, self.stderr_path] + self.extra_logs:
            text = tail(path)
            if text:
                out.append(f"--- tail of {path}:\n{text}")
        return "\n".join(out)

    def check(self):
        """Raise ProcessDied if the process has exited while still needed."""
        if not self.stopping and not self.alive():
            raise ProcessDied(self.describe())


def setpriv_argv(user, argv, pdeathsig=None):
    """argv run through setpriv(1): as ``user`` (uid, gid, groups) if given,
    with a parent-death signal if given (set after the uid change, so it holds)."""
    pre = ["setpriv"]
    if user:
        pre += [f"--reuid={user}", f"--regid={user}", "--init-groups"]
    if pdeathsig:
        pre.append(f"--pdeathsig={pdeathsig}")
    return pre + ["--"] + list(argv)


def _exit_on_sigterm(signum, frame):
    """SIGTERM (e.g. a CTest timeout) unwinds the test so every ``with`` cleans up."""
    raise SystemExit(128 + signum)


class Procs:
    """Registry of processes started by a test; stops them all by PID at the end.

    ``with Procs(scratch) as procs: p = procs.start("knot", [...])``.

    Safety nets for a test that dies before its cleanup: every process is
    started through ``setpriv --pdeathsig=KILL`` (the kernel kills it when the
    thread that started it exits, so start processes from the main thread),
    and inside the ``with`` block SIGTERM raises SystemExit so cleanup runs.
    Processes get their own session: a Ctrl-C in a terminal reaches the test,
    which then stops them in order.
    """

    def __init__(self, scratch):
        self.scratch = scratch
        self.procs = []

    def start(self, name, argv, user=None, env=None, cwd=None, extra_logs=()):
        """Start ``argv`` (as ``user`` if given); stdout/stderr go to log files.

        ``extra_logs`` are log files the process writes itself, shown with its
        output when it dies unexpectedly.
        """
        argv = setpriv_argv(user, argv, pdeathsig="KILL")
        logdir = self.scratch.sub("logs")
        out_path = os.path.join(logdir, f"{name}.stdout")
        err_path = os.path.join(logdir, f"{name}.stderr")
        with open(out_path, "ab") as out, open(err_path, "ab") as err:
            popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=err, env=env, cwd=cwd,
                                     start_new_session=True)
        proc = Proc(name, popen, out_path, err_path, extra_logs)
        self.procs.append(proc)
        return proc

    def stop(self, proc, timeout=5.0):
        """SIGTERM the process by PID, wait (bounded), then SIGKILL. Returns its status."""
        self.stop_all([proc], timeout)
        return proc.returncode()

    def stop_all(self, procs, timeout=5.0):
        """Stop several processes by PID: SIGTERM to all at once (their graceful
        shutdowns overlap), one shared bounded wait, SIGKILL for stragglers."""
        for proc in procs:
            proc.stopping = True
            if proc.alive():
                _signal(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in procs:
            try:
                proc.popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"# {proc.name} (pid {proc.pid}) ignored SIGTERM, killing",
                      file=sys.stderr)
                _signal(proc.pid, signal.SIGKILL)
                proc.popen.wait(timeout)
            if proc in self.procs:
                self.procs.remove(proc)

    def check(self):
        """Raise ProcessDied if any registered process exited unexpectedly."""
        for proc in self.procs:
            proc.check()

    def died(self):
        """Processes that exited while they were still needed."""
        return [p for p in self.procs if not p.stopping and not p.alive()]

    def close(self):
        """Stop every process (all at once, by PID); report the ones that had died."""
        dead = self.died()
        for proc in dead:
            print(f"# process died unexpectedly:\n{proc.describe()}", file=sys.stderr)
        self.stop_all(list(reversed(self.procs)))
        return dead

    def __enter__(self):
        self._old_sigterm = signal.signal(signal.SIGTERM, _exit_on_sigterm)
        return self

    def __exit__(self, exc_type, exc, tb):
        signal.signal(signal.SIGTERM, self._old_sigterm)
        dead = self.close()
        if dead:
            self.scratch.failed()
        return False


def _signal(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def free_port(ip="127.0.0.1", kind=socket.SOCK_STREAM):
    """A port number free on ``ip`` right now (the kernel picks it).

    The port is released before it is returned, so another process could take
    it first; on a test machine this is rare, and a daemon failing to bind shows
    up as its ``wait_port`` failing with its log tail.
    """
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def free_ports(ip, count):
    """``count`` distinct free TCP ports on ``ip``."""
    ports = set()
    while len(ports) < count:
        ports.add(free_port(ip))
    return sorted(ports)


def wait_until(predicate, timeout, what, procs=()):
    """Event wait: poll ``predicate()`` until it returns a true value.

    Returns that value.  Fails early with ProcessDied if one of ``procs`` (Proc
    objects the event depends on) exits; raises WaitTimeout after ``timeout`` s.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        for proc in procs:
            proc.check()
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(POLL_INTERVAL)


def port_open(ip, port):
    """True if a TCP connection to ip:port is accepted now."""
    try:
        with socket.create_connection((ip, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_port(ip, port, timeout=10.0, procs=()):
    """Event wait: until ip:port accepts TCP connections."""
    wait_until(lambda: port_open(ip, port), timeout, f"{ip}:{port} to accept", procs)


def log_mark(path):
    """The current end of a log file, to wait only for lines written after it."""
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def log_search(path, regex, since=0):
    """The first match of ``regex`` in the log after offset ``since``, or None."""
    try:
        with open(path, "rb") as f:
            f.seek(since)
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    return re.search(regex, text, re.MULTILINE)


def wait_log(path, regex, timeout=10.0, since=0, procs=()):
    """Event wait: until a line matching ``regex`` appears in ``path``.

    Only text after offset ``since`` (see ``log_mark``) is searched.  Returns the
    ``re.Match``.
    """
    return wait_until(lambda: log_search(path, regex, since), timeout,
                      f"/{regex}/ in {path}", procs)


def run(argv, timeout=30.0, user=None, check=True, input=None):
    """Run a short command to completion (bounded); returns CompletedProcess (text)."""
    if user:
        argv = setpriv_argv(user, argv)
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                         input=input)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {res.returncode}:\n"
                           f"{res.stdout}{res.stderr}")
    return res
