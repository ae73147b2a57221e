"""The catalogue of bad inputs: each raises the documented exception with a message naming the problem."""

import math

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import TD3

from sb3_dspg import DSPG

TINY = dict(learning_starts=10, batch_size=8, policy_kwargs=dict(net_arch=[8]))


class ToyEnv(gym.Env):
    """A 3-d observation env whose action space, and the step at which it goes non-finite, are chosen."""

    observation_space = gym.spaces.Box(-1, 1, (3,), dtype=np.float32)

    def __init__(self, action_space=None, bad_step: int | None = None, bad: str = "obs"):
        self.action_space = action_space or gym.spaces.Box(-1, 1, (1,), dtype=np.float32)
        self.bad_step, self.bad, self.t = bad_step, bad, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(3, dtype=np.float32), {}

    def step(self, action):
        self.t += 1
        obs, reward = np.full(3, 0.1 * (self.t % 5), dtype=np.float32), 0.0
        if self.t == self.bad_step:
            if self.bad == "obs":
                obs[1] = np.nan
            else:
                reward = math.inf
        return obs, reward, False, self.t % 20 == 0, {}


def dspg(**kwargs):
    return lambda tmp_path: DSPG("MlpPolicy", "Pendulum-v1", **{**TINY, **kwargs})


def dspg_on(env):
    return lambda tmp_path: DSPG("MlpPolicy", env, **TINY)


def learn_on(env):
    return lambda tmp_path: DSPG("MlpPolicy", env, **TINY).learn(60)


def load_file(make):
    def run(tmp_path):
        return DSPG.load(make(tmp_path))

    return run


def saved_dspg(tmp_path):
    DSPG("MlpPolicy", "Pendulum-v1", **TINY).save(tmp_path / "dspg")
    return tmp_path / "dspg.zip"


