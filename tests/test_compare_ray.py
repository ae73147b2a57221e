"""The Ray backend of ``sb3-dspg compare``: same outputs as the local pool, failures reported, dead workers retried."""

import json
from pathlib import Path

import pandas as pd
import pytest

from sb3_dspg.experiments import compare

ray = pytest.importorskip("ray")

TINY = ["--timesteps", "200", "--eval-freq", "100", "--eval-episodes", "3", "--seeds", "0", "1", "--algos", "dspg", "td3"]
GOOD, BAD = "sb3_dspg/NoisyBandit-v0", "sb3_dspg/NoisyBandit-v0:noise=nonsense"


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    # the workers inherit the environment: they can import tests/die_once.py and find its marker
    marker = tmp_path_factory.mktemp("marker") / "die_once"
    marker.write_text("kill the first worker that builds DieOnceBandit-v0")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", str(Path(__file__).parent))
        mp.setenv("SB3_DSPG_DIE_ONCE", str(marker))
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        yield marker
        ray.shutdown()


def run_files(out: Path) -> set[str]:
    """Relative paths of a grid's outputs, TensorBoard event files by folder (their names hold host and time)."""
    files = [p.relative_to(out) for p in out.rglob("*") if p.is_file()]
    return {str(f.parent if "tfevents" in f.name else f) for f in files}


def test_ray_grid_matches_local_reports_failures_retries_dead_workers_and_resumes(local_ray, tmp_path):
    ray_out, local_out = tmp_path / "ray", tmp_path / "local"
    envs = ["--envs", GOOD, BAD, "DieOnceBandit-v0"]
    compare.main([*TINY, *envs, "--backend", "ray", "--workers", "2", "--gym-packages", "die_once", "--out", str(ray_out)])

    # the worker that built DieOnceBandit-v0 first died; its task was retried and every good run finished
    assert not local_ray.exists()
    done = sorted(ray_out.glob("*/*/done.json"))
    assert len(done) == 8 and all(json.loads(p.read_text())["hyperparams"] == "untuned" for p in done)
    # the run that raised is reported with its error, and did not stop the grid
    failed = sorted(ray_out.glob("*/*/failed.json"))
    assert len(failed) == 4 and "noise: must be one of" in json.loads(failed[0].read_text())["error"]
    report = (ray_out / "results.md").read_text()
    assert "## Failed runs" in report and report.count("| sb3_dspg/NoisyBandit-v0:noise=nonsense |") == 4

    # the same grid on the local backend writes the same files and the same evaluations (same seeds, CPU)
    compare.main([*TINY, "--envs", GOOD, "--workers", "2", "--out", str(local_out)])
    assert {f for f in run_files(ray_out) if f.startswith("sb3_dspg_NoisyBandit-v0/")} == {
        f for f in run_files(local_out) if f.startswith("sb3_dspg_NoisyBandit-v0/")
    }
    ray_csv, local_csv = pd.read_csv(ray_out / "evaluations.csv"), pd.read_csv(local_out / "evaluations.csv")
    pd.testing.assert_frame_equal(ray_csv[ray_csv.env == GOOD].reset_index(drop=True), local_csv)

    # resume, across backends: nothing finished runs again (only the failing runs are retried)
    stamps = {p: p.stat().st_mtime_ns for p in done}
    compare.main([*TINY, "--envs", GOOD, "--backend", "ray", "--workers", "2", "--out", str(ray_out)])
    compare.main([*TINY, "--envs", GOOD, "--workers", "2", "--out", str(ray_out)])
    assert {p: p.stat().st_mtime_ns for p in done} == stamps
