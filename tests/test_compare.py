"""The comparison runner: tuned hyper-parameters are picked up, runs resume, every output is written."""

import json

import numpy as np
import pytest
from stable_baselines3.common.noise import NormalActionNoise

from sb3_dspg.experiments import compare
from sb3_dspg.hyperparams import tuned_hyperparams


def test_env_spec_parsing_and_hyperparameter_lookup():
    assert compare.parse_env_spec("sb3_dspg/NoisyBandit-v0:noise_scale=0.4,noise=gaussian") == (
        "sb3_dspg/NoisyBandit-v0",
        {"noise_scale": 0.4, "noise": "gaussian"},
    )
    td3 = tuned_hyperparams("td3", "sb3_dspg/ActuatorPendulum-v1", (1,))  # noisy variant: the base env's entry
    assert td3["gamma"] == 0.98 and td3["policy_kwargs"]["net_arch"] == [400, 300]
    assert isinstance(td3["action_noise"], NormalActionNoise) and np.allclose(td3["action_noise"]._sigma, 0.1)
    assert tuned_hyperparams("sac", "HalfCheetah-v5", (6,))["learning_starts"] == 10000  # -v4 entry
    assert tuned_hyperparams("dspg", "Pendulum-v1", (1,))["denoise_sigma"] == 0.1
    assert tuned_hyperparams("ddpg", "sb3_dspg/NoisyBandit-v0", (2,)) == {"policy_kwargs": {"net_arch": [256, 256]}}
    # fairness: DSPG's own entry is used only where every algorithm of the grid has one
    assert compare.grid_hyperparams("dspg", "InvertedPendulum-v5", (1,), ["dspg", "td3"]) == (
        {"policy_kwargs": {"net_arch": [256, 256]}},
        "untuned",
    )
    assert compare.grid_hyperparams("dspg", "Pendulum-v1", (1,), ["dspg", "td3"])[1] == "tuned"


def test_sweep_level_falls_back_to_the_registration_and_the_constructor_default():
    assert compare.sweep_level("sb3_dspg/HitBandit-v0:noise_scale=0.45", "noise_scale") == 0.45  # the spec's own
    assert compare.sweep_level("sb3_dspg/HitBandit-v0", "reward") == "hit"  # the registration's kwargs
    assert compare.sweep_level("sb3_dspg/HitBandit-v0", "noise_scale") == 0.3  # NoisyBandit's default
    with pytest.raises(ValueError, match=r"sweep_param.*'radius'"):
        compare.sweep_level("sb3_dspg/HitBandit-v0", "radius")


def test_tiny_comparison_writes_outputs_and_resumes(tmp_path):
    envs = ["sb3_dspg/NoisyBandit-v0:noise_scale=0.2", "sb3_dspg/NoisyBandit-v0:noise_scale=0.4"]
    args = ["--algos", "dspg-pretrain=150", "td3", "--envs", *envs,
            "--seeds", "0", "1", "--timesteps", "200", "--eval-freq", "100", "--eval-episodes", "3", "--workers", "2",
            "--out", str(tmp_path), "--sweep-param", "noise_scale"]  # fmt: skip
    compare.main(args)
    done = sorted(tmp_path.glob("*/*/done.json"))
    assert len(done) == 8
    assert json.loads(done[0].read_text())["code"] == compare.code_version()  # which code produced the run
    stamps = {p: p.stat().st_mtime_ns for p in done}
    csv = (tmp_path / "evaluations.csv").read_text().splitlines()
    assert csv[0] == "env,algo,seed,timesteps,mean_return" and len(csv) == 1 + 8 * 2
    report = (tmp_path / "results.md").read_text()
    assert "| dspg-pretrain=150 | 2 |" in report and "IQM" in report
    assert len(list(tmp_path.glob("curves_*.png"))) == 2 and (tmp_path / "sweep_noise_scale.png").exists()
    assert any(p.name.startswith("events") for p in (tmp_path.glob("*/dspg-pretrain=150_0/tb_1/*")))  # TensorBoard per run
    assert any(tmp_path.glob("*/dspg-pretrain=150_0/pretrain_1/events*"))  # and the reward-free phase's

    compare.main(args)  # resume: nothing is run again
    assert {p: p.stat().st_mtime_ns for p in done} == stamps
    assert json.loads(done[0].read_text())["timesteps"] == 200


