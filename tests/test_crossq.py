"""DSPG on CrossQ's critic (``critic_type="crossq"``): the critic, its return signal, its statistics, save/load."""

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from sb3_contrib.common.torch_layers import BatchRenorm1d
from sb3_contrib.crossq.policies import CrossQCritic

from sb3_dspg import DSPG, crossq

TINY = dict(policy_kwargs=dict(net_arch=[16, 16]), learning_starts=50, batch_size=32)


def renorm_layers(model: DSPG) -> list[BatchRenorm1d]:
    return [module for module in model.critic.modules() if isinstance(module, BatchRenorm1d)]


def test_builds_crossq_critic_with_crossq_optimizers_and_keeps_user_betas():
    kwargs = copy.deepcopy(TINY)
    model = DSPG("MlpPolicy", "Pendulum-v1", critic_type="crossq", **kwargs)
    assert kwargs == TINY  # the caller's policy_kwargs are not written into
    assert isinstance(model.critic, CrossQCritic) and renorm_layers(model)
    assert model.actor.optimizer.defaults["betas"] == model.critic.optimizer.defaults["betas"] == crossq.ADAM_BETAS
    assert model.denoiser.optimizer.defaults["betas"] == (0.9, 0.999)  # DSPG's own networks keep Adam's defaults
    user = DSPG("MlpPolicy", "Pendulum-v1", critic_type="crossq", policy_kwargs=dict(optimizer_kwargs={"betas": (0.8, 0.9)}))
    assert user.critic.optimizer.defaults["betas"] == (0.8, 0.9)
    assert not any(isinstance(m, BatchRenorm1d) for m in DSPG("MlpPolicy", "Pendulum-v1", **TINY).critic.modules())


def test_return_signal_is_the_current_critics_under_joint_statistics():
    model = DSPG("MlpPolicy", "Pendulum-v1", critic_type="crossq", n_steps=3, gamma=0.9, seed=0, **TINY)
    model.learn(200)
    data = model.replay_buffer.sample(32, env=None)
    critic = copy.deepcopy(model.critic)
    th.manual_seed(0)
    _, returns = crossq.critic_loss_and_returns(model.critic, model.actor, data, 0.9, 0.2, 0.5)
    th.manual_seed(0)
    noise = data.actions.clone().normal_(0, 0.2).clamp(-0.5, 0.5)
    with th.no_grad():
        next_actions = (model.actor(data.next_observations) + noise).clamp(-1, 1)
        critic.set_bn_training_mode(True)  # statistics of the 64 rows [(s, a); (s′, a′)] together
        joint = th.cat(critic(th.cat([data.observations, data.next_observations]), th.cat([data.actions, next_actions])), 1)
        next_q = joint[32:].min(dim=1, keepdim=True)[0]
        separate = th.cat(critic(data.next_observations, next_actions), 1).min(dim=1, keepdim=True)[0]
    assert th.allclose(returns, data.rewards + (1 - data.dones) * data.discounts * next_q)
    assert not th.allclose(returns, data.rewards + (1 - data.dones) * data.discounts * separate)  # the joint pass matters
    assert all(not layer.training for layer in renorm_layers(model))  # left with its running statistics


def test_statistics_move_once_per_gradient_step_and_no_target_network_is_used():
    model = DSPG("MlpPolicy", "Pendulum-v1", critic_type="crossq", policy_delay=1, seed=0, **TINY)
    targets = [p.clone() for p in (*model.critic_target.parameters(), *model.actor_target.parameters())]
    model.learn(150)
    steps = [int(layer.steps) for layer in renorm_layers(model)]
    model._cos_to_critic_grad = float("nan")  # force the diagnostics' extra critic passes into the next update
    model.train(gradient_steps=3, batch_size=32)
    # the baseline at noised actions, the diagnostics and the actor never update the statistics
    assert [int(layer.steps) for layer in renorm_layers(model)] == [n + 3 for n in steps]
    after = (*model.critic_target.parameters(), *model.actor_target.parameters())
    assert all(th.equal(a, b) for a, b in zip(targets, after, strict=True))


def test_save_load_round_trip_and_bad_critic_type(tmp_path):
    model = DSPG("MlpPolicy", "Pendulum-v1", critic_type="crossq", seed=0, **TINY)
    model.learn(200)
    model.save(tmp_path / "model")
    loaded = DSPG.load(tmp_path / "model", env=gym.make("Pendulum-v1"))
    obs = np.random.default_rng(0).uniform(-1, 1, (16, 3)).astype(np.float32)
    assert loaded.critic_type == "crossq" and isinstance(loaded.critic, CrossQCritic)
    assert np.array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
    saved, restored = model.critic.state_dict(), loaded.critic.state_dict()
    assert all(th.equal(saved[k], restored[k]) for k in saved)  # includes the renorm statistics
    loaded.learn(100, reset_num_timesteps=False)
    with pytest.raises(ValueError, match=r"critic_type must be 'td3'.*or 'crossq'"):
        DSPG("MlpPolicy", "Pendulum-v1", critic_type="sac")
    with pytest.raises(ValueError, match="critic_type: 'td3' and policy_kwargs"):
        DSPG("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(critic_type="crossq"))
