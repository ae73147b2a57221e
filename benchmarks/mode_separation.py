"""
Would a MuJoCo world give DSPG what HitReach does? How far apart bimodal actuator noise puts the reward-relevant
point one step after an action, measured against the hit radius that exploration can find.

Every DSPG win so far (HitBandit, HitReach at wide noise) shares one regime: the noise's modes land the outcome
farther apart than the reward's discontinuity is wide, at the very step the reward is paid, so the best aim is
off-centre and a critic's smoothed slope points at the centre. This script measures that ratio on HitReach and on
two MuJoCo candidates, a hit-reward version of ``Reacher-v5`` (fingertip within a radius of the target) and
gymnasium-robotics' ``FetchReach-v4`` (whose actions move the gripper's mocap target, i.e. position-level noise as on
HitReach), both with bimodal actuator noise, before any such world is registered or run:

- ``mode offset``: from states visited by a uniformly random policy, one action is executed under each of the
  ``2^k`` sign patterns of the bimodal noise's modes on the ``k`` actuators that move the point (``±0.95·scale`` of
  the half range, ``envs.sample_noise``), and the mean distance of the point reached after one step (HitReach's
  position, Reacher's fingertip, FetchReach's gripper) from the modes' mean is reported, for a random action and for
  holding still (``a = 0``, the action near the goal, where the box's clipping of ``a + ε`` does not bind);
- ``hit radius``: the radius within which a uniformly random policy is at a fraction ``q`` of its steps, ``q`` the
  random policy's hit rate on the HitReach world at the same noise (the radius exploration finds as often as there);
- their ratio (holding still): above 1, one step's modes straddle the reward's edge (HitReach 0.9: DSPG first); far
  below 1, the noise's modes are a velocity difference the next actions correct before the reward sees it. FetchReach's
  radius is its own success threshold (5 cm);
- with ``--aims``, FetchReach's returns under scripted aims (:data:`FETCH_AIMS`), HitReach's test of the regime
  (``hit_reach_aims.py``): is aiming a mode at the goal better than aiming at it?

Usage (the noisy suite's README quotes its output)::

    python benchmarks/mode_separation.py --noise-scales 0.3 0.6 0.9 1.2 --states 5000 --aims
"""

from __future__ import annotations

import argparse
import itertools

import gymnasium as gym
import mujoco
import numpy as np

import sb3_dspg  # noqa: F401  (registers the envs)
from sb3_dspg.envs import make_noisy

#: FetchReach's scripted aims: the Cartesian action's offset from ``(g − p)/0.05`` (full correction in one step),
#: in units of a noise mode ``0.95·scale``: none, one mode of the first coordinate, one of the eight modes.
FETCH_AIMS = {"straight": (0.0, 0.0, 0.0), "one axis": (1.0, 0.0, 0.0), "one mode": (1.0, 1.0, 1.0)}


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
        for held, executed in enumerate((action, np.zeros_like(action))):
            landed = []
            for mode in modes:
                base.set_state(qpos, qvel)
                base.do_simulation(np.clip(executed + mode, -1.0, 1.0), base.frame_skip)
                landed.append(base.get_body_com("fingertip")[:2].copy())
            offsets.append((held, spread(np.array(landed))))
        base.set_state(qpos, qvel)  # the rollout goes on under one random mode, as the noisy env would
        noisy = action + modes[rng.integers(len(modes))] + half * 0.31 * noise_scale * rng.standard_normal(2)
        _, _, terminated, truncated, _ = env.step(np.clip(noisy, -1.0, 1.0).astype(np.float32))
        distances.append(float(np.linalg.norm(base.get_body_com("fingertip")[:2] - base.get_body_com("target")[:2])))
        if terminated or truncated:
            env.reset()
    return mean_offsets(offsets), np.array(distances)


def mean_offsets(offsets: list[tuple[int, float]]) -> tuple[float, float]:
    """
    ``(mean offset of the random actions, mean offset of holding still)`` from ``(held, offset)`` pairs.

    :param offsets: ``held`` is 0 for a random action, 1 for ``a = 0``
    """
    return tuple(float(np.mean([offset for held, offset in offsets if held == h])) for h in (0, 1))


