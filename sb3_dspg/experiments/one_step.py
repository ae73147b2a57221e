"""One-step worlds with stochastic outcomes and an analytic ``∇_a E[R]``, for the estimator tests and
``benchmarks/gradient_quality.py``. The networks are a :class:`~sb3_dspg.DSPGPolicy`'s and every estimate
comes from the shipped step, :func:`~sb3_dspg.estimator.estimate_action_gradient`, so these measure the
update that :class:`~sb3_dspg.DSPG` runs (one-step episodes: the return signal is the reward).

``s ~ N(0, I_d)``, behaviour ``a = μ(s) + β·ξ``, outcome ``y = a + ε`` with no, Gaussian, bimodal or
heavy-tailed (Student-t) noise ``ε`` (or multiplicative: ``y = a·(1 + ε)``), return
``R = −‖y − c(s)‖²``. Then ``∇_a E[R | s, a] = −2(a − c(s))`` for additive noise and
``−2((1 + Var ε)·a − c(s))`` for multiplicative noise.

``reward="hit"`` makes the return discontinuous, ``R = Π_j 1[|y_j − c_j(s)| < r]`` (land in a box of
half-width ``r`` centred within ``0.25`` of ``μ(s)``), the one-step analogue of ``HitBandit``; with Gaussian or
bimodal noise ``E[R | s, a]`` is a product of normal-CDF differences, so its gradient is exact too.
"""

import torch as th
from gymnasium import spaces
from stable_baselines3.common.utils import ConstantSchedule
from stable_baselines3.td3.policies import ContinuousCritic
from torch.nn import functional as F

from sb3_dspg import blend, score
from sb3_dspg.estimator import ActionGradientEstimate, denoising_step, estimate_action_gradient
from sb3_dspg.policies import DSPGPolicy, GradientHead

#: outcome-noise kinds whose hit probability has a closed form: ``(offsets of the modes, std of each mode)``
HIT_MIXTURES = {"gaussian": ((0.0,), 0.3), "bimodal": ((-0.3, 0.3), 0.05)}