def test_suite_runs_each_world_with_its_budget_and_reports_improvement_probabilities(tmp_path):
    suite = tmp_path / "tiny.yml"
    suite.write_text(
        "name: tiny\nversion: 1\nalgos: [dspg, td3]\nseeds: [0, 1]\ndefaults: {eval_freq: 100, eval_episodes: 3}\n"
        "worlds:\n"
        "  bandit: {envs: ['sb3_dspg/NoisyBandit-v0'], timesteps: 200}\n"
        "  reach: {envs: ['sb3_dspg/HitReach-v0'], timesteps: 300, eval_freq: 150, eval_episodes: 2}\n"
    )
    compare.main(["--suite", str(suite), "--workers", "2", "--out", str(tmp_path / "out")])
    out = tmp_path / "out"
    budgets = {p.parent.parent.name: json.loads(p.read_text())["timesteps"] for p in out.glob("*/*/done.json")}
    assert budgets == {"sb3_dspg_NoisyBandit-v0": 200, "sb3_dspg_HitReach-v0": 300}
    assert len(list(out.glob("*/*/done.json"))) == 8
    report = (out / "results.md").read_text()
    assert report.startswith("# Suite 'tiny' (version 1)") and "## Where DSPG stands" in report
    assert "P(DSPG > algo)" in report and (out / "performance_profile.png").exists()
    row = next(line for line in report.splitlines() if line.startswith("| td3 | 2 |"))
    probability = float(row.split("|")[5].split()[0])
    assert 0.0 <= probability <= 1.0

    with pytest.raises(ValueError, match="worlds: \\['nope'\\] not in suite 'tiny'"):
        compare.load_suite(str(suite), ["nope"])
    header, worlds = compare.load_suite("noisy")  # the shipped suite parses, in priority order
    assert header["seeds"] == [0, 1, 2, 3, 4] and worlds[0].name == "hit_reach"


def test_envs_restrict_a_suite_to_some_of_its_worlds_envs(tmp_path):
    suite = tmp_path / "pair.yml"
    suite.write_text(
        "name: pair\nversion: 1\nalgos: [td3]\nseeds: [0]\ndefaults: {eval_freq: 100, eval_episodes: 2}\n"
        "worlds:\n  bandits: {envs: ['sb3_dspg/NoisyBandit-v0', 'sb3_dspg/HitBandit-v0'], timesteps: 200}\n"
    )
    out = tmp_path / "out"
    compare.main(["--suite", str(suite), "--envs", "sb3_dspg/HitBandit-v0", "--workers", "1", "--out", str(out)])
    assert [p.parent.parent.name for p in out.glob("*/*/done.json")] == ["sb3_dspg_HitBandit-v0"]
    with pytest.raises(SystemExit):  # an env the suite does not have is refused, not run
        compare.main(["--suite", str(suite), "--envs", "Pendulum-v1", "--out", str(out)])


def test_goal_env_runs_with_her_and_a_suite_world_imports_its_gym_packages(tmp_path):
    pytest.importorskip("gymnasium_robotics")
    suite = tmp_path / "goal.yml"
    suite.write_text(
        "name: goal\nversion: 1\nalgos: [dspg, td3]\nseeds: [0]\ndefaults: {eval_freq: 150, eval_episodes: 2}\n"
        "worlds:\n  reach: {envs: [sb3_dspg/ActuatorFetchReach-v4], timesteps: 300,"
        " gym_packages: [sb3_dspg.experiments.robotics]}\n"
    )
    out = tmp_path / "out"
    compare.main(["--suite", str(suite), "--workers", "2", "--out", str(out)])  # workers import the package
    assert sorted(p.parent.name for p in out.glob("*/*/done.json")) == ["dspg_0", "td3_0"]
    assert "Failed runs" not in (out / "results.md").read_text()

    import gymnasium as gym
    from stable_baselines3 import HerReplayBuffer

    from sb3_dspg.experiments import robotics

    env = gym.make("sb3_dspg/ActuatorFetchReach-v4")
    env.reset(seed=0)  # gymnasium-robotics' joint-type check passes (mujoco >= 3.4 needs the module's fix)
    assert compare.goal_env_settings(env)["replay_buffer_class"] is HerReplayBuffer
    assert robotics.mujoco_utils.mujoco.mjtJoint.mjJNT_SLIDE == np.int32(2)  # what its assertion needs
    assert compare.goal_env_settings(gym.make("sb3_dspg/HitReach-v0")) == {}


def test_pretrained_dspg_variant_is_parsed_and_refused_when_malformed():
    import argparse

    assert compare.parse_algo("dspg-pretrain=500") == ("dspg", 500) and compare.parse_algo("sac") == ("sac", 0)
    for bad in ("td3-pretrain=500", "dspg-pretrain=0", "dspg-pretrain=x", "ppo"):
        with pytest.raises(argparse.ArgumentTypeError, match="algo: one of"):
            compare.parse_algo(bad)


