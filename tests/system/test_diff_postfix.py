"""The differential test: postern's smtpd and Debian's Postfix 3.7 answer
the dialogs of tests/diff/dialogs alike (tests/diff/run_diff.py).

Two runs of run_diff.py on the build the other system tests use
(postern_build: build/std, or build/san under `make system SANITIZE=1`):

  --self-check  Postfix against Postfix: a dialog whose replies depend on
                timing would show up here, not as a postern difference;
  normal        postern against Postfix: every difference must be listed
                in tests/diff/deviations.txt and every listed one must
                still occur.

Both must exit 0; on failure the runner's whole report is printed. Each
run starts its own private servers on free loopback ports and stops them
by PID. Needs root (Postfix's master) and Debian's postfix and
postfix-sqlite (scripts/deps.sh test).
"""

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUNNER = os.path.join(REPO, "tests", "diff", "run_diff.py")
# The runner bounds every reply and dialog; this is a backstop.
TIMEOUT = 600


def run_diff(build, *args):
    assert os.geteuid() == 0, "tests/diff/run_diff.py needs root (Postfix's master)"
    assert os.access("/usr/sbin/postfix", os.X_OK), \
        "/usr/sbin/postfix missing: run scripts/deps.sh test"
    res = subprocess.run([sys.executable, RUNNER, "--build", build, *args],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=TIMEOUT, cwd=REPO)
    out = res.stdout + res.stderr
    if res.returncode != 0 or "\ndiff: " not in "\n" + out:
        pytest.fail(f"run_diff.py {' '.join(args)} exited {res.returncode}:\n{out}",
                    pytrace=False)
    return out


def test_postfix_against_itself_shows_no_difference(postern_build):
    run_diff(postern_build, "--self-check")


def test_postern_answers_like_postfix(postern_build):
    run_diff(postern_build)
