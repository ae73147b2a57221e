"""One source of hyper-parameters: ``sb3_dspg/hyperparams/dspg.yml`` for DSPG, rl-zoo3's files for its peers.

``sb3-dspg train``, ``sb3-dspg compare``, ``python -m sb3_dspg.zoo`` and the benchmarks all read the
tuned settings through :func:`tuned_hyperparams`, so a value is written down once.

Lookup for an env id: its own entry; else its base env's for a registered noisy variant
(``sb3_dspg/ActuatorPendulum-v1`` → ``Pendulum-v1``); else the ``-v4`` entry for a ``-v5`` MuJoCo id.
With no entry, every algorithm gets :data:`UNTUNED`: library defaults with the same network size.
"""

from pathlib import Path
from typing import Any

import numpy as np
import yaml

#: DSPG's rl-zoo3 hyper-parameter file, shipped with the package.
DSPG_FILE = Path(__file__).parent / "hyperparams" / "dspg.yml"
#: What every algorithm gets on an env no file has an entry for: library defaults, the same nets.
UNTUNED: dict[str, Any] = {"policy_kwargs": {"net_arch": [256, 256]}}
#: rl-zoo3 keys that describe the experiment rather than the algorithm's keyword arguments.
EXPERIMENT_KEYS = ("n_timesteps", "policy", "normalize", "n_envs", "env_wrapper", "callback", "frame_stack")


def hyperparams_file(algo: str) -> Path:
    """The rl-zoo3 hyper-parameter file of ``algo`` (``dspg``: the shipped one; others need ``rl_zoo3``)."""
    if algo == "dspg":
        return DSPG_FILE
    import rl_zoo3

    return Path(rl_zoo3.__file__).parent / "hyperparams" / f"{algo}.yml"


def _base_env_id(env_id: str) -> str:
    from sb3_dspg.envs import NOISY_WORLDS

    entry = NOISY_WORLDS.get(env_id)
    return entry[1].get("base_id", env_id) if entry else env_id


def zoo_entry(algo: str, env_id: str) -> dict[str, Any] | None:
    """The raw rl-zoo3 entry for ``algo`` on ``env_id`` (see the module docstring for the lookup), or ``None``."""
    table = yaml.safe_load(hyperparams_file(algo).read_text())
    base = _base_env_id(env_id)
    for key in (env_id, base, base.replace("-v5", "-v4")):
        if key in table:
            return dict(table[key])
    return None


def tuned_hyperparams(algo: str, env_id: str, action_shape: tuple[int, ...] | int) -> dict[str, Any]:
    """
    Keyword arguments for ``algo``'s constructor on ``env_id``: the zoo entry turned into Python objects
    (``policy_kwargs`` strings evaluated, ``lin_X`` learning-rate schedules, ``noise_type``/``noise_std``
    made into an action-noise object), or :data:`UNTUNED`.

    :param algo: ``dspg`` or an rl-zoo3 algorithm name (``td3``, ``sac``, ``ddpg``, ``tqc``, ``crossq``)
    :param env_id: a Gymnasium id
    :param action_shape: the action space's shape (or its size), for the action-noise object
    """
    entry = zoo_entry(algo, env_id)
    if entry is None:
        return {key: dict(value) if isinstance(value, dict) else value for key, value in UNTUNED.items()}
    return zoo_kwargs(entry, action_shape, f"{algo} entry for {env_id}")


def zoo_kwargs(entry: dict[str, Any], action_shape: tuple[int, ...] | int, where: str = "entry") -> dict[str, Any]:
    """
    An rl-zoo3 entry turned into constructor keyword arguments: ``policy_kwargs`` strings evaluated, ``lin_X``
    learning-rate schedules, ``noise_type``/``noise_std`` made into an action-noise object; experiment keys
    (``n_timesteps``, ``policy``, ...) dropped.

    :param action_shape: the action space's shape (or its size), for the action-noise object
    :param where: what the entry is, for the error message
    """
    from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise
    from stable_baselines3.common.utils import LinearSchedule
    from torch import nn

    entry = dict(entry)
    noise_type, noise_std = entry.pop("noise_type", None), entry.pop("noise_std", 0.1)
    kwargs = {key: value for key, value in entry.items() if key not in EXPERIMENT_KEYS}
    if isinstance(kwargs.get("policy_kwargs"), str):
        kwargs["policy_kwargs"] = eval(kwargs["policy_kwargs"], {"nn": nn, "dict": dict})
    if isinstance(kwargs.get("learning_rate"), str):  # rl-zoo3 schedules such as "lin_7.3e-4"
        start = float(kwargs["learning_rate"].split("_")[1])
        kwargs["learning_rate"] = LinearSchedule(start, 0.0, 1.0)
    shape = (action_shape,) if isinstance(action_shape, int) else tuple(action_shape)
    if noise_type == "normal":
        kwargs["action_noise"] = NormalActionNoise(np.zeros(shape), np.full(shape, noise_std))
    elif noise_type == "ornstein-uhlenbeck":
        kwargs["action_noise"] = OrnsteinUhlenbeckActionNoise(np.zeros(shape), np.full(shape, noise_std))
    elif noise_type is not None:
        raise ValueError(f"noise_type: {where} has {noise_type!r}; allowed 'normal', 'ornstein-uhlenbeck'")
    return kwargs


def default_timesteps(algo: str, env_id: str, fallback: int) -> int:
    """The entry's ``n_timesteps`` (the budget the settings were tuned for), else ``fallback``."""
    entry = zoo_entry(algo, env_id)
    return int(float(entry["n_timesteps"])) if entry and "n_timesteps" in entry else fallback
