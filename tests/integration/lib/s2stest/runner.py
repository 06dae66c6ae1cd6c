"""A minimal test-case runner for integration scripts (no pytest).

Each test file is a script: it builds its world, runs its cases through a
``Runner``, and exits with ``runner.finish()``.  Output is one line per case
(``ok   name`` or ``FAIL name: why``) plus free-form ``#`` lines, and a last line
exactly ``N passed, M failed``; the exit status is non-zero if M > 0.
"""

import sys
import time
import traceback


class Runner:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.started = time.monotonic()

    def case(self, name, fn, *args, **kwargs):
        """Run one case; an exception (AssertionError or other) fails it."""
        t0 = time.monotonic()
        try:
            fn(*args, **kwargs)
        except Exception as exc:  # every failure is reported, none stops the run
            self.fail(name, f"{type(exc).__name__}: {exc}")
            traceback.print_exc(file=sys.stderr)
            return False
        self.passed += 1
        print(f"ok   {name} ({time.monotonic() - t0:.2f}s)", flush=True)
        return True

    def fail(self, name, why):
        """Record a failed case without running anything (e.g. setup broke)."""
        self.failed += 1
        print(f"FAIL {name}: {why}", flush=True)

    def note(self, text):
        print(f"# {text}", flush=True)

    def finish(self):
        """Print the summary line; returns the exit status."""
        self.note(f"total {time.monotonic() - self.started:.1f}s")
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        return 1 if self.failed else 0