class OneStepWorld:
    """
    One step from ``s ~ N(0, I_d)`` to the outcome ``y``: behaviour ``a = μ(s) + β·ξ``, reward ``R = −‖y − c(s)‖²``.

    :param noise: ``none``, ``gaussian``, ``bimodal``, ``student_t`` or ``multiplicative``
    :param dim: state and action dimension ``d``
    :param beta: ``β``, the spread of the behaviour actions around ``μ(s)``
    :param seed: seed of the maps ``μ`` and ``c``
    :param reward: ``quadratic`` (``−‖y − c‖²``) or ``hit`` (``Π_j 1[|y_j − c_j| < radius]``; Gaussian or
        bimodal noise only, where the gradient is exact)
    :param radius: half-width of the box of the ``hit`` reward
    :param smoothing: the ``hit`` truth is the gradient of ``E[R | s, a + δ]`` averaged over ``δ ~ N(0, smoothing²·I)``:
        DSPG estimates the gradient smoothed at ``√k·σ`` (shrunk by ``k = β²/(β² + σ²)``, docs/design.md §1.5),
        and where ``E[R]`` has structure finer than that (the narrow modes of bimodal noise), the unsmoothed
        gradient at ``μ(s)`` is not what any estimator that explores can see
    """

    def __init__(
        self,
        noise: str,
        dim: int = 4,
        beta: float = 0.4,
        seed: int = 0,
        reward: str = "quadratic",
        radius: float = 0.25,
        smoothing: float = 0.0,
    ):
        if reward not in ("quadratic", "hit") or (reward == "hit" and noise not in HIT_MIXTURES):
            raise ValueError(
                f"reward: 'quadratic', or 'hit' with noise in {list(HIT_MIXTURES)}; got reward={reward!r}, noise={noise!r}"
            )
        gen = th.Generator().manual_seed(seed)
        self.noise, self.dim, self.beta, self.reward, self.radius = noise, dim, beta, reward, radius
        self.smoothing = smoothing
        self.w_mu = th.randn(dim, dim, generator=gen) / dim**0.5
        self.w_c = th.randn(dim, dim, generator=gen) / dim**0.5

    def policy_mean(self, s: th.Tensor) -> th.Tensor:
        return 0.3 * th.tanh(s @ self.w_mu)

    def target(self, s: th.Tensor) -> th.Tensor:
        if self.reward == "hit":  # the box within reach of the behaviour, so that E[R] and its gradient are not ~0
            return self.policy_mean(s) + 0.25 * th.tanh(s @ self.w_c)
        return 0.6 * th.tanh(s @ self.w_c)

    def hit_probability(self, s: th.Tensor, a: th.Tensor, smoothing: float = 0.0) -> th.Tensor:
        """
        ``E[R | s, a]`` of the ``hit`` reward, ``Π_j P(|a_j + ε_j − c_j| < r)``, ``(B, 1)`` (differentiable in
        ``a``); with ``smoothing``, averaged over ``a + δ``, ``δ ~ N(0, smoothing²·I)`` (each mode's std widens).
        """
        offsets, std = HIT_MIXTURES[self.noise]
        std = (std**2 + smoothing**2) ** 0.5
        normal = th.distributions.Normal(0.0, 1.0)
        x = self.target(s) - a  # the box is |ε − x| < r
        per_dim = sum(
            (normal.cdf((x + self.radius - m) / std) - normal.cdf((x - self.radius - m) / std)) / len(offsets) for m in offsets
        )
        return per_dim.prod(dim=1, keepdim=True)

    def true_gradient(self, s: th.Tensor, a: th.Tensor) -> th.Tensor:
        if self.reward == "hit":
            with th.enable_grad():
                a = a.detach().clone().requires_grad_(True)
                return th.autograd.grad(self.hit_probability(s, a, self.smoothing).sum(), a)[0]
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
        if self.reward == "hit":
            reward = ((y - self.target(s)).abs() < self.radius).all(dim=1, keepdim=True).float()
        else:
            reward = -(y - self.target(s)).pow(2).sum(dim=1, keepdim=True)
        return a, y, reward


def make_policy(
    world: OneStepWorld, net_arch: list[int] | dict[str, list[int]] | None = None, outcome: str = "transition"
) -> DSPGPolicy:
    """
    A DSPG policy for the world's spaces; the actor is unused (the behaviour is the world's).

    :param net_arch: hidden layers of the critic, denoiser and head (default ``[256, 256]``), or a dict that sets
        some of them by name (``qf``, ``denoiser``, ``grad_head``; the others keep the default)
    :param outcome: what the denoiser is conditioned on: ``"transition"`` (``(y, R)``) or ``"return"`` (``R``)
    """
    box = spaces.Box(-10.0, 10.0, (world.dim,))
    arch = net_arch if isinstance(net_arch, list) else [256, 256]
    net_arch_dict = dict(pi=[16], qf=arch, denoiser=arch, grad_head=arch)
    if isinstance(net_arch, dict):
        if unknown := set(net_arch) - {"qf", "denoiser", "grad_head"}:
            raise ValueError(f"net_arch: keys of 'qf', 'denoiser', 'grad_head', got {sorted(unknown)}")
        net_arch_dict.update(net_arch)
    return DSPGPolicy(
        box, spaces.Box(-1.0, 1.0, (world.dim,)), ConstantSchedule(1e-3), net_arch=net_arch_dict, outcome=outcome
    )


def estimate(
    world: OneStepWorld,
    policy: DSPGPolicy,
    s: th.Tensor,
    sigma: float,
    cond_dropout: float = 0.3,
    update: bool = True,
    grad_clip: float = 3.0,
) -> tuple[ActionGradientEstimate, th.Tensor, th.Tensor]:
    """
    Draw one batch of the world at states ``s`` and run the DSPG step on it (antithetic pairs, ``ĝ`` clipped at
    ``grad_clip`` running RMS for the head's target, DSPG's default 3).

    :return: ``(estimate, a, R)``
    """
    a, y, reward = world.sample(s)
    est = estimate_action_gradient(
        policy.denoiser, getattr(policy, "noised_baseline", policy.critic), policy.grad_head, s, y, reward, a, reward, sigma,
        cond_dropout,
        antithetic=True, grad_clip=grad_clip, update_statistics=update,
    )  # fmt: skip
    return est, a, reward


