"""The actor's action-gradient (sb3_dspg/blend.py): the inverse-variance weight, its extremes, the twin heads."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th

from sb3_dspg import DSPG, blend, score

SMALL = dict(policy_kwargs=dict(net_arch=[32, 32]), learning_starts=100, batch_size=64)


def test_precision_weight_is_the_variance_ratio_of_the_two_means():
    gen = th.Generator().manual_seed(0)
    head = th.randn(512, 3, generator=gen)
    critic = th.randn(512, 3, generator=gen)
    # copies that differ by ±δ: ‖X_1 − X_2‖² = 4‖δ‖², so v = mean‖δ‖² exactly
    delta_head, delta_critic = 0.3 * th.ones(512, 3), 0.1 * th.ones(512, 3)
    weight = blend.precision_weight((head + delta_head, head - delta_head), (critic + delta_critic, critic - delta_critic))
    var_head, var_critic = 3 * 0.3**2, 3 * 0.1**2
    assert weight.item() == pytest.approx(var_head / (var_head + var_critic), rel=1e-6)  # 0.9: the noisier head loses
    assert blend.precision_weight((head, head), (critic, critic + delta_critic)).item() == 0.0  # exact head: no critic
    assert blend.precision_weight((head, head + delta_head), (critic, critic)).item() == 1.0  # exact critic: all critic
    assert blend.precision_weight((head, head), (critic, critic)).item() == 0.5


def test_precision_weight_recovers_the_noise_levels_of_two_noisy_estimators():
    # two independent copies of each estimator around a common truth, with noise std 0.5 and 0.25 per coordinate
    gen = th.Generator().manual_seed(1)
    truth = th.randn(20_000, 4, generator=gen)
    heads = [truth + 0.5 * th.randn(truth.shape, generator=gen) for _ in range(2)]
    critics = [truth + 0.25 * th.randn(truth.shape, generator=gen) for _ in range(2)]
    weight = blend.precision_weight(heads, critics).item()
    assert weight == pytest.approx(0.5**2 / (0.5**2 + 0.25**2), abs=0.01)  # 0.8
    blended = (1 - weight) * th.stack(heads).mean(0) + weight * th.stack(critics).mean(0)
    errors = [(x - truth).pow(2).mean().item() for x in (th.stack(heads).mean(0), th.stack(critics).mean(0), blended)]
    assert errors[2] < min(errors[:2])  # the inverse-variance blend beats both of its parts


def _model(critic_grad_weight):
    model = DSPG("MlpPolicy", "Pendulum-v1", seed=0, critic_grad_weight=critic_grad_weight, **SMALL)
    model.learn(200)
    obs = th.as_tensor(np.random.default_rng(0).uniform(-1, 1, (32, 3)), dtype=th.float32)
    actions = model.actor(obs).detach()
    return model, obs, actions, model.grad_head.features(obs).detach()


def test_critic_action_gradients_are_the_critics_slopes_and_leave_the_critic_untouched():
    model, obs, actions, _ = _model(0.0)
    model.critic.set_training_mode(True)
    before = [None if p.grad is None else p.grad.clone() for p in model.critic.parameters()]
    grads = blend.critic_action_gradients(model.critic, obs, actions)
    assert len(grads) == 2 and model.critic.training
    after = [p.grad for p in model.critic.parameters()]
    assert all((a is None and b is None) or th.equal(a, b) for a, b in zip(before, after, strict=True))
    critic, obs, actions = model.critic.double(), obs.double(), actions.double()
    grads = blend.critic_action_gradients(critic, obs, actions)
    step = 1e-6  # a central difference of each Q network along the (one) action dimension, in float64
    for index, grad in enumerate(grads):
        with th.no_grad():
            up, down = critic(obs, actions + step)[index], critic(obs, actions - step)[index]
        assert th.allclose(grad, (up - down) / (2 * step), atol=1e-6)


def test_weight_zero_is_the_head_alone_and_never_queries_the_critic(monkeypatch):
    model, obs, actions, features = _model(0.0)
    monkeypatch.setattr(blend, "critic_action_gradients", lambda *args: pytest.fail("the critic was queried"))
    head, direction, weight = blend.actor_gradient(model.grad_head, model.critic, features, obs, actions, 0.0)
    assert th.equal(direction, head) and th.equal(head, model.grad_head(features, actions)) and weight.item() == 0.0


@pytest.mark.parametrize("critic_grad_weight", [1.0, 0.25])
def test_fixed_weight_blends_the_head_with_the_mean_critic_slope_in_the_heads_units(critic_grad_weight):
    model, obs, actions, features = _model(critic_grad_weight)
    head, direction, weight = blend.actor_gradient(model.grad_head, model.critic, features, obs, actions, critic_grad_weight)
    critic = th.stack(blend.critic_action_gradients(model.critic, obs, actions)).mean(0) / model.grad_head.grad_rms()
    assert weight.item() == critic_grad_weight
    assert th.allclose(direction, (1 - critic_grad_weight) * head + critic_grad_weight * critic, atol=1e-6)


def test_auto_follows_whichever_estimator_has_identical_twins():
    model, obs, actions, features = _model("auto")
    head_net, critic = model.grad_head, model.critic
    _, _, weight = blend.actor_gradient(head_net, critic, features, obs, actions, "auto")
    assert 0 < weight.item() < 1
    saved_twin = {k: v.clone() for k, v in head_net.twin_net.state_dict().items()}
    head_net.twin_net.load_state_dict(head_net.grad_net.state_dict())  # the heads agree: their variance is 0
    head, direction, weight = blend.actor_gradient(head_net, critic, features, obs, actions, "auto")
    assert weight.item() == 0.0 and th.equal(direction, head)
    head_net.twin_net.load_state_dict(saved_twin)
    critic.qf1.load_state_dict(critic.qf0.state_dict())  # the critics agree
    head, direction, weight = blend.actor_gradient(head_net, critic, features, obs, actions, "auto")
    slope = blend.critic_action_gradients(critic, obs, actions)[0] / head_net.grad_rms()
    assert weight.item() == 1.0 and th.allclose(direction, slope)


def test_twin_heads_are_each_fitted_to_their_own_half_of_the_transitions():
    model, obs, actions, features = _model("auto")
    head = model.grad_head
    n = len(obs)  # rows i and n + i are one transition's antithetic pair
    rows_features, rows_actions = features.repeat(2, 1), actions.repeat(2, 1)
    targets = th.randn(2 * n, actions.shape[1])
    second_half = (th.arange(2 * n) % n) >= n // 2

    def grads(t):
        head.zero_grad()
        head.regression_loss(rows_features, rows_actions, t, n).backward()
        return [p.grad.clone() for p in head.grad_net.parameters()], [p.grad.clone() for p in head.twin_net.parameters()]

    first, twin = grads(targets)
    changed = targets.clone()
    changed[second_half] += 5.0  # only the second half's targets move
    first_after, twin_after = grads(changed)
    assert all(th.equal(a, b) for a, b in zip(first, first_after, strict=True))  # the first head never saw them
    assert not all(th.equal(a, b) for a, b in zip(twin, twin_after, strict=True))


def test_the_setting_reaches_training_logs_its_weight_and_survives_save_load(tmp_path, monkeypatch):
    seen, actor_gradient = [], blend.actor_gradient

    def spy(*args):
        seen.append(args[-1])
        return actor_gradient(*args)

    monkeypatch.setattr(blend, "actor_gradient", spy)
    model = DSPG("MlpPolicy", "Pendulum-v1", seed=0, critic_grad_weight="auto", **SMALL)
    model.learn(300)
    assert seen and set(seen) == {"auto"}
    assert 0 <= model.logger.name_to_value.get("train/critic_grad_weight", 0.5) <= 1
    model.save(tmp_path / "model")
    loaded = DSPG.load(tmp_path / "model", env=gym.make("Pendulum-v1"))
    obs = np.random.default_rng(0).uniform(-1, 1, (16, 3)).astype(np.float32)
    assert np.array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
    assert loaded.critic_grad_weight == "auto" and loaded.grad_head.n_heads == 2
    saved, restored = model.policy.state_dict(), loaded.policy.state_dict()
    assert set(saved) == set(restored) and all(th.equal(saved[k], restored[k]) for k in saved)
    loaded.learn(150, reset_num_timesteps=False)
    assert set(seen) == {"auto"}


def test_a_ddpg_style_actor_climbs_the_critic():
    """With ``critic_grad_weight=1`` one actor step raises the twin critics' mean value at the actor's actions."""
    model, obs, _, _ = _model(1.0)
    q_before = th.stack(model.critic(obs, model.actor(obs))).mean().item()
    actions = model.actor(obs)
    _, direction, _ = blend.actor_gradient(model.grad_head, model.critic, model.grad_head.features(obs), obs, actions, 1.0)
    for group in model.actor.optimizer.param_groups:
        group["lr"] = 1e-4
    model.actor.optimizer.zero_grad()
    score.surrogate_actor_loss(direction, actions).backward()
    model.actor.optimizer.step()
    q_after = th.stack(model.critic(obs, model.actor(obs))).mean().item()
    assert q_after > q_before
