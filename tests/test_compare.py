"""The comparison runner: tuned hyper-parameters are picked up, runs resume, every output is written."""

import json

import numpy as np
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


def test_tiny_comparison_writes_outputs_and_resumes(tmp_path):
    envs = ["sb3_dspg/NoisyBandit-v0:noise_scale=0.2", "sb3_dspg/NoisyBandit-v0:noise_scale=0.4"]
    args = ["--algos", "dspg", "td3", "--envs", *envs,
            "--seeds", "0", "1", "--timesteps", "200", "--eval-freq", "100", "--eval-episodes", "3", "--workers", "2",
            "--out", str(tmp_path), "--sweep-param", "noise_scale"]  # fmt: skip
    compare.main(args)
    done = sorted(tmp_path.glob("*/*/done.json"))
    assert len(done) == 8
    stamps = {p: p.stat().st_mtime_ns for p in done}
    csv = (tmp_path / "evaluations.csv").read_text().splitlines()
    assert csv[0] == "env,algo,seed,timesteps,mean_return" and len(csv) == 1 + 8 * 2
    report = (tmp_path / "results.md").read_text()
    assert "| dspg | 2 |" in report and "IQM" in report
    assert len(list(tmp_path.glob("curves_*.png"))) == 2 and (tmp_path / "sweep_noise_scale.png").exists()
    assert any(p.name.startswith("events") for p in (tmp_path.glob("*/dspg_0/tb_1/*")))  # TensorBoard per run

    compare.main(args)  # resume: nothing is run again
    assert {p: p.stat().st_mtime_ns for p in done} == stamps
    assert json.loads(done[0].read_text())["timesteps"] == 200
