"""Stable-Baselines3's own test files pass with DSPG in TD3's place, up to the documented differences.

The runner (``tests/sb3_suite/run.py``) fetches the installed SB3 version's source distribution from PyPI
once; see ``tests/sb3_suite/plugin.py`` for the binding, the selection and the list of differences.
"""

import subprocess
import sys
from pathlib import Path

RUNNER = Path(__file__).parent / "sb3_suite" / "run.py"


def test_sb3_own_tests_pass_with_dspg_as_td3():
    result = subprocess.run([sys.executable, str(RUNNER), "-rfEX"], capture_output=True, text=True, timeout=900)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in summary and ("2 xfailed" in summary or "3 xfailed" in summary), summary
    assert "failed" not in summary.replace("xfailed", ""), summary
