"""
Export an rl-zoo3 Optuna study (a journal file) to CSV and print its best trial as an ``sb3-dspg compare --variant``.

    python benchmarks/tuning/export_study.py --storage study.log --study-name td3_hit_bandit --algo td3 \
        --csv benchmarks/results/tuning/td3_trials.csv

The variant is the rl-zoo3 entry the best trial stands for (the zoo's own converter: ``gamma``, ``batch_size``,
``gradient_steps = train_freq``, ``net_arch``), with the sampled action noise as ``noise_type``/``noise_std``.
"""

import argparse
import json

import optuna
from rl_zoo3.hyperparams_opt import HYPERPARAMS_CONVERTER

from sb3_dspg import zoo


def best_variant(params: dict, algo: str) -> dict:
    """
    The settings a trial's sampled ``params`` stand for, written as in an rl-zoo3 file.

    :param params: ``trial.params``
    :param algo: the tuned algorithm (``dspg``, ``td3``, ``ddpg``, ...)
    """
    zoo.register()
    params = dict(params)
    noise_type, noise_std = params.pop("noise_type", None), params.pop("noise_std", None)
    variant = HYPERPARAMS_CONVERTER[algo](params)
    if noise_type is not None:
        variant |= {"noise_type": noise_type, "noise_std": noise_std}
    return variant


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--storage", required=True, help="the study's journal file")
    parser.add_argument("--study-name", required=True)
    parser.add_argument("--algo", required=True)
    parser.add_argument("--csv", required=True, help="where to write every trial")
    args = parser.parse_args()
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(args.storage))
    study = optuna.load_study(study_name=args.study_name, storage=storage)
    study.trials_dataframe().to_csv(args.csv, index=False)
    best = study.best_trial
    print(f"{args.algo}: best trial {best.number} of {len(study.trials)}, value {best.value:.4f}")
    print(json.dumps(best_variant(best.params, args.algo), sort_keys=True))


if __name__ == "__main__":
    main()