def test_variant_settings_go_over_the_grid_and_are_recorded(tmp_path):
    import argparse

    arch = '{"net_arch": {"pi": [8], "qf": [8], "denoiser": [4], "grad_head": [4]}}'
    name, kwargs = compare.parse_variant('dspg-lean={"antithetic": false, "policy_kwargs": ' + arch + "}")
    assert name == "dspg-lean" and kwargs["antithetic"] is False
    variants = {name: kwargs}
    assert compare.parse_algo("dspg-lean", variants) == ("dspg", 0)
    # untuned grid (no entry for InvertedPendulum): UNTUNED with the variant's keys over it
    hyperparams, regime = compare.grid_hyperparams("dspg-lean", "InvertedPendulum-v5", (1,), ["dspg-lean", "td3"], variants)
    assert regime == "untuned" and hyperparams == {"antithetic": False, "policy_kwargs": kwargs["policy_kwargs"]}
    # a net_arch dict naming only DSPG's networks keeps the grid's actor and critic
    small = {"policy_kwargs": {"net_arch": {"denoiser": [4]}}}
    merged, _ = compare.grid_hyperparams("dspg-s", "Pendulum-v1", (1,), ["dspg-s", "td3"], {"dspg-s": small})
    zoo_arch = [400, 300]  # dspg.yml's Pendulum-v1 entry
    assert merged["policy_kwargs"]["net_arch"] == {"pi": zoo_arch, "qf": zoo_arch, "denoiser": [4], "grad_head": zoo_arch}
    # tuned grid: the variant's keys replace the tuned ones, the others stay
    tuned, _ = compare.grid_hyperparams("dspg", "Pendulum-v1", (1,), ["dspg", "td3"])
    hyperparams, regime = compare.grid_hyperparams("dspg-lean", "Pendulum-v1", (1,), ["dspg-lean", "td3"], variants)
    assert regime == "tuned" and hyperparams["antithetic"] is False
    assert {k: v for k, v in hyperparams.items() if k not in kwargs} == {k: v for k, v in tuned.items() if k not in kwargs}
    # rl-zoo3's noise keys give the action noise, shaped like the action space
    noisy = {"td3-explore": {"noise_type": "normal", "noise_std": 0.1}}
    hyperparams, _ = compare.grid_hyperparams("td3-explore", "InvertedPendulum-v5", (2,), ["td3-explore", "td3"], noisy)
    assert hyperparams["action_noise"]._sigma.tolist() == [0.1, 0.1] and "noise_std" not in hyperparams
    for bad in ("dspg={}", "ppo-x={}", "dspg-x=[1]", "dspg-x={nope", "dspg-pretrain=5={}"):
        with pytest.raises(argparse.ArgumentTypeError, match="variant"):
            compare.parse_variant(bad)
    with pytest.raises(SystemExit):  # an algo that is neither known nor a given variant
        compare.main(["--algos", "dspg-lean", "--out", str(tmp_path)])

    compare.main(["--algos", "dspg-small", "--variant", 'dspg-small={"policy_kwargs": ' + arch + "}",
                  "--envs", "sb3_dspg/NoisyBandit-v0", "--seeds", "0", "--timesteps", "150", "--eval-freq", "150",
                  "--eval-episodes", "2", "--workers", "1", "--out", str(tmp_path)])  # fmt: skip
    done = json.loads(next(tmp_path.glob("*/dspg-small_0/done.json")).read_text())
    assert done["variant"]["policy_kwargs"]["net_arch"]["denoiser"] == [4]
    # the settings the run was made with, read back from the model (library defaults too), the per-run ones left out
    settings = done["settings"]
    assert settings["policy_kwargs"]["net_arch"]["denoiser"] == [4] and settings["critic_grad_weight"] == 0.1
    assert settings["train_freq"] == [1, "step"] and not {"seed", "env", "tensorboard_log"} & set(settings)


def test_report_warns_when_an_algorithms_runs_differ_in_their_settings(tmp_path):
    def fake_run(algo: str, seed: int, settings: dict | None) -> None:
        run = tmp_path / "w" / f"{algo}_{seed}"
        run.mkdir(parents=True)
        np.savez(run / "evaluations.npz", timesteps=np.array([100, 200]), results=np.array([[0.0], [1.0]]))
        record = dict(algo=algo, seed=seed, **({"settings": settings} if settings is not None else {}))
        (run / "done.json").write_text(json.dumps(record))

    fake_run("dspg", 0, {"critic_grad_weight": 0.0, "gamma": 0.99})  # made before a default changed ...
    fake_run("dspg", 1, {"critic_grad_weight": 0.1, "gamma": 0.99})  # ... and after
    fake_run("dspg", 2, None)  # before done.json recorded settings: cannot tell, left out
    fake_run("td3", 0, {"gamma": 0.99})
    fake_run("td3", 1, {"gamma": 0.99})
    algos, seeds = ["dspg", "td3"], [0, 1, 2]
    assert compare.mixed_settings(tmp_path, "w", algos, seeds) == {"dspg": {"critic_grad_weight": [0.0, 0.1]}}
    text = compare.report(tmp_path, ["w"], algos, seeds, "cmd")
    assert "**Warning: dspg's runs differ in their settings** (`critic_grad_weight`: 0.0 / 0.1)" in text
    assert "td3's runs differ" not in text
    assert "differ in their settings" not in compare.report(tmp_path, ["w"], algos, [1, 2], "cmd")


