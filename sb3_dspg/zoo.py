"""rl-zoo3 with DSPG registered: ``python -m sb3_dspg.zoo train|enjoy --algo dspg --env Pendulum-v1 ...``.

Registers ``DSPG`` in rl-zoo3's algorithm table and a DSPG hyper-parameter sampler in its Optuna
sampler/converter tables, then runs rl-zoo3's own ``train`` or ``enjoy`` with the remaining
arguments. ``train`` reads the shipped ``sb3_dspg/hyperparams/dspg.yml`` unless ``--conf-file`` is
given. Everything else (``--optimize``, ``--storage study.log`` for a journal file shared by several
machines, ``--study-name``, ``-n``, ``--eval-freq``, ...) is rl-zoo3's.
"""

import sys
from typing import Any

from sb3_dspg.hyperparams import DSPG_FILE as HYPERPARAMS_FILE


def sample_dspg_params(trial: Any, n_actions: int, n_envs: int, additional_args: dict) -> dict[str, Any]:
    """
    Optuna sampler for DSPG: rl-zoo3's TD3 search space (without action-noise types, DSPG always
    explores with Gaussian noise) plus DSPG's own hyper-parameters.

    :param trial: the Optuna trial
    :param n_actions: action dimension
    :param n_envs: number of envs
    :param additional_args: rl-zoo3's extra arguments (HER settings)
    :return: DSPG keyword arguments
    """
    from rl_zoo3.hyperparams_opt import sample_her_params

    params = {
        "one_minus_gamma": trial.suggest_float("one_minus_gamma", 0.0001, 0.03, log=True),
        "batch_size_pow": trial.suggest_int("batch_size_pow", 5, 9),
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 0.002, log=True),
        "train_freq": trial.suggest_int("train_freq", 1, 10),
        "tau": trial.suggest_float("tau", 0.001, 0.08, log=True),
        "net_arch": trial.suggest_categorical("net_arch", ["small", "medium", "big"]),
        "exploration_noise": trial.suggest_float("exploration_noise", 0.1, 0.5),
        "sigma_ratio": trial.suggest_float("sigma_ratio", 0.25, 1.0),
        "cond_dropout": trial.suggest_float("cond_dropout", 0.1, 0.5),
    }
    if additional_args["using_her_replay_buffer"]:
        params = sample_her_params(trial, params, additional_args["her_kwargs"])
    return convert_dspg_params(params)


def convert_dspg_params(sampled_params: dict[str, Any]) -> dict[str, Any]:
    """Turn sampled values into DSPG keyword arguments (``denoise_sigma = sigma_ratio·exploration_noise``)."""
    from rl_zoo3.hyperparams_opt import convert_offpolicy_params

    params = dict(sampled_params)
    ratio = params.pop("sigma_ratio", None)
    hyperparams = convert_offpolicy_params(params)
    if ratio is not None:
        hyperparams["denoise_sigma"] = ratio * hyperparams.get("exploration_noise", 0.2)
    return hyperparams


def register() -> None:
    """Add DSPG to rl-zoo3's algorithm, sampler and converter tables (idempotent)."""
    from rl_zoo3 import hyperparams_opt, utils

    from sb3_dspg import DSPG

    utils.ALGOS["dspg"] = DSPG
    hyperparams_opt.HYPERPARAMS_SAMPLER["dspg"] = sample_dspg_params
    hyperparams_opt.HYPERPARAMS_CONVERTER["dspg"] = convert_dspg_params


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("train", "enjoy"):
        raise SystemExit("usage: python -m sb3_dspg.zoo {train,enjoy} [rl-zoo3 arguments]")
    register()
    command, args = argv[0], argv[1:]
    if command == "train" and "--conf-file" not in args and "-conf" not in args:
        args += ["--conf-file", str(HYPERPARAMS_FILE)]
    sys.argv = [f"rl_zoo3 {command}", *args]
    if command == "train":
        from rl_zoo3.train import train

        train()
    else:
        from rl_zoo3.enjoy import enjoy

        enjoy()


if __name__ == "__main__":
    main()
