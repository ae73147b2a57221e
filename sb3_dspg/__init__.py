"""sb3-dspg: the Denoising Score Policy Gradient (DSPG) for Stable-Baselines3."""

from sb3_dspg.dspg import DSPG, NonFiniteLossError
from sb3_dspg.envs import register_envs
from sb3_dspg.policies import CnnPolicy, DSPGPolicy, MlpPolicy, MultiInputPolicy

register_envs()

__version__ = "0.1.0"

__all__ = ["DSPG", "CnnPolicy", "DSPGPolicy", "MlpPolicy", "MultiInputPolicy", "NonFiniteLossError", "__version__"]
