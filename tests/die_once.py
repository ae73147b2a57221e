"""A test env whose first construction kills its worker process: the Ray backend must retry the run.

Imported by the runs through ``--gym-packages die_once``; the marker file named by ``$SB3_DSPG_DIE_ONCE``
is removed by the construction that dies, so the retry survives.
"""

import os

import gymnasium as gym

from sb3_dspg.envs import NoisyBandit


class DieOnceBandit(NoisyBandit):
    def __init__(self, **kwargs):
        marker = os.environ.get("SB3_DSPG_DIE_ONCE", "")
        try:
            os.remove(marker)
        except OSError:
            pass  # no marker (any more): a normal bandit
        else:
            os._exit(1)  # the worker process dies mid-run, as a killed or lost node would
        super().__init__(**kwargs)


if "DieOnceBandit-v0" not in gym.registry:
    gym.register("DieOnceBandit-v0", entry_point=DieOnceBandit, max_episode_steps=1)
