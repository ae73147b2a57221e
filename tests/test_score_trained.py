"""The shipped DSPG step with *trained* networks on one-step worlds with a known ``∇_a E[R]`` (action dim 4)."""

import pytest
import torch as th

from sb3_dspg.experiments.one_step import OneStepWorld, batch_mean_estimates, make_policy, train_on_world

SIGMA, BETA = 0.2, 0.4
SHRINK = BETA**2 / (BETA**2 + SIGMA**2)  # E[ĝ] is the gradient shrunk by β²/(β² + σ²)


# (noise, the denoiser's condition): outcome="return" conditions on R alone, the same estimand (docs/design.md §12)
SETTINGS = [("gaussian", "transition"), ("bimodal", "transition"), ("none", "transition"), ("gaussian", "return")]


@pytest.fixture(scope="module", params=SETTINGS)
def trained(request):
    noise, outcome = request.param
    th.manual_seed(0)
    world = OneStepWorld(noise, beta=BETA)
    return world, train_on_world(world, SIGMA, steps=1500, net_arch=[128, 128], outcome=outcome)


def test_batch_mean_estimate_aligns_with_analytic_gradient(trained):
    world, policy = trained
    th.manual_seed(1)
    estimates, truths = batch_mean_estimates(world, policy, SIGMA)
    setting = f"{world.noise}, outcome {policy.denoiser.outcome}"
    cosine = th.nn.functional.cosine_similarity(estimates, truths, dim=1)
    assert cosine.mean() >= 0.9, f"{setting}: mean cosine {cosine.mean():.3f}"
    # the magnitude is the shrunk gradient, not an arbitrary multiple of it
    ratio = (estimates.norm(dim=1) / (SHRINK * truths.norm(dim=1))).median()
    assert 0.7 < ratio < 1.3, f"{setting}: magnitude ratio {ratio:.3f}"


def test_clean_action_baseline_is_biased_in_deterministic_world(trained):
    world, policy = trained
    if world.noise != "none":
        pytest.skip("the collapse is a property of deterministic worlds")
    th.manual_seed(1)
    good, truths = batch_mean_estimates(world, policy, SIGMA)
    th.manual_seed(1)
    bad, _ = batch_mean_estimates(world, policy, SIGMA, clean=True)
    projection = lambda g: (g * truths).sum(dim=1) / truths.norm(dim=1) ** 2  # noqa: E731
    # along the true gradient the clean-action baseline keeps only a small fraction of the signal
    assert projection(bad).mean() < 0.25 * projection(good).mean()
    assert projection(good).mean() > 0.5 * SHRINK


def test_noised_baseline_option_fits_the_reward_at_noised_actions():
    th.manual_seed(0)
    world = OneStepWorld("gaussian", dim=2, beta=BETA)
    policy = train_on_world(world, SIGMA, steps=300, net_arch=[64], baseline="noised")
    s = th.randn(512, world.dim)
    a, _, reward = world.sample(s)
    noised = a + SIGMA * th.randn_like(a)
    with th.no_grad():
        fitted = policy.noised_baseline(s, noised)[0]
    # it explains part of the reward's spread (the rest is outcome noise); an unfitted network explains none
    assert th.nn.functional.mse_loss(fitted, reward) < 0.75 * reward.var()
    with pytest.raises(ValueError, match="baseline: 'critic' or 'noised'"):
        train_on_world(world, SIGMA, steps=1, baseline="clean")


def test_one_step_net_arch_can_size_one_network_alone():
    world = OneStepWorld("gaussian", dim=2, beta=BETA)
    policy = make_policy(world, {"denoiser": [32, 16]})

    def widths(net: th.nn.Module) -> list[int]:
        return [layer.out_features for layer in net.modules() if isinstance(layer, th.nn.Linear)]

    assert widths(policy.denoiser)[:2] == [32, 16]
    assert widths(policy.grad_head)[:2] == [256, 256]  # the others keep the default
    assert widths(make_policy(world, [64]).denoiser)[0] == 64
    with pytest.raises(ValueError, match="net_arch: keys of 'qf', 'denoiser', 'grad_head'"):
        make_policy(world, {"pi": [8]})


@pytest.mark.parametrize("noise", ["gaussian", "bimodal"])
def test_hit_world_probability_and_gradient_are_exact(noise):
    world = OneStepWorld(noise, dim=2, reward="hit")
    th.manual_seed(0)
    s = th.randn(4, 2)
    a = world.policy_mean(s)
    n = 100_000  # Monte Carlo of the indicator reward at each (s, a)
    noise_draws = world.outcome_noise((4 * n, 2))
    hits = (a.repeat_interleave(n, 0) + noise_draws - world.target(s).repeat_interleave(n, 0)).abs() < world.radius
    monte_carlo = hits.all(dim=1).float().view(4, n).mean(dim=1)
    assert th.allclose(world.hit_probability(s, a).ravel(), monte_carlo, atol=0.01)
    # the gradient is the derivative of that probability (central differences)
    h, grad = 1e-3, world.true_gradient(s, a)
    for j in range(2):
        step = th.zeros(2)
        step[j] = h
        central = (world.hit_probability(s, a + step) - world.hit_probability(s, a - step)).ravel() / (2 * h)
        assert th.allclose(grad[:, j], central, atol=1e-3)
    with pytest.raises(ValueError, match="reward: 'quadratic', or 'hit'"):
        OneStepWorld("student_t", reward="hit")
