"""Noisy worlds: environments whose response to an action is stochastic (docs/design.md §5).

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
    :param reward: ``quadratic`` (above) or ``hit``: ``R = 1[‖y − c(s)‖ < 0.25]``, a reward region the
        outcome must hit, discontinuous in the outcome (``∇_a Q̂`` of a critic fitted to 0/1 returns is
        a poor guide there; ``expected_reward`` is then not available in closed form)
    :param outcome_dim: ``m``, with ``1 ≤ m ≤ d``. When given, the outcome is ``y = P a + ε`` in ``m``
        dimensions, ``P`` an ``m × d`` map with orthonormal rows (fixed by ``task_seed``), and the target
        ``c(s)`` is ``m``-dimensional: the same ``m``-dimensional task embedded in a ``d``-dimensional action,
        ``d − m`` of whose directions do nothing. Then ``E[R | s, a] = −‖P a − c(s)‖² − m·noise_scale²`` and
        ``∇_a E[R | s, a] = −2Pᵀ(P a − c(s))``; the optimal actions are those with ``P a = c(s)``, and with
        ``reward="hit"`` the best hit rate does not fall with ``d`` (a test of high action dimensions whose
        difficulty stays put). ``None`` (default): ``y = a + ε``, ``P = I``.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012

    def __init__(
        self,
        action_dim: int = 2,
        context_dim: int = 2,
        noise: str = "bimodal",
        noise_scale: float = 0.3,
        task_seed: int = 0,
        reward: str = "quadratic",
        outcome_dim: int | None = None,
    ):
        if outcome_dim is not None and not (isinstance(outcome_dim, int | np.integer) and 1 <= outcome_dim <= action_dim):
            raise ValueError(f"outcome_dim: must be None or an int in [1, action_dim={action_dim}], got {outcome_dim!r}")
        if reward not in ("quadratic", "hit"):
            raise ValueError(f"reward: must be 'quadratic' or 'hit', got {reward!r}")
        self.reward_kind = reward
        if noise not in NOISE_KINDS:
            raise ValueError(f"noise: must be one of {NOISE_KINDS}, got {noise!r}")
        if not noise_scale >= 0:
            raise ValueError(f"noise_scale: must be >= 0, got {noise_scale!r}")
        self.action_dim, self.context_dim, self.noise, self.noise_scale = action_dim, context_dim, noise, noise_scale
        self.outcome_dim = action_dim if outcome_dim is None else outcome_dim
        rng = np.random.default_rng(task_seed)
        self.weights = rng.standard_normal((self.outcome_dim, context_dim)) / np.sqrt(context_dim)
        # P: orthonormal rows from the QR factors of a Gaussian matrix (identity when no outcome_dim is given)
        self.projection = np.eye(action_dim)
        if outcome_dim is not None:
            self.projection = np.linalg.qr(rng.standard_normal((action_dim, outcome_dim)))[0].T
        self.action_space = spaces.Box(-1.0, 1.0, (action_dim,), dtype=np.float32)
        bound = np.concatenate([np.ones(context_dim), np.full(self.outcome_dim, 10.0)]).astype(np.float32)
        self.observation_space = spaces.Box(-bound, bound, dtype=np.float32)
        self._context = np.zeros(context_dim)

    def target(self, context: np.ndarray) -> np.ndarray:
        """``c(s)``, the optimal action (with ``outcome_dim``: the optimal ``P a``)."""
        return 0.8 * np.tanh(2.0 * context @ self.weights.T)

    def expected_reward(self, context: np.ndarray, action: np.ndarray) -> np.ndarray:
        """``E[R | s, a]`` of the quadratic reward."""
        mean_outcome = action @ self.projection.T
        return -np.sum((mean_outcome - self.target(context)) ** 2, axis=-1) - self.outcome_dim * self.noise_scale**2

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._context = self.np_random.uniform(-1.0, 1.0, self.context_dim)
        return self._obs(np.zeros(self.outcome_dim)), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        outcome = self.projection @ action + sample_noise(self.np_random, self.noise, self.noise_scale, (self.outcome_dim,))
        distance2 = float(np.sum((outcome - self.target(self._context)) ** 2))
        if self.reward_kind == "hit":
            return self._obs(outcome), float(distance2 < 0.25**2), True, False, {}
        info = {"expected_reward": float(self.expected_reward(self._context, action))}
        return self._obs(outcome), -distance2, True, False, info

    def _obs(self, outcome: np.ndarray) -> np.ndarray:
        obs = np.concatenate([self._context, outcome])
        return np.clip(obs, self.observation_space.low, self.observation_space.high).astype(np.float32)


class HitReach(gym.Env):
    """
    Multi-step reaching with a discontinuous reward and noisy actuators: the one-step ``HitBandit`` made
    sequential, a world where a critic's ``∇_a Q̂`` is a poor guide (flat inside and outside the disk,
    a cliff at its edge) and the outcome of an action is multimodal.

    State: position ``p`` and goal ``g``, both drawn from ``U(-1, 1)²`` at reset; observation ``(p, g)``.
    Step: ``p ← clip(p + step·(a + ε), -1.5, 1.5)`` with actuator noise ``ε`` of ``noise`` kind and std
    ``noise_scale`` (:func:`sample_noise`; bimodal by default, so the commanded move lands in one of two
    places); reward ``R = 1[‖p − g‖ < radius]`` after the move. Episodes last ``max_episode_steps`` (10);
    the return counts the steps spent inside the disk, so the agent must get there quickly and stay
    despite the noise. With the defaults each noise mode moves ``p`` by ``±0.17`` per coordinate, so
    aiming at the centre of the disk puts both modes outside it: over 1000 episodes a random policy
    returns 0.17, moving straight at the goal 1.67, aiming off-centre along one axis (one mode lands in
    the disk) 2.67.

    With ``terminate_on_hit=True`` the episode ends at the first hit: the return is 1 if the disk is reached
    within the episode and 0 otherwise (a goal-reaching success, as in FetchReach), so the whole return is the
    discontinuous event and nothing smooth is bootstrapped after it.

    :param radius: radius of the goal disk
    :param step: move per unit action
    :param noise: kind of actuator noise, one of ``NOISE_KINDS``
    :param noise_scale: std of the actuator noise, in action units
    :param terminate_on_hit: end the episode at the first hit
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012

    def __init__(
        self,
        radius: float = 0.2,
        step: float = 0.3,
        noise: str = "bimodal",
        noise_scale: float = 0.6,
        terminate_on_hit: bool = False,
    ):
        if noise not in NOISE_KINDS:
            raise ValueError(f"noise: must be one of {NOISE_KINDS}, got {noise!r}")
        if not (radius > 0 and step > 0 and noise_scale >= 0):
            raise ValueError(f"radius and step must be > 0 and noise_scale >= 0, got {radius!r}, {step!r}, {noise_scale!r}")
        self.radius, self.step_size, self.noise, self.noise_scale = radius, step, noise, noise_scale
        self.terminate_on_hit = bool(terminate_on_hit)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
        self.observation_space = spaces.Box(-1.5, 1.5, (4,), dtype=np.float32)
        self._position, self._goal = np.zeros(2), np.zeros(2)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._position, self._goal = self.np_random.uniform(-1.0, 1.0, 2), self.np_random.uniform(-1.0, 1.0, 2)
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        move = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        move = move + sample_noise(self.np_random, self.noise, self.noise_scale, (2,))
        self._position = np.clip(self._position + self.step_size * move, -1.5, 1.5)
        hit = float(np.linalg.norm(self._position - self._goal) < self.radius)
        return self._obs(), hit, bool(hit) and self.terminate_on_hit, False, {"is_success": bool(hit)}

    def _obs(self) -> np.ndarray:
        return np.concatenate([self._position, self._goal]).astype(np.float32)


