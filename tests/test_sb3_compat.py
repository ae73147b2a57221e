"""DSPG as a full SB3 citizen: the features an SB3 user swaps TD3 for DSPG with, modelled on SB3's own tests."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3 import HerReplayBuffer
from stable_baselines3.common.callbacks import CheckpointCallback, EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import BitFlippingEnv, FakeImageEnv, SimpleMultiObsEnv
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.utils import get_linear_fn
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecFrameStack, VecNormalize

from sb3_dspg import DSPG

TINY = dict(learning_starts=50, batch_size=32, policy_kwargs=dict(net_arch=[32, 32]))


def image_env():
    return FakeImageEnv(screen_height=40, screen_width=40, n_channels=1, discrete=False)


def dict_env():
    return SimpleMultiObsEnv(random_start=False, discrete_actions=False)


POLICIES = {
    "MlpPolicy": lambda: gym.make("Pendulum-v1"),
    "CnnPolicy": image_env,
    "MultiInputPolicy": dict_env,
}


def sample_obs(env, n: int = 8):
    space = env.observation_space
    space.seed(0)
    samples = [space.sample() for _ in range(n)]
    if isinstance(space, gym.spaces.Dict):
        return {key: np.stack([s[key] for s in samples]) for key in space.spaces}
    return np.stack(samples)


def assert_same_state(first: th.nn.Module, second: th.nn.Module) -> None:
    a, b = first.state_dict(), second.state_dict()
    assert set(a) == set(b)
    for key in a:
        assert th.equal(a[key].cpu(), b[key].cpu()), key


def optimizer_states_equal(first: th.optim.Optimizer, second: th.optim.Optimizer) -> bool:
    a, b = first.state_dict()["state"], second.state_dict()["state"]
    return a.keys() == b.keys() and all(th.equal(a[k][name], b[k][name]) for k in a for name in a[k])


@pytest.mark.parametrize("policy", list(POLICIES))
def test_save_load_is_bit_identical_and_continues(policy, tmp_path):
    env = POLICIES[policy]()
    kwargs = TINY if policy != "CnnPolicy" else {**TINY, "buffer_size": 500}
    model = DSPG(policy, env, seed=0, denoise_sigma=0.12, cond_dropout=0.4, **kwargs)
    model.learn(120)
    obs = sample_obs(env)
    actions = model.predict(obs, deterministic=True)[0]
    model.save(tmp_path / "model")

    loaded = DSPG.load(tmp_path / "model", env=POLICIES[policy]())
    assert np.array_equal(actions, loaded.predict(obs, deterministic=True)[0])
    # every network and target, the running statistics of outcomes and of ĝ, every optimizer, the hyper-parameters
    assert_same_state(model.policy, loaded.policy)
    for name in ("actor", "critic", "denoiser", "grad_head"):
        assert optimizer_states_equal(getattr(model, name).optimizer, getattr(loaded, name).optimizer), name
    assert loaded.denoiser.outcome_norm.count.min().item() > 0 and loaded.grad_head.grad_count.item() > 0
    assert (loaded.denoise_sigma, loaded.cond_dropout, loaded.policy_delay) == (0.12, 0.4, 2)
    loaded.learn(60, reset_num_timesteps=False)
    assert loaded.num_timesteps == 180


def test_load_device_set_env_and_parameters(tmp_path):
    model = DSPG("MlpPolicy", "Pendulum-v1", seed=0, **TINY)
    model.learn(80)
    model.save(tmp_path / "model")
    loaded = DSPG.load(tmp_path / "model", device="cpu")
    assert loaded.device.type == "cpu" and next(loaded.policy.parameters()).device.type == "cpu"
    loaded.set_env(make_vec_env("Pendulum-v1", n_envs=1, seed=1))
    loaded.learn(40, reset_num_timesteps=False)

    other = DSPG("MlpPolicy", "Pendulum-v1", seed=1, **TINY)
    other.set_parameters(model.get_parameters())
    obs = sample_obs(model.get_env())
    assert np.array_equal(other.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
    assert_same_state(model.policy, other.policy)


def test_replay_buffer_and_policy_save_load(tmp_path):
    model = DSPG("MlpPolicy", "Pendulum-v1", seed=0, **TINY)
    model.learn(100)
    model.save_replay_buffer(tmp_path / "buffer")
    fresh = DSPG("MlpPolicy", "Pendulum-v1", seed=0, **TINY)
    fresh.load_replay_buffer(tmp_path / "buffer")
    assert fresh.replay_buffer.size() == model.replay_buffer.size() == 100
    assert np.array_equal(fresh.replay_buffer.observations, model.replay_buffer.observations)

    model.policy.save(tmp_path / "policy")
    policy = model.policy_class.load(tmp_path / "policy")
    obs = sample_obs(model.get_env())
    assert np.array_equal(policy.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])


@pytest.mark.parametrize("vec_env_cls", [DummyVecEnv, SubprocVecEnv])
def test_multiple_envs(vec_env_cls):
    env = make_vec_env("Pendulum-v1", n_envs=2, vec_env_cls=vec_env_cls, seed=0)
    model = DSPG("MlpPolicy", env, seed=0, **TINY)
    model.learn(120)
    buffer = model.replay_buffer
    # one buffer row per vec-env step holds both envs' transitions, and they are different episodes
    assert model.num_timesteps == 2 * buffer.pos == 120
    assert not np.array_equal(buffer.observations[: buffer.pos, 0], buffer.observations[: buffer.pos, 1])
    assert model._n_updates > 0 and np.isfinite(model.logger.name_to_value["train/denoiser_loss"])
    env.close()


def count_updates(model) -> dict[str, int]:
    """Optimizer steps taken so far, per network (Adam's step counter)."""
    return {name: int(next(iter(getattr(model, name).optimizer.state.values()))["step"]) for name in NETWORKS}


NETWORKS = ("actor", "critic", "denoiser", "grad_head")


@pytest.mark.parametrize(
    ("kwargs", "rollout_steps", "updates_per_rollout"),
    [(dict(train_freq=(4, "step"), gradient_steps=2), 4, 2), (dict(train_freq=3, gradient_steps=-1), 3, 3)],
    ids=["train_freq_4_gradient_steps_2", "gradient_steps_all"],
)
def test_train_freq_and_gradient_steps(kwargs, rollout_steps, updates_per_rollout):
    model = DSPG("MlpPolicy", "Pendulum-v1", seed=0, **{**TINY, **kwargs})
    model.learn(250)
    # a rollout ends every `rollout_steps` env steps; each one past learning_starts trains `updates_per_rollout` times
    rollouts = [t for t in range(rollout_steps, model.num_timesteps + 1, rollout_steps) if t > model.learning_starts]
    assert model._n_updates == updates_per_rollout * len(rollouts)


def test_train_freq_in_episodes():
    model = DSPG("MlpPolicy", "Pendulum-v1", seed=0, train_freq=(1, "episode"), gradient_steps=-1, **TINY)
    model.learn(450)  # Pendulum episodes are 200 steps: rollouts end at 200, 400 and 600, each one past learning_starts
    assert model.num_timesteps == 600 and model._n_updates == 3 * 200  # gradient_steps=-1: one per collected step


def test_policy_delay_updates_actor_denoiser_and_head_once_in_three():
    model = DSPG("MlpPolicy", "Pendulum-v1", seed=0, policy_delay=3, **TINY)
    model.learn(200)
    counts = count_updates(model)
    assert counts["critic"] == model._n_updates == 150
    assert counts["actor"] == counts["denoiser"] == counts["grad_head"] == 150 // 3


def capture_estimates(model, monkeypatch) -> list:
    import sb3_dspg.dspg

    captured = []

    def spy(*args, **kwargs):
        captured.append((args, sb3_dspg.estimator.estimate_action_gradient(*args, **kwargs)))
        return captured[-1][1]

    monkeypatch.setattr(sb3_dspg.dspg, "estimate_action_gradient", spy)
    return captured


@pytest.mark.parametrize("antithetic", [True, False])
def test_antithetic_noise_doubles_the_estimate_batch(antithetic, monkeypatch):
    model = DSPG("MlpPolicy", "Pendulum-v1", seed=0, antithetic=antithetic, **TINY)
    model.learn(60)
    captured = capture_estimates(model, monkeypatch)
    model.train(gradient_steps=2, batch_size=32)
    (args, est) = captured[-1]
    actions = args[6]
    assert est.noised_actions.shape == ((64 if antithetic else 32), 1)
    if antithetic:  # the pairs a + σ·η and a − σ·η average to the clean action
        assert th.allclose((est.noised_actions[:32] + est.noised_actions[32:]) / 2, actions, atol=1e-6)


@pytest.mark.parametrize("grad_clip", [3.0, float("inf")])
def test_grad_clip_bounds_the_head_target(grad_clip, monkeypatch):
    model = DSPG("MlpPolicy", "Pendulum-v1", seed=0, grad_clip=grad_clip, **TINY)
    model.learn(150)
    captured = capture_estimates(model, monkeypatch)
    model.train(gradient_steps=40, batch_size=32)
    targets = th.cat([est.head_target for _, est in captured])
    unclipped = th.cat([est.grad_estimate / est.grad_rms for _, est in captured])
    if grad_clip == float("inf"):
        assert th.allclose(targets, unclipped)
    else:
        assert targets.abs().max() <= grad_clip + 1e-6 and th.equal(targets, unclipped.clamp(-grad_clip, grad_clip))


def test_n_steps_return_signal_is_discounted_n_step_target():
    gamma = 0.9
    model = DSPG("MlpPolicy", "Pendulum-v1", seed=0, n_steps=3, gamma=gamma, **TINY)
    model.learn(150)
    data = model.replay_buffer.sample(64, env=None)
    # every row bootstraps k ≤ 3 steps ahead: 3 except at the end of an episode or of the buffer
    powers = th.tensor([gamma, gamma**2, gamma**3])
    assert th.isclose(data.discounts, powers).any(dim=1).all()
    assert th.isclose(data.discounts, powers[2]).float().mean() > 0.9
    th.manual_seed(0)
    returns = model._return_signal(data)
    th.manual_seed(0)
    noise = data.actions.clone().normal_(0, model.target_policy_noise).clamp(-model.target_noise_clip, model.target_noise_clip)
    with th.no_grad():
        next_actions = (model.actor_target(data.next_observations) + noise).clamp(-1, 1)
        next_q = th.min(th.cat(model.critic_target(data.next_observations, next_actions), dim=1), dim=1, keepdim=True)[0]
    assert th.allclose(returns, data.rewards + (1 - data.dones) * data.discounts * next_q)


class CountingNoise(NormalActionNoise):
    calls = 0

    def __call__(self):
        CountingNoise.calls += 1
        return super().__call__()


def test_user_action_noise_is_used_on_every_step():
    CountingNoise.calls = 0
    model = DSPG("MlpPolicy", "Pendulum-v1", seed=0, action_noise=CountingNoise(np.zeros(1), 0.3 * np.ones(1)), **TINY)
    model.learn(120)
    assert CountingNoise.calls == 120  # SB3 adds it to every step, the random warm-up steps included
    ou = OrnsteinUhlenbeckActionNoise(np.zeros(1), 0.3 * np.ones(1))
    model = DSPG("MlpPolicy", "Pendulum-v1", seed=0, action_noise=ou, **TINY)
    model.learn(80)
    assert model.action_noise is ou and not np.array_equal(ou.noise_prev, np.zeros(1))


def test_multi_dimensional_box_action_space():
    """Regression (SB3's test_action_spaces): a Box of shape (2, 2) crashed DSPG's default exploration noise."""
    from stable_baselines3.common.envs import IdentityEnvBox

    class MatrixActionEnv(IdentityEnvBox):
        def __init__(self):
            super().__init__(ep_length=10)
            self.action_space = gym.spaces.Box(-1, 1, (2, 2), dtype=np.float32)
            self.observation_space = gym.spaces.Box(-1, 1, (2, 2), dtype=np.float32)

        def _get_reward(self, action):
            return -float(np.sum((np.asarray(action) - self.state) ** 2))

    model = DSPG("MlpPolicy", MatrixActionEnv(), learning_starts=2, train_freq=32, seed=0, policy_kwargs=dict(net_arch=[8]))
    model.learn(64)
    assert model.action_noise().shape == (2, 2)
    assert model.predict(np.zeros((2, 2), dtype=np.float32))[0].shape == (2, 2)


def test_cos_diagnostic_does_not_touch_batch_norm_statistics():
    """Regression (SB3's test_td3_train_with_batch_norm): logging must never change the model."""

    class BatchNormExtractor(BaseFeaturesExtractor):
        def __init__(self, observation_space: gym.spaces.Box):
            super().__init__(observation_space, features_dim=3)
            self.bn = th.nn.BatchNorm1d(3)

        def forward(self, obs: th.Tensor) -> th.Tensor:
            return self.bn(obs)

    model = DSPG("MlpPolicy", "Pendulum-v1", learning_starts=0, tau=0.0, seed=0, batch_size=32,
                 policy_kwargs=dict(net_arch=[16], features_extractor_class=BatchNormExtractor))  # fmt: skip
    model.learn(200)
    critic_bn, target_bn = model.critic.features_extractor.bn, model.critic_target.features_extractor.bn
    assert model.critic.features_extractor.bn.num_batches_tracked > 0
    assert th.equal(critic_bn.running_mean, target_bn.running_mean) and th.equal(critic_bn.running_var, target_bn.running_var)


def test_learning_rate_schedule_reaches_every_optimizer():
    model = DSPG("MlpPolicy", "Pendulum-v1", learning_rate=get_linear_fn(1e-3, 1e-4, 1.0), seed=0, **TINY)
    model.learn(200)
    lrs = {group["lr"] for opt in model._optimizers() for group in opt.param_groups}
    assert len(lrs) == 1 and 1e-4 < lrs.pop() < 1e-3 * 0.9


def test_vec_normalize_and_frame_stack(tmp_path, monkeypatch):
    env = VecNormalize(make_vec_env("Pendulum-v1", n_envs=1, seed=0), gamma=0.99)
    model = DSPG("MlpPolicy", env, seed=0, **TINY)
    model.learn(120)
    # the networks see normalised observations: every observation the DSPG step got is a normalised buffer row
    captured = capture_estimates(model, monkeypatch)
    model.train(gradient_steps=2, batch_size=16)  # policy_delay=2: one of the two runs the DSPG step
    seen = captured[0][0][3].numpy()
    raw = model.replay_buffer.observations[: model.replay_buffer.pos, 0]
    normalised = env.normalize_obs(raw)
    assert all(np.isclose(normalised, row, atol=1e-5).all(axis=1).any() for row in seen)
    assert not all(np.isclose(raw, row, atol=1e-3).all(axis=1).any() for row in seen)
    model.save(tmp_path / "model")
    env.save(tmp_path / "vecnormalize.pkl")
    loaded_env = VecNormalize.load(tmp_path / "vecnormalize.pkl", make_vec_env("Pendulum-v1", n_envs=1))
    loaded = DSPG.load(tmp_path / "model", env=loaded_env)
    assert np.allclose(loaded_env.obs_rms.mean, env.obs_rms.mean)
    loaded.learn(40, reset_num_timesteps=False)

    stacked = VecFrameStack(make_vec_env("Pendulum-v1", n_envs=2, seed=0), n_stack=3)
    model = DSPG("MlpPolicy", stacked, seed=0, **TINY)
    model.learn(120)
    assert model.observation_space.shape == (9,) and model.denoiser.eps_net[0].in_features == 9 + 1 + 1 + (9 + 1) + 2


def test_callbacks_progress_bar_and_evaluation(tmp_path):
    eval_env = gym.make("Pendulum-v1")
    callbacks = [
        EvalCallback(eval_env, eval_freq=100, n_eval_episodes=1, log_path=str(tmp_path / "eval")),
        CheckpointCallback(save_freq=100, save_path=str(tmp_path / "ckpt"), name_prefix="dspg"),
    ]
    model = DSPG("MlpPolicy", "Pendulum-v1", seed=0, **TINY)
    model.learn(200, callback=callbacks, progress_bar=True)
    assert (tmp_path / "eval" / "evaluations.npz").exists()
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["dspg_100_steps.zip", "dspg_200_steps.zip"]
    assert DSPG.load(tmp_path / "ckpt" / "dspg_200_steps.zip").num_timesteps == 200
    obs = sample_obs(eval_env)

    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=2)
    assert np.isfinite(mean) and std >= 0
    # like TD3, the policy itself is deterministic: exploration noise is added only while collecting
    assert np.array_equal(model.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=False)[0])
    assert model.predict(obs)[0].shape == (len(obs), 1)


