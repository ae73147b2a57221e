"""Relabelling runs in a compare results folder: folders, records and links to them move together."""

import json

import numpy as np
import pytest

from sb3_dspg.cli import main as cli_main
from sb3_dspg.experiments import compare
from sb3_dspg.experiments.relabel import relabel


def fake_run(run_dir, algo, seed, returns, variant=None):
    run_dir.mkdir(parents=True)
    np.savez(run_dir / "evaluations.npz", timesteps=np.array([1, 2]), results=np.array(returns, dtype=float)[:, None])
    record = dict(env="w", algo=algo, seed=seed, final_return=returns[-1])
    if variant is not None:
        record["variant"] = variant
    (run_dir / "done.json").write_text(json.dumps(record))


def test_relabel_swaps_a_default_for_a_variant_and_keeps_other_studies_links(tmp_path):
    out, other = tmp_path / "results" / "suite", tmp_path / "results" / "study"
    for seed in (0, 1):
        fake_run(out / "w" / f"dspg_{seed}", "dspg", seed, [0.0, 1.0 + seed])
        fake_run(out / "w" / f"dspg-c01_{seed}", "dspg-c01", seed, [0.0, 5.0 + seed], {"critic_grad_weight": 0.1})
    fake_run(out / "w" / "dspg-c01x_0", "dspg-c01x", 0, [0.0, 9.0])  # a label that only starts alike stays
    (out / "v" / "dspg-c01_0").mkdir(parents=True)  # a run still in progress (no record yet) stays too
    (other / "w").mkdir(parents=True)
    (other / "w" / "dspg_0").symlink_to("../../suite/w/dspg_0")  # another study's run, linked from the suite

    moved = relabel(out, "dspg", "dspg-c0", {"critic_grad_weight": 0.0}, links=tmp_path / "results")
    assert [(a.name, b.name) for a, b in moved] == [("dspg_0", "dspg-c0_0"), ("dspg_1", "dspg-c0_1")]
    cli_main(["relabel", str(out), "dspg-c01", "dspg", "--links", str(tmp_path / "results")])

    assert sorted(path.name for path in (out / "w").iterdir()) == ["dspg-c01x_0", "dspg-c0_0", "dspg-c0_1", "dspg_0", "dspg_1"]
    old = json.loads((out / "w" / "dspg-c0_1" / "done.json").read_text())
    assert old["algo"] == "dspg-c0" and old["variant"] == {"critic_grad_weight": 0.0}
    new = json.loads((out / "w" / "dspg_1" / "done.json").read_text())
    assert new["algo"] == "dspg" and "variant" not in new and new["final_return"] == 6.0
    assert (out / "v" / "dspg-c01_0").is_dir() and not (out / "v" / "dspg_0").exists()
    # the report reads the labels from the folders: the old default's returns are now dspg-c0's
    df = compare.collect(out, ["w"], ["dspg", "dspg-c0"], [0, 1])
    assert {algo: sorted(df[df.algo == algo].groupby("seed").tail(1).mean_return) for algo in ("dspg", "dspg-c0")} == {
        "dspg": [5.0, 6.0],
        "dspg-c0": [1.0, 2.0],
    }
    # the other study's link keeps its name and still reaches the same run (now dspg-c0_0)
    link = other / "w" / "dspg_0"
    assert link.is_symlink() and link.resolve() == (out / "w" / "dspg-c0_0").resolve()
    assert json.loads((link / "done.json").read_text())["final_return"] == 1.0


def test_relabel_refuses_what_would_lose_or_mix_runs(tmp_path):
    fake_run(tmp_path / "w" / "dspg_0", "dspg", 0, [1.0])
    fake_run(tmp_path / "w" / "dspg-c0_0", "dspg-c0", 0, [2.0])
    with pytest.raises(ValueError, match="new: runs labelled 'dspg-c0' exist already"):
        relabel(tmp_path, "dspg", "dspg-c0")
    with pytest.raises(ValueError, match="old: no ended runs labelled 'td3'"):
        relabel(tmp_path, "td3", "td3-old")
    with pytest.raises(ValueError, match="new: must differ from old"):
        relabel(tmp_path, "dspg", "dspg")
    with pytest.raises(ValueError, match="new: an algorithm label"):
        relabel(tmp_path, "dspg", "a/b")
    for bad in ("{critic_grad_weight: 0}", "[0.0]"):  # not JSON; JSON but not an object
        with pytest.raises(SystemExit, match="--variant: a JSON object of keyword arguments"):
            cli_main(["relabel", str(tmp_path), "dspg", "dspg-x", "--variant", bad])
    assert json.loads((tmp_path / "w" / "dspg_0" / "done.json").read_text())["final_return"] == 1.0  # nothing moved


def test_relabel_to_the_same_label_records_the_variant_in_place(tmp_path):
    fake_run(tmp_path / "w" / "dspg-x_0", "dspg-x", 0, [0.0, 3.0], {"critic_type": "crossq"})
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "dspg-x_0").symlink_to("../w/dspg-x_0")  # the same run linked: rewritten once, not moved

    cli_main(["relabel", str(tmp_path), "dspg-x", "dspg-x", "--variant", '{"critic_type": "crossq", "c": 0.0}'])

    assert sorted(path.name for path in (tmp_path / "w").iterdir()) == ["dspg-x_0"]
    record = json.loads((tmp_path / "w" / "dspg-x_0" / "done.json").read_text())
    assert record == dict(env="w", algo="dspg-x", seed=0, final_return=3.0, variant={"critic_type": "crossq", "c": 0.0})
    assert (tmp_path / "v" / "dspg-x_0").is_symlink()


def test_relabel_envs_moves_only_those_worlds_runs(tmp_path):
    fake_run(tmp_path / "sb3_dspg_HitBandit-v0" / "dspg-x_0", "dspg-x", 0, [1.0])  # made under the old default
    fake_run(tmp_path / "sb3_dspg_HitReach-v0__noise_scale-0.9" / "dspg-x_0", "dspg-x", 0, [2.0])  # old too
    fake_run(tmp_path / "Pendulum-v1" / "dspg-x_0", "dspg-x", 0, [3.0])  # a newer grid's run of the same label

    envs = ["sb3_dspg/HitBandit-v0", "sb3_dspg/HitReach-v0:noise_scale=0.9"]
    cli_main(["relabel", str(tmp_path), "dspg-x", "dspg-c0-x", "--variant", '{"c": 0.0}', "--envs", *envs])

    assert [p.name for p in (tmp_path / "Pendulum-v1").iterdir()] == ["dspg-x_0"]
    for world in ("sb3_dspg_HitBandit-v0", "sb3_dspg_HitReach-v0__noise_scale-0.9"):
        assert [p.name for p in (tmp_path / world).iterdir()] == ["dspg-c0-x_0"]
        assert json.loads((tmp_path / world / "dspg-c0-x_0" / "done.json").read_text())["variant"] == {"c": 0.0}
    with pytest.raises(SystemExit, match=r"envs: no world folder under .* for \['Hopper-v5'\]"):
        cli_main(["relabel", str(tmp_path), "dspg-x", "dspg-y", "--envs", "Hopper-v5"])
    with pytest.raises(ValueError, match=r"old: no ended runs labelled 'dspg-x' under .* for \['sb3_dspg/HitBandit-v0'\]"):
        relabel(tmp_path, "dspg-x", "dspg-y", envs=["sb3_dspg/HitBandit-v0"])  # its run moved already
    assert [p.name for p in (tmp_path / "Pendulum-v1").iterdir()] == ["dspg-x_0"]  # nothing else moved