def truncated(tmp_path):
    data = saved_dspg(tmp_path).read_bytes()
    (tmp_path / "cut.zip").write_bytes(data[: len(data) // 2])
    return tmp_path / "cut.zip"


def not_a_zip(tmp_path):
    (tmp_path / "text.zip").write_text("not a model")
    return tmp_path / "text.zip"


def td3_file(tmp_path):
    TD3("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=[8])).save(tmp_path / "td3")
    return tmp_path / "td3.zip"


def mismatched_spaces(tmp_path):
    return DSPG.load(saved_dspg(tmp_path), env=gym.make("MountainCarContinuous-v0"))


CATALOGUE = [
    # (case, action, exception, message pattern)
    ("discrete-action", dspg_on(ToyEnv(gym.spaces.Discrete(3))), ValueError, "action_space.*Box"),
    ("multi-discrete-action", dspg_on(ToyEnv(gym.spaces.MultiDiscrete([2, 3]))), ValueError, "action_space.*Box"),
    ("multi-binary-action", dspg_on(ToyEnv(gym.spaces.MultiBinary(2))), ValueError, "action_space.*Box"),
    # SB3's own clear error reaches the user unchanged
    ("unbounded-action", dspg_on(ToyEnv(gym.spaces.Box(-np.inf, np.inf, (1,)))), AssertionError, "finite lower and upper"),
    ("denoise_sigma=0", dspg(denoise_sigma=0.0), ValueError, "denoise_sigma must be a finite number > 0"),
    ("denoise_sigma<0", dspg(denoise_sigma=-0.1), ValueError, "denoise_sigma must be a finite number > 0"),
    ("denoise_sigma=inf", dspg(denoise_sigma=math.inf), ValueError, "denoise_sigma must be a finite number > 0"),
    ("denoise_sigma=nan", dspg(denoise_sigma=math.nan), ValueError, "denoise_sigma must be a finite number > 0"),
    ("cond_dropout=0", dspg(cond_dropout=0.0), ValueError, r"cond_dropout must be in the open interval \(0, 1\)"),
    ("cond_dropout=1", dspg(cond_dropout=1.0), ValueError, r"cond_dropout must be in the open interval \(0, 1\)"),
    ("cond_dropout<0", dspg(cond_dropout=-0.2), ValueError, r"cond_dropout must be in the open interval \(0, 1\)"),
    ("exploration_noise=0", dspg(exploration_noise=0.0), ValueError, "exploration_noise must be a finite number > 0"),
    ("batch_size=0", dspg(batch_size=0), ValueError, "batch_size must be an integer >= 1"),
    ("buffer_size=0", dspg(buffer_size=0), ValueError, "buffer_size must be an integer >= 1"),
    ("policy_delay=0", dspg(policy_delay=0), ValueError, "policy_delay must be an integer >= 1"),
    ("tau<0", dspg(tau=-0.1), ValueError, r"tau must be in \[0, 1\]"),
    ("tau>1", dspg(tau=1.5), ValueError, r"tau must be in \[0, 1\]"),
    ("gamma>1", dspg(gamma=1.01), ValueError, r"gamma must be in \[0, 1\]"),
    ("gamma<0", dspg(gamma=-0.1), ValueError, r"gamma must be in \[0, 1\]"),
    ("grad_clip=0", dspg(grad_clip=0.0), ValueError, "grad_clip must be a number > 0"),
    ("critic_grad_weight>1", dspg(critic_grad_weight=1.5), ValueError, r"critic_grad_weight must be a number in \[0, 1\]"),
    ("critic_grad_weight<0", dspg(critic_grad_weight=-0.1), ValueError, r"critic_grad_weight must be .* or 'auto'"),
    ("critic_grad_weight=str", dspg(critic_grad_weight="ivw"), ValueError, r"critic_grad_weight must be .* or 'auto'"),
    ("critic_grad_weight=nan", dspg(critic_grad_weight=math.nan), ValueError, r"critic_grad_weight must be"),
    (
        "critic_grad_weight-auto-one-head",
        dspg(critic_grad_weight="auto", policy_kwargs=dict(n_grad_heads=1)),
        ValueError,
        "critic_grad_weight: 'auto' needs twin gradient heads",
    ),
    ("n_grad_heads=3", dspg(policy_kwargs=dict(n_grad_heads=3)), ValueError, "n_grad_heads must be 1 or 2"),
    ("outcome=next_state", dspg(outcome="next_state"), ValueError, "outcome must be 'transition' .* or 'return'"),
    (
        "outcome-policy_kwargs-disagree",
        dspg(outcome="return", policy_kwargs=dict(net_arch=[8], outcome="transition")),
        ValueError,
        r"outcome: 'return' and policy_kwargs\['outcome'\]='transition' disagree",
    ),
    (
        "pretrain-return-outcome",
        lambda tmp_path: dspg(outcome="return")(tmp_path).pretrain(20),
        ValueError,
        "outcome: reward-free pretraining needs outcome='transition'",
    ),
    ("net_arch-unknown-key", dspg(policy_kwargs=dict(net_arch=dict(pi=[8], qf=[8], foo=[8]))), ValueError, "net_arch.*foo"),
    ("net_arch-no-qf", dspg(policy_kwargs=dict(net_arch=dict(pi=[8], denoiser=[8]))), ValueError, "net_arch.*'pi' and 'qf'"),
    ("net_arch-key-twice", dspg(policy_kwargs=dict(net_arch=dict(pi=[8], qf=[8], dn=[8], denoiser=[8]))), ValueError, "once"),
    ("policy_kwargs-unknown-key", dspg(policy_kwargs=dict(foo=1)), TypeError, "unexpected keyword argument 'foo'"),
    ("nan-observation", learn_on(ToyEnv(bad_step=30, bad="obs")), ValueError, "non-finite observation at step 30"),
    ("inf-reward", learn_on(ToyEnv(bad_step=30, bad="reward")), ValueError, "non-finite reward at step 30"),
    ("load-td3-file", load_file(td3_file), ValueError, "policy: DSPG needs a DSPGPolicy.*TD3Policy"),
    ("load-truncated-zip", load_file(truncated), ValueError, "not a complete DSPG model file"),
    ("load-not-a-zip", load_file(not_a_zip), ValueError, "wasn't a zip-file"),
    ("load-missing-file", load_file(lambda tmp_path: tmp_path / "nothing"), FileNotFoundError, "nothing"),
    ("load-mismatched-spaces", mismatched_spaces, ValueError, "Observation spaces do not match"),
]


@pytest.mark.parametrize(("action", "exception", "pattern"), [row[1:] for row in CATALOGUE], ids=[r[0] for r in CATALOGUE])
def test_bad_input_raises_documented_error(action, exception, pattern, tmp_path):
    with pytest.raises(exception, match=pattern):
        action(tmp_path)


def test_non_finite_env_data_never_enters_the_buffer():
    model = DSPG("MlpPolicy", ToyEnv(bad_step=30, bad="obs"), **TINY)
    with pytest.raises(ValueError, match="non-finite observation"):
        model.learn(60)
    size = model.replay_buffer.size()
    assert size == 29
    assert np.isfinite(model.replay_buffer.observations[:size]).all()
    assert np.isfinite(model.replay_buffer.next_observations[:size]).all()
    assert all(np.isfinite(p.detach().numpy()).all() for p in model.policy.parameters())
