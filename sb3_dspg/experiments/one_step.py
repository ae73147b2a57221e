"""One-step worlds with stochastic outcomes and an analytic ``∇_a E[R]``, for the estimator tests and
``benchmarks/gradient_quality.py``. The networks are a :class:`~sb3_dspg.DSPGPolicy`'s and every estimate
comes from the shipped step, :func:`~sb3_dspg.estimator.estimate_action_gradient`, so these measure the
update that :class:`~sb3_dspg.DSPG` runs (one-step episodes: the return signal is the reward).

``s ~ N(0, I_d)``, behaviour ``a = μ(s) + β·ξ``, outcome ``y = a + ε`` with no, Gaussian, bimodal or
heavy-tailed (Student-t) noise ``ε`` (or multiplicative: ``y = a·(1 + ε)``), return
``R = −‖y − c(s)‖²``. Then ``∇_a E[R | s, a] = −2(a − c(s))`` for additive noise and
``−2((1 + Var ε)·a − c(s))`` for multiplicative noise.
"""

import torch as th
from gymnasium import spaces
from stable_baselines3.common.utils import ConstantSchedule
from stable_baselines3.td3.policies import ContinuousCritic
from torch.nn import functional as F

from sb3_dspg.estimator import ActionGradientEstimate, denoising_step, estimate_action_gradient
from sb3_dspg.policies import DSPGPolicy


class OneStepWorld:
    """
    One step from ``s ~ N(0, I_d)`` to the outcome ``y``: behaviour ``a = μ(s) + β·ξ``, reward ``R = −‖y − c(s)‖²``.

    :param noise: ``none``, ``gaussian``, ``bimodal``, ``student_t`` or ``multiplicative``
    :param dim: state and action dimension ``d``
    :param beta: ``β``, the spread of the behaviour actions around ``μ(s)``
    :param seed: seed of the maps ``μ`` and ``c``
    """

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
        """:return: ``(a, y, R)``: behaviour actions, outcomes (the "next observation") and rewards ``(B, 1)``."""
        a = self.policy_mean(s) + self.beta * th.randn_like(s)
        noise = self.outcome_noise(tuple(a.shape))
        y = a * (1 + noise) if self.noise == "multiplicative" else a + noise
        reward = -(y - self.target(s)).pow(2).sum(dim=1, keepdim=True)
        return a, y, reward


def make_policy(world: OneStepWorld, net_arch: list[int] | None = None) -> DSPGPolicy:
    """A DSPG policy for the world's spaces; the actor is unused (the behaviour is the world's)."""
    box = spaces.Box(-10.0, 10.0, (world.dim,))
    arch = net_arch or [256, 256]
    net_arch_dict = dict(pi=[16], qf=arch, denoiser=arch, grad_head=arch)
    return DSPGPolicy(box, spaces.Box(-1.0, 1.0, (world.dim,)), ConstantSchedule(1e-3), net_arch=net_arch_dict)


def estimate(
    world: OneStepWorld, policy: DSPGPolicy, s: th.Tensor, sigma: float, cond_dropout: float = 0.3, update: bool = True
) -> tuple[ActionGradientEstimate, th.Tensor, th.Tensor]:
    """
    Draw one batch of the world at states ``s`` and run the DSPG step on it (antithetic pairs, clip 3 RMS).

    :return: ``(estimate, a, R)``
    """
    a, y, reward = world.sample(s)
    est = estimate_action_gradient(
        policy.denoiser, getattr(policy, "noised_baseline", policy.critic), policy.grad_head, s, y, reward, a, reward, sigma,
        cond_dropout,
        antithetic=True, grad_clip=3.0, update_statistics=update,
    )  # fmt: skip
    return est, a, reward