def train_on_world(
    world: OneStepWorld,
    sigma: float,
    steps: int,
    batch: int = 256,
    cond_dropout: float = 0.3,
    net_arch: list[int] | dict[str, list[int]] | None = None,
    pretrain_steps: int = 0,
    baseline: str = "critic",
    blend: bool = False,
    twin_heads: bool = False,
    outcome: str = "transition",
    grad_clip: float = 3.0,
) -> DSPGPolicy:
    """
    Train a DSPG policy's critic (TD3's loss with ``G = R``), denoiser and gradient head on fresh batches of
    the world, exactly as one DSPG policy update does (the actor is not trained: the behaviour is fixed).
    Its critic doubles as the DDPG-style ``Q(s, a)`` whose ``∇_a Q̂`` the benchmark compares with.

    :param net_arch: hidden layers of the critic, denoiser and head (:func:`make_policy`)
    :param pretrain_steps: reward-free denoiser updates first (outcome ``y`` without ``R``, docs/design.md §8)
    :param baseline: ``critic``: DSPG's, ``min_i Q_i(s, ã)`` of the critic fitted at the clean actions; ``noised``:
        a one-Q network fitted to ``R`` at the noised actions ``(s, ã)``, kept as ``policy.noised_baseline``
        (an estimator option under study, not in DSPG)
    :param blend: also fit the weight ``w`` of the head in the blend ``w·H + (1 − w)·∇_a Q̂`` on each fresh batch
        before anything learns from it (:func:`~sb3_dspg.score.stacking_terms`, running means over batches);
        :func:`blend_weight` reads it (an estimator option under study, not in DSPG)
    :param twin_heads: also train two more heads, each on its own half of every batch's transitions
        (``policy.twin_heads``, a :class:`GradientHead` with ``n_heads=2``), whose disagreement measures the head's
        variance for :func:`precision_weighted_blend` (an estimator option under study, not in DSPG)
    :param outcome: what the denoiser is conditioned on (:func:`make_policy`)
    :param grad_clip: the head's targets clip ``ĝ`` at this many running RMS (``math.inf``: no clipping)
    """
    if baseline not in ("critic", "noised"):
        raise ValueError(f"baseline: 'critic' or 'noised', got {baseline!r}")
    policy = make_policy(world, net_arch, outcome)
    if baseline == "noised":  # one Q network of the critic's size, fed (s, ã)
        policy.noised_baseline = ContinuousCritic(
            **policy._update_features_extractor({**policy.critic_kwargs, "n_critics": 1})
        )
        policy.noised_baseline.optimizer = th.optim.Adam(policy.noised_baseline.parameters(), lr=1e-3)
    if twin_heads:  # a twin head of the head's size: two copies, each fitted to its own half of the transitions
        head_kwargs = policy._update_features_extractor(dict(policy.net_args, net_arch=policy._dspg_arch("grad_head")))
        policy.twin_heads = GradientHead(**head_kwargs, n_heads=2)
        policy.twin_heads.optimizer = th.optim.Adam(policy.twin_heads.parameters(), lr=1e-3)
    for _ in range(pretrain_steps):
        s = th.randn(batch, world.dim)
        a, y, _ = world.sample(s)
        step = denoising_step(policy.denoiser, s, y, None, a, sigma, cond_dropout, antithetic=True)
        policy.denoiser.optimizer.zero_grad()
        step.loss.backward()
        policy.denoiser.optimizer.step()
    for _ in range(steps):
        s = th.randn(batch, world.dim)
        est, a, reward = estimate(world, policy, s, sigma, cond_dropout, grad_clip=grad_clip)
        critic_loss = sum(F.mse_loss(q, reward) for q in policy.critic(s, a))
        if baseline == "noised":  # b(s, ã) regressed on R at the noised actions
            baseline_loss = F.mse_loss(policy.noised_baseline(est.noised_obs, est.noised_actions)[0], reward.repeat(2, 1))
            policy.noised_baseline.optimizer.zero_grad()
            baseline_loss.backward()
            policy.noised_baseline.optimizer.step()
        head_grad = policy.grad_head(policy.grad_head.features(est.noised_obs), est.noised_actions)
        head_loss = F.mse_loss(head_grad, est.head_target)
        if blend:  # in ĝ's units: the head predicts clip(ĝ)/RMS, ∇_a Q̂ the unshrunk gradient (docs/design.md §1.5)
            shrink = world.beta**2 / (world.beta**2 + sigma**2)
            critic_grad = shrink * critic_gradient(policy, est.noised_obs, est.noised_actions)
            terms = score.stacking_terms(est.grad_estimate, head_grad.detach() * est.grad_rms, critic_grad)
            policy.blend_terms = (
                terms
                if not hasattr(policy, "blend_terms")
                else tuple(0.99 * old + 0.01 * new for old, new in zip(policy.blend_terms, terms, strict=True))
            )
        if twin_heads:  # each copy on its own half of the transitions (GradientHead.regression_loss)
            twins = policy.twin_heads
            twin_loss = twins.regression_loss(twins.features(est.noised_obs), est.noised_actions, est.head_target, batch)
            twins.optimizer.zero_grad()
            twin_loss.backward()
            twins.optimizer.step()
        for net, loss in ((policy.critic, critic_loss), (policy.denoiser, est.denoiser_loss), (policy.grad_head, head_loss)):
            net.optimizer.zero_grad()
            loss.backward()
            net.optimizer.step()
    return policy


