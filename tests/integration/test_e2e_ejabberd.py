#!/usr/bin/python3
"""End to end with ejabberd 23.01 as the local server behind s2sproxy (issue 5).

The world of test_e2e_prosody.py (lib/s2stest/e2e.py) with site A's Prosody
replaced by ejabberd serving a.test: no s2s (``s2s_access`` denies all, no
listener), contrib/ejabberd/mod_s2sproxy.erl compiled with erlc on the
filter_packet hook, an ejabberd_service listener for the proxy's component
s2s.a.test (check_from: false).  ejabberd runs as in test_local_ejabberd.py
(straight from ``erl``, no Erlang distribution, stopped by its PID).  Site B is
the same stock Prosody with native s2s.

Core cases: chat both ways, presence subscription and updates both ways, iq
ping both ways (user and server), a message to a domain that does not exist
(remote-server-not-found), a message from B to a user a.test does not have
(a.test's error comes back), and messages sent to a user of A while ejabberd
restarts (each delivered after the restart or bounced, none lost).
"""

import os
import shutil
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, HERE)

from s2stest import e2e as E  # noqa: E402
from s2stest.runner import Runner  # noqa: E402
import test_e2e_prosody as T  # noqa: E402  (the cases)
import test_local_ejabberd as EJ  # noqa: E402  (how ejabberd runs here)


def make_ejabberd(world, leaf):
    assert EJ.T.COMPONENT == E.COMPONENT and EJ.T.SECRET == E.SECRET
    return EJ.Ejabberd(world.procs, world.scratch, E.A_IP, leaf, world.ca.cert,
                       world.a_users)


def ejabberd_log_clean(w):
    EJ.case_ejabberd_log_clean(w)
    assert not T.P.log_search(w.proxy.log, r"AddressSanitizer|runtime error|\[crit\]"), \
        T.P.tail(w.proxy.log)


if __name__ == "__main__":
    if not shutil.which("erl") or not os.path.isdir(EJ.EJ):
        r = Runner()
        # scripts/deps installs ejabberd: its absence is a broken set-up, not a pass.
        r.fail("setup", "ejabberd 23.01 / erlang not installed (run scripts/deps)")
        sys.exit(r.finish())
    sys.exit(T.run("e2e_ejabberd", local=make_ejabberd, extra_cases=False,
                   log_check=ejabberd_log_clean,
                   unknown_user_conditions=("service-unavailable",)))
