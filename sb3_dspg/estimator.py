"""The DSPG step: from a batch of transitions and their return signal to the denoiser's loss and the
gradient head's regression target (docs/design.md §1). ``DSPG.train()``, the one-step worlds of the
gradient-quality benchmark and the estimator tests all call :func:`estimate_action_gradient`, so they
measure the update that ships. The equations themselves are in :mod:`sb3_dspg.score`.
"""

from typing import NamedTuple

import torch as th
from stable_baselines3.common.type_aliases import PyTorchObs
from stable_baselines3.td3.policies import ContinuousCritic

from sb3_dspg import score
from sb3_dspg.common import cat_obs
from sb3_dspg.policies import ActionDenoiser, GradientHead


class ActionGradientEstimate(NamedTuple):
    """What one DSPG step computes; ``n = 2`` rows per transition with antithetic noise, else ``1``."""

    #: ``s`` repeated to match ``ã``, ``(n·B, ...)``
    noised_obs: PyTorchObs
    #: ``ã = a + σ·η``, ``(n·B, d)``
    noised_actions: th.Tensor
    #: ``(1 − p)·loss_cond + p·loss_uncond``, differentiable w.r.t. the denoiser
    denoiser_loss: th.Tensor
    denoiser_loss_cond: th.Tensor
    denoiser_loss_uncond: th.Tensor
    #: ``∇_ã log p_σ(o | s, ã)``, ``(n·B, d)``
    outcome_score: th.Tensor
    #: ``G − b(s, ã)``, ``(n·B, 1)``
    advantage: th.Tensor
    #: ``ĝ = (G − b(s, ã))·score``, ``(n·B, d)``
    grad_estimate: th.Tensor
    #: running RMS of ``ĝ`` (a scalar)
    grad_rms: th.Tensor
    #: ``clip(ĝ, ±c·RMS) / RMS``, the gradient head's target at ``(s, ã)``, ``(n·B, d)``
    head_target: th.Tensor


class DenoisingStep(NamedTuple):
    """One pass of the denoiser over a batch; ``n = 2`` rows per transition with antithetic noise."""

    #: ``ã = a + σ·η``, ``(n·B, d)``
    noised_actions: th.Tensor
    #: the noise ``η`` each row was made with, ``(n·B, d)``
    eta: th.Tensor
    #: ``F(ã, σ, s, o)``, ``(n·B, d)``
    eps_cond: th.Tensor
    #: ``F(ã, σ, s, ∅)``, ``(n·B, d)``
    eps_uncond: th.Tensor
    #: ``(1 − p)·loss_cond + p·loss_uncond``
    loss: th.Tensor
    loss_cond: th.Tensor
    loss_uncond: th.Tensor


def denoising_step(
    denoiser: ActionDenoiser,
    obs: PyTorchObs,
    next_obs: PyTorchObs,
    rewards: th.Tensor | None,
    actions: th.Tensor,
    sigma: float,
    cond_dropout: float,
    antithetic: bool = True,
    update_statistics: bool = True,
    returns: th.Tensor | None = None,
) -> DenoisingStep:
    """
    Noise the buffer actions and run the denoiser once over the doubled (outcome / null) batch: the part of the
    DSPG step that needs no reward and no critic, shared by :func:`estimate_action_gradient` and reward-free
    pretraining (``rewards=None``: the reward slot of the outcome is masked, docs/design.md §8).

    Parameters as in :func:`estimate_action_gradient`; ``returns`` (``G``, ``(B, 1)``) only for a denoiser
    conditioned on the return.
    """
    n_noised = 2 if antithetic else 1
    noised_actions, eta = score.noise_actions(actions, sigma, antithetic)
    features, outcome = denoiser.features_and_outcome(obs, next_obs, rewards, returns)
    if update_statistics:
        denoiser.update_outcome_statistics(outcome, reward_present=rewards is not None)
    outcome = denoiser.outcome_norm(outcome)
    features, outcome = features.repeat(n_noised, 1), outcome.repeat(n_noised, 1)
    eps_cond, eps_uncond = denoiser(features, noised_actions, outcome, sigma, reward_present=rewards is not None)
    loss, loss_cond, loss_uncond = score.denoiser_loss(eps_cond, eps_uncond, eta, cond_dropout)
    return DenoisingStep(noised_actions, eta, eps_cond, eps_uncond, loss, loss_cond, loss_uncond)


def estimate_action_gradient(
    denoiser: ActionDenoiser,
    critic: ContinuousCritic,
    grad_head: GradientHead,
    obs: PyTorchObs,
    next_obs: PyTorchObs,
    rewards: th.Tensor,
    actions: th.Tensor,
    returns: th.Tensor,
    sigma: float,
    cond_dropout: float,
    antithetic: bool = True,
    grad_clip: float = 3.0,
    update_statistics: bool = True,
    centre_advantage: bool = False,
) -> ActionGradientEstimate:
    """
    Noise the buffer actions, run the denoiser once over the doubled (outcome / null) batch, and turn
    the difference of its two noise predictions into ``ĝ = (G − b(s, ã))·score(ã, s, o)``, with the
    critic's ``min_i Q_i(s, ã)`` at the *noised* action as the baseline (docs/design.md §1.4–1.5).

    :param denoiser: the action denoiser ``F``
    :param critic: the twin-Q critic; the baseline is ``min_i Q_i(s, ã)``
    :param grad_head: the gradient head; it keeps the running RMS of ``ĝ``
    :param obs: ``s``, a batch of ``B`` observations
    :param next_obs: ``s′``; the outcome is ``o = (φ(s′) − φ(s), r)``
    :param rewards: ``r``, ``(B, 1)``
    :param actions: clean buffer actions ``a``, ``(B, d)``
    :param returns: the return signal ``G``, ``(B, 1)`` (also the outcome of a denoiser with ``outcome="return"``)
    :param sigma: σ, the denoiser's noise level
    :param cond_dropout: ``p``, the weight of the unconditional half of the denoising loss
    :param antithetic: noise each action twice, ``a ± σ·η``
    :param grad_clip: clip ``ĝ`` at this many running RMS (``inf``: no clipping)
    :param update_statistics: fold this batch into the outcome normaliser and the RMS of ``ĝ``
        (``False`` to evaluate without changing the model)
    :param centre_advantage: subtract the batch mean of ``G − b`` before it multiplies the score
        (:func:`~sb3_dspg.score.action_gradient_estimate`)
    """
    n_noised = 2 if antithetic else 1
    step = denoising_step(
        denoiser, obs, next_obs, rewards, actions, sigma, cond_dropout, antithetic, update_statistics, returns
    )
    noised_actions, eps_cond, eps_uncond = step.noised_actions, step.eps_cond, step.eps_uncond

    with th.no_grad():
        outcome_score = score.outcome_score(eps_cond, eps_uncond, sigma)
        noised_obs = cat_obs([obs] * n_noised)
        baseline = th.min(th.cat(critic(noised_obs, noised_actions), dim=1), dim=1, keepdim=True)[0]
        returns = returns.repeat(n_noised, 1)
        grad_estimate = score.action_gradient_estimate(returns, baseline, outcome_score, centre_advantage)
        rms = grad_head.update_scale(grad_estimate) if update_statistics else grad_head.grad_rms()
        head_target = score.clip_and_scale(grad_estimate, rms, grad_clip)
    advantage = returns - baseline
    return ActionGradientEstimate(
        noised_obs,
        noised_actions,
        step.loss,
        step.loss_cond,
        step.loss_uncond,
        outcome_score,
        advantage,
        grad_estimate,
        rms,
        head_target,
    )