def test_an_option_older_runs_do_not_record_is_no_difference_at_its_default(tmp_path):
    def fake_run(algo: str, seed: int, settings: dict) -> None:
        run = tmp_path / "w" / f"{algo}_{seed}"
        run.mkdir(parents=True)
        np.savez(run / "evaluations.npz", timesteps=np.array([100, 200]), results=np.array([[0.0], [1.0]]))
        (run / "done.json").write_text(json.dumps(dict(algo=algo, seed=seed, settings=settings)))

    default = compare.constructor_defaults("dspg-x")["outcome"]
    assert default == "transition" and compare.constructor_defaults("td3")["policy_delay"] == 2
    fake_run("dspg-x", 0, {"gamma": 0.99})  # made before DSPG had `outcome` ...
    fake_run("dspg-x", 1, {"gamma": 0.99, "outcome": default})  # ... and after, at its default: same behaviour
    fake_run("dspg-y", 0, {"gamma": 0.99})
    fake_run("dspg-y", 1, {"gamma": 0.99, "outcome": "return"})  # a value the older runs could not have had
    algos, seeds = ["dspg-x", "dspg-y"], [0, 1]
    assert compare.mixed_settings(tmp_path, "w", algos, seeds) == {"dspg-y": {"outcome": ["(not recorded)", "return"]}}
    assert compare.unrecorded_defaults(tmp_path, "w", algos, seeds) == {"dspg-x": {"outcome": "transition"}}
    text = compare.report(tmp_path, ["w"], algos, seeds, "cmd")
    assert "dspg-x's runs differ" not in text and 'Note: some of dspg-x\'s runs predate `outcome` ("transition")' in text
    assert '**Warning: dspg-y\'s runs differ in their settings** (`outcome`: "(not recorded)" / "return")' in text


def test_report_warns_when_a_world_mixes_tuning_regimes_and_keeps_hand_written_notes(tmp_path):
    def fake_run(algo: str, seed: int, regime: str) -> None:
        run = tmp_path / "Pendulum-v1" / f"{algo}_{seed}"
        run.mkdir(parents=True)
        np.savez(run / "evaluations.npz", timesteps=np.array([100, 200]), results=np.full((2, 3), -100.0 - seed))
        (run / "done.json").write_text(json.dumps(dict(algo=algo, seed=seed, hyperparams=regime, final_return=-100.0)))

    for seed in (0, 1):
        fake_run("dspg", seed, "untuned")  # e.g. linked in from another grid
        fake_run("td3", seed, "untuned")
        fake_run("dspg-pretrain=10", seed, "tuned")
    text = compare.report(tmp_path, ["Pendulum-v1"], ["dspg", "td3", "dspg-pretrain=10"], [0, 1], "cmd")
    assert "mixed tuning regimes** (dspg: untuned, td3: untuned, dspg-pretrain=10: tuned)" in text
    text = compare.report(tmp_path, ["Pendulum-v1"], ["dspg", "td3"], [0, 1], "cmd")
    assert "mixed tuning regimes" not in text

    # ... and a grid that would add runs of another regime to that world is refused before it runs anything
    (conflict,) = compare.regime_conflicts(tmp_path, ["Pendulum-v1"], ["dspg", "td3"])  # both tuned on Pendulum-v1
    assert "would be tuned" in conflict and "dspg_0: untuned" in conflict and "dspg-pretrain=10_0" not in conflict
    with pytest.raises(SystemExit):
        compare.main(["--algos", "dspg", "td3", "--envs", "Pendulum-v1", "--seeds", "2", "--out", str(tmp_path)])
    assert not (tmp_path / "Pendulum-v1" / "dspg_2").exists()

    # a hand-written plan at the end of results.md survives the rewrite; the generated part is replaced
    results = tmp_path / "results.md"
    notes = f"{compare.NOTES_HEADING}\n\nBudget: 4 runs. Reading: a tie.\n"
    results.write_text(results.read_text() + "\n" + notes)
    text = compare.report(tmp_path, ["Pendulum-v1"], ["dspg", "td3", "dspg-pretrain=10"], [0, 1], "cmd 2")
    written = results.read_text()
    assert written.startswith(text) and written.endswith(notes) and written.count(compare.NOTES_HEADING) == 1
    assert "cmd 2" in written and "Warning: mixed tuning regimes" in written

    # a DSPG variant as the reference: its own report file, its probabilities of improvement, DSPG not a peer
    text = compare.report(
        tmp_path, ["Pendulum-v1"], ["dspg", "td3", "dspg-pretrain=10"], [0, 1], "cmd", reference="dspg-pretrain=10"
    )
    assert (tmp_path / "results_dspg-pretrain=10.md").read_text() == text and (tmp_path / "results.md").read_text() == written
    assert "## Where dspg-pretrain=10 stands" in text and "| Pendulum-v1 | -100.5 [-101, -100] | td3 " in text
    assert "| dspg | 2 |" in text and "P(dspg-pretrain=10 > algo), final" in text
    for bad in ("td3", "dspg-other"):
        with pytest.raises(SystemExit):
            compare.main(["--algos", "dspg", "td3", "--reference", bad, "--out", str(tmp_path), "--report-only"])


