"""Noisy worlds: each wrapper does what its equation says, seeded and reproducibly."""

import gymnasium as gym
import numpy as np
import pytest

import sb3_dspg  # noqa: F401  (registers the ids)
from sb3_dspg.envs import NOISE_KINDS, NOISY_WORLDS, ActuatorNoise, NoisyBandit, TransitionNoise, sample_noise


@pytest.mark.parametrize("kind", [k for k in NOISE_KINDS if k != "none"])
def test_noise_is_zero_mean_with_the_given_std(kind):
    x = sample_noise(np.random.default_rng(0), kind, 0.3, (400_000,))
    assert abs(x.mean()) < 0.01
    assert abs(x.std() - 0.3) < 0.03
    if kind == "bimodal":  # two modes, little mass at the mean
        assert np.mean(np.abs(x) < 0.1) < 0.05
    if kind == "student_t":  # heavier tails than a Gaussian of the same std
        assert np.mean(np.abs(x) > 4 * 0.3) > 10 * 6.3e-5


class EchoEnv(gym.Env):
    """Observes the action it executed."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), dtype=np.float64)
    action_space = gym.spaces.Box(-2.0, 2.0, (2,), dtype=np.float64)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2), {}

    def step(self, action):
        return np.asarray(action, dtype=np.float64), 0.0, False, False, {}


def test_actuator_noise_executes_noised_clipped_action():
    env = ActuatorNoise(EchoEnv(), scale=0.1, kind="gaussian")
    env.reset(seed=0)
    executed = np.array([env.step(np.array([0.5, 1.9]))[0] for _ in range(20_000)])
    assert np.allclose(executed[:, 0].mean(), 0.5, atol=0.01)
    assert np.isclose(executed[:, 0].std(), 0.1 * 2.0, rtol=0.05)  # scale is a fraction of the half range (2)
    assert executed.max() <= 2.0 and np.mean(executed[:, 1] == 2.0) > 0.25  # clipped at the bound


def rollout(env_id: str, seed: int, n: int = 30, **kwargs) -> np.ndarray:
    env = gym.make(env_id, **kwargs)
    env.reset(seed=seed)
    return np.array([env.step(np.full(env.action_space.shape, 0.3, dtype=np.float32))[0] for _ in range(n)])


@pytest.mark.parametrize(
    ("noisy", "base"),
    [("sb3_dspg/PushPendulum-v1", "Pendulum-v1"), ("sb3_dspg/PushInvertedPendulum-v5", "InvertedPendulum-v5")],
)
def test_transition_noise_pushes_velocities_and_is_seeded(noisy, base):
    first, again, other = rollout(noisy, 1), rollout(noisy, 1), rollout(noisy, 2)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    clean = rollout(base, 1)
    assert not np.allclose(first, clean)


def test_transition_push_has_the_given_scale_on_pendulum():
    env = TransitionNoise(gym.make("Pendulum-v1"), scale=0.5)
    base = gym.make("Pendulum-v1")
    diffs = []
    for seed in range(300):
        env.reset(seed=seed)
        base.reset(seed=seed)
        diffs.append(env.step(np.zeros(1, dtype=np.float32))[0][2] - base.step(np.zeros(1, dtype=np.float32))[0][2])
    assert np.isclose(np.std(diffs), 0.5, rtol=0.15) and abs(np.mean(diffs)) < 0.1


def test_transition_noise_refuses_unsupported_env():
    with pytest.raises(ValueError, match="env: TransitionNoise supports"):
        TransitionNoise(gym.make("MountainCarContinuous-v0"))


@pytest.mark.parametrize("env_id", list(NOISY_WORLDS))
def test_registered_ids_make_and_step(env_id):
    env = gym.make(env_id)
    env.reset(seed=0)
    obs, reward, *_ = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs.astype(env.observation_space.dtype)) and np.isfinite(reward)


@pytest.mark.parametrize("noise", ["gaussian", "bimodal", "student_t"])
def test_bandit_expected_reward_and_optimum_are_analytic(noise):
    env = NoisyBandit(noise=noise, noise_scale=0.3)
    env.reset(seed=0)
    context = env._context
    action = np.array([0.2, -0.4])
    rewards = [env.step(action)[1] for _ in range(40_000)]
    assert np.isclose(np.mean(rewards), env.expected_reward(context, action), atol=0.01)
    best = env.target(context)
    assert env.expected_reward(context, best) >= env.expected_reward(context, best + 0.05)


@pytest.mark.parametrize("terminate_on_hit", [False, True])
def test_hit_reach_rewards_the_disk_and_ends_at_the_first_hit_when_asked(terminate_on_hit):
    env = gym.make("sb3_dspg/HitReach-v0", noise_scale=0.0, terminate_on_hit=terminate_on_hit)
    obs, _ = env.reset(seed=0)
    position, goal = obs[:2], obs[2:]
    rewards, terminated = [], False
    for _ in range(10):  # move straight at the goal, at most one full step at a time
        move = np.clip((goal - position) / 0.3, -1.0, 1.0)
        obs, reward, terminated, truncated, info = env.step(move)
        position = obs[:2]
        rewards.append(reward)
        if terminated or truncated:
            break
    first_hit = rewards.index(1.0)
    assert all(reward == 0.0 for reward in rewards[:first_hit]) and info["is_success"]
    # with the flag the episode ends at the first hit; without it, it goes on to the time limit, scoring each step
    if terminate_on_hit:
        assert terminated and len(rewards) == first_hit + 1
    else:
        assert not terminated and len(rewards) == 10 and set(rewards[first_hit:]) == {1.0}


def test_bandit_outcome_dim_embeds_the_task_in_a_larger_action():
    env = NoisyBandit(action_dim=8, outcome_dim=2, noise="gaussian", noise_scale=0.3)
    projection = env.projection
    assert projection.shape == (2, 8) and np.allclose(projection @ projection.T, np.eye(2))  # orthonormal rows
    env.reset(seed=0)
    context, action = env._context, np.random.default_rng(1).uniform(-0.5, 0.5, 8)
    rewards = [env.step(action)[1] for _ in range(40_000)]
    assert np.isclose(np.mean(rewards), env.expected_reward(context, action), atol=0.01)
    # the d − m directions P ignores change nothing, sample by sample
    null = np.linalg.svd(projection)[2][2:].T @ np.full(6, 0.05)
    env.reset(seed=3)
    first = env.step(action)
    env.reset(seed=3)
    moved = env.step(action + null)
    assert first[0].shape == (2 + 2,) and np.array_equal(first[0], moved[0]) and np.isclose(first[1], moved[1], rtol=1e-12)
    # any action with P a = c(s) is optimal
    best = projection.T @ env.target(context)
    assert env.expected_reward(context, best) > env.expected_reward(context, best + 0.05 * projection[0])


def test_bandit_outcome_dim_must_fit_the_action():
    with pytest.raises(ValueError, match=r"outcome_dim: must be None or an int in \[1, action_dim=2\]"):
        NoisyBandit(action_dim=2, outcome_dim=3)
