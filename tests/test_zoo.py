"""rl-zoo3 integration: train, enjoy and a tiny Optuna study with a journal-file storage, through rl-zoo3 itself."""

import subprocess
import sys

import optuna
import yaml

from sb3_dspg import zoo


def run_zoo(*args: str, cwd) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "sb3_dspg.zoo", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result.stdout


def test_shipped_hyperparameters_cover_the_documented_envs():
    table = yaml.safe_load(zoo.HYPERPARAMS_FILE.read_text())
    for env_id in ["Pendulum-v1", "InvertedPendulum-v5", "HalfCheetah-v5", "Hopper-v5", "Walker2d-v5"]:
        assert table[env_id]["policy"] == "MlpPolicy" and table[env_id]["n_timesteps"] > 0


def test_zoo_train_enjoy_and_optimize(tmp_path):
    common = ["--algo", "dspg", "--env", "Pendulum-v1", "-f", str(tmp_path / "logs")]
    run_zoo("train", *common, "-n", "300", "--seed", "0", "--hyperparams", "learning_starts:100", cwd=tmp_path)
    model_file = tmp_path / "logs" / "dspg" / "Pendulum-v1_1" / "Pendulum-v1.zip"
    assert model_file.exists()
    run_zoo("enjoy", *common, "--exp-id", "1", "-n", "50", "--no-render", cwd=tmp_path)

    storage = tmp_path / "study.log"
    run_zoo(
        "train", *common, "-n", "200", "--optimize", "--n-trials", "2", "--n-jobs", "1", "--sampler", "random",
        "--pruner", "none", "--storage", str(storage), "--study-name", "dspg_test", "--eval-episodes", "1",
        "--n-evaluations", "1", "--hyperparams", "learning_starts:100", cwd=tmp_path,
    )  # fmt: skip
    study = optuna.load_study(
        study_name="dspg_test",
        storage=optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(storage))),
    )
    assert len(study.trials) == 2
    params = zoo.convert_dspg_params(study.trials[0].params)
    assert 0 < params["denoise_sigma"] <= params["exploration_noise"] and 0 < params["cond_dropout"] < 1


def test_zoo_optimize_with_an_rdb_storage(tmp_path):
    """Several tuning workers share one study through an RDB URL (SQLite here, PostgreSQL on a cluster)."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    args = ["train", "--algo", "dspg", "--env", "Pendulum-v1", "-f", str(tmp_path / "logs"), "-n", "200", "--optimize",
            "--n-trials", "1", "--n-jobs", "1", "--sampler", "random", "--pruner", "none", "--storage", url,
            "--study-name", "dspg_rdb", "--eval-episodes", "1", "--n-evaluations", "1",
            "--hyperparams", "learning_starts:100"]  # fmt: skip
    run_zoo(*args, cwd=tmp_path)
    run_zoo(*args, cwd=tmp_path)  # a second worker adds its trial to the same study
    study = optuna.load_study(study_name="dspg_rdb", storage=url)
    assert len(study.trials) == 2 and all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