@pytest.mark.parametrize("critic_type", ["td3", "crossq"])
def test_her_with_multi_input_policy_and_save_load(critic_type, tmp_path):
    env = BitFlippingEnv(n_bits=4, continuous=True, max_steps=4)
    model = DSPG(
        "MultiInputPolicy",
        env,
        replay_buffer_class=HerReplayBuffer,
        replay_buffer_kwargs=dict(n_sampled_goal=2, goal_selection_strategy="future"),
        critic_type=critic_type,
        seed=0,
        **TINY,
    )
    model.learn(150)
    obs = sample_obs(env)
    model.save(tmp_path / "her")
    model.save_replay_buffer(tmp_path / "her_buffer")
    loaded = DSPG.load(tmp_path / "her", env=BitFlippingEnv(n_bits=4, continuous=True, max_steps=4))
    loaded.load_replay_buffer(tmp_path / "her_buffer")  # HER needs the env to relabel goals: SB3 sets it here
    assert np.array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
    loaded.learn(50, reset_num_timesteps=False)


class TinyExtractor(BaseFeaturesExtractor):
    def __init__(self, observation_space: gym.spaces.Box, features_dim: int = 7):
        super().__init__(observation_space, features_dim)
        self.net = th.nn.Sequential(th.nn.Linear(observation_space.shape[0], features_dim), th.nn.Tanh())

    def forward(self, obs: th.Tensor) -> th.Tensor:
        return self.net(obs)


