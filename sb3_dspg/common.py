"""Small tensor helpers shared by the policy, the estimator and the critics: running statistics, observation batches,
TD3's smoothed next actions."""

from collections.abc import Sequence

import torch as th
from stable_baselines3.common.type_aliases import PyTorchObs
from torch import nn


@th.no_grad()
def running_rate(count: th.Tensor, momentum: float) -> th.Tensor:
    """
    The one update rule of every running statistic here: count the new batch and return its weight
    ``max(1 / count, momentum)``. The first ``1 / momentum`` batches are averaged exactly (like SB3's
    ``RunningMeanStd``); after that it is an exponential moving average, which follows statistics that
    drift as the networks learn.

    :param count: the number of batches folded in so far, a scalar buffer (incremented in place)
    :param momentum: the weight of the newest batch once the exact average holds ``1 / momentum`` batches
    :return: the weight of the new batch, a scalar tensor
    """
    count += 1
    return th.clamp(1.0 / count, min=momentum)


class RunningNorm(nn.Module):
    """
    Running mean / variance normaliser (:func:`running_rate`) whose statistics are buffers, saved with the policy.
    Each column keeps its own count, so a column that is absent from some batches (the reward of reward-free
    transitions) starts its exact average when it first appears.

    :param dim: size of the last dimension
    :param momentum: see :func:`running_rate`
    :param clip: normalised values are clipped to ``[-clip, clip]``
    :param eps: added to the variance
    """

    def __init__(self, dim: int, momentum: float = 0.01, clip: float = 10.0, eps: float = 1e-8):
        super().__init__()
        self.momentum = momentum
        self.clip = clip
        self.eps = eps
        self.register_buffer("mean", th.zeros(dim))
        self.register_buffer("var", th.ones(dim))
        self.register_buffer("count", th.zeros(dim))

    @th.no_grad()
    def update(self, x: th.Tensor, columns: slice = slice(None)) -> None:
        """
        Fold a batch ``(N, dim)`` into the statistics.

        :param columns: the columns present in this batch (the others keep their statistics and count)
        """
        rate = running_rate(self.count[columns], self.momentum)
        batch_mean = x[:, columns].mean(dim=0)
        batch_var = x[:, columns].var(dim=0, unbiased=False)
        delta = batch_mean - self.mean[columns]
        self.mean[columns] += rate * delta
        self.var[columns] += rate * (batch_var - self.var[columns]) + rate * (1 - rate) * delta.pow(2)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:
        count = state_dict.get(prefix + "count")
        if count is not None and count.dim() == 0:  # files from 0.2 and earlier: one count for all columns
            state_dict[prefix + "count"] = count.expand(self.count.shape).clone()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: th.Tensor) -> th.Tensor:
        return th.clamp((x - self.mean) / th.sqrt(self.var + self.eps), -self.clip, self.clip)


def cat_obs(batches: Sequence[PyTorchObs]) -> PyTorchObs:
    """
    Concatenate observation batches (tensors, or dicts of tensors for ``MultiInputPolicy``) along the
    batch dimension; ``cat_obs([obs] * n)`` repeats a batch ``n`` times.
    """
    if len(batches) == 1:
        return batches[0]
    if isinstance(batches[0], dict):
        return {key: th.cat([batch[key] for batch in batches], dim=0) for key in batches[0]}  # type: ignore[index]
    return th.cat(list(batches), dim=0)  # type: ignore[arg-type]


@th.no_grad()
def smoothed_next_actions(
    actor: nn.Module, next_obs: PyTorchObs, actions: th.Tensor, noise_std: float, noise_clip: float
) -> th.Tensor:
    """
    TD3's target policy smoothing: ``clip(μ(s′) + clip(N(0, noise_std²), ±noise_clip), ±1)``, ``(B, d)``.

    :param actor: the actor that proposes ``a′`` (TD3's target actor, or CrossQ's current one)
    :param next_obs: ``s′``
    :param actions: the buffer actions ``a``, for the noise's shape, dtype and device
    :param noise_std: std of the smoothing noise
    :param noise_clip: clip of the smoothing noise
    """
    noise = actions.clone().normal_(0, noise_std).clamp(-noise_clip, noise_clip)
    return (actor(next_obs) + noise).clamp(-1, 1)