def test_report_measures_each_dspg_option_against_dspg(tmp_path):
    def fake_run(world: str, algo: str, seed: int, final: float, variant: dict | None = None) -> None:
        run = tmp_path / world / f"{algo}_{seed}"
        run.mkdir(parents=True)
        np.savez(run / "evaluations.npz", timesteps=np.array([100, 200]), results=np.array([[0.0], [final]]))
        (run / "done.json").write_text(json.dumps(dict(algo=algo, seed=seed, **({"variant": variant} if variant else {}))))

    for seed in range(3):
        fake_run("w", "dspg", seed, 1.0 + seed)
        fake_run("w", "td3", seed, 0.0)
        fake_run("w", "dspg-better", seed, 10.0 + seed, {"centre_advantage": True})  # beats DSPG on every seed
        fake_run("v", "dspg-better", seed, 1.0)  # DSPG did not run here: nothing to measure against
    algos, seeds = ["dspg", "td3", "dspg-better"], [0, 1, 2]
    text = compare.report(tmp_path, ["w", "v"], algos, seeds, "cmd")
    section = text.split("## DSPG's options against DSPG")[1].split("\n## ")[0]
    (row,) = [line for line in section.splitlines() if line.startswith("| ")][1:]  # past the header
    assert row.startswith("| w | dspg-better | 3 | 11 [10, 12] | 1.00 [1.00, 1.00] |")
    assert '`dspg-better` = `{"centre_advantage": true}`' in section and "| td3 |" not in section
    # the option's P against DSPG is the complement of DSPG's against it (ties count half on both sides)
    scores = compare.final_scores(compare.collect(tmp_path, ["w"], algos, seeds), "w", algos)
    scores["dspg-better"][0] = 2.0  # one tie with DSPG's seed 1, one loss to its seed 2
    forward = compare.improvement_probabilities(scores, "dspg")["dspg-better"][0]
    backward = compare.improvement_probabilities({k: scores[k] for k in ("dspg-better", "dspg")}, "dspg-better")["dspg"][0]
    assert forward + backward == pytest.approx(1.0) and 0 < backward < 1
    # no option ran beside DSPG: no section
    assert "DSPG's options" not in compare.report(tmp_path, ["w"], ["dspg", "td3"], seeds, "cmd")


def test_summary_gives_the_ratio_to_the_best_peer_and_the_weakest_pairing(tmp_path):
    def fake_run(world: str, algo: str, seed: int, final: float) -> None:
        run = tmp_path / world / f"{algo}_{seed}"
        run.mkdir(parents=True)
        np.savez(run / "evaluations.npz", timesteps=np.array([100, 200]), results=np.array([[0.0], [final]]))
        (run / "done.json").write_text(json.dumps(dict(algo=algo, seed=seed)))

    for seed, (ours, sac) in enumerate([(2.0, 0.0), (3.0, 0.0), (4.0, 3.5)]):
        fake_run("w", "dspg", seed, ours)
        fake_run("w", "td3", seed, 1.5)  # the best peer's IQM (1.5 > SAC's 1.17), beaten on every pairing
        fake_run("w", "sac", seed, sac)  # beats two of DSPG's seeds once: P(DSPG > SAC) = 7/9
        fake_run("neg", "dspg", seed, -ours)
        fake_run("neg", "td3", seed, -1.5)
    text = compare.report(tmp_path, ["w", "neg"], ["dspg", "td3", "sac"], [0, 1, 2], "cmd")
    rows = [line for line in text.split("## Where DSPG stands")[1].split("\n## ")[0].splitlines() if line.startswith("| ")]
    assert rows[0].split(" | ")[3:] == ["DSPG ÷ best peer, final IQM", "P(DSPG > best peer), final",
                                        "P(DSPG > best peer), learning-curve mean", "lowest P(DSPG > peer), final",
                                        "DSPG seeds |"]  # fmt: skip
    w, neg = rows[1].split(" | "), rows[2].split(" | ")
    assert w[2].startswith("td3 1.5") and w[3] == "2.00×" and w[4].startswith("1.00") and w[6] == "0.78 (sac)"
    assert neg[2].startswith("td3 -1.5") and neg[3] == "-" and neg[6] == "0.00 (td3)"  # no ratio of negative returns


def test_probability_of_improvement_equals_rliables():
    from rliable import metrics

    rng = np.random.default_rng(0)
    for n_x, n_y, n_tasks in ((5, 5, 1), (10, 3, 2), (4, 7, 3)):
        x, y = rng.integers(0, 4, (n_x, n_tasks)) / 2, rng.integers(0, 4, (n_y, n_tasks)) / 2  # many ties
        assert compare.probability_of_improvement(x, y) == metrics.probability_of_improvement(x, y)
        assert compare.probability_of_improvement(x, y) + compare.probability_of_improvement(y, x) == pytest.approx(1.0)
    same = rng.normal(size=(5, 1))
    assert compare.probability_of_improvement(same, same) == 0.5 == metrics.probability_of_improvement(same, same)
    assert compare.probability_of_improvement(same + 10, same) == 1.0


def test_every_algorithm_of_a_report_gets_its_own_colour():
    from matplotlib.colors import to_rgba

    for n_algos in (3, 10, 13, 20):
        colours = {to_rgba(compare.algo_colour(i, n_algos)) for i in range(n_algos)}
        assert len(colours) == n_algos
    assert compare.algo_colour(2, 10) == "C2"  # up to ten, Matplotlib's default cycle as before


