"""Policies for DSPG: SB3's TD3 policy plus a denoiser critic and an amortised gradient head."""

import math
from typing import Any

import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BaseModel
from stable_baselines3.common.preprocessing import get_action_dim
from stable_baselines3.common.torch_layers import (
    BaseFeaturesExtractor,
    CombinedExtractor,
    FlattenExtractor,
    NatureCNN,
    create_mlp,
)
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from stable_baselines3.td3.policies import Actor, TD3Policy
from torch import nn

_TORCH_HAS_CPU_FUSED_ADAM = tuple(int(part) for part in th.__version__.split(".")[:2]) >= (2, 4)

#: Keys ``net_arch`` may hold when it is a dict: actor, baseline head, denoiser, gradient head.
NET_ARCH_KEYS = ("pi", "qf", "dn", "gh")


class RunningNorm(nn.Module):
    """
    Running mean / variance normaliser whose statistics are buffers (saved with the policy).

    The first ``1 / momentum`` updates average exactly (like SB3's ``RunningMeanStd``); after
    that it is an exponential moving average, so it follows features that drift as a features
    extractor learns.

    :param dim: size of the last dimension
    :param momentum: weight of the newest batch once the exact average has ``1 / momentum`` batches
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
        self.register_buffer("count", th.zeros(()))

    @th.no_grad()
    def update(self, x: th.Tensor) -> None:
        """Fold a batch ``(N, dim)`` into the statistics."""
        self.count += 1
        rate = th.clamp(1.0 / self.count, min=self.momentum)
        batch_mean = x.mean(dim=0)
        batch_var = x.var(dim=0, unbiased=False)
        delta = batch_mean - self.mean
        self.mean += rate * delta
        self.var += rate * (batch_var - self.var) + rate * (1 - rate) * delta.pow(2)

    def forward(self, x: th.Tensor) -> th.Tensor:
        return th.clamp((x - self.mean) / th.sqrt(self.var + self.eps), -self.clip, self.clip)


def _cat_obs(first: PyTorchObs, second: PyTorchObs) -> PyTorchObs:
    """Stack two observation batches (tensors or dicts of tensors) along the batch dimension."""
    if isinstance(first, dict):
        return {key: th.cat([first[key], second[key]], dim=0) for key in first}  # type: ignore[index]
    return th.cat([first, second], dim=0)  # type: ignore[list-item]


class DSPGActor(Actor):
    """
    SB3's TD3 actor (``tanh``-squashed MLP), which can also return its pre-``tanh`` activation.

    The pre-activation feeds the saturation penalty that keeps the actor off the action bounds
    (DESIGN.md §3).
    """

    def forward_with_pre_tanh(self, obs: PyTorchObs) -> tuple[th.Tensor, th.Tensor]:
        """
        :param obs: observation batch
        :return: ``(action, pre_tanh)``, each ``(B, d)``
        """
        features = self.extract_features(obs, self.features_extractor)
        pre_tanh = self.mu[:-1](features)
        return th.tanh(pre_tanh), pre_tanh


class DenoiserCritic(BaseModel):
    """
    Noise-predicting denoiser ``F(ã, σ, s, c)`` of actions, conditioned on the outcome or not.

    Input row: ``[φ(s), ã, log σ, m·o, m]`` with ``m = 1`` for the outcome ``o`` and ``m = 0``
    (zeros) for the null condition. The outcome is ``o = (φ(s′) − φ(s), r)``, normalised by
    running statistics; ``s′`` goes through the same features extractor as ``s``.

    :param observation_space: Observation space
    :param action_space: Action space
    :param net_arch: Hidden layer sizes
    :param features_extractor: Network to extract features
    :param features_dim: Number of features
    :param activation_fn: Activation function
    :param normalize_images: Whether to normalize images or not, dividing by 255.0
    :param share_features_extractor: Whether the features extractor is shared with the actor
        (it is then trained by the actor loss only)
    """

    features_extractor: BaseFeaturesExtractor

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        net_arch: list[int],
        features_extractor: BaseFeaturesExtractor,
        features_dim: int,
        activation_fn: type[nn.Module] = nn.ReLU,
        normalize_images: bool = True,
        share_features_extractor: bool = False,
    ):
        super().__init__(
            observation_space, action_space, features_extractor=features_extractor, normalize_images=normalize_images
        )
        action_dim = get_action_dim(self.action_space)
        self.share_features_extractor = share_features_extractor
        self.outcome_dim = features_dim + 1
        self.outcome_norm = RunningNorm(self.outcome_dim)
        in_dim = features_dim + action_dim + 1 + self.outcome_dim + 1
        self.eps_net = nn.Sequential(*create_mlp(in_dim, action_dim, net_arch, activation_fn))

    def features_and_outcome(self, obs: PyTorchObs, next_obs: PyTorchObs, rewards: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """
        One features-extractor pass over ``s`` and ``s′`` together.

        :return: ``(φ(s), o)`` with the raw (not yet normalised) outcome ``o = (φ(s′) − φ(s), r)``
        """
        with th.set_grad_enabled(th.is_grad_enabled() and not self.share_features_extractor):
            features = self.extract_features(_cat_obs(obs, next_obs), self.features_extractor)
        feat_s, feat_next = features.chunk(2, dim=0)
        return feat_s, th.cat([feat_next - feat_s, rewards], dim=1)

    def forward(
        self, features: th.Tensor, noised_actions: th.Tensor, outcome: th.Tensor, sigma: float
    ) -> tuple[th.Tensor, th.Tensor]:
        """
        Conditional and unconditional noise predictions in one pass over the doubled batch.

        :param features: ``φ(s)``, ``(N, features_dim)``
        :param noised_actions: ``ã``, ``(N, d)``
        :param outcome: normalised outcome, ``(N, outcome_dim)``
        :param sigma: the noise level ``ã`` was made with
        :return: ``(F(ã, σ, s, o), F(ã, σ, s, ∅))``, each ``(N, d)``
        """
        n = features.shape[0]
        log_sigma = features.new_full((n, 1), math.log(sigma))
        shared = th.cat([features, noised_actions, log_sigma], dim=1)
        ones = features.new_ones((n, 1))
        cond = th.cat([shared, outcome, ones], dim=1)
        null = th.cat([shared, th.zeros_like(outcome), th.zeros_like(ones)], dim=1)
        eps = self.eps_net(th.cat([cond, null], dim=0))
        return eps[:n], eps[n:]


class GradientHead(BaseModel):
    """
    Amortised action-gradient ``H(s, a)``, regressed onto the per-sample estimate ``ĝ`` at
    ``(s, ã)`` (DESIGN.md §3). It also keeps the running mean square of ``ĝ`` (a buffer), by which
    its targets are scaled.

    :param observation_space: Observation space
    :param action_space: Action space
    :param net_arch: Hidden layer sizes
    :param features_extractor: Network to extract features
    :param features_dim: Number of features
    :param activation_fn: Activation function
    :param normalize_images: Whether to normalize images or not, dividing by 255.0
    :param share_features_extractor: Whether the features extractor is shared with the actor
    """

    features_extractor: BaseFeaturesExtractor

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        net_arch: list[int],
        features_extractor: BaseFeaturesExtractor,
        features_dim: int,
        activation_fn: type[nn.Module] = nn.ReLU,
        normalize_images: bool = True,
        share_features_extractor: bool = False,
    ):
        super().__init__(
            observation_space, action_space, features_extractor=features_extractor, normalize_images=normalize_images
        )
        action_dim = get_action_dim(self.action_space)
        self.share_features_extractor = share_features_extractor
        self.grad_net = nn.Sequential(*create_mlp(features_dim + action_dim, action_dim, net_arch, activation_fn))
        self.register_buffer("grad_mean_square", th.zeros(()))
        self.register_buffer("grad_count", th.zeros(()))

    def features(self, obs: PyTorchObs) -> th.Tensor:
        with th.set_grad_enabled(th.is_grad_enabled() and not self.share_features_extractor):
            return self.extract_features(obs, self.features_extractor)

    def forward(self, features: th.Tensor, actions: th.Tensor) -> th.Tensor:
        """
        :param features: ``φ(s)`` from :meth:`features`, ``(N, features_dim)``
        :param actions: ``(N, d)``
        :return: ``H(s, a)``, ``(N, d)``
        """
        return self.grad_net(th.cat([features, actions], dim=1))

    @th.no_grad()
    def update_scale(self, grad: th.Tensor, momentum: float = 0.01) -> th.Tensor:
        """
        Fold ``ĝ`` (``(N, d)``) into the running mean square per action dimension and return the RMS.
        """
        self.grad_count += 1
        rate = th.clamp(1.0 / self.grad_count, min=momentum)
        self.grad_mean_square += rate * (grad.pow(2).mean() - self.grad_mean_square)
        return th.sqrt(self.grad_mean_square + 1e-12)


class DSPGPolicy(TD3Policy):
    """
    Policy class for DSPG: the TD3 actor (+ target) and twin Q baseline head (+ target), plus the
    denoiser critic ``F`` and the gradient head ``H``.

    :param observation_space: Observation space
    :param action_space: Action space
    :param lr_schedule: Learning rate schedule (could be constant)
    :param net_arch: Hidden layer sizes: a list for every network, or a dict with keys ``pi``
        (actor), ``qf`` (baseline head), ``dn`` (denoiser) and ``gh`` (gradient head). Missing
        ``dn`` / ``gh`` default to ``[256, 256]``; ``None`` gives TD3's ``[400, 300]`` for the actor
        and baseline head (``[256, 256]`` with ``NatureCNN``).
    :param activation_fn: Activation function
    :param features_extractor_class: Features extractor to use.
    :param features_extractor_kwargs: Keyword arguments to pass to the features extractor.
    :param normalize_images: Whether to normalize images or not, dividing by 255.0 (True by default)
    :param optimizer_class: The optimizer to use, ``th.optim.Adam`` by default
    :param optimizer_kwargs: Additional keyword arguments, excluding the learning rate, to pass to the optimizer.
        With Adam on torch >= 2.4 the default is ``{"fused": True}`` (pass ``{"fused": False}`` to opt out).
    :param n_critics: Number of Q networks in the baseline head.
    :param share_features_extractor: Whether to share the actor's features extractor with every
        other network (it is then trained by the actor loss only)
    """

    actor: DSPGActor
    actor_target: DSPGActor
    denoiser: DenoiserCritic
    grad_head: GradientHead

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        n_critics: int = 2,
        share_features_extractor: bool = False,
    ):
        if isinstance(net_arch, dict):
            unknown = sorted(set(net_arch) - set(NET_ARCH_KEYS))
            if unknown or not {"pi", "qf"} <= set(net_arch):
                raise ValueError(
                    f"net_arch: a dict needs the keys 'pi' and 'qf' and may add 'dn' and 'gh' (allowed: {NET_ARCH_KEYS}); "
                    f"got {sorted(net_arch)}"
                )
        if optimizer_class is th.optim.Adam and _TORCH_HAS_CPU_FUSED_ADAM:
            # one fused kernel per optimizer step (CPU and CUDA), same maths as Adam: 4-6% of a DSPG update
            # on CPU (dspg-unfused row of benchmarks/results/throughput.md)
            optimizer_kwargs = {"fused": True, **(optimizer_kwargs or {})}
        if net_arch is None:
            # TD3's defaults for the actor and the baseline head; DSPG's own networks use [256, 256]
            hidden = [256, 256] if features_extractor_class == NatureCNN else [400, 300]
            net_arch = {"pi": hidden, "qf": list(hidden)}
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch,
            activation_fn,
            features_extractor_class,
            features_extractor_kwargs,
            normalize_images,
            optimizer_class,
            optimizer_kwargs,
            n_critics,
            share_features_extractor,
        )

    def _dspg_arch(self, key: str) -> list[int]:
        if isinstance(self.net_arch, dict):
            return list(self.net_arch.get(key, [256, 256]))
        return list(self.net_arch)

    def _build(self, lr_schedule: Schedule) -> None:
        super()._build(lr_schedule)
        shared = self.actor.features_extractor if self.share_features_extractor else None
        extra_kwargs = {"share_features_extractor": self.share_features_extractor}
        self.denoiser = DenoiserCritic(
            **self._update_features_extractor({**self.net_args, **extra_kwargs, "net_arch": self._dspg_arch("dn")}, shared)
        ).to(self.device)
        self.grad_head = GradientHead(
            **self._update_features_extractor({**self.net_args, **extra_kwargs, "net_arch": self._dspg_arch("gh")}, shared)
        ).to(self.device)
        for net in (self.denoiser, self.grad_head):
            params = [
                p
                for name, p in net.named_parameters()
                if not (self.share_features_extractor and name.startswith("features_extractor"))
            ]
            net.optimizer = self.optimizer_class(params, lr=lr_schedule(1), **self.optimizer_kwargs)  # type: ignore[call-arg]

    def make_actor(self, features_extractor: BaseFeaturesExtractor | None = None) -> DSPGActor:
        actor_kwargs = self._update_features_extractor(self.actor_kwargs, features_extractor)
        return DSPGActor(**actor_kwargs).to(self.device)

    def set_training_mode(self, mode: bool) -> None:
        """
        Put the policy in either training or evaluation mode.

        :param mode: if true, set to training mode, else set to evaluation mode
        """
        super().set_training_mode(mode)
        self.denoiser.set_training_mode(mode)
        self.grad_head.set_training_mode(mode)


MlpPolicy = DSPGPolicy


class CnnPolicy(DSPGPolicy):
    """
    DSPG policy with a ``NatureCNN`` features extractor (image observations).
    Parameters as in :class:`DSPGPolicy`.
    """

    def __init__(self, *args: Any, features_extractor_class: type[BaseFeaturesExtractor] = NatureCNN, **kwargs: Any):
        super().__init__(*args, features_extractor_class=features_extractor_class, **kwargs)


class MultiInputPolicy(DSPGPolicy):
    """
    DSPG policy with a ``CombinedExtractor`` (Dict observations, e.g. with ``HerReplayBuffer``).
    Parameters as in :class:`DSPGPolicy`.
    """

    def __init__(self, *args: Any, features_extractor_class: type[BaseFeaturesExtractor] = CombinedExtractor, **kwargs: Any):
        super().__init__(*args, features_extractor_class=features_extractor_class, **kwargs)
