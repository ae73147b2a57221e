"""Reward-free pretraining of the denoiser: online (``pretrain``) and offline (``pretrain_denoiser``)."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback

from sb3_dspg import DSPG

SMALL = dict(learning_starts=100, batch_size=64, policy_kwargs=dict(net_arch=[64, 64]))


def state(model) -> dict[str, th.Tensor]:
    return {k: v.clone() for k, v in model.policy.state_dict().items()}


class CountSteps(BaseCallback):
    def _on_step(self) -> bool:
        self.n_calls_seen = self.n_calls
        return True


def test_pretrain_trains_only_the_denoiser_on_reward_free_transitions_kept_apart(tmp_path):
    model = DSPG("MlpPolicy", "Pendulum-v1", seed=0, tensorboard_log=str(tmp_path), **SMALL)
    before, callback = state(model), CountSteps()
    model.pretrain(1200, callback=callback)
    after = state(model)
    changed = {key.split(".")[0] for key in before if not th.equal(before[key], after[key])}
    assert changed == {"denoiser"}  # actor, critic, gradient head and targets untouched
    assert callback.n_calls_seen == 1200 and model._n_pretrain_updates > 0
    # the reward-free transitions are in their own buffer with NaN rewards; the replay buffer is empty
    assert model.replay_buffer.size() == 0 and model.pretrain_buffer.size() == 1200
    assert np.isnan(model.pretrain_buffer.rewards[:1200]).all()
    # uniform random actions by default: std of U(-1, 1) is 1/sqrt(3)
    assert abs(model.pretrain_buffer.actions[:1200].std() - 3**-0.5) < 0.05
    # the outcome without its reward already tells the action: the conditional loss is far below the unconditional
    logged = model.logger.name_to_value
    assert logged["pretrain/denoiser_loss_cond"] < 0.5 * logged["pretrain/denoiser_loss_uncond"]
    from tests.test_dspg import tensorboard_scalars

    assert {"pretrain/denoiser_loss", "pretrain/score_norm", "pretrain/n_updates"} <= tensorboard_scalars(tmp_path)
    model.learn(200)  # then rewarded learning counts its own steps
    assert model.num_timesteps == 200 and model.replay_buffer.size() == 200


def test_pretrain_with_the_policy_explores_around_the_actor():
    model = DSPG("MlpPolicy", "Pendulum-v1", seed=0, exploration_noise=0.1, **SMALL)
    model.pretrain(300, random_actions=False)
    obs = model.pretrain_buffer.observations[:300, 0]
    actor_actions = model.predict(obs, deterministic=True)[0]  # the actor did not change during pretraining
    deviation = model.pretrain_buffer.actions[:300, 0] - actor_actions / 2.0  # Pendulum's actions are scaled by 2
    assert 0.05 < deviation.std() < 0.15


def test_pretrained_model_saved_and_loaded_trains_identically(tmp_path):
    model = DSPG("MlpPolicy", "Pendulum-v1", seed=0, **SMALL)
    model.pretrain(600)
    model.save(tmp_path / "pretrained")
    loaded = DSPG.load(tmp_path / "pretrained", env=gym.make("Pendulum-v1"))
    assert loaded._n_pretrain_updates == model._n_pretrain_updates and loaded.pretrain_buffer is None
    for m in (model, loaded):
        m.set_random_seed(7)
        m.learn(300)
    obs = np.random.default_rng(0).uniform(-1, 1, (16, 3)).astype(np.float32)
    assert np.array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
    assert all(th.equal(a, b) for a, b in zip(state(model).values(), state(loaded).values(), strict=True))


def minari_dataset(tmp_path, monkeypatch, env_id="Pendulum-v1", episodes=3):
    """A small random-policy Minari dataset, built locally with Minari's own writer (nothing is downloaded)."""
    minari = pytest.importorskip("minari")
    from minari.data_collector.episode_buffer import EpisodeBuffer

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    env = gym.make(env_id, max_episode_steps=100)
    env.action_space.seed(0)
    buffers = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=episode)
        steps = {"observations": [obs], "actions": [], "rewards": [], "terminations": [], "truncations": []}
        done = False
        while not done:
            action = env.action_space.sample()
            obs, reward, terminated, truncated, _ = env.step(action)
            for key, value in zip(steps, (obs, action, reward, terminated, truncated), strict=True):
                steps[key].append(value)
            done = terminated or truncated
        buffers.append(EpisodeBuffer(id=episode, **{key: np.array(value) for key, value in steps.items()}))
    return minari.create_dataset_from_buffers("test/pendulum-random-v0", buffer=buffers, env=env, algorithm_name="random")


