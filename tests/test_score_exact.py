"""The estimator against closed forms, in a linear-Gaussian one-step world.

World: ``a ~ N(μ, β²I)``, ``ã = a + σ·η``, ``o = A·a + ω·ν``. Everything is Gaussian, so the
MSE-optimal noise predictors are known in closed form and Tweedie's identity holds exactly.
"""

import pytest
import torch as th

from sb3_dspg import score


@pytest.fixture(autouse=True)
def float64():
    """Closed forms are compared in double precision; restore the default for the other test modules."""
    previous = th.get_default_dtype()
    th.set_default_dtype(th.float64)
    yield
    th.set_default_dtype(previous)


class LinearGaussianWorld:
    def __init__(self, d: int = 4, m: int = 3, beta: float = 0.4, sigma: float = 0.2, omega: float = 0.3, seed: int = 0):
        gen = th.Generator().manual_seed(seed)
        self.d, self.m, self.beta, self.sigma, self.omega = d, m, beta, sigma, omega
        self.mu = 0.3 * th.randn(d, generator=gen)
        self.A = th.randn(m, d, generator=gen)
        self.k = beta**2 / (beta**2 + sigma**2)  # shrinkage of E[a | ã]
        self.v = beta**2 * sigma**2 / (beta**2 + sigma**2)  # Var[a | ã]

    def sample(self, n: int, gen: th.Generator) -> tuple[th.Tensor, th.Tensor, th.Tensor, th.Tensor]:
        a = self.mu + self.beta * th.randn(n, self.d, generator=gen)
        eta = th.randn(n, self.d, generator=gen)
        o = a @ self.A.T + self.omega * th.randn(n, self.m, generator=gen)
        return a, a + self.sigma * eta, eta, o

    def eps_uncond(self, noised: th.Tensor) -> th.Tensor:
        """F*(ã, ∅) = E[η | ã] = (ã − E[a | ã]) / σ."""
        posterior_mean = self.mu + self.k * (noised - self.mu)
        return (noised - posterior_mean) / self.sigma

    def eps_cond(self, noised: th.Tensor, o: th.Tensor) -> th.Tensor:
        """F*(ã, o) = (ã − E[a | ã, o]) / σ, with the Gaussian posterior of a given (ã, o)."""
        eye = th.eye(self.d)
        precision = eye / self.beta**2 + eye / self.sigma**2 + self.A.T @ self.A / self.omega**2
        rhs = self.mu / self.beta**2 + noised / self.sigma**2 + o @ self.A / self.omega**2
        posterior_mean = th.linalg.solve(precision, rhs.T).T
        return (noised - posterior_mean) / self.sigma

    def log_likelihood(self, noised: th.Tensor, o: th.Tensor) -> th.Tensor:
        """log p_σ(o | ã): o | ã ~ N(A·m(ã), v·AAᵀ + ω²I), m(ã) = μ + k(ã − μ)."""
        mean = (self.mu + self.k * (noised - self.mu)) @ self.A.T
        cov = self.v * self.A @ self.A.T + self.omega**2 * th.eye(self.m)
        return th.distributions.MultivariateNormal(mean, covariance_matrix=cov).log_prob(o)

    def analytic_score(self, noised: th.Tensor, o: th.Tensor) -> th.Tensor:
        """∇_ã log p_σ(o | ã) = k·Aᵀ(v·AAᵀ + ω²I)⁻¹(o − A·m(ã))."""
        mean = (self.mu + self.k * (noised - self.mu)) @ self.A.T
        cov = self.v * self.A @ self.A.T + self.omega**2 * th.eye(self.m)
        return self.k * th.linalg.solve(cov, (o - mean).T).T @ self.A


@pytest.mark.parametrize("omega", [0.05, 0.3, 1.0])
def test_exact_denoiser_score_matches_analytic(omega):
    world = LinearGaussianWorld(omega=omega)
    gen = th.Generator().manual_seed(1)
    _, noised, _, o = world.sample(512, gen)
    estimate = score.outcome_score(world.eps_cond(noised, o), world.eps_uncond(noised), world.sigma)

    noised_leaf = noised.clone().requires_grad_(True)
    autograd_score = th.autograd.grad(world.log_likelihood(noised_leaf, o).sum(), noised_leaf)[0]
    # the hand-derived formula and autograd of the likelihood agree, and the denoiser score equals both
    assert th.allclose(world.analytic_score(noised, o), autograd_score, atol=1e-10)
    assert (estimate - autograd_score).abs().max() < 1e-4
    # and the score is not trivially small
    assert autograd_score.abs().mean() > 0.1