def test_learning_curve_mean_separates_algorithms_at_the_same_ceiling():
    import pandas as pd

    # both end at 1000 on every seed; "fast" gets there one evaluation earlier
    rows = [dict(env="w", algo=algo, seed=seed, timesteps=t, mean_return=1000.0 if t >= start else 0.0)
            for algo, start in (("dspg", 2000), ("slow", 3000)) for seed in range(5) for t in (1000, 2000, 3000)]  # fmt: skip
    df = pd.DataFrame(rows)
    final, curves = compare.final_scores(df, "w", ["dspg", "slow"]), compare.curve_means(df, "w", ["dspg", "slow"])
    assert compare.improvement_probabilities(final, "dspg")["slow"][0] == 0.5  # a tie at the ceiling
    assert curves["dspg"].ravel().tolist() == [2000 / 3] * 5 and curves["slow"].ravel().tolist() == [1000 / 3] * 5
    assert compare.improvement_probabilities(curves, "dspg")["slow"][0] == 1.0


def test_best_peer_at_a_shared_ceiling_is_the_fastest(tmp_path):
    # two peers end at DSPG's ceiling; the summary compares DSPG with the one that got there first
    for algo, start in (("dspg", 2000), ("slow", 3000), ("fast", 1000)):
        for seed in range(2):
            run = tmp_path / "w" / f"{algo}_{seed}"
            run.mkdir(parents=True)
            steps = np.array([1000, 2000, 3000])
            np.savez(run / "evaluations.npz", timesteps=steps, results=np.where(steps >= start, 1000.0, 0.0)[:, None])
            (run / "done.json").write_text("{}")
    text = compare.report(tmp_path, ["w"], ["dspg", "slow", "fast"], [0, 1], "cmd")
    summary = next(line for line in text.splitlines() if line.startswith("| w |"))
    assert "| fast 1000" in summary


def test_bootstrap_cis_are_reproducible_and_do_not_depend_on_the_other_algorithms():
    rng = np.random.default_rng(0)
    scores = {algo: rng.normal(loc, 1.0, size=(5, 1)) for algo, loc in (("dspg", 1.0), ("td3", 0.0), ("sac", 0.5))}
    first, again = compare.interval_estimates(scores), compare.interval_estimates(scores)
    alone = compare.interval_estimates({"td3": scores["td3"]})
    for algo in scores:
        np.testing.assert_array_equal(first[1][algo], again[1][algo])
    np.testing.assert_array_equal(first[1]["td3"], alone[1]["td3"])
    assert first[1]["dspg"][0, 0] < first[0]["dspg"][0] < first[1]["dspg"][1, 0]  # a real interval around the IQM
    probs = compare.improvement_probabilities(scores, "dspg")
    np.testing.assert_array_equal(probs["td3"], compare.improvement_probabilities(scores, "dspg")["td3"])
    pair = {algo: scores[algo] for algo in ("dspg", "td3")}
    np.testing.assert_array_equal(probs["td3"], compare.improvement_probabilities(pair, "dspg")["td3"])


def test_a_partial_call_reports_every_run_under_out(tmp_path):
    def fake_run(spec: str, algo: str, seed: int, final: float, record: str = "done.json") -> None:
        run = tmp_path / compare.slug(spec) / f"{algo}_{seed}"
        run.mkdir(parents=True)
        np.savez(run / "evaluations.npz", timesteps=np.array([100, 200]), results=np.full((2, 3), final))
        (run / record).write_text(json.dumps(dict(env=spec, algo=algo, seed=seed, final_return=final, error="Boom")))

    # runs made by earlier calls: two worlds of the suite (listed after hit_bandit in it), a variant, a failure
    for seed in (0, 1):
        fake_run("Hopper-v5", "dspg", seed, 900.0 + seed)
        fake_run("Hopper-v5", "td3", seed, 800.0)
        fake_run("sb3_dspg/HitReach-v0", "dspg", seed, 2.0)
        fake_run("sb3_dspg/HitReach-v0", "td3-explore", seed, 1.9)
        fake_run("sb3_dspg/HitBandit-v0", "dspg", seed, 0.2)
        fake_run("Hopper-v5", "dspg-crossq", seed, 950.0)
    fake_run("Hopper-v5", "dspg", 7, 0.0, record="failed.json")
    compare.main(["--suite", "noisy", "--worlds", "hit_bandit", "--algos", "dspg", "--seeds", "0", "--out", str(tmp_path),
                  "--report-only"])  # fmt: skip
    text = (tmp_path / "results.md").read_text()
    sections = [line for line in text.splitlines() if line.startswith("## ") and "-v" in line]
    assert sections == ["## sb3_dspg/HitReach-v0", "## Hopper-v5", "## sb3_dspg/HitBandit-v0"]  # the suite's order
    assert "| td3-explore | 2 |" in text and "| dspg | 2 | 900.5" in text  # other algorithms and seeds too
    assert "| Hopper-v5 | dspg | 7 | `Boom` |" in text  # a failed run of an earlier call is reported, not dropped
    assert "dspg_7" not in {p.parent.name for p in tmp_path.glob("*/*/done.json")}
    # another partial call writes the same report: the suite's env order, one fixed algorithm order (rows, colours)
    csv = (tmp_path / "evaluations.csv").read_text()
    compare.main(["--suite", "noisy", "--worlds", "hopper", "--algos", "td3", "--seeds", "1", "--out",
                  str(tmp_path), "--report-only"])  # fmt: skip
    assert (tmp_path / "evaluations.csv").read_text() == csv
    again = (tmp_path / "results.md").read_text()
    assert again.split("\n", 3)[3] == text.split("\n", 3)[3]  # all but the header and the command line
    per_world = again[again.index("## sb3_dspg/HitReach-v0") :]  # past the summary and the options table
    assert [line.split(" |")[0] for line in per_world.splitlines() if line.startswith("| ") and " | 2 | " in line][:4] == [
        "| dspg",
        "| td3-explore",
        "| dspg",
        "| dspg-crossq",
    ]  # HitReach: dspg, td3-explore; Hopper: dspg, dspg-crossq, td3
    # an algorithm found under --out can be the reference; one that is nowhere cannot
    compare.main(
        ["--envs", "Hopper-v5", "--algos", "td3", "--out", str(tmp_path), "--report-only", "--reference", "dspg-crossq"]
    )
    assert "| Hopper-v5 | 950 [950, 950] | td3 800 [800, 800] |" in (tmp_path / "results_dspg-crossq.md").read_text()
    with pytest.raises(SystemExit):
        compare.main(
            ["--envs", "Hopper-v5", "--algos", "td3", "--out", str(tmp_path), "--report-only", "--reference", "dspg-x"]
        )
    with pytest.raises(SystemExit):  # refused before anything is written
        compare.main(["--envs", "Hopper-v5", "--out", str(tmp_path / "new"), "--reference", "dspg-x"])
    assert not (tmp_path / "new").exists()


