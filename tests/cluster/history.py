"""Recording a concurrent history of puts and gets, and checking it.

The checker is porcupine (github.com/anishathalye/porcupine), the reference
linearizability checker, behind the small Go program in lincheck/. It is
built at test time with `go build`, which fetches porcupine through the Go
module proxy against lincheck/go.sum; nothing is vendored.

Conventions (porcupine's): an operation is an interval [call, return] of a
monotonic clock. A put whose outcome is unknown (a timeout, or a failure
after the request may have reached an agent) is recorded with return = -1,
meaning "pending forever": it may take effect at any time after its call, or
never. A get that failed returned nothing and is left out. A request that
provably never left the client (no connection) is left out as well.
"""
import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import threading
import time

import pytest

LINCHECK_SRC = pathlib.Path(__file__).resolve().parent / "lincheck"

_build_lock = threading.Lock()
_binary = None


def checker_binary():
    """Builds lincheck once per session; fails the test with the build
    output if Go or the module proxy is not available."""
    global _binary
    with _build_lock:
        if _binary is not None:
            return _binary
        go = shutil.which("go")
        if go is None:
            pytest.fail("the linearizability checker needs Go (not on PATH)")
        out = pathlib.Path(tempfile.mkdtemp(prefix="mq-lincheck-")) / "lincheck"
        try:
            r = subprocess.run([go, "build", "-o", str(out), "."],
                               cwd=LINCHECK_SRC, capture_output=True,
                               text=True, timeout=300)
        except subprocess.TimeoutExpired:
            pytest.fail("go build of tests/cluster/lincheck took over 300s")
        if r.returncode != 0:
            pytest.fail("go build of tests/cluster/lincheck failed "
                        "(it fetches porcupine through the Go module proxy):\n"
                        + r.stdout + r.stderr)
        _binary = out
        return out


class History:
    """Thread-safe list of operations. Each worker gets its own client id;
    after an operation with unknown outcome it continues as a new client,
    since that operation stays pending forever."""

    def __init__(self):
        self._lock = threading.Lock()
        self.ops = []
        self._next_client = 0

    def new_client(self):
        with self._lock:
            c = self._next_client
            self._next_client += 1
            return c

    def put(self, client, key, value, call, ret):
        with self._lock:
            self.ops.append({"client": client, "key": key, "op": "put",
                             "value": value, "call": call, "return": ret})

    def get(self, client, key, found, value, call, ret):
        with self._lock:
            self.ops.append({"client": client, "key": key, "op": "get",
                             "found": found, "value": value if found else "",
                             "call": call, "return": ret})

    def counts(self):
        with self._lock:
            puts = sum(1 for o in self.ops if o["op"] == "put")
            pending = sum(1 for o in self.ops if o["return"] < 0)
            return {"ops": len(self.ops), "puts": puts,
                    "gets": len(self.ops) - puts, "unknown": pending}


def check(ops, workdir, timeout_s=120):
    """Runs porcupine on `ops`. Returns (result, output) where result is
    'Ok', 'Illegal' or 'Unknown' (timed out); the history and, when
    Illegal, an HTML visualization are left in workdir."""
    binary = checker_binary()
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    hist = workdir / "history.json"
    viz = workdir / "linearizability.html"
    hist.write_text(json.dumps({"ops": ops}))
    with open(hist, "rb") as f:
        r = subprocess.run([str(binary), "-timeout", f"{timeout_s}s",
                            "-viz", str(viz)],
                           stdin=f, capture_output=True, text=True,
                           timeout=timeout_s + 60)
    out = (r.stdout + r.stderr).strip()
    result = {0: "Ok", 1: "Illegal", 2: "Unknown"}.get(r.returncode)
    if result is None:
        pytest.fail(f"lincheck exited with {r.returncode}: {out}")
    return result, f"{out}\n(history in {hist})"


def now_ns():
    return time.monotonic_ns()
