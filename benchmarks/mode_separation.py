"""
Would a MuJoCo world give DSPG what HitReach does? How far apart bimodal actuator noise puts the reward-relevant
point one step after an action, measured against the hit radius that exploration can find.

Every DSPG win so far (HitBandit, HitReach at wide noise) shares one regime: the noise's modes land the outcome
farther apart than the reward's discontinuity is wide, at the very step the reward is paid, so the best aim is
off-centre and a critic's smoothed slope points at the centre. This script measures that ratio on HitReach and on
a hit-reward version of MuJoCo's ``Reacher-v5`` (fingertip within a radius of the target), before any such world is
registered or run:

- ``mode offset``: from states visited by a uniformly random policy, the same action is executed under each of the
  ``2^d`` sign patterns of the bimodal noise's modes (``±0.95·scale`` of the half range per actuator,
  ``envs.sample_noise``) and the mean distance of the point reached after one step (HitReach's position, Reacher's
  fingertip) from the modes' mean is reported;
- ``hit radius``: the radius within which a uniformly random policy is at a fraction ``q`` of its steps, ``q`` the
  random policy's hit rate on the HitReach world at the same noise (the radius exploration finds as often as there);
- their ratio: above 1, one step's modes straddle the reward's edge (HitReach 0.9: DSPG first); far below 1, the
  noise's modes are a velocity difference the next actions correct before the reward sees it.

Usage (the noisy suite's README quotes its output)::

    python benchmarks/mode_separation.py --noise-scales 0.6 0.9 --states 2000
"""

from __future__ import annotations

import argparse
import itertools

import gymnasium as gym
import numpy as np

import sb3_dspg  # noqa: F401  (registers the envs)


def mode_patterns(noise_scale: float, dim: int) -> np.ndarray:
    """
    The bimodal noise's mode centres, one row per sign pattern.

    :param noise_scale: the noise's std, in units of the half action range
    :param dim: action dimension ``d``
    :return: shape ``(2^d, d)``, entries ``±0.95·noise_scale``
    """
    return 0.95 * noise_scale * np.array(list(itertools.product([-1.0, 1.0], repeat=dim)))


def spread(points: np.ndarray) -> float:
    """
    Mean distance of the points from their mean.

    :param points: shape ``(n, 2)``
    """
    return float(np.linalg.norm(points - points.mean(0), axis=1).mean())


def reacher(noise_scale: float, states: int, seed: int) -> tuple[float, np.ndarray]:
    """
    Reacher-v5's one-step mode offset of the fingertip and the fingertip-target distances of a random policy.

    :param noise_scale: bimodal actuator-noise std, as a fraction of the half action range
    :param states: number of random-policy states to measure from
    :param seed: seeds the env and the random actions
    :return: ``(mean mode offset, distances at every visited step, shape (states,))``
    """
    env = gym.make("Reacher-v5")
    base, rng = env.unwrapped, np.random.default_rng(seed)
    half = (env.action_space.high - env.action_space.low) / 2
    modes = half * mode_patterns(noise_scale, env.action_space.shape[0])
    env.reset(seed=seed)
    offsets, distances = [], []
    while len(distances) < states:
        action = rng.uniform(-1.0, 1.0, env.action_space.shape)
        qpos, qvel = base.data.qpos.copy(), base.data.qvel.copy()
        landed = []
        for mode in modes:
            base.set_state(qpos, qvel)
            base.do_simulation(np.clip(action + mode, -1.0, 1.0), base.frame_skip)
            landed.append(base.get_body_com("fingertip")[:2].copy())
        offsets.append(spread(np.array(landed)))
        base.set_state(qpos, qvel)  # the rollout goes on under one random mode, as the noisy env would
        noisy = action + modes[rng.integers(len(modes))] + half * 0.31 * noise_scale * rng.standard_normal(2)
        _, _, terminated, truncated, _ = env.step(np.clip(noisy, -1.0, 1.0).astype(np.float32))
        distances.append(float(np.linalg.norm(base.get_body_com("fingertip")[:2] - base.get_body_com("target")[:2])))
        if terminated or truncated:
            env.reset()
    return float(np.mean(offsets)), np.array(distances)


def hit_reach(noise_scale: float, states: int, seed: int) -> tuple[float, float, float]:
    """
    HitReach's one-step mode offset of the position, its radius and a random policy's hit rate per step.

    :param noise_scale: HitReach's ``noise_scale``
    :param states: number of random-policy steps
    :param seed: seeds the env and the random actions
    :return: ``(mode offset, radius, hit rate)``
    """
    env = gym.make("sb3_dspg/HitReach-v0", noise_scale=noise_scale)
    step, rng, hits = env.unwrapped.step_size, np.random.default_rng(seed), []
    env.reset(seed=seed)
    for _ in range(states):
        _, reward, terminated, truncated, _ = env.step(rng.uniform(-1.0, 1.0, 2))
        hits.append(reward)
        if terminated or truncated:
            env.reset()
    return spread(step * mode_patterns(noise_scale, 2)), env.unwrapped.radius, float(np.mean(hits))


def main() -> None:
    """Print a Markdown table: world × noise scale → mode offset, hit radius at HitReach's random hit rate, ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--noise-scales", type=float, nargs="+", default=[0.6, 0.9])
    parser.add_argument("--states", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print("| noise_scale | world | one-step mode offset | random policy's hit rate per step | hit radius | ratio |")
    print("|---|---|---|---|---|---|")
    for scale in args.noise_scales:
        offset, radius, rate = hit_reach(scale, args.states, args.seed)
        print(f"| {scale} | HitReach (position) | {offset:.4f} | {rate:.3f} | {radius:.3f} | {offset / radius:.2f} |")
        offset, distances = reacher(scale, args.states, args.seed)
        reach = float(np.quantile(distances, rate))  # the radius a random policy is inside at the same rate
        print(f"| {scale} | Reacher-v5 (fingertip) | {offset:.4f} | {rate:.3f} | {reach:.4f} | {offset / reach:.2f} |")


if __name__ == "__main__":
    main()