def train_on_world(
    world: OneStepWorld,
    sigma: float,
    steps: int,
    batch: int = 256,
    cond_dropout: float = 0.3,
    net_arch: list[int] | None = None,
    pretrain_steps: int = 0,
    baseline: str = "critic",
) -> DSPGPolicy:
    """
    Train a DSPG policy's critic (TD3's loss with ``G = R``), denoiser and gradient head on fresh batches of
    the world, exactly as one DSPG policy update does (the actor is not trained: the behaviour is fixed).
    Its critic doubles as the DDPG-style ``Q(s, a)`` whose ``∇_a Q̂`` the benchmark compares with.

    :param net_arch: hidden layers of the critic, denoiser and head (default ``[256, 256]``)
    :param pretrain_steps: reward-free denoiser updates first (outcome ``y`` without ``R``, docs/design.md §8)
    :param baseline: ``critic``: DSPG's, ``min_i Q_i(s, ã)`` of the critic fitted at the clean actions; ``noised``:
        a one-Q network fitted to ``R`` at the noised actions ``(s, ã)``, kept as ``policy.noised_baseline``
        (an estimator option under study, not in DSPG)
    """
    if baseline not in ("critic", "noised"):
        raise ValueError(f"baseline: 'critic' or 'noised', got {baseline!r}")
    policy = make_policy(world, net_arch)
    if baseline == "noised":  # one Q network of the critic's size, fed (s, ã)
        policy.noised_baseline = ContinuousCritic(
            **policy._update_features_extractor({**policy.critic_kwargs, "n_critics": 1})
        )
        policy.noised_baseline.optimizer = th.optim.Adam(policy.noised_baseline.parameters(), lr=1e-3)
    for _ in range(pretrain_steps):
        s = th.randn(batch, world.dim)
        a, y, _ = world.sample(s)
        step = denoising_step(policy.denoiser, s, y, None, a, sigma, cond_dropout, antithetic=True)
        policy.denoiser.optimizer.zero_grad()
        step.loss.backward()
        policy.denoiser.optimizer.step()
    for _ in range(steps):
        s = th.randn(batch, world.dim)
        est, a, reward = estimate(world, policy, s, sigma, cond_dropout)
        critic_loss = sum(F.mse_loss(q, reward) for q in policy.critic(s, a))
        if baseline == "noised":  # b(s, ã) regressed on R at the noised actions
            baseline_loss = F.mse_loss(policy.noised_baseline(est.noised_obs, est.noised_actions)[0], reward.repeat(2, 1))
            policy.noised_baseline.optimizer.zero_grad()
            baseline_loss.backward()
            policy.noised_baseline.optimizer.step()
        head_grad = policy.grad_head(policy.grad_head.features(est.noised_obs), est.noised_actions)
        head_loss = F.mse_loss(head_grad, est.head_target)
        for net, loss in ((policy.critic, critic_loss), (policy.denoiser, est.denoiser_loss), (policy.grad_head, head_loss)):
            net.optimizer.zero_grad()
            loss.backward()
            net.optimizer.step()
    return policy


@th.no_grad()
def batch_mean_estimates(
    world: OneStepWorld, policy: DSPGPolicy, sigma: float, n_states: int = 64, batch: int = 256, clean: bool = False
) -> tuple[th.Tensor, th.Tensor]:
    """
    Per held-out state: the mean of ``batch`` per-sample estimates ``ĝ`` (antithetic pairs) and the truth at
    ``μ(s)``. ``clean=True`` evaluates the baseline at the clean action, ``b(s, a)``, instead of ``b(s, ã)``
    (the biased choice docs/design.md §1.4 rules out). Nothing in the policy is updated.
    """
    estimates, truths = [], []
    for _ in range(n_states):
        s = th.randn(1, world.dim).repeat(batch // 2, 1)
        est, a, reward = estimate(world, policy, s, sigma, update=False)
        g = est.grad_estimate
        if clean:
            clean_baseline = th.min(th.cat(policy.critic(s, a), dim=1), dim=1, keepdim=True)[0].repeat(2, 1)
            g = (reward.repeat(2, 1) - clean_baseline) * est.outcome_score
        estimates.append(g.mean(dim=0))
        truths.append(world.true_gradient(s[:1], world.policy_mean(s[:1]))[0])
    return th.stack(estimates), th.stack(truths)
