"""
Reference returns of scripted aims on ``sb3_dspg/HitReach-v0`` at a given actuator-noise spread: where a learned
policy stands between aiming at the goal and aiming one of the bimodal noise's modes at it.

Each noise mode moves the position by ``m = step·0.95·noise_scale`` per coordinate (``envs.sample_noise``). The
aims, each clipped to the action box, for the move ``d = g − p`` still needed:

- ``random``: ``a ~ U(-1, 1)²``;
- ``straight``: ``a = d/step`` (every mode lands ``m`` off along each axis);
- ``one axis``: ``a = d/step − (m/step, 0)`` (one mode of the first coordinate lands on the goal's line);
- ``one mode``: ``a = d/step − (m/step)(1, 1)`` (one of the four modes lands on the goal: the diagonal offset).

Usage (the noisy suite's README quotes its output)::

    python benchmarks/hit_reach_aims.py --noise-scales 0.6 0.9 1.2 --episodes 2000
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

import sb3_dspg  # noqa: F401  (registers the envs)
from sb3_dspg.envs import HitReach

AIMS = ("random", "straight", "one axis", "one mode")


def aim(name: str, obs: np.ndarray, step: float, mode: float, rng: np.random.Generator) -> np.ndarray:
    """
    The scripted action of ``name`` (one of ``AIMS``).

    :param name: the aim
    :param obs: HitReach's observation ``(p, g)``, shape ``(4,)``
    :param step: the env's move per unit action
    :param mode: a noise mode's move per coordinate, ``step·0.95·noise_scale``
    :param rng: for ``random``
    :return: the action, shape ``(2,)``
    """
    if name == "random":
        return rng.uniform(-1.0, 1.0, 2)
    needed = (obs[2:] - obs[:2]) / step
    offset = {"straight": (0.0, 0.0), "one axis": (mode / step, 0.0), "one mode": (mode / step, mode / step)}[name]
    return np.clip(needed - np.asarray(offset), -1.0, 1.0)


def mean_return(name: str, noise_scale: float, episodes: int, seed: int) -> tuple[float, float]:
    """
    Mean and standard error of the return of aim ``name`` over ``episodes`` episodes.

    :param name: one of ``AIMS``
    :param noise_scale: HitReach's ``noise_scale``
    :param episodes: number of episodes
    :param seed: seeds the env's first reset and the random aim
    :return: ``(mean, standard error)``
    """
    env = gym.make("sb3_dspg/HitReach-v0", noise_scale=noise_scale)
    step, rng, returns = env.unwrapped.step_size, np.random.default_rng(seed), []
    obs, _ = env.reset(seed=seed)
    for _ in range(episodes):
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(aim(name, obs, step, step * 0.95 * noise_scale, rng))
            total, done = total + reward, terminated or truncated
        returns.append(total)
        obs, _ = env.reset()
    return float(np.mean(returns)), float(np.std(returns) / np.sqrt(episodes))


def main() -> None:
    """Print a Markdown table: noise scale × aim → mean return ± standard error."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--noise-scales", type=float, nargs="+", default=[0.6, 0.9, 1.2])
    parser.add_argument("--episodes", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print("| noise_scale | mode move per coordinate | " + " | ".join(AIMS) + " |")
    print("|---" * (len(AIMS) + 2) + "|")
    step = HitReach().step_size  # the registered env's default move per unit action
    for scale in args.noise_scales:
        cells = [mean_return(name, scale, args.episodes, args.seed) for name in AIMS]
        print(f"| {scale} | ±{step * 0.95 * scale:.2f} | " + " | ".join(f"{m:.2f} ± {se:.2f}" for m, se in cells) + " |")


if __name__ == "__main__":
    main()
