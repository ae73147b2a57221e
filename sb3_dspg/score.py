"""The DSPG estimator as small pure functions (docs/design.md §1).

Notation: ``a`` clean buffer action in ``[-1, 1]^d``, ``ã = a + σ·η`` the noised action with
``η ~ N(0, I)``, ``o`` the outcome of the transition, ``G`` the return signal, ``b`` the baseline.
The denoiser is parameterised by noise prediction, ``D(ã) = ã − σ·F(ã, σ, s, c)``, so by Tweedie

    ∇_ã log p_σ(ã | s, c) = (D − ã) / σ² = −F / σ

and the outcome score (Bayes, docs/design.md §1.1) is

    ∇_ã log p_σ(o | s, ã) = ∇_ã log p_σ(ã | s, o) − ∇_ã log p_σ(ã | s) = (F(ã, ∅) − F(ã, o)) / σ.

Nothing here touches a network: the functions take tensors and return tensors, so that each
equation can be tested against its closed form.
"""

import torch as th


def noise_actions(actions: th.Tensor, sigma: float, antithetic: bool = True) -> tuple[th.Tensor, th.Tensor]:
    """
    Noise the buffer actions, ``ã = a + σ·η`` (docs/design.md §1.1).

    With ``antithetic=True`` the batch is doubled into the pairs ``a + σ·η`` and ``a − σ·η``:
    the two halves share ``(s, o, G)``, so in the batch mean the ``G·η`` terms of the estimate
    cancel exactly (a central difference), while each half on its own stays unbiased.

    :param actions: clean actions, shape ``(B, d)``
    :param sigma: noise level σ (normalised action units)
    :param antithetic: return the antithetic pairs (``2B`` rows) instead of ``B`` rows
    :return: ``(noised_actions, eta)``; ``eta`` is the noise each row was built with
    """
    eta = th.randn_like(actions)
    if antithetic:
        eta = th.cat([eta, -eta], dim=0)
        actions = th.cat([actions, actions], dim=0)
    return actions + sigma * eta, eta


def denoiser_loss(
    eps_cond: th.Tensor, eps_uncond: th.Tensor, eta: th.Tensor, cond_dropout: float
) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
    """
    Noise-prediction loss with classifier-free dropout of the outcome, as loss weights.

    ``L = (1 − p)·E‖F(ã, σ, s, o) − η‖² + p·E‖F(ã, σ, s, ∅) − η‖²``, ``p = cond_dropout``.
    Equivalent in expectation to replacing the outcome by the null condition with probability
    ``p``, but both halves come from one forward pass over the doubled batch and every sample
    trains both. The minimiser is ``F* = E[η | ã, s, c]``, which is what Tweedie needs.

    :param eps_cond: predicted noise with the outcome, ``(N, d)``
    :param eps_uncond: predicted noise with the null condition, ``(N, d)``
    :param eta: the true noise, ``(N, d)``
    :param cond_dropout: ``p`` in ``(0, 1)``
    :return: ``(loss, loss_cond, loss_uncond)``; each MSE is averaged over rows, summed over dims
    """
    loss_cond = (eps_cond - eta).pow(2).sum(dim=1).mean()
    loss_uncond = (eps_uncond - eta).pow(2).sum(dim=1).mean()
    return (1.0 - cond_dropout) * loss_cond + cond_dropout * loss_uncond, loss_cond, loss_uncond


def outcome_score(eps_cond: th.Tensor, eps_uncond: th.Tensor, sigma: float) -> th.Tensor:
    """
    Score of the world, ``∇_ã log p_σ(o | s, ã) = (F(ã, σ, s, ∅) − F(ã, σ, s, o)) / σ`` (§1.1).

    :param eps_cond: predicted noise with the outcome, ``(N, d)``
    :param eps_uncond: predicted noise with the null condition, ``(N, d)``
    :param sigma: noise level σ the denoiser was queried at
    :return: the outcome score, ``(N, d)``
    """
    return (eps_uncond - eps_cond) / sigma


