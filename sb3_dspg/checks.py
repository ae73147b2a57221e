"""Validation guards: every bad input is refused with a message naming the parameter and what is allowed.

Used by :class:`~sb3_dspg.DSPG` at construction, on every stored transition, before every optimizer
step (:func:`check_finite_losses`) and when loading a model file.
"""

import math
import pathlib
import zipfile
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite; raised before any optimizer step of that update."""


#: name -> (predicate, what is allowed), for :func:`check_hyperparameters`.
HYPERPARAMETER_RULES: dict[str, tuple[Any, str]] = {
    "denoise_sigma": (lambda v: 0 < v < math.inf, "a finite number > 0"),
    "cond_dropout": (lambda v: 0 < v < 1, "in the open interval (0, 1); 0 would leave the unconditional denoiser untrained"),
    "exploration_noise": (lambda v: 0 < v < math.inf, "a finite number > 0 (DSPG's estimate needs spread in the buffer)"),
    "grad_clip": (lambda v: v > 0, "a number > 0 (math.inf disables clipping)"),
    "saturation_coef": (lambda v: 0 <= v < math.inf, "a finite number >= 0"),
    "policy_delay": (lambda v: v >= 1, "an integer >= 1"),
    "batch_size": (lambda v: v >= 1, "an integer >= 1"),
    "buffer_size": (lambda v: v >= 1, "an integer >= 1"),
    "tau": (lambda v: 0 <= v <= 1, "in [0, 1] (0 freezes the target networks, as in TD3)"),
    "gamma": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "critic_type": (lambda v: v in ("td3", "crossq"), "'td3' (TD3's critic, target networks) or 'crossq' (CrossQ's)"),
    "critic_grad_weight": (
        lambda v: v == "auto" or (not isinstance(v, bool) and 0 <= v <= 1),
        "a number in [0, 1] (0: the gradient head alone, 1: the critic's ∇_a Q alone) or 'auto'",
    ),
    "n_grad_heads": (lambda v: v in (1, 2) and not isinstance(v, bool), "1 or 2"),
    "outcome": (lambda v: v in ("transition", "return"), "'transition' (the next state and reward) or 'return' (G)"),
}


def check_hyperparameters(**params: Any) -> None:
    """Raise ``ValueError`` naming the first hyper-parameter outside its allowed range (:data:`HYPERPARAMETER_RULES`)."""
    for name, value in params.items():
        check, allowed = HYPERPARAMETER_RULES[name]
        try:
            ok = bool(check(value))
        except TypeError:
            ok = False
        if not ok or (isinstance(value, float) and math.isnan(value)):
            raise ValueError(f"{name} must be {allowed}, got {value!r}")


def check_action_space(action_space: spaces.Space) -> None:
    """DSPG needs a continuous ``Box``; an unbounded one is refused by SB3 itself (``AssertionError``)."""
    if not isinstance(action_space, spaces.Box):
        raise ValueError(f"action_space: DSPG supports only continuous gymnasium.spaces.Box action spaces, got {action_space}")


def check_finite_env_data(checks: list[tuple[str, Any]], num_timesteps: int) -> None:
    """
    Refuse non-finite environment data before it enters the replay buffer.

    :param checks: ``(name, array or dict of arrays)`` pairs, e.g. ``("reward", reward)``
    :param num_timesteps: the step, for the message
    """
    for name, value in checks:
        arrays = value.values() if isinstance(value, dict) else [value]
        if not all(np.isfinite(array).all() for array in arrays):
            raise ValueError(
                f"DSPG: the environment returned a non-finite {name} at step {num_timesteps} "
                f"(num_timesteps); it was not stored in the replay buffer. Fix the environment or wrap it "
                f"(e.g. stable_baselines3.common.vec_env.VecCheckNan to find where it comes from)."
            )


def check_finite_losses(losses: dict[str, th.Tensor], n_updates: int, num_timesteps: int) -> None:
    """Raise :class:`NonFiniteLossError` naming every NaN or infinite loss (one host sync)."""
    if bool(th.isfinite(th.stack(list(losses.values()))).all()):
        return
    bad = ", ".join(f"{name}={loss.item()}" for name, loss in losses.items() if not th.isfinite(loss))
    raise NonFiniteLossError(
        f"DSPG: non-finite loss at update {n_updates} (num_timesteps={num_timesteps}): {bad}. "
        "Training stopped before this update reached the weights; the model as it was after the "
        "previous update can still be saved. Check the environment's observations and rewards, "
        "or lower learning_rate."
    )


def check_model_file(path: Any) -> None:
    """Refuse a truncated or corrupted model zip with a clear message (SB3 reports it as a bare assertion)."""
    if not isinstance(path, str | pathlib.Path):
        return
    candidates = [pathlib.Path(path), pathlib.Path(f"{path}.zip")]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None or not zipfile.is_zipfile(found):
        return  # SB3 raises FileNotFoundError / "wasn't a zip-file" itself
    try:
        with zipfile.ZipFile(found) as archive:
            corrupted, names = archive.testzip(), archive.namelist()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise ValueError(f"path: {found} is not a readable DSPG model file ({error})") from error
    missing = {"data", "policy.pth"} - set(names)
    if corrupted is not None or missing:
        problem = f"corrupted member {corrupted!r}" if corrupted is not None else f"missing {sorted(missing)}"
        raise ValueError(f"path: {found} is not a complete DSPG model file ({problem}); was it truncated?")
