"""Time a DSPG update against TD3, SAC, DDPG and CrossQ (and SBX's JAX TD3/SAC when ``sbx-rl`` is installed),
side by side in one process, interleaved A B A B.

Two measurements per env size:
- gradient updates: ``model.train(gradient_steps=N, batch_size=256)`` on a pre-filled buffer;
- full ``learn()``: env steps per second, including the updates (``train_freq=1``, ``gradient_steps=1``).
Every algorithm uses the same ``net_arch`` and batch size. Reported: medians over repetitions and the
ratios DSPG/TD3 and DSPG/SAC. ``--profile`` adds the top torch-profiler costs of a DSPG update.

    python benchmarks/throughput.py --threads 1 --reps 7
"""

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3 import DDPG, SAC, TD3
from stable_baselines3.common.logger import Logger

from sb3_dspg import DSPG

FUSED = dict(optimizer_kwargs=dict(fused=True))
#: the DSPG networks (denoiser, gradient head) at half width: a candidate for computing less (issue 11)
SMALL = dict(denoiser=[128, 128], grad_head=[128, 128])
#: name -> (class, extra keyword arguments, extra policy_kwargs). DSPG uses fused Adam by default (torch >= 2.4).
#: A ``net_arch`` dict in the policy_kwargs adds to the run's ``--net-arch`` (actor and critic keep it).
ALGOS = {
    "dspg": (DSPG, {}, {}),
    "dspg-unfused": (DSPG, {}, dict(optimizer_kwargs=dict(fused=False))),
    "dspg-no-antithetic": (DSPG, dict(antithetic=False), {}),
    "dspg-blend": (DSPG, dict(critic_grad_weight="auto"), {}),
    "dspg-c01": (DSPG, dict(critic_grad_weight=0.1), {}),  # the default since 0.3.0, named for older commands
    "dspg-c0": (DSPG, dict(critic_grad_weight=0.0), {}),  # the gradient head alone, the default before 0.3.0
    "dspg-small": (DSPG, {}, dict(net_arch=SMALL)),
    "dspg-small-no-antithetic": (DSPG, dict(antithetic=False), dict(net_arch=SMALL)),
    "td3": (TD3, {}, {}),
    "td3-fused": (TD3, {}, FUSED),
    "sac": (SAC, {}, {}),
    "sac-fused": (SAC, {}, FUSED),
    "ddpg": (DDPG, {}, {}),
    "crossq": ("sb3_contrib.CrossQ", {}, {}),
    "sbx-td3": ("sbx.TD3", {}, {}),
    "sbx-sac": ("sbx.SAC", {}, {}),
}
ENVS = {"Pendulum-v1": "Pendulum-v1", "HalfCheetah-v5": "HalfCheetah-v5"}


def algo_class(algo: str) -> type:
    """The class of a row of :data:`ALGOS` (rows from optional packages are imported when asked for)."""
    cls = ALGOS[algo][0]
    if isinstance(cls, str):
        import importlib

        module, _, name = cls.rpartition(".")
        cls = getattr(importlib.import_module(module), name)
    return cls


def make_model(algo: str, env_id: str, net_arch: list[int], device: str, learning_starts: int = 100):
    _, kwargs, policy_kwargs = ALGOS[algo]
    arch = policy_kwargs.get("net_arch", {})
    policy_kwargs = {**policy_kwargs, "net_arch": dict(pi=net_arch, qf=net_arch, **arch) if arch else net_arch}
    extra = {} if algo.startswith("sbx") else dict(device=device)  # JAX picks its own device
    model = algo_class(algo)("MlpPolicy", env_id, policy_kwargs=policy_kwargs, batch_size=256, learning_starts=learning_starts,
                             seed=0, **extra, **kwargs)  # fmt: skip
    model.set_logger(Logger(folder=None, output_formats=[]))
    return model


def fill_buffer(model, n: int, seed: int = 0) -> None:
    """Random transitions with the env's shapes, the same for every algorithm."""
    rng = np.random.default_rng(seed)
    obs_shape, act_dim = model.observation_space.shape, model.action_space.shape[0]
    for _ in range(n):
        obs = rng.standard_normal((1, *obs_shape)).astype(np.float32)
        next_obs = obs + 0.1 * rng.standard_normal((1, *obs_shape)).astype(np.float32)
        action = rng.uniform(-1, 1, (1, act_dim)).astype(np.float32)
        model.replay_buffer.add(obs, next_obs, action, rng.standard_normal(1), np.zeros(1), [{}])


