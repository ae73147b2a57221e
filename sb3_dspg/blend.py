"""The action-gradient the actor follows: DSPG's head, the critic's ``∇_a Q̂``, or their inverse-variance blend
(``DSPG(critic_grad_weight=...)``, docs/design.md §11).

The gradient head ``H(s, a)`` and the critic's ``∇_a Q̂(s, a)`` estimate the same thing, ``∇_a E[return | s, a]``,
with errors that depend on the world: the head has the likelihood-ratio variance of ``ĝ`` and grows noisy with the
action dimension; the critic's slope is smooth where the world is not (a 0/1 hit reward) and can be far off in
size. The blend ``(1 − c)·H + c·∇_a Q̂`` weights each by its precision, ``c = v_H / (v_H + v_Q)``, where each
variance is read from the disagreement of two copies fitted to the same kind of data: the two gradient heads,
each regressed on its own half of every batch's transitions, and the twin critics (one per batch, at the actor's
actions). Its extremes are pure DSPG (``c = 0``) and a DDPG-style actor (``c = 1``).

Everything is in the head's units, ``ĝ / RMS(ĝ)``: the critic's gradient is divided by the running RMS of ``ĝ``,
so the default (``c = 0``) is exactly the head the actor followed before this option existed.
"""

from collections.abc import Sequence

import torch as th
from stable_baselines3.td3.policies import ContinuousCritic

from sb3_dspg.policies import GradientHead

#: ``critic_grad_weight`` value that sets ``c`` per batch from the two estimators' variances.
AUTO = "auto"


def critic_action_gradients(critic: ContinuousCritic, obs: th.Tensor, actions: th.Tensor) -> tuple[th.Tensor, ...]:
    """
    ``∇_a Q_i(s, a)`` of every Q network of the critic, ``(B, d)`` each.

    The critic runs in eval mode (batch-norm statistics untouched), and only the actions get a gradient: nothing
    reaches the critic's weights.

    :param critic: the twin-Q critic
    :param obs: ``s``, a batch of ``B`` observations
    :param actions: ``a``, ``(B, d)`` (detached here)
    """
    was_training = critic.training
    critic.set_training_mode(False)
    try:
        with th.enable_grad():
            points = actions.detach().requires_grad_(True)
            q_values = critic(obs, points)
            last = len(q_values) - 1
            return tuple(th.autograd.grad(q.sum(), points, retain_graph=i < last)[0] for i, q in enumerate(q_values))
    finally:
        critic.set_training_mode(was_training)


def precision_weight(head_grads: Sequence[th.Tensor], critic_grads: Sequence[th.Tensor]) -> th.Tensor:
    """
    The critic's weight ``c = v_H / (v_H + v_Q)`` in the inverse-variance blend, one scalar per batch.

    ``v = mean_s ‖X_1 − X_2‖² / 4`` is the variance of the mean of two independent copies ``X_1, X_2`` of an
    estimator (``E‖X_1 − X_2‖² = 2·tr Var X``, and the mean halves it). Both in the same units.

    :param head_grads: the two heads' outputs, ``(B, d)`` each
    :param critic_grads: the twin critics' action-gradients, ``(B, d)`` each
    :return: ``c`` in ``[0, 1]`` (``0.5`` when both variances are 0), a scalar tensor
    """
    var_head = (head_grads[0] - head_grads[1]).pow(2).sum(dim=1).mean() / 4
    var_critic = (critic_grads[0] - critic_grads[1]).pow(2).sum(dim=1).mean() / 4
    total = var_head + var_critic
    return th.where(total > 0, var_head / total.clamp_min(1e-30), th.full_like(total, 0.5))


def actor_gradient(
    grad_head: GradientHead,
    critic: ContinuousCritic,
    head_features: th.Tensor,
    obs: th.Tensor,
    actions: th.Tensor,
    critic_grad_weight: float | str,
) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
    """
    The action-gradient the actor follows at its own actions, in the head's units, under ``no_grad``.

    :param grad_head: the gradient head (two heads for ``"auto"``)
    :param critic: the twin-Q critic
    :param head_features: ``φ(s)`` of the head, ``(B, features_dim)``
    :param obs: ``s``
    :param actions: the actor's actions ``α(s)``, ``(B, d)``
    :param critic_grad_weight: ``c`` in ``[0, 1]`` (``0``: the head alone, the critic is not queried), or
        ``"auto"`` for the inverse-variance weight of :func:`precision_weight`
    :return: ``(H(s, a), (1 − c)·H + c·∇_a Q̄ / RMS(ĝ), c)``: the head (the mean of its copies), the blend and
        the weight; ``∇_a Q̄`` is the mean over the twin critics
    """
    with th.no_grad():
        head_grads = grad_head.forward_each(head_features, actions)
        head_grad = th.stack(head_grads).mean(dim=0)
    if critic_grad_weight == 0:
        return head_grad, head_grad, head_grad.new_zeros(())
    rms = grad_head.grad_rms()
    critic_grads = tuple(grad / rms for grad in critic_action_gradients(critic, obs, actions))
    critic_grad = th.stack(critic_grads).mean(dim=0)
    if critic_grad_weight == AUTO:
        weight = precision_weight(head_grads, critic_grads)
    else:
        weight = head_grad.new_tensor(float(critic_grad_weight))
    return head_grad, (1 - weight) * head_grad + weight * critic_grad, weight