class _NoiseWrapper(gym.Wrapper):
    """
    Shared part of the noise wrappers: the ``scale``/``kind`` arguments and a noise generator of its
    own, seeded from ``reset(seed=...)`` (the env's own random stream is untouched).
    """

    def __init__(self, env: gym.Env, scale: float, kind: str):
        super().__init__(env)
        if kind not in NOISE_KINDS or not scale >= 0:
            raise ValueError(f"kind must be one of {NOISE_KINDS} and scale >= 0, got kind={kind!r}, scale={scale!r}")
        self.scale, self.kind = scale, kind
        self._rng = np.random.default_rng()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng([seed, 0x5EED])
        return self.env.reset(seed=seed, options=options)


class ActuatorNoise(_NoiseWrapper):
    """
    Actuator noise: the executed action is ``clip(a + scale·h·ε, low, high)``, with ``h`` the half
    range of the action box and ``ε`` zero-mean unit-variance noise of ``kind`` (:func:`sample_noise`).
    The agent (and its replay buffer) sees its intended action ``a``.

    :param env: the env to wrap (Box actions)
    :param scale: noise std as a fraction of the half action range
    :param kind: ``gaussian``, ``bimodal`` or ``student_t``
    """

    def __init__(self, env: gym.Env, scale: float = 0.2, kind: str = "gaussian"):
        super().__init__(env, scale, kind)
        self._half_range = (env.action_space.high - env.action_space.low) / 2

    def step(self, action):
        noise = self._half_range * sample_noise(self._rng, self.kind, self.scale, np.shape(action))
        executed = np.clip(action + noise, self.env.action_space.low, self.env.action_space.high)
        return self.env.step(executed.astype(self.env.action_space.dtype))


