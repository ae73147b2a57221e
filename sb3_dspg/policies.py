"""Policies for DSPG: SB3's TD3 policy (actor, twin-Q critic) plus an action denoiser and an amortised gradient head."""

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
from stable_baselines3.td3.policies import Actor, ContinuousCritic, TD3Policy
from torch import nn
from torch.nn import functional as F

from sb3_dspg import crossq
from sb3_dspg.checks import check_hyperparameters
from sb3_dspg.common import RunningNorm, cat_obs, running_rate

_TORCH_HAS_CPU_FUSED_ADAM = tuple(int(part) for part in th.__version__.split(".")[:2]) >= (2, 4)

#: Keys ``net_arch`` may hold when it is a dict: actor, critic (twin Q), denoiser, gradient head.
NET_ARCH_KEYS = ("pi", "qf", "denoiser", "grad_head")
#: Earlier short names of the DSPG keys, still accepted.
NET_ARCH_ALIASES = {"dn": "denoiser", "gh": "grad_head"}
#: Hidden layers of the denoiser and the gradient head when ``net_arch`` does not name them.
DEFAULT_DSPG_ARCH = [256, 256]


class DSPGActor(Actor):
    """
    SB3's TD3 actor (``tanh``-squashed MLP), which can also return its pre-``tanh`` activation.

    The pre-activation feeds the saturation penalty that keeps the actor off the action bounds
    (docs/design.md §3).
    """

    def forward_with_pre_tanh(self, obs: PyTorchObs) -> tuple[th.Tensor, th.Tensor]:
        """
        :param obs: observation batch
        :return: ``(action, pre_tanh)``, each ``(B, d)``
        """
        features = self.extract_features(obs, self.features_extractor)
        pre_tanh = self.mu[:-1](features)
        return th.tanh(pre_tanh), pre_tanh


