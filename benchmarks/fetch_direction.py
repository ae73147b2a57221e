"""Does the actor learn to move toward the goal on FetchReach, and which signal points it there?

FetchReach's reward is sparse (0 within 5 cm of the goal, −1 elsewhere), but the direction every good action takes
is known: the gripper's first three action components move it in x, y, z, so a policy that reaches the goal has
``a[:3]`` along ``desired_goal − achieved_goal``. Every ``--probe-freq`` steps this script samples 256 transitions
of the (HER) replay buffer and logs the mean cosine to that direction of:

- the actor's action ``μ(s)[:3]`` (``cos_actor``);
- the critic's action-gradient ``∇_a Q_1(s, μ(s))[:3]`` (``cos_critic``: what DDPG/TD3's actor follows);
- for DSPG, the gradient head ``H(s, μ(s))[:3]`` (``cos_head``: what DSPG's actor follows),

with the rollout success rate (exploration noise on). Same construction as ``sb3-dspg compare`` (untuned settings,
``MultiInputPolicy``, ``HerReplayBuffer`` with 4 future goals), one torch thread.

    python benchmarks/fetch_direction.py --algo dspg --steps 25000 --seed 0 --out benchmarks/results/fetch_direction
    python benchmarks/fetch_direction.py --algo td3-explore --steps 25000 --seed 0 --out benchmarks/results/fetch_direction

Writes ``<out>/<algo>_<seed>.csv``.
"""

import argparse
import csv
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch as th
import torch.nn.functional as F
from stable_baselines3.common.callbacks import BaseCallback

import sb3_dspg.experiments.robotics  # noqa: F401  (registers FetchReach)
from sb3_dspg.experiments.compare import algo_class, goal_env_settings, grid_hyperparams, parse_algo

#: the variants of the noisy suite's FetchReach grid
VARIANTS = {
    "td3-explore": {"noise_type": "normal", "noise_std": 0.1},
    "ddpg-explore": {"noise_type": "normal", "noise_std": 0.1},
}


class GoalDirectionProbe(BaseCallback):
    """
    Every ``probe_freq`` steps, the cosines of the actor, the critic's action-gradient and (DSPG) the gradient
    head to the goal direction, on a replay batch.

    :param probe_freq: env steps between probes
    :param rows: where each probe's row is appended
    """

    def __init__(self, probe_freq: int, rows: list[dict[str, float]]):
        super().__init__()
        self.probe_freq, self.rows = probe_freq, rows

    def _on_step(self) -> bool:
        if self.num_timesteps % self.probe_freq:
            return True
        model = self.model
        obs = model.replay_buffer.sample(256).observations  # type: ignore[union-attr]
        goal_direction = obs["desired_goal"] - obs["achieved_goal"]
        with th.no_grad():
            actions = model.actor(obs)
        actions_grad = actions.clone().requires_grad_(True)
        (critic_grad,) = th.autograd.grad(model.critic.q1_forward(obs, actions_grad).sum(), actions_grad)
        row = {
            "step": self.num_timesteps,
            "cos_actor": F.cosine_similarity(actions[:, :3], goal_direction, dim=1).mean().item(),
            "cos_critic": F.cosine_similarity(critic_grad[:, :3], goal_direction, dim=1).mean().item(),
        }
        if hasattr(model, "grad_head"):
            with th.no_grad():
                head = model.grad_head(model.grad_head.features(obs), actions)
            row["cos_head"] = F.cosine_similarity(head[:, :3], goal_direction, dim=1).mean().item()
        row["rollout_success"] = float(np.mean(model.ep_success_buffer)) if model.ep_success_buffer else 0.0
        self.rows.append(row)
        return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algo", default="dspg", help=f"dspg, td3, sac, ddpg or one of {sorted(VARIANTS)}")
    parser.add_argument("--steps", type=int, default=25_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--probe-freq", type=int, default=1000)
    parser.add_argument("--env", default="FetchReach-v4")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/fetch_direction"))
    args = parser.parse_args()

    th.set_num_threads(1)
    env = gym.make(args.env)
    hyperparams, _ = grid_hyperparams(args.algo, args.env, env.action_space.shape, [args.algo], VARIANTS)
    base, _ = parse_algo(args.algo, VARIANTS)
    model = algo_class(base)("MultiInputPolicy", env, seed=args.seed, **goal_env_settings(env), **hyperparams)
    rows: list[dict[str, float]] = []
    model.learn(args.steps, callback=GoalDirectionProbe(args.probe_freq, rows))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.algo}_{args.seed}.csv"
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({key: round(value, 4) for key, value in row.items()} for row in rows)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
