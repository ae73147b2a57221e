"""sb3-dspg: the Denoising Score Policy Gradient (DSPG) for Stable-Baselines3."""

from sb3_dspg.checks import NonFiniteLossError
from sb3_dspg.dspg import DSPG
from sb3_dspg.envs import register_envs
from sb3_dspg.policies import ActionDenoiser, CnnPolicy, DSPGPolicy, GradientHead, MlpPolicy, MultiInputPolicy

register_envs()

__version__ = "0.3.0"

__all__ = [
    "DSPG",
    "ActionDenoiser",
    "CnnPolicy",
    "DSPGPolicy",
    "GradientHead",
    "MlpPolicy",
    "MultiInputPolicy",
    "NonFiniteLossError",
    "__version__",
]
