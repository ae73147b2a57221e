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
    assert loaded.denoiser.outcome_norm.count.item() > 0 and loaded.grad_head.grad_count.item() > 0
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
    assert model.num_timesteps >= 120 and model.replay_buffer.size() * 2 >= 120
    env.close()


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(train_freq=(4, "step"), gradient_steps=2),
        dict(train_freq=(1, "episode"), gradient_steps=-1),
        dict(gradient_steps=-1, train_freq=3),
        dict(n_steps=3),
        dict(action_noise=NormalActionNoise(np.zeros(1), 0.3 * np.ones(1))),
        dict(action_noise=OrnsteinUhlenbeckActionNoise(np.zeros(1), 0.3 * np.ones(1))),
        dict(policy_delay=3, antithetic=False, grad_clip=float("inf")),
    ],
    ids=["train_freq_steps", "train_freq_episode", "gradient_steps_all", "n_steps", "normal_noise", "ou_noise", "options"],
)
def test_training_options(kwargs):
    model = DSPG("MlpPolicy", "Pendulum-v1", seed=0, **{**TINY, **kwargs})
    model.learn(250)
    assert model._n_updates > 0
    assert np.isfinite(model.logger.name_to_value["train/baseline_loss"])


def test_learning_rate_schedule_reaches_every_optimizer():
    model = DSPG("MlpPolicy", "Pendulum-v1", learning_rate=get_linear_fn(1e-3, 1e-4, 1.0), seed=0, **TINY)
    model.learn(200)
    lrs = {group["lr"] for opt in model._optimizers() for group in opt.param_groups}
    assert len(lrs) == 1 and 1e-4 < lrs.pop() < 1e-3 * 0.9


def test_vec_normalize_and_frame_stack(tmp_path):
    env = VecNormalize(make_vec_env("Pendulum-v1", n_envs=1, seed=0), gamma=0.99)
    model = DSPG("MlpPolicy", env, seed=0, **TINY)
    model.learn(120)
    model.save(tmp_path / "model")
    env.save(tmp_path / "vecnormalize.pkl")
    loaded_env = VecNormalize.load(tmp_path / "vecnormalize.pkl", make_vec_env("Pendulum-v1", n_envs=1))
    loaded = DSPG.load(tmp_path / "model", env=loaded_env)
    loaded.learn(40, reset_num_timesteps=False)

    stacked = VecFrameStack(make_vec_env("Pendulum-v1", n_envs=2, seed=0), n_stack=3)
    model = DSPG("MlpPolicy", stacked, seed=0, **TINY)
    model.learn(120)
    assert model.observation_space.shape == (9,)


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


def test_her_with_multi_input_policy_and_save_load(tmp_path):
    env = BitFlippingEnv(n_bits=4, continuous=True, max_steps=4)
    model = DSPG(
        "MultiInputPolicy",
        env,
        replay_buffer_class=HerReplayBuffer,
        replay_buffer_kwargs=dict(n_sampled_goal=2, goal_selection_strategy="future"),
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
        net_arch=dict(pi=[16], qf=[24], dn=[40, 40], gh=[12]),
    )
    model = DSPG("MlpPolicy", "Pendulum-v1", seed=0, learning_starts=50, batch_size=32, policy_kwargs=policy_kwargs)
    policy = model.policy
    assert policy.actor.mu[0].out_features == 16
    assert policy.critic.qf0[0].out_features == 24
    assert [m.out_features for m in policy.denoiser.eps_net if isinstance(m, th.nn.Linear)] == [40, 40, 1]
    assert policy.grad_head.grad_net[0].out_features == 12
    assert policy.denoiser.eps_net[0].in_features == 7 + 1 + 1 + (7 + 1) + 1
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