def test_exact_denoiser_minimises_denoiser_loss():
    """The closed-form F* is the minimiser of the loss: perturbing it can only increase the loss."""
    world = LinearGaussianWorld()
    gen = th.Generator().manual_seed(2)
    _, noised, eta, o = world.sample(200_000, gen)
    cond, uncond = world.eps_cond(noised, o), world.eps_uncond(noised)
    best, _, _ = score.denoiser_loss(cond, uncond, eta, cond_dropout=0.3)
    for shift in (0.05, -0.05):
        worse, _, _ = score.denoiser_loss(cond + shift, uncond + shift, eta, cond_dropout=0.3)
        assert worse > best


def test_estimate_is_gradient_of_expected_return_with_noised_baseline():
    """E[(G − b(ã))·score | ã] = ∇_ã E[G | ã] = k·Aᵀw for G = wᵀo (linear-Gaussian world)."""
    world = LinearGaussianWorld(omega=0.3)
    w = th.tensor([1.0, -2.0, 0.5])
    gen = th.Generator().manual_seed(3)
    _, noised, _, o = world.sample(400_000, gen)
    returns = (o @ w)[:, None]
    baseline = ((world.mu + world.k * (noised - world.mu)) @ world.A.T @ w)[:, None]  # E[G | ã]
    outcome_score = score.outcome_score(world.eps_cond(noised, o), world.eps_uncond(noised), world.sigma)
    g = score.action_gradient_estimate(returns, baseline, outcome_score).mean(dim=0)
    truth = world.k * world.A.T @ w
    assert th.nn.functional.cosine_similarity(g, truth, dim=0) > 0.999
    assert (g - truth).norm() / truth.norm() < 0.02


def test_centring_the_advantage_removes_a_learned_score_bias_where_the_outcome_is_silent():
    """
    d = 4 actions, m = 3 outcomes: along the null direction ``n`` of ``A`` the exact score is 0. A learned score
    pair whose difference has mean ``δ·n`` and an advantage with mean 0.5 (a baseline that runs low) bias ``ĝ`` by
    ``0.5·δ·n``; centring the advantage removes exactly that, and the gradient stays the truth ``k·Aᵀw``.
    """
    world = LinearGaussianWorld(omega=0.3)
    null = th.linalg.svd(world.A)[2][-1]  # A·n = 0
    w = th.tensor([1.0, -2.0, 0.5])
    gen = th.Generator().manual_seed(5)
    _, noised, _, o = world.sample(400_000, gen)
    returns = (o @ w)[:, None]
    baseline = ((world.mu + world.k * (noised - world.mu)) @ world.A.T @ w)[:, None] - 0.5  # E[G | ã] − 0.5
    exact = score.outcome_score(world.eps_cond(noised, o), world.eps_uncond(noised), world.sigma)
    assert (exact @ null).abs().max() < 1e-8  # the exact score is silent along n
    learned = exact + 0.2 * null  # a learned pair whose difference has mean 0.2·n
    truth = world.k * world.A.T @ w
    biased = score.action_gradient_estimate(returns, baseline, learned).mean(dim=0)
    centred = score.action_gradient_estimate(returns, baseline, learned, centre_advantage=True).mean(dim=0)
    assert th.isclose(biased @ null, th.tensor(0.5 * 0.2), atol=0.01)  # Ā·δ along n
    assert (centred @ null).abs() < 0.01
    assert (centred - truth).norm() / truth.norm() < 0.02
    # with exact scores centring changes nothing beyond Monte Carlo error
    plain = score.action_gradient_estimate(returns, baseline, exact).mean(dim=0)
    centred_exact = score.action_gradient_estimate(returns, baseline, exact, centre_advantage=True).mean(dim=0)
    assert (plain - truth).norm() / truth.norm() < 0.02 and (centred_exact - truth).norm() / truth.norm() < 0.02