@pytest.mark.parametrize("share", [False, True])
def test_custom_extractor_shared_or_not_and_dict_net_arch(share):
    policy_kwargs = dict(
        features_extractor_class=TinyExtractor,
        share_features_extractor=share,
        net_arch=dict(pi=[16], qf=[24], denoiser=[40, 40], grad_head=[12])
        if share
        else dict(pi=[16], qf=[24], dn=[40, 40], gh=[12]),
    )
    model = DSPG("MlpPolicy", "Pendulum-v1", seed=0, learning_starts=50, batch_size=32, policy_kwargs=policy_kwargs)
    policy = model.policy
    assert policy.actor.mu[0].out_features == 16
    assert policy.critic.qf0[0].out_features == 24
    assert [m.out_features for m in policy.denoiser.eps_net if isinstance(m, th.nn.Linear)] == [40, 40, 1]
    assert policy.grad_head.grad_net[0].out_features == 12
    assert policy.denoiser.eps_net[0].in_features == 7 + 1 + 1 + (7 + 1) + 2  # φ(s), ã, log σ, o, m, m_r
    assert (policy.denoiser.features_extractor is policy.actor.features_extractor) == share
    assert (policy.grad_head.features_extractor is policy.actor.features_extractor) == share
    extractor_before = {k: v.clone() for k, v in policy.denoiser.features_extractor.state_dict().items()}
    model.learn(150)
    changed = any(not th.equal(v, policy.denoiser.features_extractor.state_dict()[k]) for k, v in extractor_before.items())
    assert changed  # trained: by the actor loss when shared, by the denoising loss otherwise


def test_same_seed_gives_identical_actions_and_losses():
    def run():
        model = DSPG("MlpPolicy", "Pendulum-v1", seed=3, **TINY)
        actions, losses = [], []

        def record(_locals, _globals):
            actions.append(np.copy(_locals["actions"]))
            losses.append(dict(model.logger.name_to_value))
            return True

        model.learn(1000, callback=record)
        return actions, losses

    (a1, l1), (a2, l2) = run(), run()
    assert len(a1) == 1000
    assert all(np.array_equal(x, y) for x, y in zip(a1, a2, strict=True))
    assert l1 == l2 and "train/denoiser_loss" in l1[-1]
