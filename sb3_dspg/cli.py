"""The ``sb3-dspg`` command: ``train`` (train, save, log to TensorBoard, evaluate DSPG), ``compare`` and ``relabel``."""

import argparse
import importlib
import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

from sb3_dspg import DSPG
from sb3_dspg.hyperparams import default_timesteps, tuned_hyperparams


def train(args: argparse.Namespace) -> float:
    """
    Train DSPG on ``args.env`` with its settings from ``sb3_dspg/hyperparams/dspg.yml`` (overridden by
    ``--hyperparams``), save it, and print (and return) the mean evaluation return.
    """
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    action_shape = gym.make(args.env).action_space.shape
    kwargs = {**tuned_hyperparams("dspg", args.env, action_shape), **json.loads(args.hyperparams)}
    timesteps = args.timesteps or default_timesteps("dspg", args.env, fallback=10_000)
    model = DSPG("MlpPolicy", args.env, tensorboard_log=str(out / "tb"), seed=args.seed, verbose=args.verbose, **kwargs)
    model.learn(timesteps, progress_bar=not args.no_progress_bar, tb_log_name=f"DSPG_{args.env.replace('/', '_')}")
    path = out / f"dspg_{args.env.replace('/', '_')}_seed{args.seed}.zip"
    model.save(path)
    eval_env = Monitor(gym.make(args.env))
    eval_env.reset(seed=args.seed + 10_000)
    rewards, _ = evaluate_policy(model, eval_env, n_eval_episodes=args.eval_episodes, return_episode_rewards=True)
    mean, std = float(np.mean(rewards)), float(np.std(rewards))
    print(f"env={args.env} timesteps={timesteps} seed={args.seed} hyperparameters={kwargs}")
    print(f"saved model: {path}")
    print(f"tensorboard: tensorboard --logdir {out / 'tb'}")
    print(f"evaluation over {args.eval_episodes} episodes: mean return {mean:.1f} +/- {std:.1f}")
    return mean


#: subcommands that live in ``sb3_dspg.experiments.<name>`` and parse their own arguments: name -> help
DELEGATED = {
    "compare": "DSPG vs DDPG/TD3/SAC/TQC/CrossQ across envs and seeds",
    "relabel": "rename an algorithm's runs in a compare results folder",
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sb3-dspg", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_train = sub.add_parser("train", help="train DSPG, save the model, write TensorBoard logs, print the evaluation")
    p_train.add_argument("--env", default="Pendulum-v1", help="gymnasium env id (default: Pendulum-v1)")
    p_train.add_argument(
        "--timesteps", type=int, default=None, help="env steps (default: the env's n_timesteps in dspg.yml, else 10000)"
    )
    p_train.add_argument("--seed", type=int, default=0)
    p_train.add_argument("--out", default="runs", help="folder for the model and TensorBoard logs (default: runs)")
    p_train.add_argument(
        "--hyperparams", default="{}", help="JSON dict of DSPG keyword arguments over dspg.yml's, e.g. '{\"gamma\": 0.95}'"
    )
    p_train.add_argument("--eval-episodes", type=int, default=10)
    p_train.add_argument("--no-progress-bar", action="store_true")
    p_train.add_argument("--verbose", type=int, default=0)
    for name, what in DELEGATED.items():  # each parses its own arguments; imported only when called
        sub.add_parser(name, help=f"{what} (see sb3-dspg {name} --help)", add_help=False)
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in DELEGATED:
        importlib.import_module(f"sb3_dspg.experiments.{argv[0]}").main(argv[1:])
        return
    args = parser.parse_args(argv)
    if args.command == "train":
        train(args)


if __name__ == "__main__":
    main()