def test_clean_action_baseline_collapses_estimate_in_deterministic_world():
    """In a deterministic world a baseline at the clean action equals G, so the estimate vanishes."""
    world = LinearGaussianWorld(m=4, omega=0.3)  # square A: o = A·a reveals a exactly
    w = th.tensor([1.0, -2.0, 0.5, 1.5])
    gen = th.Generator().manual_seed(4)
    a, noised, eta, _ = world.sample(200_000, gen)
    o = a @ world.A.T  # deterministic outcome
    returns = (o @ w)[:, None]
    # exact denoisers of a deterministic invertible world: the outcome pins a, so E[η | ã, o] = η
    outcome_score = score.outcome_score(eta, world.eps_uncond(noised), world.sigma)
    truth = world.k * world.A.T @ w

    noised_baseline = ((world.mu + world.k * (noised - world.mu)) @ world.A.T @ w)[:, None]
    good = score.action_gradient_estimate(returns, noised_baseline, outcome_score).mean(dim=0)
    clean_baseline = (a @ world.A.T @ w)[:, None]
    bad = score.action_gradient_estimate(returns, clean_baseline, outcome_score).mean(dim=0)

    assert th.nn.functional.cosine_similarity(good, truth, dim=0) > 0.999
    assert bad.norm() < 1e-9 * truth.norm()


def test_antithetic_pairs_share_actions_and_cancel_noise():
    actions = th.rand(8, 3) * 2 - 1
    noised, eta = score.noise_actions(actions, 0.2, antithetic=True)
    assert noised.shape == (16, 3)
    assert th.allclose(eta[:8], -eta[8:])
    assert th.allclose((noised[:8] + noised[8:]) / 2, actions)
    noised, eta = score.noise_actions(actions, 0.2, antithetic=False)
    assert noised.shape == (8, 3) and th.allclose(noised, actions + 0.2 * eta)


def test_clip_and_scale_bounds_and_scales():
    grad = th.tensor([[0.5, -10.0], [2.0, 7.0]])
    target = score.clip_and_scale(grad, th.tensor(2.0), clip=3.0)
    assert th.allclose(target, th.tensor([[0.25, -3.0], [1.0, 3.0]]))
    assert th.allclose(score.clip_and_scale(grad, th.tensor(2.0), clip=float("inf")), grad / 2)


def test_saturation_penalty_is_zero_inside_and_grows_outside():
    assert score.saturation_penalty(th.tensor([[1.9, -2.0]])) == 0
    assert th.isclose(score.saturation_penalty(th.tensor([[3.0, -4.0]])), th.tensor(1.0 + 4.0))


def test_surrogate_actor_loss_gradient_is_the_chain_rule():
    """∇_θ of the surrogate equals −E[g · ∂α/∂θ] for α = tanh(θ·s)."""
    gen = th.Generator().manual_seed(5)
    s, g = th.randn(32, 3, generator=gen), th.randn(32, 3, generator=gen)
    theta = th.randn(3, generator=gen, requires_grad=True)
    score.surrogate_actor_loss(g, th.tanh(theta * s)).backward()
    expected = -(g * (1 - th.tanh(theta * s) ** 2) * s).mean(dim=0)
    assert th.allclose(theta.grad, expected)


def test_stacking_weight_picks_the_unbiased_estimator_from_noisy_unbiased_targets():
    """``w = num/den`` weights the estimator whose error to the truth is smaller, seen only through noisy ĝ."""
    gen = th.Generator().manual_seed(0)
    truth = th.randn(20_000, 3, generator=gen)
    g_hat = truth + 3.0 * th.randn(truth.shape, generator=gen)  # unbiased, very noisy
    accurate, biased = truth + 0.1 * th.randn(truth.shape, generator=gen), truth + 1.0
    num, den = score.stacking_terms(g_hat, accurate, biased)  # head accurate, critic biased: w → 1
    assert 0.95 < num / den < 1.05
    num, den = score.stacking_terms(g_hat, biased, accurate)  # the other way round: w → 0
    assert -0.05 < num / den < 0.05
    # equally good and independent errors: the average of the two
    a, b = truth + 0.5 * th.randn(truth.shape, generator=gen), truth + 0.5 * th.randn(truth.shape, generator=gen)
    num, den = score.stacking_terms(g_hat, a, b)
    assert 0.4 < num / den < 0.6