def time_updates(models: dict, steps: int, reps: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in models}
    for model in models.values():  # warm-up (the same length: SBX compiles one program per number of steps)
        model.train(gradient_steps=steps, batch_size=256)
    for _ in range(reps):
        for name, model in models.items():
            start = time.perf_counter()
            model.train(gradient_steps=steps, batch_size=256)
            if getattr(model, "device", None) is not None and model.device.type == "cuda":
                th.cuda.synchronize()
            times[name].append((time.perf_counter() - start) / steps)
    return times


def time_learn(
    algos: list[str], env_id: str, net_arch: list[int], device: str, steps: int, reps: int
) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {name: [] for name in algos}
    for _ in range(reps):
        for name in algos:
            model = make_model(name, env_id, net_arch, device, learning_starts=100)
            model.learn(300)  # warm-up, not timed: 100 random steps, then 200 with updates (SBX compiles here)
            start = time.perf_counter()
            model.learn(steps, reset_num_timesteps=False)
            rates[name].append(steps / (time.perf_counter() - start))
    return rates


def profile_dspg(env_id: str, net_arch: list[int], device: str, top: int = 15) -> str:
    from torch.profiler import ProfilerActivity, profile

    model = make_model("dspg", env_id, net_arch, device)
    fill_buffer(model, 2000)
    model.train(gradient_steps=20, batch_size=256)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=activities) as prof:
        model.train(gradient_steps=100, batch_size=256)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=list(ENVS))
    parser.add_argument(
        "--algos",
        nargs="+",
        default=["dspg", "dspg-no-antithetic", "dspg-small", "dspg-small-no-antithetic", "td3", "sac", "ddpg", "crossq"],
        help=f"rows, of {list(ALGOS)} (sbx-* need `pip install sbx-rl`)",
    )
    parser.add_argument("--learn-algos", nargs="+", default=["dspg", "td3", "sac", "ddpg", "crossq"])
    parser.add_argument("--net-arch", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=200, help="gradient steps per timed train() call")
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--learn-steps", type=int, default=1000)
    parser.add_argument("--learn-reps", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "throughput.md"))
    args = parser.parse_args()
    th.set_num_threads(args.threads)
    if args.threads == 1:  # SBX rows: one XLA CPU thread too (read when JAX is first imported)
        os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

    lines = [
        "# Throughput: DSPG vs TD3, SAC, DDPG, CrossQ",
        "",
        f"Command: `python {' '.join(sys.argv)}`  ",
        f"Machine: {platform.machine()} CPU, {args.threads} torch thread(s), device {args.device}, torch {th.__version__}; "
        f"net_arch {args.net_arch} for every network, batch 256, interleaved A B A B.",
        "",
    ]
    for env_id in args.envs:
        models = {name: make_model(name, env_id, args.net_arch, args.device) for name in args.algos}
        for model in models.values():
            fill_buffer(model, 5000)
        updates = time_updates(models, args.steps, args.reps)
        learn = time_learn(args.learn_algos, env_id, args.net_arch, args.device, args.learn_steps, args.learn_reps)
        obs_dim, act_dim = gym.make(env_id).observation_space.shape[0], gym.make(env_id).action_space.shape[0]
        lines += [
            f"## {env_id} (obs {obs_dim}, action {act_dim})",
            "",
            "| algo | median ms / gradient step | DSPG / algo | median learn() env-steps/s |",
            "|---|---|---|---|",
        ]
        med = {name: statistics.median(values) for name, values in updates.items()}
        for name in args.algos:
            ratio = med["dspg"] / med[name] if "dspg" in med else float("nan")
            rate = f"{statistics.median(learn[name]):.0f}" if name in learn else "-"
            lines.append(f"| {name} | {1000 * med[name]:.2f} | {ratio:.2f} | {rate} |")
        lines.append("")
    if args.profile:
        lines += ["## Top costs of a DSPG update (torch.profiler, HalfCheetah size, 100 steps)", "", "```"]
        lines += [profile_dspg(args.envs[-1], args.net_arch, args.device), "```", ""]
    text = "\n".join(lines)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
