"""Runs tests/hostile.py in a subprocess: a crash (segfault, abort) fails this test instead of
killing the test run, and every class of hostile input is refused as documented."""

import json
import os
import subprocess
import sys

ALWAYS_REFUSED = ["wrong type", "non-float dtype", "wrong ndim or shape", "None where an array is required",
                  "ragged nested list", "astronomical logical size", "mixed float dtypes", "cache from another cell",
                  "cache from the other backend", "forged cache", "bad upstream gradient",
                  "private module, bad outputs", "private module, bad lengths", "private module, bad plans",
                  "bad lengths", "bad flag", "set_num_threads", "set_simd_isa", "unknown nonlinearity"]


def test_hostile_inputs_are_refused_and_never_crash():
    script = os.path.join(os.path.dirname(__file__), "hostile.py")
    result = subprocess.run([sys.executable, "-W", "ignore", script], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stderr[-4000:]}"
    counts = json.loads(result.stdout.strip().splitlines()[-1])
    for kind in ALWAYS_REFUSED:
        assert counts[kind]["tried"] > 0 and counts[kind]["refused"] == counts[kind]["tried"], (kind, counts[kind])
    # valid data that only looks odd is computed (and checked against the reference in the script)
    assert counts["NaN / inf data"]["accepted"] == counts["NaN / inf data"]["tried"] > 0
    assert counts["shape disagreement"]["refused"] > 0
    assert counts["odd but valid lengths"]["accepted"] == counts["odd but valid lengths"]["tried"] > 0
    assert sum(c["tried"] for c in counts.values()) > 1000