def fetch_reach(noise_scale: float, states: int, seed: int) -> tuple[tuple[float, float], float, float]:
    """
    FetchReach-v4's one-step mode offsets of the gripper, its success radius and a random policy's hit rate per step.

    :param noise_scale: bimodal actuator-noise std, as a fraction of the half action range
    :param states: number of random-policy states to measure from
    :param seed: seeds the env and the random actions
    :return: ``((random action, holding still) mode offsets, radius, hit rate)``
    """
    env = make_noisy("FetchReach-v4", actuator=noise_scale, kind="bimodal")
    base, rng = env.unwrapped, np.random.default_rng(seed)
    kind = mujoco.mjtState.mjSTATE_INTEGRATION  # qpos, qvel, mocap target, ...: all a step changes
    saved = np.empty(mujoco.mj_stateSize(base.model, kind))
    modes = np.hstack([mode_patterns(noise_scale, 3), np.zeros((8, 1))])  # the gripper's fingers are blocked
    env.reset(seed=seed)
    offsets, hits = [], []
    for _ in range(states):
        action = rng.uniform(-1.0, 1.0, 4)
        mujoco.mj_getState(base.model, base.data, saved, kind)
        for held, executed in enumerate((action, np.zeros(4))):
            landed = []
            for mode in modes:
                mujoco.mj_setState(base.model, base.data, saved, kind)
                obs, *_ = base.step(np.clip(executed + mode, -1.0, 1.0).astype(np.float32))
                landed.append(obs["achieved_goal"].copy())
            offsets.append((held, spread(np.array(landed))))
        mujoco.mj_setState(base.model, base.data, saved, kind)
        obs, reward, terminated, truncated, _ = env.step(action.astype(np.float32))
        hits.append(float(reward == 0))
        if terminated or truncated:
            env.reset()
    return mean_offsets(offsets), base.distance_threshold, float(np.mean(hits))


def fetch_aim_return(aim: str, noise_scale: float, episodes: int, seed: int) -> tuple[float, float]:
    """
    Mean and standard error of FetchReach-v4's return (−1 per step outside 5 cm) under a scripted aim.

    :param aim: one of :data:`FETCH_AIMS`
    :param noise_scale: bimodal actuator-noise std, as a fraction of the half action range
    :param episodes: number of episodes
    :param seed: seeds the env's first reset
    """
    env = make_noisy("FetchReach-v4", actuator=noise_scale, kind="bimodal")
    offset = 0.95 * noise_scale * np.asarray(FETCH_AIMS[aim])
    obs, _ = env.reset(seed=seed)
    returns = []
    for _ in range(episodes):
        total, done = 0.0, False
        while not done:
            move = np.clip((obs["desired_goal"] - obs["achieved_goal"]) / 0.05 - offset, -1.0, 1.0)
            obs, reward, terminated, truncated, _ = env.step(np.append(move, 0.0).astype(np.float32))
            total, done = total + reward, terminated or truncated
        returns.append(total)
        obs, _ = env.reset()
    return float(np.mean(returns)), float(np.std(returns) / np.sqrt(episodes))


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
    """Print Markdown tables: world × noise scale → mode offsets, hit radius, ratio; with ``--aims`` FetchReach's aims."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--noise-scales", type=float, nargs="+", default=[0.6, 0.9])
    parser.add_argument("--states", type=int, default=2000)
    parser.add_argument("--episodes", type=int, default=200, help="episodes per FetchReach aim (--aims)")
    parser.add_argument("--aims", action="store_true", help="also FetchReach's returns under scripted aims")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import sb3_dspg.experiments.robotics  # noqa: F401  (registers FetchReach-v4)

    print("| noise_scale | world | mode offset, random action | mode offset, holding still "
          "| random policy's hit rate per step | hit radius | ratio (holding still) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for scale in args.noise_scales:
        offset, radius, rate = hit_reach(scale, args.states, args.seed)
        cells = [f"{offset:.4f}", f"{offset:.4f}", f"{rate:.3f}", f"{radius:.3f}", f"{offset / radius:.2f}"]
        print(f"| {scale} | HitReach (position) | " + " | ".join(cells) + " |")
        (moving, held), distances = reacher(scale, args.states, args.seed)
        reach = float(np.quantile(distances, rate))  # the radius a random policy is inside at HitReach's rate
        cells = [f"{moving:.4f}", f"{held:.4f}", f"{rate:.3f}", f"{reach:.4f}", f"{held / reach:.2f}"]
        print(f"| {scale} | Reacher-v5 (fingertip) | " + " | ".join(cells) + " |")
        (moving, held), radius, rate = fetch_reach(scale, args.states, args.seed)
        cells = [f"{moving:.4f}", f"{held:.4f}", f"{rate:.3f}", f"{radius:.3f}", f"{held / radius:.2f}"]
        print(f"| {scale} | FetchReach-v4 (gripper) | " + " | ".join(cells) + " |")
    if args.aims:
        print()
        print("| noise_scale | " + " | ".join(f"FetchReach-v4, {aim}" for aim in FETCH_AIMS) + " |")
        print("|---" * (len(FETCH_AIMS) + 1) + "|")
        for scale in args.noise_scales:
            cells = [fetch_aim_return(aim, scale, args.episodes, args.seed) for aim in FETCH_AIMS]
            print(f"| {scale} | " + " | ".join(f"{mean:.1f} ± {se:.1f}" for mean, se in cells) + " |")


if __name__ == "__main__":
    main()