class _ExtractorNetwork(BaseModel):
    """
    What the denoiser and the gradient head share: SB3's ``BaseModel`` with a features extractor, which this
    network trains unless it is the actor's (``share_features_extractor``: then the actor loss alone trains
    it), and a network of its own built by :meth:`_build_net`.

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
        self.share_features_extractor = share_features_extractor
        self._build_net(features_dim, get_action_dim(self.action_space), net_arch, activation_fn)

    def _build_net(self, features_dim: int, action_dim: int, net_arch: list[int], activation_fn: type[nn.Module]) -> None:
        raise NotImplementedError

    def features(self, obs: PyTorchObs) -> th.Tensor:
        """``φ(s)``; no gradient reaches a shared extractor from here."""
        with th.set_grad_enabled(th.is_grad_enabled() and not self.share_features_extractor):
            return self.extract_features(obs, self.features_extractor)


class ActionDenoiser(_ExtractorNetwork):
    """
    Noise-predicting denoiser ``F(ã, σ, s, c)`` of actions, conditioned on the outcome or not
    (docs/design.md §1.1).

    Input row: ``[φ(s), ã, log σ, m·o, m, m_r]`` with ``m = 1`` for the outcome ``o`` and ``m = 0``
    (zeros) for the null condition. The outcome is ``o = (φ(s′) − φ(s), m_r·r)``, normalised by
    running statistics; ``s′`` goes through the same features extractor as ``s``. ``m_r = 0`` marks a
    transition without a reward (reward-free pretraining, docs/design.md §8): the network then
    conditions on ``φ(s′) − φ(s)`` alone, and learns how actions shape the next state.
    With ``outcome="return"`` the outcome is the return signal ``G`` alone, ``(N, 1)`` (docs/design.md §12).

    :param outcome: ``"transition"`` (``o = (φ(s′) − φ(s), r)``) or ``"return"`` (``o = G``)
    Other constructor parameters as in :class:`_ExtractorNetwork`.
    """

    def __init__(self, *args: Any, outcome: str = "transition", **kwargs: Any):
        self.outcome = outcome  # read by _build_net, which the base constructor calls
        super().__init__(*args, **kwargs)

    def _build_net(self, features_dim: int, action_dim: int, net_arch: list[int], activation_fn: type[nn.Module]) -> None:
        self.outcome_dim = features_dim + 1 if self.outcome == "transition" else 1
        self.outcome_norm = RunningNorm(self.outcome_dim)
        in_dim = features_dim + action_dim + 1 + self.outcome_dim + 2
        self.eps_net = nn.Sequential(*create_mlp(in_dim, action_dim, net_arch, activation_fn))

    def features_and_outcome(
        self, obs: PyTorchObs, next_obs: PyTorchObs, rewards: th.Tensor | None, returns: th.Tensor | None = None
    ) -> tuple[th.Tensor, th.Tensor]:
        """
        One features-extractor pass over ``s`` and ``s′`` together (over ``s`` alone with ``outcome="return"``).

        :param rewards: ``(N, 1)``, or ``None`` for reward-free transitions (the reward slot is then 0)
        :param returns: the return signal ``G``, ``(N, 1)``: the outcome with ``outcome="return"``, else unused
        :return: ``(φ(s), o)`` with the raw (not yet normalised) outcome ``o = (φ(s′) − φ(s), r)`` or ``o = G``
        """
        if self.outcome == "return":
            if returns is None:
                raise ValueError("returns: a denoiser conditioned on the return (outcome='return') needs G")
            return self.features(obs), returns
        feat_s, feat_next = self.features(cat_obs([obs, next_obs])).chunk(2, dim=0)
        rewards = feat_s.new_zeros((feat_s.shape[0], 1)) if rewards is None else rewards
        return feat_s, th.cat([feat_next - feat_s, rewards], dim=1)

    def update_outcome_statistics(self, outcome: th.Tensor, reward_present: bool = True) -> None:
        """Fold raw outcomes into the running normaliser; without rewards only the state columns."""
        self.outcome_norm.update(outcome.detach(), slice(None) if reward_present else slice(0, self.outcome_dim - 1))

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:
        weight = state_dict.get(prefix + "eps_net.0.weight")
        if weight is not None and weight.shape[1] == self.eps_net[0].in_features - 1:
            # files from 0.2 and earlier have no reward-present input m_r: a zero column computes what they did
            state_dict[prefix + "eps_net.0.weight"] = th.cat([weight, weight.new_zeros((weight.shape[0], 1))], dim=1)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(
        self, features: th.Tensor, noised_actions: th.Tensor, outcome: th.Tensor, sigma: float, reward_present: bool = True
    ) -> tuple[th.Tensor, th.Tensor]:
        """
        Conditional and unconditional noise predictions in one pass over the doubled batch.

        :param features: ``φ(s)``, ``(N, features_dim)``
        :param noised_actions: ``ã``, ``(N, d)``
        :param outcome: normalised outcome, ``(N, outcome_dim)``
        :param sigma: the noise level ``ã`` was made with
        :param reward_present: ``False`` for reward-free transitions: the reward slot is masked out
        :return: ``(F(ã, σ, s, o), F(ã, σ, s, ∅))``, each ``(N, d)``
        """
        n = features.shape[0]
        log_sigma = features.new_full((n, 1), math.log(sigma))
        shared = th.cat([features, noised_actions, log_sigma], dim=1)
        ones = features.new_ones((n, 1))
        reward_mask = ones if reward_present else th.zeros_like(ones)
        outcome = outcome if reward_present else th.cat([outcome[:, :-1], th.zeros_like(ones)], dim=1)
        cond = th.cat([shared, outcome, ones, reward_mask], dim=1)
        null = th.cat([shared, th.zeros_like(outcome), th.zeros_like(ones), th.zeros_like(ones)], dim=1)
        eps = self.eps_net(th.cat([cond, null], dim=0))
        return eps[:n], eps[n:]


class GradientHead(_ExtractorNetwork):
    """
    Amortised action-gradient ``H(s, a)``, regressed onto the per-sample estimate ``ĝ`` at
    ``(s, ã)`` (docs/design.md §3). It also keeps the running mean square of ``ĝ`` (a buffer), by which
    its targets are scaled.

    With ``n_heads=2`` it holds two copies, each regressed on its own half of every batch's transitions; their
    mean is the head, their disagreement its variance (the inverse-variance blend, :mod:`sb3_dspg.blend`).

    :param n_heads: ``1``, or ``2`` for twin heads
    Other constructor parameters as in :class:`_ExtractorNetwork`.
    """

    def __init__(self, *args: Any, n_heads: int = 1, **kwargs: Any):
        self.n_heads = n_heads  # read by _build_net, which the base constructor calls
        super().__init__(*args, **kwargs)

    def _build_net(self, features_dim: int, action_dim: int, net_arch: list[int], activation_fn: type[nn.Module]) -> None:
        self.grad_net = nn.Sequential(*create_mlp(features_dim + action_dim, action_dim, net_arch, activation_fn))
        if self.n_heads == 2:  # a second copy; files with one head keep their keys
            self.twin_net = nn.Sequential(*create_mlp(features_dim + action_dim, action_dim, net_arch, activation_fn))
        self.register_buffer("grad_mean_square", th.zeros(()))
        self.register_buffer("grad_count", th.zeros(()))

    def _nets(self) -> list[nn.Module]:
        return [self.grad_net, self.twin_net] if self.n_heads == 2 else [self.grad_net]

    def forward(self, features: th.Tensor, actions: th.Tensor) -> th.Tensor:
        """
        :param features: ``φ(s)`` from :meth:`features`, ``(N, features_dim)``
        :param actions: ``(N, d)``
        :return: ``H(s, a)`` (the mean of the copies), ``(N, d)``
        """
        heads = self.forward_each(features, actions)
        return heads[0] if len(heads) == 1 else th.stack(heads).mean(dim=0)

    def forward_each(self, features: th.Tensor, actions: th.Tensor) -> tuple[th.Tensor, ...]:
        """Every copy's ``H_i(s, a)``, ``(N, d)`` each."""
        inputs = th.cat([features, actions], dim=1)
        return tuple(net(inputs) for net in self._nets())

    def regression_loss(self, features: th.Tensor, actions: th.Tensor, targets: th.Tensor, n_transitions: int) -> th.Tensor:
        """
        MSE of the head onto its targets at ``(s, ã)``; with twin heads each copy is fitted to its own half of the
        transitions (rows ``i`` and ``n_transitions + i`` are one transition's antithetic pair).

        :param features: ``φ(s)`` repeated to match the rows, ``(N, features_dim)``
        :param actions: ``ã``, ``(N, d)``
        :param targets: ``clip(ĝ)/RMS``, ``(N, d)``
        :param n_transitions: ``B``, the number of transitions behind the ``N`` rows
        """
        inputs = th.cat([features, actions], dim=1)
        if self.n_heads == 1:
            return F.mse_loss(self.grad_net(inputs), targets)
        first = th.arange(len(inputs), device=inputs.device) % n_transitions < n_transitions // 2
        return sum(
            F.mse_loss(net(inputs[rows]), targets[rows]) for net, rows in zip(self._nets(), (first, ~first), strict=True)
        )  # type: ignore[return-value]

    @th.no_grad()
    def update_scale(self, grad: th.Tensor, momentum: float = 0.01) -> th.Tensor:
        """
        Fold ``ĝ`` (``(N, d)``) into the running mean square (one scalar over all entries,
        :func:`~sb3_dspg.common.running_rate`) and return the running RMS.
        """
        rate = running_rate(self.grad_count, momentum)
        self.grad_mean_square += rate * (grad.pow(2).mean() - self.grad_mean_square)
        return self.grad_rms()

    def grad_rms(self) -> th.Tensor:
        """The running root-mean-square of ``ĝ`` by which the head's targets are divided (a scalar)."""
        return th.sqrt(self.grad_mean_square + 1e-12)


