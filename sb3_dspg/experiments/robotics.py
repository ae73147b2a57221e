"""
Goal-conditioned worlds from gymnasium-robotics (``FetchReach``), for ``sb3-dspg compare``.

Importing this module registers gymnasium-robotics' environments and ``sb3_dspg/ActuatorFetchReach-v4``
(FetchReach with Gaussian actuator noise of std 0.3 of the half action range, :class:`sb3_dspg.envs.ActuatorNoise`):
a sparse, discontinuous reward (0 within 5 cm of the goal, −1 elsewhere) in a multi-step world. Suites name it in
a world's ``gym_packages``; on the command line, ``--gym-packages sb3_dspg.experiments.robotics``.

It also works around a bug of gymnasium-robotics 1.4.2 with mujoco ≥ 3.4 (numpy 2): its ``mujoco_utils`` asserts
``joint_type in (mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE)`` with ``joint_type`` a numpy integer,
and mujoco's enums answer ``enum == np.int32(2)`` with ``False`` (while ``np.int32(2) == enum`` is ``True``), so
``gym.make("FetchReach-v4")`` fails at its first reset. The module gives ``mujoco_utils`` a view of ``mujoco`` whose
``mjtJoint`` is an :class:`enum.IntEnum` with the same values; nothing else changes. With mujoco < 3.4 it does nothing.
"""

from __future__ import annotations

import enum
import types

import gymnasium as gym
import mujoco
import numpy as np

try:
    import gymnasium_robotics
    from gymnasium_robotics.utils import mujoco_utils
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError("FetchReach needs gymnasium-robotics: pip install 'sb3-dspg[bench]'") from error


def joint_enum_compares_with_numpy() -> bool:
    """Whether ``mujoco.mjtJoint.mjJNT_SLIDE == np.int32(2)`` holds (False on the mujoco versions that need the fix)."""
    return bool(mujoco.mjtJoint.mjJNT_SLIDE == np.int32(int(mujoco.mjtJoint.mjJNT_SLIDE)))


def _mujoco_with_int_joint_types() -> types.SimpleNamespace:
    """``mujoco``'s namespace with ``mjtJoint`` replaced by an ``IntEnum`` of the same members."""
    members = {name: int(getattr(mujoco.mjtJoint, name)) for name in dir(mujoco.mjtJoint) if name.startswith("mjJNT_")}
    view = types.SimpleNamespace(**{name: getattr(mujoco, name) for name in dir(mujoco) if not name.startswith("__")})
    view.mjtJoint = enum.IntEnum("mjtJoint", members)
    return view


if not joint_enum_compares_with_numpy():
    mujoco_utils.mujoco = _mujoco_with_int_joint_types()

gym.register_envs(gymnasium_robotics)
if "sb3_dspg/ActuatorFetchReach-v4" not in gym.registry:
    gym.register(
        "sb3_dspg/ActuatorFetchReach-v4",
        entry_point="sb3_dspg.envs:make_noisy",
        kwargs={"base_id": "FetchReach-v4", "actuator": 0.3},
    )
