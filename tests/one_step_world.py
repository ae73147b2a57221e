"""A one-step world with stochastic outcomes and an analytic ``∇_a E[R]`` for the estimator tests.

``s ~ N(0, I_4)``, behaviour ``a = μ(s) + β·ξ``, outcome ``o = a + ε`` with Gaussian, bimodal or no
noise ``ε``, return ``R = −‖o − c(s)‖²``. Then ``E[R | s, a] = −‖a − c(s)‖² − E‖ε‖²`` and
``∇_a E[R | s, a] = −2(a − c(s))``.
"""

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
        return -2 * (a - self.target(s))

    def outcome_noise(self, shape: tuple[int, ...]) -> th.Tensor:
        if self.noise == "none":
            return th.zeros(shape)
        if self.noise == "gaussian":
            return 0.3 * th.randn(shape)
        if self.noise == "bimodal":  # ±0.3 with equal odds, plus a little Gaussian jitter
            return 0.3 * (2 * th.randint(0, 2, shape) - 1) + 0.05 * th.randn(shape)
        raise ValueError(self.noise)

    def sample(self, s: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """:return: ``(a, o, R)``, with ``o`` the outcome vector ``(a + ε, R)`` the denoiser is given."""
        a = self.policy_mean(s) + self.beta * th.randn_like(s)
        y = a + self.outcome_noise(tuple(a.shape))
        reward = -(y - self.target(s)).pow(2).sum(dim=1, keepdim=True)
        return a, th.cat([y, reward], dim=1), reward


def mlp(n_in: int, n_out: int) -> th.nn.Module:
    return th.nn.Sequential(
        th.nn.Linear(n_in, 256), th.nn.ReLU(), th.nn.Linear(256, 256), th.nn.ReLU(), th.nn.Linear(256, n_out)
    )


def train_denoiser_and_baseline(world: OneStepWorld, sigma: float, steps: int, batch: int = 256, cond_dropout: float = 0.3):
    """
    Train DSPG's denoiser critic, a baseline ``b(s, ã)`` at the noised action and, for comparison,
    a baseline ``b(s, a)`` at the clean action, on the world's data.
    """
    dim = world.dim
    box = spaces.Box(-1, 1, (dim,))
    denoiser = DenoiserCritic(box, box, [256, 256], FlattenExtractor(box), dim)
    baseline, clean_baseline = mlp(2 * dim, 1), mlp(2 * dim, 1)
    params = [*denoiser.parameters(), *baseline.parameters(), *clean_baseline.parameters()]
    optim = th.optim.Adam(params, lr=1e-3)
    for _ in range(steps):
        s = th.randn(batch, dim)
        a, o, reward = world.sample(s)
        denoiser.outcome_norm.update(o)
        noised, eta = score.noise_actions(a, sigma, antithetic=True)
        s2, o2 = s.repeat(2, 1), denoiser.outcome_norm(o).repeat(2, 1)
        eps_cond, eps_uncond = denoiser(s2, noised, o2, sigma)
        loss, _, _ = score.denoiser_loss(eps_cond, eps_uncond, eta, cond_dropout)
        loss = loss + (baseline(th.cat([s2, noised], 1)) - reward.repeat(2, 1)).pow(2).mean()
        loss = loss + (clean_baseline(th.cat([s, a], 1)) - reward).pow(2).mean()
        optim.zero_grad()
        loss.backward()
        optim.step()
    return denoiser, baseline, clean_baseline


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
