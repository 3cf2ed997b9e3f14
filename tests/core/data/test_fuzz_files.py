"""Fuzzed data files never crash the process: fuzz_files.py runs in a child, whose exit status we check.

A segmentation fault in a parser (as pyarrow's JSON reader had on deep nesting) would show here as
a negative exit status instead of taking pytest down with it.
"""
import os
import subprocess
import sys

from tests.paths import ROOT


def test_fuzzed_files_end_in_rows_or_a_sentence_never_a_crash():
    done = subprocess.run([sys.executable, "-m", "tests.core.data.fuzz_files"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "FUZZ_EXAMPLES": "50"})
    assert done.returncode == 0, f"exit {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "fuzzed files:" in done.stdout
    print("\n" + done.stdout.strip().splitlines()[-1])