class DSPGPolicy(TD3Policy):
    """
    Policy class for DSPG: the TD3 actor (+ target) and twin-Q critic (+ target), plus the action
    denoiser ``F`` and the gradient head ``H``. The critic is trained exactly as TD3's; DSPG uses it
    for the return signal and as the baseline ``b(s, ã)``, never for ``∇_a Q``.

    :param observation_space: Observation space
    :param action_space: Action space
    :param lr_schedule: Learning rate schedule (could be constant)
    :param net_arch: Hidden layer sizes: a list for every network, or a dict with keys ``pi``
        (actor), ``qf`` (critic), ``denoiser`` and ``grad_head`` (the short ``dn`` / ``gh`` are
        accepted too). Missing ``denoiser`` / ``grad_head`` default to ``[256, 256]``; ``None`` gives
        TD3's ``[400, 300]`` for the actor and critic (``[256, 256]`` with ``NatureCNN``).
    :param activation_fn: Activation function
    :param features_extractor_class: Features extractor to use.
    :param features_extractor_kwargs: Keyword arguments to pass to the features extractor.
    :param normalize_images: Whether to normalize images or not, dividing by 255.0 (True by default)
    :param optimizer_class: The optimizer to use, ``th.optim.Adam`` by default
    :param optimizer_kwargs: Additional keyword arguments, excluding the learning rate, to pass to the optimizer.
        With Adam on torch >= 2.4 the default is ``{"fused": True}`` (pass ``{"fused": False}`` to opt out).
    :param n_critics: Number of Q networks in the critic.
    :param share_features_extractor: Whether to share the actor's features extractor with every
        other network (it is then trained by the actor loss only)
    :param critic_type: ``"td3"`` (TD3's twin-Q critic, trained with target networks) or ``"crossq"``
        (sb3-contrib's batch-renormalised ``CrossQCritic``, trained without targets; the actor's and the
        critic's Adam get ``betas=(0.5, 0.999)`` unless ``optimizer_kwargs`` names ``betas``; :mod:`sb3_dspg.crossq`)
    :param n_grad_heads: ``1``, or ``2`` twin gradient heads (set by ``DSPG(critic_grad_weight="auto")``)
    :param outcome: what the denoiser is conditioned on, ``"transition"`` or ``"return"`` (set by ``DSPG(outcome=...)``)
    """

    actor: DSPGActor
    actor_target: DSPGActor
    denoiser: ActionDenoiser
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
        critic_type: str = "td3",
        n_grad_heads: int = 1,
        outcome: str = "transition",
    ):
        check_hyperparameters(critic_type=critic_type, n_grad_heads=n_grad_heads, outcome=outcome)
        self.critic_type = critic_type
        self.n_grad_heads = n_grad_heads
        self.outcome = outcome
        if isinstance(net_arch, dict):
            net_arch = _canonical_net_arch(net_arch)
        if optimizer_class is th.optim.Adam and _TORCH_HAS_CPU_FUSED_ADAM:
            # one fused kernel per optimizer step (CPU and CUDA), same maths as Adam: 4-6% of a DSPG update
            # on CPU (dspg-unfused row of benchmarks/results/throughput.md)
            optimizer_kwargs = {"fused": True, **(optimizer_kwargs or {})}
        if net_arch is None:
            # TD3's defaults for the actor and the critic; DSPG's own networks use DEFAULT_DSPG_ARCH
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
            return list(self.net_arch.get(key, DEFAULT_DSPG_ARCH))
        return list(self.net_arch)

    def _build(self, lr_schedule: Schedule) -> None:
        super()._build(lr_schedule)
        if self.critic_type == "crossq" and self.optimizer_class in (th.optim.Adam, th.optim.AdamW):
            kwargs = {"betas": crossq.ADAM_BETAS, **self.optimizer_kwargs}
            for net in (self.actor, self.critic):
                net.optimizer = self.optimizer_class(net.parameters(), lr=lr_schedule(1), **kwargs)  # type: ignore[call-arg]
        shared = self.actor.features_extractor if self.share_features_extractor else None
        for name, net_class in (("denoiser", ActionDenoiser), ("grad_head", GradientHead)):
            share = self.share_features_extractor
            kwargs = dict(self.net_args, net_arch=self._dspg_arch(name), share_features_extractor=share)
            if net_class is GradientHead:
                kwargs["n_heads"] = self.n_grad_heads
            else:
                kwargs["outcome"] = self.outcome
            net = net_class(**self._update_features_extractor(kwargs, shared)).to(self.device)
            params = [
                p for param_name, p in net.named_parameters() if not (share and param_name.startswith("features_extractor"))
            ]
            net.optimizer = self.optimizer_class(params, lr=lr_schedule(1), **self.optimizer_kwargs)  # type: ignore[call-arg]
            setattr(self, name, net)

    def make_critic(self, features_extractor: BaseFeaturesExtractor | None = None) -> ContinuousCritic:
        if self.critic_type == "td3":
            return super().make_critic(features_extractor)
        critic_kwargs = self._update_features_extractor(self.critic_kwargs, features_extractor)
        return crossq.make_critic(critic_kwargs).to(self.device)  # type: ignore[return-value]

    def _get_constructor_parameters(self) -> dict[str, Any]:
        own = {"critic_type": self.critic_type, "n_grad_heads": self.n_grad_heads, "outcome": self.outcome}
        return {**super()._get_constructor_parameters(), **own}

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


def _canonical_net_arch(net_arch: dict[str, list[int]]) -> dict[str, list[int]]:
    """Validate a ``net_arch`` dict and rename the short keys ``dn`` / ``gh`` to ``denoiser`` / ``grad_head``."""
    allowed = (*NET_ARCH_KEYS, *NET_ARCH_ALIASES)
    renamed = {NET_ARCH_ALIASES.get(key, key): value for key, value in net_arch.items()}
    if sorted(set(net_arch) - set(allowed)) or not {"pi", "qf"} <= set(net_arch) or len(renamed) < len(net_arch):
        raise ValueError(
            f"net_arch: a dict needs the keys 'pi' and 'qf' and may add 'denoiser' and 'grad_head' "
            f"(or their short forms 'dn', 'gh'; allowed: {allowed}), each once; got {sorted(net_arch)}"
        )
    return renamed


#: The name this class had before 0.2; kept so that code importing it keeps working.
DenoiserCritic = ActionDenoiser

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