def test_performance_profile_bands_are_reproducible(tmp_path):
    rng = np.random.default_rng(0)
    scores = {algo: rng.uniform(size=(5, 3)) for algo in ("dspg", "td3")}
    for seed, name in ((1, "first.png"), (2, "second.png")):
        np.random.seed(seed)  # rliable's bootstrap draws from the global generator
        compare.plot_performance_profile(scores, tmp_path / name)
    assert (tmp_path / "first.png").read_bytes() == (tmp_path / "second.png").read_bytes()


def test_performance_profile_covers_only_worlds_where_every_algorithm_ran_every_seed(tmp_path, monkeypatch):
    profiled = {}
    monkeypatch.setattr(compare, "plot_performance_profile", lambda scores, path: profiled.update(scores))
    # a: every algorithm 2 seeds (dspg best); b: td3 seed 1 missing, an extra dspg seed; c: sac only; d: a tie
    finals = {("a", "dspg"): [3.0, 5.0], ("a", "td3"): [1.0, 2.0], ("a", "sac"): [4.0, 1.0],
              ("b", "dspg"): [0.0, 1.0, 9.0], ("b", "td3"): [2.0], ("b", "sac"): [1.0, 1.0],
              ("c", "sac"): [7.0, 7.0], ("d", "dspg"): [1.0, 1.0], ("d", "td3"): [1.0, 1.0], ("d", "sac"): [1.0, 1.0],
              ("e", "dspg"): [10.0, 20.0], ("e", "td3"): [30.0, 20.0], ("e", "sac"): [0.0, 40.0]}  # fmt: skip
    for (env, algo), returns in finals.items():
        for seed, final in enumerate(returns):
            run = tmp_path / env / f"{algo}_{seed}"
            run.mkdir(parents=True)
            np.savez(run / "evaluations.npz", timesteps=np.array([100, 200]), results=np.array([[-50.0], [final]]))
            (run / "done.json").write_text(json.dumps(dict(env=env, algo=algo, seed=seed, final_return=final)))
    report = compare.report(tmp_path, list("abcdef"), ["dspg", "td3", "sac"], [0, 1, 2], "cmd", profile_seeds=[0, 1])
    # only a and e: b lacks td3's seed 1 (dspg's extra seed 2 is not a profile seed), c has no dspg or td3, d no spread
    assert "over the 2 worlds" in report and "`a`, `e`" in report
    assert "`b` (td3: seed 1 missing)" in report and "`c` (dspg: no run; td3: no run)" in report
    assert "`d` (every run ends at 1)" in report and "`f` (no run of these algorithms)" in report
    # aggregated over a and e: P(DSPG > td3) is the mean of the per-world shares of won pairs, (4/4 + 0.5/4) / 2
    table = report[report.index("| algo | normalised final IQM") :].splitlines()
    row = next(line for line in table if line.startswith("| td3 | "))
    assert row.split("|")[3].split()[0] == f"{(1.0 + 0.5 / 4) / 2:.2f}"
    # min-max per world over the profile's runs, seeds in order: a spans 1..5, e spans 0..40
    np.testing.assert_allclose(profiled["dspg"], [[0.5, 0.25], [1.0, 0.5]])
    np.testing.assert_allclose(profiled["sac"], [[0.75, 0.0], [0.0, 1.0]])
    # a profile of fewer algorithms (as a suite's `profile` names them) takes in the worlds they share
    profiled.clear()
    report = compare.report(tmp_path, list("abcde"), ["dspg", "td3", "sac"], [0, 1, 2], "cmd", profile=["sac", "td3"],
                            profile_seeds=[0])  # fmt: skip
    assert set(profiled) == {"sac", "td3"} and "sac, td3, seeds 0, over the 3 worlds" in report  # a, b, e
    np.testing.assert_allclose(profiled["td3"], [[0.0, 1.0, 1.0]])


