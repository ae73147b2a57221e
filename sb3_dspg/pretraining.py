"""Reward-free pretraining of the action denoiser (docs/design.md §8).

The denoiser's conditional half is an inverse model of the world, ``p(a | s, s′)``: it needs no reward. Here it
learns from transitions without one, with the reward slot of the outcome masked (``m_r = 0``), either collected
online in the model's env (:meth:`sb3_dspg.DSPG.pretrain`) or read from an offline dataset, a Minari dataset or
an SB3 replay buffer (:meth:`sb3_dspg.DSPG.pretrain_denoiser`). Reward-free transitions live in a buffer of their
own, with NaN rewards, and are never sampled as if they had a reward. Nothing else is trained.
"""

from collections import defaultdict
from typing import TYPE_CHECKING, Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer
from stable_baselines3.common.utils import configure_logger

from sb3_dspg import score
from sb3_dspg.checks import check_finite_losses
from sb3_dspg.estimator import denoising_step

if TYPE_CHECKING:
    from sb3_dspg.dspg import DSPG


def check_pretrainable(model: "DSPG") -> None:
    """Refuse to pretrain a denoiser that cannot learn (every parameter frozen) or whose outcome needs a reward."""
    if model.denoiser.outcome != "transition":
        raise ValueError(
            f"outcome: reward-free pretraining needs outcome='transition' (a denoiser conditioned on the next state); "
            f"this model's denoiser is conditioned on {model.denoiser.outcome!r}, which needs rewards"
        )
    own = [p for name, p in model.denoiser.named_parameters() if not name.startswith("features_extractor")]
    if not any(p.requires_grad for p in own):
        raise ValueError("denoiser: its parameters are frozen (requires_grad=False): there is nothing to pretrain")


def empty_buffer(model: "DSPG", size: int) -> ReplayBuffer:
    """A plain replay buffer with the model's spaces for reward-free transitions (one env)."""
    buffer_class = DictReplayBuffer if isinstance(model.observation_space, spaces.Dict) else ReplayBuffer
    return buffer_class(size, model.observation_space, model.action_space, device=model.device, n_envs=model.n_envs)


def pretrain_updates(model: "DSPG", buffer: ReplayBuffer, gradient_steps: int, batch_size: int) -> None:
    """``gradient_steps`` denoiser updates on reward-free transitions from ``buffer``, logged under ``pretrain/``."""
    denoiser = model.denoiser
    model.policy.set_training_mode(True)
    model._update_learning_rate([denoiser.optimizer])
    logs: dict[str, list[th.Tensor]] = defaultdict(list)
    for _ in range(gradient_steps):
        model._n_pretrain_updates += 1
        data = buffer.sample(batch_size, env=model._vec_normalize_env)  # type: ignore[arg-type]
        step = denoising_step(
            denoiser, data.observations, data.next_observations, None, data.actions,
            model.denoise_sigma, model.cond_dropout, model.antithetic,
        )  # fmt: skip
        check_finite_losses({"pretrain/denoiser_loss": step.loss}, model._n_pretrain_updates, model.num_timesteps)
        model._step(denoiser.optimizer, step.loss)
        logs["denoiser_loss"].append(step.loss.detach())
        logs["denoiser_loss_cond"].append(step.loss_cond.detach())
        logs["denoiser_loss_uncond"].append(step.loss_uncond.detach())
        logs["score_norm"].append(score.outcome_score(step.eps_cond, step.eps_uncond, model.denoise_sigma).norm(dim=1).mean())
    model.logger.record("pretrain/n_updates", model._n_pretrain_updates)
    for key, values in logs.items():
        model.logger.record(f"pretrain/{key}", th.stack(values).mean().item())


def ensure_logger(model: "DSPG", tb_log_name: str) -> None:
    """Offline pretraining may come before any ``learn()``: give the model SB3's logger without fixing it for later."""
    if getattr(model, "_logger", None) is None:
        model._logger = configure_logger(model.verbose, model.tensorboard_log, tb_log_name)


def reward_free_buffer(model: "DSPG", data: Any) -> ReplayBuffer:
    """
    Reward-free transitions from ``data`` in a replay buffer, checked against the model.

    :param data: a Minari dataset (``minari.MinariDataset``; env actions are scaled to the model's ``[-1, 1]``)
        or an SB3 ``ReplayBuffer`` (actions already scaled, as SB3's off-policy algorithms store them);
        rewards in either are ignored
    :raises ValueError: the spaces differ from the model's, the data holds no transition, or a value is not finite
    """
    if isinstance(data, ReplayBuffer):
        _check_spaces(model, data.observation_space, data.action_space, "replay buffer")
        size = data.buffer_size if data.full else data.pos
        if size == 0:
            raise ValueError("data: the replay buffer holds no transitions")
        arrays = [data.actions[:size]]
        for field in ("observations", "next_observations"):
            stored = getattr(data, field)
            arrays += [v[:size] for v in stored.values()] if isinstance(stored, dict) else [stored[:size]]
        _check_finite(arrays)
        return data
    if not (hasattr(data, "iterate_episodes") and hasattr(data, "spec")):
        raise ValueError(f"data: expected a minari.MinariDataset or an SB3 ReplayBuffer, got {type(data).__name__}")
    _check_spaces(model, data.spec.observation_space, data.spec.action_space, "Minari dataset")
    episodes = list(data.iterate_episodes())
    n = sum(len(episode.actions) for episode in episodes)
    if n == 0:
        raise ValueError("data: the Minari dataset holds no transitions")
    buffer = empty_buffer(model, n)
    buffer.n_envs = 1
    for episode in episodes:
        obs = episode.observations
        actions = model.policy.scale_action(np.asarray(episode.actions, dtype=np.float32))
        arrays = [actions, *(obs.values() if isinstance(obs, dict) else [obs])]
        _check_finite(arrays)
        for t in range(len(episode.actions)):
            done = np.array([float(episode.terminations[t])])
            buffer.add(_row(obs, t), _row(obs, t + 1), actions[t][None], np.array([np.nan]), done, [{}])
    return buffer


def _row(obs: np.ndarray | dict[str, np.ndarray], t: int) -> np.ndarray | dict[str, np.ndarray]:
    """Step ``t`` of an episode's observations, with a batch dimension of 1."""
    return {key: value[t][None] for key, value in obs.items()} if isinstance(obs, dict) else obs[t][None]


def _check_spaces(model: "DSPG", observation_space: spaces.Space, action_space: spaces.Space, what: str) -> None:
    if observation_space != model.observation_space or action_space != model.action_space:
        raise ValueError(
            f"data: the {what}'s spaces do not match the model's: observations {observation_space} vs "
            f"{model.observation_space}, actions {action_space} vs {model.action_space}"
        )


def _check_finite(arrays: list[np.ndarray]) -> None:
    if not all(np.isfinite(np.asarray(array, dtype=np.float64)).all() for array in arrays):
        raise ValueError("data: the dataset holds non-finite observations or actions")
