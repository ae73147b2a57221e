"""Run the installed Stable-Baselines3 version's own test files with DSPG in TD3's place.

    python tests/sb3_suite/run.py [extra pytest arguments]

Fetches SB3's source distribution for the installed version from PyPI once (``pip download``, cached in
``$SB3_DSPG_CACHE`` or ``~/.cache/sb3-dspg``), extracts its ``tests/``, and runs them under ``plugin.py``
(DSPG bound as TD3, only the tests that exercise it, ``-m "not expensive"``, one torch thread). Exit code:
pytest's; it fails on any failure that is not a documented difference, and on a documented difference
that has gone away.
"""

import os
import subprocess
import sys
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def sb3_tests_dir() -> Path:
    """The ``tests/`` folder of the installed SB3 version's sdist, downloaded and extracted once."""
    import stable_baselines3

    version = stable_baselines3.__version__
    cache = Path(os.environ.get("SB3_DSPG_CACHE", Path.home() / ".cache" / "sb3-dspg"))
    tests = cache / f"stable_baselines3-{version}" / "tests"
    if not tests.is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary=:all:",
             f"stable-baselines3=={version}", "-d", str(cache)],
            check=True,
        )  # fmt: skip
        with tarfile.open(cache / f"stable_baselines3-{version}.tar.gz") as archive:
            members = [m for m in archive.getmembers() if m.name.startswith(f"stable_baselines3-{version}/tests/")]
            archive.extractall(cache, members=members, filter="data")
    return tests


def main(argv: list[str]) -> int:
    tests = sb3_tests_dir()
    # the files that use TD3 at all (the others test other algorithms, some need Atari's ale_py)
    files = sorted(str(path) for path in tests.glob("test_*.py") if "TD3" in path.read_text())
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, "-m", "pytest", *files, "-p", "plugin", "-m", "not expensive", "-p", "no:cacheprovider",
               "--rootdir", str(tests), "-q", "-o", "addopts=", "-o", "markers=expensive: slow SB3 tests", *argv]  # fmt: skip
    return subprocess.run(command, env=env, cwd=tests).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
