"""
DSPG on CrossQ's critic (``DSPG(critic_type="crossq")``, docs/design.md §10).

DSPG needs a critic for two things only: the return signal ``G`` that weights the score, and the baseline
``b(s, ã)``; its actor never follows ``∇_a Q``. So the critic can be swapped for a better one without touching the
estimator. CrossQ (Bhatt et al., ICLR 2024; sb3-contrib's ``CrossQ``) learns Q faster and more stably by

- putting Batch Renormalization layers in the critic (sb3-contrib's :class:`~sb3_contrib.crossq.policies.CrossQCritic`),
- dropping the target networks: ``G = r + γ(1 − d)·min_i Q_i(s′, a′)`` comes from the *current* critic, with
  ``a′ = μ(s′)`` + TD3's clipped smoothing noise from the current actor,
- evaluating ``Q(s, a)`` and ``Q(s′, a′)`` in one forward pass over the concatenated batch, so that the
  normalisation statistics are those of the mixture of both (with separate passes, ``(s′, a′)`` would be
  out of distribution for the statistics),
- Adam with ``β₁ = 0.5`` for the actor and the critic.

Everywhere else (the baseline at noised actions, the diagnostics, prediction) the critic runs with its running
statistics (batch-renorm layers in eval mode), so those passes neither change the statistics nor depend on the batch.
"""

from typing import Any

import torch as th
from sb3_contrib.crossq.policies import CrossQCritic
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from torch.nn import functional as F

from sb3_dspg.common import cat_obs, smoothed_next_actions

#: CrossQ's Adam betas for the actor and the critic
ADAM_BETAS = (0.5, 0.999)


def make_critic(critic_kwargs: dict[str, Any]) -> CrossQCritic:
    """
    sb3-contrib's batch-renormalised twin-Q critic, from the keyword arguments TD3's policy builds its critic with.

    :param critic_kwargs: ``TD3Policy.critic_kwargs`` with the features extractor filled in
    """
    return CrossQCritic(**critic_kwargs)


def critic_loss_and_returns(
    critic: CrossQCritic,
    actor: th.nn.Module,
    replay_data: ReplayBufferSamples,
    gamma: float,
    target_policy_noise: float,
    target_noise_clip: float,
) -> tuple[th.Tensor, th.Tensor]:
    """
    CrossQ's critic step with TD3's deterministic actor: one batch-renormalised pass over ``[(s, a); (s′, a′)]``.

    :param critic: the batch-renormalised twin-Q critic; its batch-renorm layers are left in eval mode
    :param actor: the current actor ``μ`` (no target network)
    :param replay_data: a batch of ``B`` transitions (``discounts`` set for n-step replay)
    :param gamma: the discount (``replay_data.discounts`` overrides it)
    :param target_policy_noise: std of the smoothing noise added to ``μ(s′)``
    :param target_noise_clip: clip of that noise
    :return: the critic loss ``Σ_i MSE(Q_i(s, a), G)`` and the return signal ``G``, ``(B, 1)``, without gradient
    """
    discounts = replay_data.discounts if replay_data.discounts is not None else gamma
    next_obs = replay_data.next_observations
    next_actions = smoothed_next_actions(actor, next_obs, replay_data.actions, target_policy_noise, target_noise_clip)
    # One pass over (s, a) and (s′, a′): the batch statistics are those of both
    all_obs = cat_obs([replay_data.observations, next_obs])
    critic.set_bn_training_mode(True)
    all_q_values = th.cat(critic(all_obs, th.cat([replay_data.actions, next_actions])), dim=1)
    critic.set_bn_training_mode(False)
    current_q_values, next_q_values = th.split(all_q_values, len(replay_data.actions), dim=0)
    with th.no_grad():
        next_q_value = th.min(next_q_values, dim=1, keepdim=True)[0]
        returns = replay_data.rewards + (1 - replay_data.dones) * discounts * next_q_value
    critic_loss = sum(F.mse_loss(current_q_values[:, i : i + 1], returns) for i in range(current_q_values.shape[1]))
    assert isinstance(critic_loss, th.Tensor)
    return critic_loss, returns