def action_gradient_estimate(
    returns: th.Tensor, baseline: th.Tensor, score: th.Tensor, centre_advantage: bool = False
) -> th.Tensor:
    """
    Per-sample action-gradient estimate ``ĝ = (G − b(s, ã)) · score(ã, s, o)`` (§1.5).

    ``E[ĝ | s, ã] = ∇_ã E[G | s, ã]`` when the baseline depends on ``(s, ã)`` only. The baseline
    must be evaluated at the *noised* action: given ``ã`` the clean action is part of the random
    outcome, and a baseline that sees it is correlated with the score (§1.4).

    With ``centre_advantage`` the advantage's batch mean is subtracted first, ``ĝ = (A − Ā)·score``.
    The exact score has mean 0 given ``(s, ã)``, so this changes nothing in expectation (up to ``O(1/N)``);
    a *learned* score pair whose difference has a mean ``δ`` along a direction the outcome does not
    inform adds ``Ā·δ`` to ``E[ĝ]``, and centring removes that term (docs/design.md §9).

    :param returns: return signal ``G``, ``(N, 1)``
    :param baseline: control variate ``b(s, ã)``, ``(N, 1)``
    :param score: outcome score, ``(N, d)``
    :param centre_advantage: subtract the batch mean of ``G − b``
    :return: ``ĝ``, ``(N, d)``
    """
    advantage = returns - baseline
    if centre_advantage:
        advantage = advantage - advantage.mean()
    return advantage * score


def clip_and_scale(grad: th.Tensor, rms: th.Tensor, clip: float) -> th.Tensor:
    """
    Regression target of the gradient head: ``clip(ĝ, ±c·RMS) / RMS`` (docs/design.md §3).

    Clipping at a few running RMS bounds the likelihood-ratio tails; dividing by the RMS keeps
    the head's target of unit scale while ``Q`` (and with it ``ĝ``) grows. The actor is trained
    with Adam, which is invariant to that scale.

    :param grad: ``ĝ``, ``(N, d)``
    :param rms: running root-mean-square of ``ĝ``, one scalar over all action dimensions (a scalar tensor)
    :param clip: ``c``; ``inf`` disables clipping
    :return: the head target, ``(N, d)``
    """
    bound = clip * rms
    return th.maximum(th.minimum(grad, bound), -bound) / rms


def stacking_terms(grad_estimate: th.Tensor, head_grad: th.Tensor, critic_grad: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
    """
    Least-squares weight of the head in the blend ``w·H + (1 − w)·∇_a Q̂`` (an estimator option under study).

    On a batch neither estimator was fitted to, ``E‖ĝ − X‖² = E‖ĝ − g‖² + E‖g − X‖²`` for any ``X`` of ``(s, ã)``
    with ``g = E[ĝ | s, ã]``: the ``w`` that brings the blend closest to ``ĝ`` brings it closest to ``g``.
    Solving ``min_w Σ‖ĝ − ∇Q − w·(H − ∇Q)‖²`` gives ``w = num / den``. ``g`` is DSPG's own estimand, so where it
    differs from the true gradient the weight leans to the head (measured: benchmarks/results/gradient_quality_blend.md).

    :param grad_estimate: ``ĝ``, ``(N, d)``
    :param head_grad: ``H(s, ã)`` in the units of ``ĝ``, ``(N, d)``
    :param critic_grad: ``∇_a Q̂(s, ã)`` in the units of ``ĝ``, ``(N, d)``
    :return: ``(num, den) = (Σ⟨ĝ − ∇Q, H − ∇Q⟩, Σ‖H − ∇Q‖²)``, scalars (to be averaged over batches)
    """
    gap = head_grad - critic_grad
    return ((grad_estimate - critic_grad) * gap).sum(), gap.pow(2).sum()


def saturation_penalty(pre_tanh: th.Tensor, threshold: float = 2.0) -> th.Tensor:
    """
    ``E[Σ_d max(|u_d| − u_max, 0)²]`` on the actor's pre-tanh activation ``u`` (docs/design.md §3).

    ``ĝ`` does not vanish at the action bounds the way ``∇_a Q`` through a tanh does, so without
    this the pre-activation drifts outward and the actor saturates. Zero inside ``|u| ≤ u_max``
    (``tanh(2) ≈ 0.96``), so it never biases an interior optimum.

    :param pre_tanh: ``u``, ``(B, d)``
    :param threshold: ``u_max``
    :return: the penalty, a scalar
    """
    return th.relu(pre_tanh.abs() - threshold).pow(2).sum(dim=1).mean()


def surrogate_actor_loss(grad: th.Tensor, actions: th.Tensor) -> th.Tensor:
    """
    Surrogate whose θ-gradient is ``−E[g · ∇_θ α(s; θ)]`` (chain rule, docs/design.md §1.6).

    :param grad: action-gradient estimate at the actor's actions (detached here), ``(B, d)``
    :param actions: ``α(s; θ)``, differentiable, ``(B, d)``
    :return: the loss, a scalar
    """
    return -(grad.detach() * actions).sum(dim=1).mean()
