"""One-step worlds with stochastic outcomes and an analytic ``∇_a E[R]``, for the estimator tests and
``benchmarks/gradient_quality.py``.

``s ~ N(0, I_d)``, behaviour ``a = μ(s) + β·ξ``, outcome ``y = a + ε`` with no, Gaussian, bimodal or
heavy-tailed (Student-t) noise ``ε`` (or multiplicative: ``y = a·(1 + ε)``), return
``R = −‖y − c(s)‖²``. Then ``∇_a E[R | s, a] = −2(a − c(s))`` for additive noise and
``−2((1 + Var ε)·a − c(s))`` for multiplicative noise.
"""

from typing import Any

import torch as th
from gymnasium import spaces
from stable_baselines3.common.torch_layers import FlattenExtractor

from sb3_dspg import score
from sb3_dspg.policies import DenoiserCritic


class OneStepWorld:
    def __init__(self, noise: str, dim: int = 4, beta: float = 0.4, seed: int = 0):
        gen = th.Generator().manual_seed(seed)
        self.noise, self.dim, self.beta = noise, dim, beta
        self.w_mu = th.randn(dim, dim, generator=gen) / dim**0.5
        self.w_c = th.randn(dim, dim, generator=gen) / dim**0.5

    def policy_mean(self, s: th.Tensor) -> th.Tensor:
        return 0.3 * th.tanh(s @ self.w_mu)

    def target(self, s: th.Tensor) -> th.Tensor:
        return 0.6 * th.tanh(s @ self.w_c)

    def true_gradient(self, s: th.Tensor, a: th.Tensor) -> th.Tensor:
        if self.noise == "multiplicative":
            return -2 * ((1 + 0.3**2) * a - self.target(s))
        return -2 * (a - self.target(s))

    def outcome_noise(self, shape: tuple[int, ...]) -> th.Tensor:
        if self.noise == "none":
            return th.zeros(shape)
        if self.noise == "gaussian":
            return 0.3 * th.randn(shape)
        if self.noise == "bimodal":  # ±0.3 with equal odds, plus a little Gaussian jitter
            return 0.3 * (2 * th.randint(0, 2, shape) - 1) + 0.05 * th.randn(shape)
        if self.noise == "student_t":  # t with 3 degrees of freedom, std 0.3
            return 0.3 * th.distributions.StudentT(3.0).sample(shape) / 3**0.5
        if self.noise == "multiplicative":  # ε ~ N(0, 0.3²), applied as a·ε in sample()
            return 0.3 * th.randn(shape)
        raise ValueError(f"noise: unknown kind {self.noise!r}")

    def sample(self, s: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """:return: ``(a, o, R)``, with ``o`` the outcome vector ``(a + ε, R)`` the denoiser is given."""
        a = self.policy_mean(s) + self.beta * th.randn_like(s)
        noise = self.outcome_noise(tuple(a.shape))
        y = a * (1 + noise) if self.noise == "multiplicative" else a + noise
        reward = -(y - self.target(s)).pow(2).sum(dim=1, keepdim=True)
        return a, th.cat([y, reward], dim=1), reward


def mlp(n_in: int, n_out: int) -> th.nn.Module:
    return th.nn.Sequential(
        th.nn.Linear(n_in, 256), th.nn.ReLU(), th.nn.Linear(256, 256), th.nn.ReLU(), th.nn.Linear(256, n_out)
    )


def train_denoiser_and_baseline(
    world: OneStepWorld, sigma: float, steps: int, batch: int = 256, cond_dropout: float = 0.3, extras: bool = False
) -> dict[str, Any]:
    """
    Train, on the world's data, DSPG's denoiser critic, a baseline ``b(s, ã)`` at the noised action
    and, for comparison, a baseline ``b(s, a)`` at the clean action. With ``extras`` also DSPG's
    gradient head ``H(s, ã)`` (regressed onto ``clip(ĝ)/RMS`` as in :class:`~sb3_dspg.DSPG`) and a
    DDPG-style critic ``Q(s, a)`` fitted to ``R``, whose ``∇_a Q`` is the usual action gradient.

    :return: the networks by name (``denoiser``, ``baseline``, ``clean_baseline``, ``head``,
        ``critic``) and ``grad_rms``, the running RMS the head's targets were divided by
    """
    dim = world.dim
    box = spaces.Box(-1, 1, (dim,))
    nets: dict[str, Any] = {
        "denoiser": DenoiserCritic(box, box, [256, 256], FlattenExtractor(box), dim),
        "baseline": mlp(2 * dim, 1),
        "clean_baseline": mlp(2 * dim, 1),
    }
    if extras:
        nets["head"], nets["critic"] = mlp(2 * dim, dim), mlp(2 * dim, 1)
    optim = th.optim.Adam([p for net in nets.values() for p in net.parameters()], lr=1e-3)
    denoiser, grad_ms = nets["denoiser"], th.zeros(())
    for step in range(steps):
        s = th.randn(batch, dim)
        a, o, reward = world.sample(s)
        denoiser.outcome_norm.update(o)
        noised, eta = score.noise_actions(a, sigma, antithetic=True)
        s2, o2, r2 = s.repeat(2, 1), denoiser.outcome_norm(o).repeat(2, 1), reward.repeat(2, 1)
        eps_cond, eps_uncond = denoiser(s2, noised, o2, sigma)
        loss, _, _ = score.denoiser_loss(eps_cond, eps_uncond, eta, cond_dropout)
        baseline = nets["baseline"](th.cat([s2, noised], 1))
        loss = loss + (baseline - r2).pow(2).mean()
        loss = loss + (nets["clean_baseline"](th.cat([s, a], 1)) - reward).pow(2).mean()
        if extras:
            with th.no_grad():
                g = score.action_gradient_estimate(r2, baseline, score.outcome_score(eps_cond, eps_uncond, sigma))
                grad_ms += max(1.0 / (step + 1), 0.01) * (g.pow(2).mean() - grad_ms)
                target = score.clip_and_scale(g, grad_ms.sqrt(), 3.0)
            loss = loss + (nets["head"](th.cat([s2, noised], 1)) - target).pow(2).mean()
            loss = loss + (nets["critic"](th.cat([s, a], 1)) - reward).pow(2).mean()
        optim.zero_grad()
        loss.backward()
        optim.step()
    nets["grad_rms"] = grad_ms.sqrt()
    return nets


@th.no_grad()
def batch_mean_estimates(world, denoiser, baseline, sigma, n_states=64, batch=256, clean=False):
    """
    Per state: the mean of ``batch`` per-sample estimates ``ĝ`` (antithetic pairs) and the truth at
    μ(s). ``clean=True`` evaluates ``baseline`` at the clean action instead of the noised one.
    """
    estimates, truths = [], []
    for _ in range(n_states):
        s = th.randn(1, world.dim).repeat(batch // 2, 1)
        a, o, reward = world.sample(s)
        noised, _ = score.noise_actions(a, sigma, antithetic=True)
        s2, o2 = s.repeat(2, 1), denoiser.outcome_norm(o).repeat(2, 1)
        eps_cond, eps_uncond = denoiser(s2, noised, o2, sigma)
        b = baseline(th.cat([s2, a.repeat(2, 1) if clean else noised], 1))
        g = score.action_gradient_estimate(reward.repeat(2, 1), b, score.outcome_score(eps_cond, eps_uncond, sigma))
        estimates.append(g.mean(dim=0))
        truths.append(world.true_gradient(s[:1], world.policy_mean(s[:1]))[0])
    return th.stack(estimates), th.stack(truths)
