"""DSPG: the Denoising Score Policy Gradient, an SB3 off-policy algorithm (DESIGN.md)."""

import io
import math
import pathlib
import zipfile
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.noise import ActionNoise, NormalActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import get_parameters_by_name, polyak_update
from torch.nn import functional as F

from sb3_dspg import score
from sb3_dspg.policies import CnnPolicy, DenoiserCritic, DSPGActor, DSPGPolicy, GradientHead, MlpPolicy, MultiInputPolicy

SelfDSPG = TypeVar("SelfDSPG", bound="DSPG")


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite; raised before any optimizer step of that update."""


class DSPG(OffPolicyAlgorithm):
    """
    Denoising Score Policy Gradient (DSPG).

    An off-policy actor-critic whose actor follows an estimate of ``∇_a E[G | s, a]`` built from a
    denoiser of actions, conditioned on the transition's outcome and not (classifier-free):
    ``ĝ = (G − b(s, ã)) · (F(ã, σ, s, ∅) − F(ã, σ, s, o)) / σ``, amortised by a gradient head
    ``H(s, a)`` that drives the actor. No gradient is taken through a critic with respect to its
    action input. Everything TD3 has (twin Q, target smoothing, ``policy_delay``, n-step
    returns, ...) behaves as in SB3's TD3; the twin Q serves as the return target and the baseline.
    See ``DESIGN.md`` for the maths.

    :param policy: The policy model to use (MlpPolicy, CnnPolicy, ...)
    :param env: The environment to learn from (if registered in Gym, can be str)
    :param learning_rate: learning rate for adam optimizer, the same for every network
        (actor, baseline head, denoiser, gradient head); it can be a function of the current
        progress remaining (from 1 to 0)
    :param buffer_size: size of the replay buffer
    :param learning_starts: how many steps of the model to collect transitions for before learning starts
    :param batch_size: Minibatch size for each gradient update
    :param tau: the soft update coefficient ("Polyak update", between 0 and 1)
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
        once every ``policy_delay`` gradient steps; the baseline head every step (as TD3's critic).
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
    :param saturation_coef: weight of the penalty on the actor's pre-tanh activation beyond ``±2``
        that keeps it out of ``tanh`` saturation
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
    actor_target: DSPGActor
    denoiser: DenoiserCritic
    grad_head: GradientHead

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
        saturation_coef: float = 1.0,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ):
        _check_hyperparameters(
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
            _check_action_space(self.action_space)
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
        self.saturation_coef = saturation_coef
        self._cos_to_critic_grad = math.nan

        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        super()._setup_model()
        if self.action_noise is None:
            action_dim = int(np.prod(self.action_space.shape))
            self.action_noise = NormalActionNoise(np.zeros(action_dim), self.exploration_noise * np.ones(action_dim))
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
        # Switch to train mode (this affects batch norm / dropout)
        self.policy.set_training_mode(True)
        # Update learning rate according to lr schedule
        self._update_learning_rate(self._optimizers())

        sigma = self.denoise_sigma
        logs: dict[str, list[th.Tensor]] = {}
        for _ in range(gradient_steps):
            self._n_updates += 1
            replay_data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            # For n-step replay, discount factor is gamma**n_steps (when no early termination)
            discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma
            obs, actions = replay_data.observations, replay_data.actions

            # Return signal G = r + γ(1 − done)·min_i Q̄_i(s′, π̄(s′) + clipped noise)  (DESIGN.md §1.3)
            with th.no_grad():
                noise = actions.clone().data.normal_(0, self.target_policy_noise)
                noise = noise.clamp(-self.target_noise_clip, self.target_noise_clip)
                next_actions = (self.actor_target(replay_data.next_observations) + noise).clamp(-1, 1)
                next_q_values = th.cat(self.critic_target(replay_data.next_observations, next_actions), dim=1)
                next_q_values, _ = th.min(next_q_values, dim=1, keepdim=True)
                returns = replay_data.rewards + (1 - replay_data.dones) * discounts * next_q_values

            # Baseline head: twin Q, trained exactly as TD3's critic  (§1.4)
            current_q_values = self.critic(obs, actions)
            critic_loss = sum(F.mse_loss(current_q, returns) for current_q in current_q_values)
            assert isinstance(critic_loss, th.Tensor)
            losses = {"baseline_loss": critic_loss}

            policy_update = self._n_updates % self.policy_delay == 0
            if policy_update:
                # Denoiser: one pass over the doubled batch gives F(ã, o) and F(ã, ∅)  (§1.1)
                n_copies = 2 if self.antithetic else 1
                noised_actions, eta = score.noise_actions(actions, sigma, self.antithetic)
                features, outcome = self.denoiser.features_and_outcome(obs, replay_data.next_observations, replay_data.rewards)
                self.denoiser.outcome_norm.update(outcome.detach())
                outcome = self.denoiser.outcome_norm(outcome)
                eps_cond, eps_uncond = self.denoiser(
                    features.repeat(n_copies, 1), noised_actions, outcome.repeat(n_copies, 1), sigma
                )
                denoiser_loss, loss_cond, loss_uncond = score.denoiser_loss(eps_cond, eps_uncond, eta, self.cond_dropout)
                losses["denoiser_loss"] = denoiser_loss

                # Per-sample estimate ĝ = (G − b(s, ã))·score, with the baseline at the noised action  (§1.5)
                with th.no_grad():
                    outcome_score = score.outcome_score(eps_cond, eps_uncond, sigma)
                    obs_rep = _repeat_obs(obs, n_copies)
                    baseline = th.min(th.cat(self.critic(obs_rep, noised_actions), dim=1), dim=1, keepdim=True)[0]
                    returns_rep = returns.repeat(n_copies, 1)
                    grad_estimate = score.action_gradient_estimate(returns_rep, baseline, outcome_score)
                    rms = self.grad_head.update_scale(grad_estimate)
                    head_target = score.clip_and_scale(grad_estimate, rms, self.grad_clip)

                # Gradient head H(s, ã) regresses onto clip(ĝ)/RMS; the actor follows H(s, α(s))  (§3)
                head_features = self.grad_head.features(obs)
                head_loss = F.mse_loss(self.grad_head(head_features.repeat(n_copies, 1), noised_actions), head_target)
                losses["head_loss"] = head_loss

                policy_actions, pre_tanh = self.actor.forward_with_pre_tanh(obs)
                with th.no_grad():
                    head_grad = self.grad_head(head_features.detach(), policy_actions)
                actor_loss = score.surrogate_actor_loss(head_grad, policy_actions)
                losses["actor_loss"] = actor_loss + self.saturation_coef * score.saturation_penalty(pre_tanh)

            self._check_finite(losses)
            self._step(self.critic.optimizer, critic_loss)
            if policy_update:
                self._step(self.denoiser.optimizer, denoiser_loss)
                self._step(self.grad_head.optimizer, head_loss)
                self._step(self.actor.optimizer, losses["actor_loss"])

                polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
                polyak_update(self.actor.parameters(), self.actor_target.parameters(), self.tau)
                # Copy running stats, see GH issue #996
                polyak_update(self.critic_batch_norm_stats, self.critic_batch_norm_stats_target, 1.0)
                polyak_update(self.actor_batch_norm_stats, self.actor_batch_norm_stats_target, 1.0)

                step_logs = {
                    "actor_loss": actor_loss,
                    "denoiser_loss": denoiser_loss,
                    "denoiser_loss_cond": loss_cond,
                    "denoiser_loss_uncond": loss_uncond,
                    "head_loss": head_loss,
                    "score_norm": outcome_score.norm(dim=1).mean(),
                    "advantage_std": (returns_rep - baseline).std(),
                    "grad_estimate_norm": grad_estimate.norm(dim=1).mean(),
                    "grad_estimate_rms": rms,
                    "saturated_fraction": (pre_tanh.abs() > 2.0).float().mean(),
                }
                for key, value in step_logs.items():
                    logs.setdefault(key, []).append(value.detach())
                if math.isnan(self._cos_to_critic_grad) or self._n_updates % (100 * self.policy_delay) == 0:
                    self._cos_to_critic_grad = self._cosine_to_critic_grad(obs_rep, noised_actions, grad_estimate)
            logs.setdefault("baseline_loss", []).append(critic_loss.detach())

        self.logger.record("train/n_updates", self._n_updates)
        for key, values in logs.items():
            self.logger.record(f"train/{key}", th.stack(values).mean().item())
        if not math.isnan(self._cos_to_critic_grad):
            self.logger.record("train/cos_to_critic_grad", self._cos_to_critic_grad)

    @staticmethod
    def _step(optimizer: th.optim.Optimizer, loss: th.Tensor) -> None:
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def _check_finite(self, losses: dict[str, th.Tensor]) -> None:
        """Raise :class:`NonFiniteLossError` (before any optimizer step) if a loss is NaN or infinite."""
        if bool(th.isfinite(th.stack(list(losses.values()))).all()):
            return
        bad = ", ".join(f"{name}={loss.item()}" for name, loss in losses.items() if not th.isfinite(loss))
        raise NonFiniteLossError(
            f"DSPG: non-finite loss at update {self._n_updates} (num_timesteps={self.num_timesteps}): {bad}. "
            "Training stopped before this update reached the weights; the model as it was after the "
            "previous update can still be saved. Check the environment's observations and rewards, "
            "or lower learning_rate."
        )

    def _cosine_to_critic_grad(self, obs: Any, noised_actions: th.Tensor, grad_estimate: th.Tensor) -> float:
        """Mean cosine between ``ĝ`` and ``∇_a Q_1(s, a)`` at the same ``(s, ã)``: how far DSPG departs from DDPG."""
        with th.enable_grad():
            points = noised_actions.detach().requires_grad_(True)
            q_value = self.critic.q1_forward(obs, points).sum()
            critic_grad = th.autograd.grad(q_value, points)[0]
        return F.cosine_similarity(critic_grad, grad_estimate, dim=1).mean().item()

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
        for name, value in checks:
            arrays = value.values() if isinstance(value, dict) else [value]
            if not all(np.isfinite(array).all() for array in arrays):
                raise ValueError(
                    f"DSPG: the environment returned a non-finite {name} at step {self.num_timesteps} "
                    f"(num_timesteps); it was not stored in the replay buffer. Fix the environment or wrap it "
                    f"(e.g. stable_baselines3.common.vec_env.VecCheckNan to find where it comes from)."
                )
        super()._store_transition(replay_buffer, buffer_action, new_obs, reward, dones, infos)

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
        _check_model_file(path)
        return super().load(path, *args, **kwargs)

    def _excluded_save_params(self) -> list[str]:
        return super()._excluded_save_params() + ["actor", "critic", "actor_target", "critic_target", "denoiser", "grad_head"]  # noqa: RUF005

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts = ["policy", "actor.optimizer", "critic.optimizer", "denoiser.optimizer", "grad_head.optimizer"]
        return state_dicts, []


def _repeat_obs(obs: Any, n_copies: int) -> Any:
    if n_copies == 1:
        return obs
    if isinstance(obs, dict):
        return {key: value.repeat(n_copies, *([1] * (value.dim() - 1))) for key, value in obs.items()}
    return obs.repeat(n_copies, *([1] * (obs.dim() - 1)))


def _check_model_file(path: Any) -> None:
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


def _check_action_space(action_space: spaces.Space) -> None:
    if not isinstance(action_space, spaces.Box):
        raise ValueError(f"action_space: DSPG supports only continuous gymnasium.spaces.Box action spaces, got {action_space}")
    # unbounded Box: SB3's BaseAlgorithm already refuses it (AssertionError naming the finite bounds)


def _check_hyperparameters(**params: Any) -> None:
    """Raise ``ValueError`` naming the first hyper-parameter outside its allowed range."""
    rules = {
        "denoise_sigma": (lambda v: 0 < v < math.inf, "a finite number > 0"),
        "cond_dropout": (
            lambda v: 0 < v < 1,
            "in the open interval (0, 1); 0 would leave the unconditional denoiser untrained",
        ),
        "exploration_noise": (lambda v: 0 < v < math.inf, "a finite number > 0 (DSPG's estimate needs spread in the buffer)"),
        "grad_clip": (lambda v: v > 0, "a number > 0 (math.inf disables clipping)"),
        "saturation_coef": (lambda v: 0 <= v < math.inf, "a finite number >= 0"),
        "policy_delay": (lambda v: v >= 1, "an integer >= 1"),
        "batch_size": (lambda v: v >= 1, "an integer >= 1"),
        "buffer_size": (lambda v: v >= 1, "an integer >= 1"),
        "tau": (lambda v: 0 < v <= 1, "in (0, 1]"),
        "gamma": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    }
    for name, value in params.items():
        check, allowed = rules[name]
        try:
            ok = bool(check(value))
        except TypeError:
            ok = False
        if not ok or (isinstance(value, float) and math.isnan(value)):
            raise ValueError(f"{name} must be {allowed}, got {value!r}")
