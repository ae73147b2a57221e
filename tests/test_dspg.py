"""DSPG as an algorithm: it learns, it logs every documented key, it refuses bad input."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
import yaml
from stable_baselines3.common.noise import OrnsteinUhlenbeckActionNoise

import sb3_dspg  # noqa: F401  (registers the noisy worlds)
from sb3_dspg import DSPG, NonFiniteLossError

TB_KEYS = {
    "train/denoiser_loss",
    "train/denoiser_loss_cond",
    "train/denoiser_loss_uncond",
    "train/critic_loss",
    "train/actor_loss",
    "train/saturation_penalty",
    "train/head_loss",
    "train/grad_estimate_rms",
    "train/saturated_fraction",
    "train/score_norm",
    "train/advantage_std",
    "train/grad_estimate_norm",
    "train/cos_to_critic_grad",
    "train/cos_head_to_critic_grad",
    "train/critic_grad_weight",  # the default follows a share of the critic's slope, and logs it
    "train/n_updates",
    "rollout/ep_rew_mean",
    "time/fps",
}
SMALL = dict(policy_kwargs=dict(net_arch=[64, 64]), learning_starts=100, batch_size=64)


def tensorboard_scalars(log_dir) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (run_dir,) = [p for p in log_dir.iterdir() if p.is_dir()]
    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    return set(acc.Tags()["scalars"])


def test_learns_noisy_bandit_well_past_zero_action():
    env = gym.make("sb3_dspg/NoisyBandit-v0")
    model = DSPG("MlpPolicy", env, learning_starts=500, policy_kwargs=dict(net_arch=[64, 64]), seed=0)
    model.learn(2000)
    bandit = env.unwrapped
    contexts = np.random.default_rng(1).uniform(-1, 1, (1000, bandit.context_dim))
    obs = np.concatenate([contexts, np.zeros((1000, bandit.action_dim))], axis=1).astype(np.float32)
    actions, _ = model.predict(obs, deterministic=True)
    learned = bandit.expected_reward(contexts, actions).mean()
    zero = bandit.expected_reward(contexts, np.zeros_like(actions)).mean()
    best = bandit.expected_reward(contexts, bandit.target(contexts)).mean()
    assert (learned - zero) / (best - zero) > 0.8, (learned, zero, best)


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "InvertedPendulum-v5"])
def test_learn_writes_every_tensorboard_key(env_id, tmp_path):
    model = DSPG("MlpPolicy", env_id, tensorboard_log=str(tmp_path), seed=0, **SMALL)
    model.learn(400, log_interval=1)
    if env_id == "InvertedPendulum-v5":  # short episodes end early: make sure a dump happened after training
        model.logger.dump(model.num_timesteps)
    missing = TB_KEYS - tensorboard_scalars(tmp_path)
    assert not missing, f"missing TensorBoard keys: {sorted(missing)}"


def test_default_exploration_noise_and_user_noise_kept():
    model = DSPG("MlpPolicy", "Pendulum-v1", exploration_noise=0.3, **SMALL)
    assert model.action_noise is not None
    assert np.allclose(model.action_noise._sigma, 0.3)
    user_noise = OrnsteinUhlenbeckActionNoise(np.zeros(1), 0.1 * np.ones(1))
    assert DSPG("MlpPolicy", "Pendulum-v1", action_noise=user_noise, **SMALL).action_noise is user_noise


def test_non_finite_loss_stops_before_the_weights_change(tmp_path):
    model = DSPG("MlpPolicy", "Pendulum-v1", seed=0, **SMALL)
    model.learn(200)
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    model.save(tmp_path / "before")
    # poison the buffer's rewards: the return signal, hence every loss, becomes NaN
    model.replay_buffer.rewards[: model.replay_buffer.size()] = np.nan
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at update \d+.*critic_loss=nan"):
        model.train(gradient_steps=2, batch_size=64)
    after = model.policy.state_dict()
    assert all(th.equal(before[k], after[k]) for k in before)
    reloaded = DSPG.load(tmp_path / "before")
    obs = np.zeros((1, 3), dtype=np.float32)
    assert np.array_equal(reloaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])


@pytest.mark.parametrize("centre_advantage", [False, True])
def test_centre_advantage_reaches_every_estimate_of_the_training_step(centre_advantage, monkeypatch):
    from sb3_dspg import score

    calls, estimate = [], score.action_gradient_estimate

    def spy(returns, baseline, outcome_score, centre=False):
        calls.append(centre)
        return estimate(returns, baseline, outcome_score, centre)

    monkeypatch.setattr(score, "action_gradient_estimate", spy)
    DSPG("MlpPolicy", "Pendulum-v1", seed=0, centre_advantage=centre_advantage, **SMALL).learn(150)
    assert calls and set(calls) == {centre_advantage}


@pytest.mark.parametrize("outcome", ["transition", "return"])
def test_outcome_return_conditions_the_denoiser_on_g_alone(outcome, tmp_path):
    from sb3_dspg.estimator import estimate_action_gradient

    model = DSPG("MlpPolicy", "Pendulum-v1", seed=0, outcome=outcome, **SMALL)
    model.learn(300)
    batch = model.replay_buffer.sample(64)
    returns = th.randn(64, 1)

    def outcome_score(next_obs: th.Tensor, rewards: th.Tensor, returns: th.Tensor) -> th.Tensor:
        th.manual_seed(0)  # the same noised actions every call
        est = estimate_action_gradient(model.denoiser, model.critic, model.grad_head, batch.observations, next_obs,
                                       rewards, batch.actions, returns, 0.1, 0.3, update_statistics=False)  # fmt: skip
        return est.outcome_score

    score = outcome_score(batch.next_observations, batch.rewards, returns)
    other_transition = outcome_score(batch.next_observations.flip(0), batch.rewards.flip(0), returns)
    other_return = outcome_score(batch.next_observations, batch.rewards, returns.flip(0))
    # the transition's denoiser reads (s′ − s, r) and not G; the return's reads G and nothing of (s′, r)
    assert th.equal(score, other_transition) == (outcome == "return")
    assert th.equal(score, other_return) == (outcome == "transition")
    assert model.denoiser.outcome_dim == (1 if outcome == "return" else 4)
    model.save(tmp_path / "model")
    loaded = DSPG.load(tmp_path / "model")
    assert loaded.outcome == loaded.denoiser.outcome == outcome
    obs = np.random.default_rng(0).uniform(-1, 1, (16, 3)).astype(np.float32)
    assert np.array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])


def test_save_load_round_trip_predicts_identically_and_keeps_statistics(tmp_path):
    model = DSPG("MlpPolicy", "Pendulum-v1", seed=0, denoise_sigma=0.15, cond_dropout=0.25, centre_advantage=True, **SMALL)
    model.learn(300)
    model.save(tmp_path / "model")
    loaded = DSPG.load(tmp_path / "model", env=gym.make("Pendulum-v1"))
    obs = np.random.default_rng(0).uniform(-1, 1, (16, 3)).astype(np.float32)
    assert np.array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
    assert (loaded.denoise_sigma, loaded.cond_dropout, loaded.centre_advantage) == (0.15, 0.25, True)
    saved, restored = model.policy.state_dict(), loaded.policy.state_dict()
    assert set(saved) == set(restored)
    assert all(th.equal(saved[k], restored[k]) for k in saved)  # includes outcome_norm and grad_mean_square
    assert restored["denoiser.outcome_norm.count"].min() > 0
    for name in ("actor", "critic", "denoiser", "grad_head"):
        assert getattr(loaded, name).optimizer.state_dict()["state"], f"{name} optimizer state lost"
    loaded.learn(200, reset_num_timesteps=False)  # and it continues training


def test_cli_train_saves_logs_and_evaluates(tmp_path, capsys):
    import re

    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor

    from sb3_dspg.cli import main

    hyperparams = '{"policy_kwargs": {"net_arch": [32, 32]}, "learning_starts": 200}'
    main(["train", "--env", "sb3_dspg/NoisyBandit-v0", "--timesteps", "500", "--out", str(tmp_path), "--no-progress-bar",
          "--seed", "1", "--eval-episodes", "20", "--hyperparams", hyperparams])  # fmt: skip
    printed = capsys.readouterr().out
    mean = float(re.search(r"evaluation over 20 episodes: mean return (\S+)", printed).group(1))
    # the saved model is the trained one: it reproduces the printed evaluation exactly (same seeds)
    model = DSPG.load(tmp_path / "dspg_sb3_dspg_NoisyBandit-v0_seed1.zip")
    assert model.num_timesteps == 500 and model.learning_starts == 200 and model.policy.net_arch == [32, 32]
    eval_env = Monitor(gym.make("sb3_dspg/NoisyBandit-v0"))
    eval_env.reset(seed=1 + 10_000)
    rewards, _ = evaluate_policy(model, eval_env, n_eval_episodes=20, return_episode_rewards=True)
    assert f"{np.mean(rewards):.1f}" == f"{mean:.1f}"
    assert {"train/denoiser_loss", "train/critic_loss"} <= tensorboard_scalars(tmp_path / "tb")


def test_cli_train_reads_the_shipped_hyperparameters():
    from sb3_dspg.hyperparams import DSPG_FILE, default_timesteps, tuned_hyperparams

    table = yaml.safe_load(DSPG_FILE.read_text())
    kwargs = tuned_hyperparams("dspg", "Pendulum-v1", (1,))
    assert kwargs["learning_starts"] == table["Pendulum-v1"]["learning_starts"]
    assert kwargs["policy_kwargs"] == {"net_arch": [400, 300]}
    assert default_timesteps("dspg", "Pendulum-v1", fallback=1) == table["Pendulum-v1"]["n_timesteps"]
    # noisy variants use their base env's entry; untuned envs get the same nets as every peer
    assert tuned_hyperparams("dspg", "sb3_dspg/PushPendulum-v1", (1,)) == kwargs
    assert tuned_hyperparams("dspg", "sb3_dspg/HitBandit-v0", (2,)) == {"policy_kwargs": {"net_arch": [256, 256]}}