def test_performance_profile_scores_the_first_stand_in_that_ran_every_seed(tmp_path, monkeypatch):
    profiled = {}
    monkeypatch.setattr(compare, "plot_performance_profile", lambda scores, path: profiled.update(scores))
    # a: td3-explore and td3 both ran (the first is scored); b: td3 only (its stand-in); c: td3-explore 1 seed, td3 none
    finals = {("a", "dspg"): [1.0, 3.0], ("a", "td3-explore"): [2.0, 5.0], ("a", "td3"): [100.0, 100.0],
              ("b", "dspg"): [4.0, 0.0], ("b", "td3"): [2.0, 2.0],
              ("c", "dspg"): [1.0, 2.0], ("c", "td3-explore"): [3.0]}  # fmt: skip
    for (env, algo), returns in finals.items():
        for seed, final in enumerate(returns):
            run = tmp_path / env / f"{algo}_{seed}"
            run.mkdir(parents=True)
            np.savez(run / "evaluations.npz", timesteps=np.array([100]), results=np.array([[final]]))
            (run / "done.json").write_text(json.dumps(dict(env=env, algo=algo, seed=seed, final_return=final)))
    report = compare.report(tmp_path, list("abc"), ["dspg", "td3", "td3-explore"], [0, 1], "cmd",
                            profile=["dspg", "td3-explore|td3"])  # fmt: skip
    assert "over the 2 worlds" in report and "`a`, `b`" in report
    assert "Stand-ins scored: `b` (td3 for td3-explore|td3)." in report  # a scored its first choice: not listed
    assert "`c` (td3-explore: seed 1 missing)" in report  # the stand-in closest to complete is named
    assert "\n| td3-explore\\|td3 | " in report  # escaped, so the table keeps its columns
    # a: min-max over dspg and td3-explore only (td3's 100 is not a profile run): 1..5; b: 0..4
    np.testing.assert_allclose(profiled["dspg"], [[0.0, 1.0], [0.5, 0.0]])
    np.testing.assert_allclose(profiled["td3-explore|td3"], [[0.25, 0.5], [1.0, 0.5]])


def test_performance_profile_legend_names_each_algorithms_line(tmp_path, monkeypatch):
    import matplotlib.figure

    saved = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda fig, *args, **kwargs: saved.append(fig))
    scores = {algo: np.random.default_rng(i).uniform(size=(5, 3)) for i, algo in enumerate(("dspg", "td3", "sac"))}
    compare.plot_performance_profile(scores, tmp_path / "profile.png")
    ax = saved[0].axes[0]
    legend = ax.get_legend()
    labels = [text.get_text() for text in legend.get_texts()]
    colours = [handle.get_color() for handle in legend.legend_handles]
    # the axes hold lines and CI bands; each label must carry its own line's colour, not a band's
    assert labels == list(scores)
    assert colours == [line.get_color() for line in ax.lines[: len(scores)]] == ["C0", "C1", "C2"]


def test_two_worlds_sweeping_one_parameter_get_a_plot_each(tmp_path, monkeypatch):
    plotted = {}
    monkeypatch.setattr(
        compare, "plot_sweep", lambda df, specs, algos, param, path, title="": plotted.update({path.name: specs})
    )
    for spec in ("sb3_dspg/HitBandit-v0:noise_scale=0.45", "sb3_dspg/HitReach-v0:noise_scale=0.9"):
        run = tmp_path / compare.slug(spec) / "dspg_0"
        run.mkdir(parents=True)
        np.savez(run / "evaluations.npz", timesteps=np.array([100]), results=np.full((1, 3), 0.5))
        (run / "done.json").write_text(json.dumps(dict(env=spec, algo="dspg", seed=0, final_return=0.5)))
    compare.main(["--suite", "noisy", "--worlds", "hit_bandit_spread", "--algos", "dspg", "--out", str(tmp_path),
                  "--report-only"])  # fmt: skip
    # both sweep noise_scale; each plot holds its own world's envs, never the other's
    assert plotted["sweep_hit_bandit_spread.png"] == [
        "sb3_dspg/HitBandit-v0:noise_scale=0.15",
        "sb3_dspg/HitBandit-v0",
        "sb3_dspg/HitBandit-v0:noise_scale=0.45",
    ]
    assert plotted["sweep_hit_reach_spread.png"] == [
        "sb3_dspg/HitReach-v0",
        "sb3_dspg/HitReach-v0:noise_scale=0.9",
        "sb3_dspg/HitReach-v0:noise_scale=1.2",
    ]
    assert "![hit_reach_spread](sweep_hit_reach_spread.png)" in (tmp_path / "results.md").read_text()
