"""DSPG vs TD3 on Pendulum-v1: final mean return and wall-clock, several seeds, side by side.

Both use rl-zoo3's tuned TD3 hyper-parameters for Pendulum-v1 (gamma 0.98, buffer 200k,
learning_starts 10k, lr 1e-3, net_arch [400, 300]); TD3 explores with rl-zoo3's N(0, 0.1) noise,
DSPG with its default N(0, 0.2) (its estimate needs spread in the buffer).

    python benchmarks/pendulum.py --timesteps 20000 --seeds 0 1 2 --workers 2
"""

import argparse
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ZOO_TD3 = dict(
    gamma=0.98, buffer_size=200_000, learning_starts=10_000, learning_rate=1e-3, policy_kwargs=dict(net_arch=[400, 300])
)


def run(algo: str, seed: int, timesteps: int) -> dict:
    import gymnasium as gym
    import torch as th
    from stable_baselines3 import TD3
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.noise import NormalActionNoise

    from sb3_dspg import DSPG

    th.set_num_threads(1)
    env = gym.make("Pendulum-v1")
    if algo == "td3":
        model = TD3("MlpPolicy", env, action_noise=NormalActionNoise(np.zeros(1), 0.1 * np.ones(1)), seed=seed, **ZOO_TD3)
    else:
        model = DSPG("MlpPolicy", env, seed=seed, **ZOO_TD3)
    start = time.perf_counter()
    model.learn(timesteps)
    wall = time.perf_counter() - start
    eval_env = Monitor(gym.make("Pendulum-v1"))
    eval_env.reset(seed=1000 + seed)
    rewards, _ = evaluate_policy(model, eval_env, n_eval_episodes=10, return_episode_rewards=True)
    return dict(algo=algo, seed=seed, mean_return=float(np.mean(rewards)), wall_s=wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timesteps", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--algos", nargs="+", default=["dspg", "td3"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "pendulum.md"))
    args = parser.parse_args()

    jobs = [(algo, seed, args.timesteps) for seed in args.seeds for algo in args.algos]
    with ProcessPoolExecutor(args.workers) as pool:
        results = list(pool.map(run, *zip(*jobs, strict=True)))

    lines = [
        f"# Pendulum-v1, {args.timesteps} env steps, seeds {args.seeds}",
        "",
        f"Command: `python {' '.join(sys.argv)}`  ",
        f"Machine: {platform.processor() or platform.machine()}, {args.workers} worker processes, 1 torch thread each, CPU.  ",
        "Hyper-parameters: rl-zoo3's TD3 Pendulum-v1 set for both; TD3 noise N(0, 0.1), DSPG its default N(0, 0.2).  ",
        "Return: mean of 10 deterministic evaluation episodes after training.",
        "",
        "| algo | seed | mean return | wall-clock (s) |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r['algo']} | {r['seed']} | {r['mean_return']:.1f} | {r['wall_s']:.0f} |" for r in results]
    lines += ["", "| algo | mean over seeds | min | max | mean wall-clock (s) |", "|---|---|---|---|---|"]
    for algo in args.algos:
        rs = [r for r in results if r["algo"] == algo]
        returns = [r["mean_return"] for r in rs]
        lines.append(
            f"| {algo} | {np.mean(returns):.1f} | {np.min(returns):.1f} | {np.max(returns):.1f} | "
            f"{np.mean([r['wall_s'] for r in rs]):.0f} |"
        )
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
