"""Noisy worlds: environments whose response to an action is stochastic (DESIGN.md §5).

After ``import sb3_dspg`` the ids below work with ``gymnasium.make``.
"""

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

NOISE_KINDS = ("none", "gaussian", "bimodal", "student_t")


def sample_noise(rng: np.random.Generator, kind: str, scale: float, shape: tuple[int, ...]) -> np.ndarray:
    """
    Zero-mean noise of standard deviation ``scale`` (per coordinate).

    - ``gaussian``: ``scale·N(0, 1)``;
    - ``bimodal``: ``±0.95·scale`` with equal odds plus ``N(0, (0.31·scale)²)`` (two well separated modes);
    - ``student_t``: ``scale·t_3/√3`` (heavy tails, variance ``scale²``);
    - ``none``: zeros.
    """
    if kind == "none" or scale == 0:
        return np.zeros(shape)
    if kind == "gaussian":
        return scale * rng.standard_normal(shape)
    if kind == "bimodal":
        return scale * (0.95 * rng.choice([-1.0, 1.0], size=shape) + np.sqrt(1 - 0.95**2) * rng.standard_normal(shape))
    if kind == "student_t":
        return scale * rng.standard_t(3, size=shape) / np.sqrt(3.0)
    raise ValueError(f"noise: must be one of {NOISE_KINDS}, got {kind!r}")


class NoisyBandit(gym.Env):
    """
    One-step contextual bandit with stochastic outcome and an analytic optimum.

    Context ``s ~ U(-1, 1)^k``; action ``a ∈ [-1, 1]^d``; outcome ``y = a + ε`` with zero-mean
    noise ``ε`` of std ``noise_scale`` (:func:`sample_noise`); reward ``R = −‖y − c(s)‖²`` with the
    target ``c(s) = 0.8·tanh(2W s)`` (``W`` fixed by ``task_seed``). Hence

        E[R | s, a] = −‖a − c(s)‖² − d·noise_scale²,   ∇_a E[R | s, a] = −2(a − c(s)),

    and the optimal action is ``c(s)``. Each episode is one step; the final observation
    ``(s, y)`` carries the outcome.

    :param action_dim: ``d``
    :param context_dim: ``k``
    :param noise: kind of outcome noise, one of ``NOISE_KINDS``
    :param noise_scale: std of the outcome noise
    :param task_seed: seed of the target map ``W`` (the same task for every env seed)
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012

    def __init__(
        self, action_dim: int = 2, context_dim: int = 2, noise: str = "bimodal", noise_scale: float = 0.3, task_seed: int = 0
    ):
        if noise not in NOISE_KINDS:
            raise ValueError(f"noise: must be one of {NOISE_KINDS}, got {noise!r}")
        if not noise_scale >= 0:
            raise ValueError(f"noise_scale: must be >= 0, got {noise_scale!r}")
        self.action_dim, self.context_dim, self.noise, self.noise_scale = action_dim, context_dim, noise, noise_scale
        self.weights = np.random.default_rng(task_seed).standard_normal((action_dim, context_dim)) / np.sqrt(context_dim)
        self.action_space = spaces.Box(-1.0, 1.0, (action_dim,), dtype=np.float32)
        bound = np.concatenate([np.ones(context_dim), np.full(action_dim, 10.0)]).astype(np.float32)
        self.observation_space = spaces.Box(-bound, bound, dtype=np.float32)
        self._context = np.zeros(context_dim)

    def target(self, context: np.ndarray) -> np.ndarray:
        """``c(s)``, the optimal action."""
        return 0.8 * np.tanh(2.0 * context @ self.weights.T)

    def expected_reward(self, context: np.ndarray, action: np.ndarray) -> np.ndarray:
        """``E[R | s, a]``."""
        return -np.sum((action - self.target(context)) ** 2, axis=-1) - self.action_dim * self.noise_scale**2

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._context = self.np_random.uniform(-1.0, 1.0, self.context_dim)
        return self._obs(np.zeros(self.action_dim)), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        outcome = action + sample_noise(self.np_random, self.noise, self.noise_scale, (self.action_dim,))
        reward = -float(np.sum((outcome - self.target(self._context)) ** 2))
        info = {"expected_reward": float(self.expected_reward(self._context, action))}
        return self._obs(outcome), reward, True, False, info

    def _obs(self, outcome: np.ndarray) -> np.ndarray:
        obs = np.concatenate([self._context, outcome])
        return np.clip(obs, self.observation_space.low, self.observation_space.high).astype(np.float32)


def register_envs() -> None:
    """Register the noisy worlds' ids (idempotent)."""
    ids = {"sb3_dspg/NoisyBandit-v0": {}}
    for env_id, kwargs in ids.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point="sb3_dspg.envs:NoisyBandit", kwargs=kwargs, max_episode_steps=1)