class TransitionNoise(_NoiseWrapper):
    """
    Transition noise: after each step a random push ``scale·ε`` is added to the velocities of the
    next state (MuJoCo ``qvel``, or Pendulum's angular velocity), and the observation is recomputed,
    so ``p(s′ | s, a)`` is genuinely stochastic. The reward of the step is the env's, before the push.

    :param env: a MuJoCo env or Pendulum-v1
    :param scale: std of the push (velocity units)
    :param kind: ``gaussian``, ``bimodal`` or ``student_t``
    """

    def __init__(self, env: gym.Env, scale: float = 0.3, kind: str = "gaussian"):
        super().__init__(env, scale, kind)
        base = env.unwrapped
        if not (hasattr(base, "data") or type(base).__name__ == "PendulumEnv"):
            raise ValueError(f"env: TransitionNoise supports MuJoCo envs and Pendulum-v1, got {type(base).__name__}")

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        base = self.env.unwrapped
        if hasattr(base, "data"):  # MuJoCo
            base.data.qvel[:] += sample_noise(self._rng, self.kind, self.scale, base.data.qvel.shape)
        else:  # Pendulum: state = (theta, theta_dot), theta_dot bounded by max_speed
            push = sample_noise(self._rng, self.kind, self.scale, (1,))[0]
            base.state[1] = np.clip(base.state[1] + push, -base.max_speed, base.max_speed)
        obs = np.asarray(base._get_obs(), dtype=self.observation_space.dtype)
        return obs, reward, terminated, truncated, info


def make_noisy(
    base_id: str,
    actuator: float = 0.0,
    transition: float = 0.0,
    kind: str = "gaussian",
    **kwargs: Any,
) -> gym.Env:
    """
    ``gym.make(base_id)`` with actuator and/or transition noise (see :class:`ActuatorNoise`, :class:`TransitionNoise`).

    :param base_id: a Gymnasium id (``Pendulum-v1``, ``InvertedPendulum-v5``, ``HalfCheetah-v5``, ...)
    :param actuator: actuator-noise std as a fraction of the half action range (0: none)
    :param transition: std of the velocity push (0: none)
    :param kind: noise distribution, one of ``NOISE_KINDS``
    """
    env = gym.make(base_id, **kwargs)
    if transition > 0:
        env = TransitionNoise(env, transition, kind)
    if actuator > 0:
        env = ActuatorNoise(env, actuator, kind)
    return env


#: Registered noisy worlds: id -> (entry point, kwargs, max_episode_steps). Levels keep the tasks solvable.
NOISY_WORLDS: dict[str, tuple[str, dict[str, Any], int | None]] = {
    "sb3_dspg/NoisyBandit-v0": ("sb3_dspg.envs:NoisyBandit", {}, 1),
    "sb3_dspg/HitBandit-v0": ("sb3_dspg.envs:NoisyBandit", {"reward": "hit"}, 1),
    "sb3_dspg/HitReach-v0": ("sb3_dspg.envs:HitReach", {}, 10),
    "sb3_dspg/ActuatorPendulum-v1": ("sb3_dspg.envs:make_noisy", {"base_id": "Pendulum-v1", "actuator": 0.3}, None),
    "sb3_dspg/PushPendulum-v1": ("sb3_dspg.envs:make_noisy", {"base_id": "Pendulum-v1", "transition": 0.5}, None),
    "sb3_dspg/BimodalPendulum-v1": (
        "sb3_dspg.envs:make_noisy",
        {"base_id": "Pendulum-v1", "actuator": 0.3, "kind": "bimodal"},
        None,
    ),
    "sb3_dspg/HeavyTailPushPendulum-v1": (
        "sb3_dspg.envs:make_noisy",
        {"base_id": "Pendulum-v1", "transition": 0.5, "kind": "student_t"},
        None,
    ),
    "sb3_dspg/ActuatorInvertedPendulum-v5": (
        "sb3_dspg.envs:make_noisy",
        {"base_id": "InvertedPendulum-v5", "actuator": 0.3},
        None,
    ),
    "sb3_dspg/ActuatorInvertedDoublePendulum-v5": (
        "sb3_dspg.envs:make_noisy",
        {"base_id": "InvertedDoublePendulum-v5", "actuator": 0.3},
        None,
    ),
    "sb3_dspg/PushInvertedPendulum-v5": (
        "sb3_dspg.envs:make_noisy",
        {"base_id": "InvertedPendulum-v5", "transition": 0.1},
        None,
    ),
    "sb3_dspg/NoisyHalfCheetah-v5": (
        "sb3_dspg.envs:make_noisy",
        {"base_id": "HalfCheetah-v5", "actuator": 0.2, "transition": 0.1},
        None,
    ),
}


def register_envs() -> None:
    """Register the noisy worlds' ids (idempotent)."""
    for env_id, (entry_point, kwargs, max_steps) in NOISY_WORLDS.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=entry_point, kwargs=kwargs, max_episode_steps=max_steps)