def critic_gradient(policy: DSPGPolicy, s: th.Tensor, a: th.Tensor) -> th.Tensor:
    """``∇_a Q̂_1(s, a)`` of the policy's critic, ``(N, d)`` (the critic's weights get no gradient)."""
    return blend.critic_action_gradients(policy.critic, s, a)[0]


def blend_weight(policy: DSPGPolicy) -> float:
    """The fitted weight ``w ∈ [0, 1]`` of the head in the blend, from :func:`train_on_world` with ``blend=True``."""
    num, den = policy.blend_terms
    return float((num / den).clamp(0.0, 1.0))


def precision_weighted_blend(
    policy: DSPGPolicy, s: th.Tensor, a: th.Tensor, shrink: float = 1.0
) -> tuple[th.Tensor, th.Tensor, th.Tensor, th.Tensor]:
    """
    The inverse-variance blend of the twin heads' mean ``H̄`` and the twin critics' mean ``∇_a Q̄`` at ``(s, a)``
    with :func:`sb3_dspg.blend.precision_weight`, as ``DSPG(critic_grad_weight="auto")`` weighs them: each
    estimator's variance is read from the disagreement of its two copies, and the head gets the weight
    ``w = v_Q / (v_H + v_Q)``, one per batch. Here the twin heads are extra heads next to the policy's own (so the
    benchmark's other columns keep the one full-batch head). Needs :func:`train_on_world` with ``twin_heads=True``.

    :param shrink: DSPG's shrinkage ``k``; the heads are divided by it (both estimators then target ``∇_a E[R]``)
    :return: ``(blend, H̄, ∇_a Q̄, w)``, ``(N, d)`` each and a scalar
    """
    with th.no_grad():
        scale = policy.grad_head.grad_rms() / shrink
        heads = tuple(h * scale for h in policy.twin_heads.forward_each(policy.twin_heads.features(s), a))
    critic_grads = blend.critic_action_gradients(policy.critic, s, a)
    w = 1 - blend.precision_weight(heads, critic_grads)
    head_mean, critic_mean = th.stack(heads).mean(dim=0), th.stack(critic_grads).mean(dim=0)
    return w * head_mean + (1 - w) * critic_mean, head_mean, critic_mean, w


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