def test_pretrain_denoiser_from_a_minari_dataset(tmp_path, monkeypatch):
    dataset = minari_dataset(tmp_path, monkeypatch)
    model = DSPG("MlpPolicy", "Pendulum-v1", seed=0, **SMALL)
    before = state(model)
    model.pretrain_denoiser(dataset, gradient_steps=300)
    after = state(model)
    assert {key.split(".")[0] for key in before if not th.equal(before[key], after[key])} == {"denoiser"}
    assert after["denoiser.outcome_norm.count"][:-1].min() == 300 and after["denoiser.outcome_norm.count"][-1] == 0
    model.learn(150)  # the reward column starts its own statistics with the first rewarded batch
    assert model.policy.state_dict()["denoiser.outcome_norm.count"][-1] > 0

    other = DSPG("MlpPolicy", "MountainCarContinuous-v0", **SMALL)
    with pytest.raises(ValueError, match="data: the Minari dataset's spaces do not match"):
        other.pretrain_denoiser(dataset, gradient_steps=1)


def test_pretrain_denoiser_from_a_replay_buffer_and_bad_input():
    source = DSPG("MlpPolicy", "Pendulum-v1", seed=1, **SMALL)
    source.learn(200)
    model = DSPG("MlpPolicy", "Pendulum-v1", seed=0, **SMALL)
    model.pretrain_denoiser(source.replay_buffer, gradient_steps=50)
    assert model._n_pretrain_updates == 50

    empty = ReplayBuffer(10, model.observation_space, model.action_space)
    with pytest.raises(ValueError, match="data: the replay buffer holds no transitions"):
        model.pretrain_denoiser(empty, gradient_steps=1)
    source.replay_buffer.observations[3] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        model.pretrain_denoiser(source.replay_buffer, gradient_steps=1)
    with pytest.raises(ValueError, match=r"data: expected a minari\.MinariDataset or an SB3 ReplayBuffer"):
        model.pretrain_denoiser([1, 2, 3], gradient_steps=1)
    with pytest.raises(ValueError, match="gradient_steps must be an integer >= 1"):
        model.pretrain_denoiser(empty, gradient_steps=0)
    for p in model.denoiser.eps_net.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="denoiser: its parameters are frozen"):
        model.pretrain(100)


def test_files_without_the_reward_mask_input_load_and_compute_the_same(tmp_path):
    """Models saved before the reward mask existed (0.2): the new input gets a zero column, the count is per column."""
    model = DSPG("MlpPolicy", "Pendulum-v1", seed=0, **SMALL)
    model.learn(150)
    old = state(model)
    old["denoiser.eps_net.0.weight"] = old["denoiser.eps_net.0.weight"][:, :-1]  # the 0.2 layout
    old["denoiser.outcome_norm.count"] = old["denoiser.outcome_norm.count"][0]
    fresh = DSPG("MlpPolicy", "Pendulum-v1", seed=1, **SMALL)
    fresh.policy.load_state_dict(old)
    assert th.equal(fresh.denoiser.eps_net[0].weight[:, -1], th.zeros(64))
    assert fresh.denoiser.outcome_norm.count.shape == (4,)
    features, actions, outcome = th.randn(8, 3), th.randn(8, 1), th.randn(8, 4)
    with th.no_grad():
        cond, _ = fresh.denoiser(features, actions, outcome, 0.1)
        # what the 0.2 network computed: its first layer on [φ(s), ã, log σ, o, m], then the same layers
        old_row = th.cat([features, actions, th.full((8, 1), np.log(0.1)), outcome, th.ones(8, 1)], dim=1)
        hidden = th.nn.functional.linear(old_row, old["denoiser.eps_net.0.weight"], old["denoiser.eps_net.0.bias"])
        expected = fresh.denoiser.eps_net[1:](hidden)
    assert th.allclose(cond, expected, atol=1e-6)
