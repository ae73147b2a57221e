"""DSPG: the Denoising Score Policy Gradient, an SB3 off-policy algorithm (docs/design.md)."""

import io
import math
import pathlib
from collections import defaultdict
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.noise import ActionNoise, NormalActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, ReplayBufferSamples, Schedule
from stable_baselines3.common.utils import get_parameters_by_name, polyak_update
from torch.nn import functional as F

from sb3_dspg import blend, crossq, pretraining, score
from sb3_dspg.checks import (
    NonFiniteLossError,
    check_action_space,
    check_finite_env_data,
    check_finite_losses,
    check_hyperparameters,
    check_model_file,
)
from sb3_dspg.common import smoothed_next_actions
from sb3_dspg.estimator import ActionGradientEstimate, estimate_action_gradient
from sb3_dspg.policies import ActionDenoiser, CnnPolicy, DSPGActor, DSPGPolicy, GradientHead, MlpPolicy, MultiInputPolicy

__all__ = ["DSPG", "NonFiniteLossError"]

SelfDSPG = TypeVar("SelfDSPG", bound="DSPG")


class DSPG(OffPolicyAlgorithm):
    """
    Denoising Score Policy Gradient (DSPG).

    An off-policy actor-critic whose actor follows an estimate of ``∇_a E[G | s, a]`` built from a
    denoiser of actions, conditioned on the transition's outcome and not (classifier-free):
    ``ĝ = (G − b(s, ã)) · (F(ã, σ, s, ∅) − F(ã, σ, s, o)) / σ``, amortised by a gradient head
    ``H(s, a)`` that drives the actor. No gradient is taken through a critic with respect to its
    action input. Everything TD3 has (twin-Q critic, target smoothing, ``policy_delay``, n-step
    returns, ...) behaves as in SB3's TD3; the critic provides the return signal and the baseline.
    See ``docs/design.md`` for the maths.

    :param policy: The policy model to use (MlpPolicy, CnnPolicy, ...)
    :param env: The environment to learn from (if registered in Gym, can be str)
    :param learning_rate: learning rate for adam optimizer, the same for every network
        (actor, critic, denoiser, gradient head); it can be a function of the current
        progress remaining (from 1 to 0)
    :param buffer_size: size of the replay buffer
    :param learning_starts: how many steps of the model to collect transitions for before learning starts
    :param batch_size: Minibatch size for each gradient update
    :param tau: the soft update coefficient ("Polyak update", between 0 and 1; 0 freezes the targets)
    :param gamma: the discount factor
    :param train_freq: Update the model every ``train_freq`` steps. Alternatively pass a tuple of frequency and unit
        like ``(5, "step")`` or ``(2, "episode")``.
    :param gradient_steps: How many gradient steps to do after each rollout (see ``train_freq``)
        Set to ``-1`` means to do as many gradient steps as steps done in the environment
        during the rollout.
    :param action_noise: the action noise type. DSPG must explore (its estimate vanishes when the
        buffer holds no spread of actions around the policy), so ``None`` means Gaussian noise of
        std ``exploration_noise`` in normalised action units.
    :param replay_buffer_class: Replay buffer class to use (for instance ``HerReplayBuffer``).
        If ``None``, it will be automatically selected.
    :param replay_buffer_kwargs: Keyword arguments to pass to the replay buffer on creation.
    :param optimize_memory_usage: Enable a memory efficient variant of the replay buffer
        at a cost of more complexity.
    :param n_steps: When n_step > 1, uses n-step return (with the NStepReplayBuffer) for the return signal.
    :param policy_delay: The actor, the denoiser, the gradient head and the target networks are updated
        once every ``policy_delay`` gradient steps; the critic every step (as TD3's).
    :param target_policy_noise: Standard deviation of Gaussian noise added to target policy
        (smoothing noise)
    :param target_noise_clip: Limit for absolute value of target policy smoothing noise.
    :param denoise_sigma: σ, the noise level of the denoiser in normalised action units (``> 0``).
        The estimate is the gradient shrunk by ``β²/(β² + σ²)`` for buffer actions spread by ``β``
        and smoothed over ``σ``: about half the exploration spread is a good default.
    :param cond_dropout: classifier-free dropout probability ``p`` of the outcome, in ``(0, 1)``:
        the weight of the unconditional half of the denoising loss.
    :param exploration_noise: std of the Gaussian exploration noise DSPG adds when ``action_noise``
        is ``None`` (normalised action units, ``> 0``)
    :param antithetic: noise each buffer action twice, ``a ± σ·η`` (variance reduction)
    :param grad_clip: clip ``ĝ`` at this many running RMS before the gradient head regresses on it
        (``math.inf`` disables it)
    :param centre_advantage: subtract the batch mean of ``G − b`` before it multiplies the outcome score. It
        removes a bias of ``ĝ`` along action directions the outcome does not inform (learned conditional and
        unconditional scores differ there on average); unbiased either way for exact scores (docs/design.md §9)
    :param critic_grad_weight: how much of the critic's ``∇_a Q̂`` the actor follows: ``c`` in
        ``(1 − c)·H + c·∇_a Q̂`` (both in the head's units). ``0.1`` (default since 0.3.0, chosen on the noisy suite;
        docs/design.md §11); ``0``: the gradient head alone, pure DSPG, no gradient through the critic (the default
        before 0.3.0); ``1``: a DDPG-style actor on the mean of the twin critics; ``"auto"``: the inverse-variance
        weight per batch, from the disagreement of twin heads (each fitted to half of every batch) and of the twin
        critics (:mod:`sb3_dspg.blend`)
    :param saturation_coef: weight of the penalty on the actor's pre-tanh activation beyond ``±2``
        that keeps it out of ``tanh`` saturation
    :param critic_type: the critic that gives DSPG its return signal and baseline: ``"td3"`` (TD3's twin Q with
        target networks) or ``"crossq"`` (CrossQ's batch-renormalised twin Q, no target networks, one joint pass
        over ``(s, a)`` and ``(s′, a′)``; :mod:`sb3_dspg.crossq`). ``tau`` and the target networks are then unused.
    :param outcome: what the denoiser is conditioned on: ``"transition"`` (default: ``o = (s′ − s, r)``, the seed's
        outcome) or ``"return"`` (``o = G``, the return signal alone). The score of ``G`` is the conditional mean of
        the transition's score given ``G``, so ``ĝ`` keeps its mean and loses the variance of everything in
        ``(s′, r)`` that ``G`` does not depend on (Rao-Blackwell; docs/design.md §12). That holds for exact scores;
        in learning the denoiser resolves little from a scalar condition and the option has trailed the default on
        every world measured (§12), so it is kept for study. It needs rewards: no reward-free pretraining
    :param stats_window_size: Window size for the rollout logging, specifying the number of episodes to average
        the reported success rate, mean episode length, and mean reward over
    :param tensorboard_log: the log location for tensorboard (if None, no logging)
    :param policy_kwargs: additional arguments to be passed to the policy on creation
    :param verbose: Verbosity level: 0 for no output, 1 for info messages (such as device or wrappers used), 2 for
        debug messages
    :param seed: Seed for the pseudo random generators
    :param device: Device (cpu, cuda, ...) on which the code should be run.
        Setting it to auto, the code will be run on the GPU if possible.
    :param _init_setup_model: Whether or not to build the network at the creation of the instance
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": MlpPolicy,
        "CnnPolicy": CnnPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }
    policy: DSPGPolicy
    actor: DSPGActor
    denoiser: ActionDenoiser
    grad_head: GradientHead
    #: reward-free transitions collected by :meth:`pretrain` (never mixed with the replay buffer, not saved)
    pretrain_buffer: ReplayBuffer | None = None
    _n_pretrain_updates: int = 0
    #: while :meth:`pretrain` runs: "random" (uniform actions) or "policy" (the actor with exploration noise)
    _pretraining: str | None = None

    def __init__(
        self,
        policy: str | type[DSPGPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 1e-3,
        buffer_size: int = 1_000_000,
        learning_starts: int = 100,
        batch_size: int = 256,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: int | tuple[int, str] = 1,
        gradient_steps: int = 1,
        action_noise: ActionNoise | None = None,
        replay_buffer_class: type[ReplayBuffer] | None = None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        optimize_memory_usage: bool = False,
        n_steps: int = 1,
        policy_delay: int = 2,
        target_policy_noise: float = 0.2,
        target_noise_clip: float = 0.5,
        denoise_sigma: float = 0.1,
        cond_dropout: float = 0.3,
        exploration_noise: float = 0.2,
        antithetic: bool = True,
        grad_clip: float = 3.0,
        centre_advantage: bool = False,
        critic_grad_weight: float | str = 0.1,
        saturation_coef: float = 1.0,
        critic_type: str = "td3",
        outcome: str = "transition",
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ):
        check_hyperparameters(
            denoise_sigma=denoise_sigma,
            cond_dropout=cond_dropout,
            exploration_noise=exploration_noise,
            grad_clip=grad_clip,
            saturation_coef=saturation_coef,
            policy_delay=policy_delay,
            batch_size=batch_size,
            buffer_size=buffer_size,
            tau=tau,
            gamma=gamma,
            critic_type=critic_type,
            critic_grad_weight=critic_grad_weight,
            outcome=outcome,
        )
        if critic_grad_weight == blend.AUTO and (policy_kwargs or {}).get("n_grad_heads", 2) != 2:
            raise ValueError(
                f"critic_grad_weight: 'auto' needs twin gradient heads, but policy_kwargs['n_grad_heads']="
                f"{policy_kwargs['n_grad_heads']!r}; leave n_grad_heads out"  # type: ignore[index]
            )
        for name, value in (("critic_type", critic_type), ("outcome", outcome)):
            if (policy_kwargs or {}).get(name, value) != value:
                raise ValueError(
                    f"{name}: {value!r} and policy_kwargs[{name!r}]={policy_kwargs[name]!r} "  # type: ignore[index]
                    f"disagree; set it once, as DSPG's {name}"
                )
        super().__init__(
            policy,
            env,
            learning_rate,
            buffer_size,
            learning_starts,
            batch_size,
            tau,
            gamma,
            train_freq,
            gradient_steps,
            action_noise=action_noise,
            replay_buffer_class=replay_buffer_class,
            replay_buffer_kwargs=replay_buffer_kwargs,
            optimize_memory_usage=optimize_memory_usage,
            n_steps=n_steps,
            policy_kwargs=policy_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            seed=seed,
            sde_support=False,
            # checked below, with a ValueError that names the parameter
            supported_action_spaces=None,
            support_multi_env=True,
        )
        if getattr(self, "action_space", None) is not None:  # None when loading without an env
            check_action_space(self.action_space)
        if not (isinstance(self.policy_class, type) and issubclass(self.policy_class, DSPGPolicy)):
            raise ValueError(
                f"policy: DSPG needs a DSPGPolicy ('MlpPolicy', 'CnnPolicy', 'MultiInputPolicy' or a subclass), "
                f"got {self.policy_class!r}. If you are loading a file, it was saved by another algorithm: "
                "load it with that algorithm's class."
            )

        self.policy_delay = policy_delay
        self.target_noise_clip = target_noise_clip
        self.target_policy_noise = target_policy_noise
        self.denoise_sigma = denoise_sigma
        self.cond_dropout = cond_dropout
        self.exploration_noise = exploration_noise
        self.antithetic = antithetic
        self.grad_clip = grad_clip
        self.centre_advantage = centre_advantage
        self.critic_grad_weight = critic_grad_weight
        self.saturation_coef = saturation_coef
        self.critic_type = critic_type
        self.outcome = outcome
        if critic_type != "td3":  # a copy: the caller's dict stays as given, and a TD3-critic file stores it unchanged
            self.policy_kwargs = {**self.policy_kwargs, "critic_type": critic_type}
        if outcome != "transition":
            self.policy_kwargs = {**self.policy_kwargs, "outcome": outcome}
        if critic_grad_weight == blend.AUTO:
            self.policy_kwargs = {**self.policy_kwargs, "n_grad_heads": 2}
        self._cos_to_critic_grad = self._cos_head_to_critic_grad = math.nan

        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        super()._setup_model()
        if self.action_noise is None:  # DSPG always explores (docs/design.md §3); shaped like the action space
            shape = self.action_space.shape
            self.action_noise = NormalActionNoise(np.zeros(shape), np.full(shape, self.exploration_noise))
        self._create_aliases()
        # Running mean and running var
        self.actor_batch_norm_stats = get_parameters_by_name(self.actor, ["running_"])
        self.critic_batch_norm_stats = get_parameters_by_name(self.critic, ["running_"])
        self.actor_batch_norm_stats_target = get_parameters_by_name(self.actor_target, ["running_"])
        self.critic_batch_norm_stats_target = get_parameters_by_name(self.critic_target, ["running_"])

    def _create_aliases(self) -> None:
        self.actor = self.policy.actor
        self.actor_target = self.policy.actor_target
        self.critic = self.policy.critic
        self.critic_target = self.policy.critic_target
        self.denoiser = self.policy.denoiser
        self.grad_head = self.policy.grad_head

    def _optimizers(self) -> list[th.optim.Optimizer]:
        return [self.actor.optimizer, self.critic.optimizer, self.denoiser.optimizer, self.grad_head.optimizer]

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        if self._pretraining:  # reward-free phase: only the denoiser learns (docs/design.md §8)
            return pretraining.pretrain_updates(self, self.replay_buffer, gradient_steps, batch_size)  # type: ignore[arg-type]
        # Switch to train mode (this affects batch norm / dropout)
        self.policy.set_training_mode(True)
        # Update learning rate according to lr schedule
        self._update_learning_rate(self._optimizers())

        logs: dict[str, list[th.Tensor]] = defaultdict(list)
        for _ in range(gradient_steps):
            self._n_updates += 1
            # Sample replay buffer
            replay_data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            obs, actions = replay_data.observations, replay_data.actions
            # Critic: twin Q trained as TD3's (or CrossQ's, sb3_dspg/crossq.py); it is also the baseline b(s, ã)
            if self.critic_type == "crossq":
                critic_loss, returns = crossq.critic_loss_and_returns(
                    self.critic, self.actor, replay_data, self.gamma, self.target_policy_noise, self.target_noise_clip
                )
            else:
                returns = self._return_signal(replay_data)
                current_q_values = self.critic(obs, actions)
                critic_loss = sum(F.mse_loss(current_q, returns) for current_q in current_q_values)
            assert isinstance(critic_loss, th.Tensor)
            losses = {"critic_loss": critic_loss}

            policy_update = self._n_updates % self.policy_delay == 0
            if policy_update:
                # The DSPG step: denoiser loss, ĝ = (G − b(s, ã))·score and the head's target (docs/design.md §1)
                est = estimate_action_gradient(
                    self.denoiser, self.critic, self.grad_head, obs, replay_data.next_observations, replay_data.rewards,
                    actions, returns, self.denoise_sigma, self.cond_dropout, self.antithetic, self.grad_clip,
                    centre_advantage=self.centre_advantage,
                )  # fmt: skip
                # Gradient head H(s, ã) regresses onto clip(ĝ)/RMS
                head_features = self.grad_head.features(obs)
                n_noised = len(est.noised_actions) // len(actions)
                head_loss = self.grad_head.regression_loss(
                    head_features.repeat(n_noised, 1), est.noised_actions, est.head_target, len(actions)
                )
                # Actor follows H(s, α(s)) (or its blend with ∇_a Q̂, sb3_dspg/blend.py), kept out of tanh saturation
                policy_actions, pre_tanh = self.actor.forward_with_pre_tanh(obs)
                head_grad, actor_grad, critic_weight = blend.actor_gradient(
                    self.grad_head, self.critic, head_features.detach(), obs, policy_actions, self.critic_grad_weight
                )
                saturation = score.saturation_penalty(pre_tanh)
                actor_loss = score.surrogate_actor_loss(actor_grad, policy_actions) + self.saturation_coef * saturation
                losses.update(denoiser_loss=est.denoiser_loss, head_loss=head_loss, actor_loss=actor_loss)

            # Nothing reaches the weights if a loss is NaN or infinite
            check_finite_losses(losses, self._n_updates, self.num_timesteps)
            self._step(self.critic.optimizer, critic_loss)
            if policy_update:
                self._step(self.denoiser.optimizer, est.denoiser_loss)
                self._step(self.grad_head.optimizer, head_loss)
                self._step(self.actor.optimizer, actor_loss)
                if self.critic_type == "td3":
                    polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
                    polyak_update(self.actor.parameters(), self.actor_target.parameters(), self.tau)
                    # Copy running stats, see GH issue #996
                    polyak_update(self.critic_batch_norm_stats, self.critic_batch_norm_stats_target, 1.0)
                    polyak_update(self.actor_batch_norm_stats, self.actor_batch_norm_stats_target, 1.0)
                for key, value in self._diagnostics(est, losses, saturation, pre_tanh, obs, policy_actions, head_grad).items():
                    logs[key].append(value.detach())
                if self.critic_grad_weight != 0:
                    logs["critic_grad_weight"].append(critic_weight)
            logs["critic_loss"].append(critic_loss.detach())

        self.logger.record("train/n_updates", self._n_updates)
        for key, values in logs.items():
            self.logger.record(f"train/{key}", th.stack(values).mean().item())
        if not math.isnan(self._cos_to_critic_grad):
            self.logger.record("train/cos_to_critic_grad", self._cos_to_critic_grad)
            self.logger.record("train/cos_head_to_critic_grad", self._cos_head_to_critic_grad)

    def _return_signal(self, replay_data: ReplayBufferSamples) -> th.Tensor:
        """``G = r + γ(1 − done)·min_i Q̄_i(s′, π̄(s′) + clipped noise)``: TD3's target (n-step aware), ``(B, 1)``."""
        # For n-step replay, discount factor is gamma**n_steps (when no early termination)
        discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma
        with th.no_grad():
            # Select action according to policy and add clipped noise
            next_obs, noise_std, noise_clip = replay_data.next_observations, self.target_policy_noise, self.target_noise_clip
            next_actions = smoothed_next_actions(self.actor_target, next_obs, replay_data.actions, noise_std, noise_clip)
            # Compute the next Q-values: min over all critics targets
            next_q_values = th.cat(self.critic_target(next_obs, next_actions), dim=1)
            next_q_values, _ = th.min(next_q_values, dim=1, keepdim=True)
            return replay_data.rewards + (1 - replay_data.dones) * discounts * next_q_values

    def _diagnostics(
        self,
        est: ActionGradientEstimate,
        losses: dict[str, th.Tensor],
        saturation: th.Tensor,
        pre_tanh: th.Tensor,
        obs: Any,
        policy_actions: th.Tensor,
        head_grad: th.Tensor,
    ) -> dict[str, th.Tensor]:
        """
        What a policy update logs (docs/design.md §4). Every 100 policy updates it refreshes the two cosines to
        the critic's action-gradient: of the per-sample ``ĝ`` at ``(s, ã)`` (``cos_to_critic_grad``, noisy by
        nature) and of the head ``H(s, μ(s))`` the actor follows (``cos_head_to_critic_grad``).
        """
        if math.isnan(self._cos_to_critic_grad) or self._n_updates % (100 * self.policy_delay) == 0:
            self._cos_to_critic_grad = self._cosine_to_critic_grad(est.noised_obs, est.noised_actions, est.grad_estimate)
            self._cos_head_to_critic_grad = self._cosine_to_critic_grad(obs, policy_actions, head_grad)
        return {
            "actor_loss": losses["actor_loss"],
            "saturation_penalty": saturation,
            "denoiser_loss": est.denoiser_loss,
            "denoiser_loss_cond": est.denoiser_loss_cond,
            "denoiser_loss_uncond": est.denoiser_loss_uncond,
            "head_loss": losses["head_loss"],
            "score_norm": est.outcome_score.norm(dim=1).mean(),
            "advantage_std": est.advantage.std(),
            "grad_estimate_norm": est.grad_estimate.norm(dim=1).mean(),
            "grad_estimate_rms": est.grad_rms,
            "saturated_fraction": (pre_tanh.abs() > 2.0).float().mean(),
        }

    @staticmethod
    def _step(optimizer: th.optim.Optimizer, loss: th.Tensor) -> None:
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def _cosine_to_critic_grad(self, obs: Any, actions: th.Tensor, direction: th.Tensor) -> float:
        """
        Mean cosine between a gradient estimate (``ĝ``, or the head's output) and ``∇_a Q_1(s, a)`` at the same
        points: how far DSPG departs from DDPG.

        A diagnostic must not change training: the critic runs in eval mode here (batch-norm statistics
        untouched, no dropout random numbers drawn).
        """
        critic_grad = blend.critic_action_gradients(self.critic, obs, actions)[0]
        return F.cosine_similarity(critic_grad, direction, dim=1).mean().item()

    def _store_transition(
        self,
        replay_buffer: ReplayBuffer,
        buffer_action: np.ndarray,
        new_obs: np.ndarray | dict[str, np.ndarray],
        reward: np.ndarray,
        dones: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        """Refuse non-finite observations and rewards before they enter the replay buffer."""
        checks = [("reward", reward), ("observation", new_obs)]
        checks += [("terminal observation", info["terminal_observation"]) for info in infos if "terminal_observation" in info]
        check_finite_env_data(checks, self.num_timesteps)
        super()._store_transition(replay_buffer, buffer_action, new_obs, reward, dones, infos)
        if self._pretraining:  # a reward-free transition: its reward must never be read as if it were 0
            replay_buffer.rewards[(replay_buffer.pos - 1) % replay_buffer.buffer_size] = np.nan

    def _sample_action(self, learning_starts: int, action_noise: ActionNoise | None = None, n_envs: int = 1):
        if self._pretraining == "random":  # uniform random actions, as SB3 takes them before learning_starts
            learning_starts = math.inf  # type: ignore[assignment]
        elif self._pretraining == "policy":  # the actor with exploration noise from the first step
            learning_starts = 0
        return super()._sample_action(learning_starts, action_noise, n_envs)

    def pretrain(
        self: SelfDSPG,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str = "DSPG_pretrain",
        progress_bar: bool = False,
        random_actions: bool = True,
    ) -> SelfDSPG:
        """
        Reward-free pretraining of the denoiser in the model's env (docs/design.md §8): collect
        ``total_timesteps`` transitions and train only the denoiser on them, with the reward slot of the
        outcome masked. Rewards the env returns are not used; the transitions go to ``pretrain_buffer``, never
        to the replay buffer. Callbacks, the progress bar and the logger work as in :meth:`learn` (keys under
        ``pretrain/``); the denoiser trains on SB3's ``train_freq`` / ``gradient_steps`` schedule.

        :param total_timesteps: env steps to collect
        :param random_actions: uniform random actions (default), or the current actor with exploration noise
        :return: the model, ready for :meth:`learn` (which counts reward-labelled steps from 0)
        """
        pretraining.check_pretrainable(self)
        if total_timesteps < 1:
            raise ValueError(f"total_timesteps must be an integer >= 1, got {total_timesteps!r}")
        if self.pretrain_buffer is None:
            self.pretrain_buffer = pretraining.empty_buffer(self, min(self.buffer_size, total_timesteps))
        replay_buffer, learning_starts = self.replay_buffer, self.learning_starts
        self.replay_buffer, self.learning_starts = self.pretrain_buffer, min(self.learning_starts, total_timesteps // 2)
        self._pretraining = "random" if random_actions else "policy"
        try:
            self.learn(
                total_timesteps, callback, log_interval, tb_log_name, reset_num_timesteps=True, progress_bar=progress_bar
            )
        finally:
            self.replay_buffer, self.learning_starts, self._pretraining = replay_buffer, learning_starts, None
            self._last_obs = None  # type: ignore[assignment]  # the next learn() starts from a fresh reset
        return self

    def pretrain_denoiser(self: SelfDSPG, data: Any, gradient_steps: int, batch_size: int | None = None) -> SelfDSPG:
        """
        Reward-free pretraining of the denoiser from offline data (docs/design.md §8).

        :param data: a Minari dataset or an SB3 ``ReplayBuffer`` with the model's spaces; rewards are ignored
        :param gradient_steps: denoiser updates
        :param batch_size: default: the model's
        :raises ValueError: spaces that differ from the model's, no transitions, non-finite values, a frozen denoiser
        """
        pretraining.check_pretrainable(self)
        if gradient_steps < 1:
            raise ValueError(f"gradient_steps must be an integer >= 1, got {gradient_steps!r}")
        buffer = pretraining.reward_free_buffer(self, data)
        pretraining.ensure_logger(self, "DSPG_pretrain")
        pretraining.pretrain_updates(self, buffer, gradient_steps, batch_size or self.batch_size)
        self.logger.dump(self.num_timesteps)
        return self

    def learn(
        self: SelfDSPG,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str = "DSPG",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfDSPG:
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )

    @classmethod
    def load(  # type: ignore[override]
        cls: type[SelfDSPG], path: str | pathlib.Path | io.BufferedIOBase, *args: Any, **kwargs: Any
    ) -> SelfDSPG:
        """
        Load a DSPG model saved with :meth:`save` (same arguments as SB3's ``BaseAlgorithm.load``).

        A truncated or corrupted file raises ``ValueError`` naming the file; a model saved by another
        algorithm raises ``ValueError`` naming the policy class it holds.
        """
        check_model_file(path)
        return super().load(path, *args, **kwargs)

    def _excluded_save_params(self) -> list[str]:
        return super()._excluded_save_params() + [  # noqa: RUF005
            "actor", "critic", "actor_target", "critic_target", "denoiser", "grad_head", "pretrain_buffer",
        ]  # fmt: skip

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts = ["policy", "actor.optimizer", "critic.optimizer", "denoiser.optimizer", "grad_head.optimizer"]
        return state_dicts, []
