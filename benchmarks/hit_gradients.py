"""Which action-gradient is right: DSPG's head and a critic's ``∇_a Q̂`` against Monte Carlo.

DSPG beats its peers on the one-step ``HitBandit-v0``, ties them on the multi-step ``HitReach-v0`` and trails TD3
on ``Hopper-v5`` (``benchmarks/results/noisy/``). The hit worlds are simple enough to simulate in batch, and
Hopper is deterministic MuJoCo whose state is its observation (with ``x = 0``, on which nothing depends), so the
gradient every method is after, ``∇_a Q^π(s, a)`` at the policy's action, can be measured directly. This script
trains DSPG and TD3 with Gaussian exploration noise 0.1 (``td3-explore``, the peer to beat on the hit worlds; on
Hopper it is rl-zoo3's tuned TD3, which explores so already) with ``learn()`` under the suite's settings (the hit
worlds untuned, ``net_arch=[256, 256]``; Hopper at the ``hyperparams`` entries), and at checkpoints compares, on
states from the most recent replay data:

- DSPG's gradient head ``H(s, a)``, which its actor follows;
- DSPG's own critic ``∇_a Q̂(s, a)`` (what DDPG-style DSPG would follow);
- TD3's critic ``∇_a Q̂(s, a)``, which TD3's actor follows;

each against the Monte-Carlo gradient of *its own* policy's ``Q^π`` at ``a = μ(s)``: central differences along
each action coordinate with common random numbers over ``--rollouts`` rollouts, with the critics' own target (the
same ``γ``, the actor plus TD3's clipped target smoothing noise on later steps, SB3's time-limit bootstrapping,
i.e. no time limit, ``--horizon`` steps). ``a`` is kept ``δ`` inside the action bounds. The Monte Carlo's own noise
is reported as the cosine between the gradients of its two halves of rollouts (its ceiling). On Hopper a rollout
steps its own ``MjData`` through gymnasium's own ``step`` (its reward and termination) and ends when Hopper falls.

    python benchmarks/hit_gradients.py --seeds 0 1 --out benchmarks/results/hit_gradients.md
    python benchmarks/hit_gradients.py --worlds Hopper-v5 --seeds 0 1 2 --states 32 --rollouts 64 --horizon 300 \
      --out benchmarks/results/hopper_gradients.md
"""

import argparse
import platform
import sys
import time
from pathlib import Path

import gymnasium as gym
import mujoco
import numpy as np
import torch as th
from torch.nn.functional import cosine_similarity

import sb3_dspg  # noqa: F401  (registers the worlds)
from sb3_dspg.envs import NoisyBandit, sample_noise
from sb3_dspg.experiments.compare import algo_class, grid_hyperparams
from sb3_dspg.experiments.one_step import critic_gradient

#: world -> (checkpoints in env steps, finite-difference step δ in action units)
WORLDS = {
    "sb3_dspg/HitBandit-v0": ((2_000, 10_000), 0.03),
    "sb3_dspg/HitReach-v0": ((3_000, 10_000, 20_000), 0.05),
    "Hopper-v5": ((20_000, 40_000), 0.05),
}
ALGOS = ["dspg", "td3-explore"]
VARIANTS = {"td3-explore": {"noise_type": "normal", "noise_std": 0.1}}


@th.no_grad()
def actor_mean(model, obs: np.ndarray) -> np.ndarray:
    """``μ(s)`` of the model's actor for states of any leading shape ``(..., obs_dim)``."""
    flat = th.as_tensor(obs, dtype=th.float32).reshape(-1, obs.shape[-1])
    return model.actor(flat).numpy().reshape(*obs.shape[:-1], -1)


def expected_hit(centre: np.ndarray, goal: np.ndarray, radius: float, scale: float) -> np.ndarray:
    """
    ``P(‖centre + ε − goal‖ < radius)`` for the worlds' bimodal noise ``ε`` of std ``scale`` per coordinate
    (:func:`~sb3_dspg.envs.sample_noise`: modes ``±0.95·scale``, each Gaussian with std ``√(1 − 0.95²)·scale``): a
    mean over the ``2^d`` modes of a non-central χ² probability, read from a table. Used in place of the sampled
    hit (Rao-Blackwellised), which leaves ``Q^π`` unchanged and removes the indicator's variance.

    :param centre: ``(..., d)`` where the move lands before the noise
    """
    from scipy.stats import ncx2

    d, std = centre.shape[-1], np.sqrt(1 - 0.95**2) * scale
    distances = np.linspace(0.0, radius + 10 * std, 4001)
    table = ncx2.cdf((radius / std) ** 2, d, (distances / std) ** 2)
    modes = 0.95 * scale * np.array(np.meshgrid(*[[-1.0, 1.0]] * d)).reshape(d, -1).T  # (2^d, d)
    probability = np.zeros(centre.shape[:-1])
    for mode in modes:
        probability += np.interp(np.linalg.norm(centre + mode - goal, axis=-1), distances, table, right=0.0)
    return probability / len(modes)


def returns(world, model, obs: np.ndarray, first: np.ndarray, rollouts: int, horizon: int, seed: int) -> np.ndarray:
    """
    Discounted expected-hit returns of rollouts that take ``first`` and then the critic target's policy,
    ``clip(μ(s) + clip(ε, ±c), -1, 1)`` with TD3's smoothing noise ``ε``; every draw is shared by the ``P`` first
    actions of a state (common random numbers). Each step's reward is its hit probability given where the move
    was aimed (:func:`expected_hit`); the next position is sampled.

    :param world: the unwrapped ``NoisyBandit`` (hit reward: exact, one rollout) or ``HitReach``
    :param obs: ``(S, obs_dim)`` start states
    :param first: ``(S, P, d)`` first actions
    :return: ``(rollouts, S, P)`` (``(1, S, P)`` on the bandit)
    """
    if hasattr(world, "data"):
        return mujoco_returns(world, model, obs, first, rollouts, horizon, seed)
    if world.noise != "bimodal" or getattr(world, "terminate_on_hit", False):
        raise ValueError("the worlds' defaults only: bimodal noise, episodes that do not end at a hit")
    if isinstance(world, NoisyBandit):  # one step: E[R | s, a] = P(‖a + ε − c(s)‖ < 0.25)
        target = world.target(obs[:, : world.context_dim])[:, None]
        return expected_hit(first, target, 0.25, world.noise_scale)[None]
    rng = np.random.default_rng(seed)
    shape = (rollouts, obs.shape[0], 1, first.shape[-1])  # the perturbation axis broadcasts: common random numbers
    position = np.broadcast_to(obs[None, :, None, :2], (rollouts, *first.shape[:2], 2))
    goal = np.broadcast_to(obs[None, :, None, 2:], position.shape)
    action, total = first[None], np.zeros(position.shape[:-1])
    for t in range(horizon):
        if t > 0:
            smoothing = np.clip(
                model.target_policy_noise * rng.standard_normal(shape), -model.target_noise_clip, model.target_noise_clip
            )
            action = np.clip(actor_mean(model, np.concatenate([position, goal], axis=-1)) + smoothing, -1.0, 1.0)
        aim = position + world.step_size * action  # clipping at ±1.5 never reaches a disk around a goal in [-1, 1]²
        total += model.gamma**t * expected_hit(aim, goal, world.radius, world.step_size * world.noise_scale)
        move = action + sample_noise(rng, world.noise, world.noise_scale, shape)
        position = np.clip(position + world.step_size * move, -1.5, 1.5)
    return total


def mujoco_returns(world, model, obs: np.ndarray, first: np.ndarray, rollouts: int, horizon: int, seed: int) -> np.ndarray:
    """
    :func:`returns` on a MuJoCo locomotion world whose observation is its state but for ``x`` (Hopper-v5): one
    start state at a time, each of its ``rollouts × P`` rollouts in an ``MjData`` of a pool (each holds MuJoCo's
    13 MB arena, so not one per rollout of every state) set from the observation with ``x = 0`` and stepped by the
    env's own ``step`` (reward, termination), the policy evaluated for all of them at once; a rollout that falls
    ends.
    """
    base_data, (samples, starts, pair, d), nq = world.data, (rollouts, *first.shape), world.model.nq
    pool = np.array([mujoco.MjData(world.model) for _ in range(samples * pair)], dtype=object).reshape(samples, pair)
    rng, total = np.random.default_rng(seed), np.zeros((samples, starts, pair))
    try:
        for start in range(starts):
            for data in pool.flat:
                mujoco.mj_resetData(world.model, data)
                data.qpos[:] = np.concatenate([[0.0], obs[start, : nq - 1]])
                data.qvel[:] = obs[start, nq - 1 :]  # the observation clips velocities at ±10: exact below that
                mujoco.mj_forward(world.model, data)
            state = np.broadcast_to(obs[start], (samples, pair, obs.shape[-1])).copy()
            action, alive = np.broadcast_to(first[start], (samples, pair, d)), np.ones((samples, pair), dtype=bool)
            for t in range(horizon):
                if t > 0:  # the smoothing noise is shared by the P first actions (common random numbers)
                    noise = model.target_policy_noise * rng.standard_normal((samples, 1, d))
                    smoothing = np.clip(noise, -model.target_noise_clip, model.target_noise_clip)
                    action = np.clip(actor_mean(model, state) + smoothing, -1.0, 1.0)
                for sample, perturbation in np.argwhere(alive):
                    world.data = pool[sample, perturbation]
                    state[sample, perturbation], reward, terminated, _, _ = world.step(action[sample, perturbation])
                    total[sample, start, perturbation] += model.gamma**t * reward
                    alive[sample, perturbation] = not terminated
                if not alive.any():
                    break
    finally:
        world.data = base_data
    return total


def mc_gradient(world, model, obs: np.ndarray, at: np.ndarray, delta: float, rollouts: int, horizon: int, seed: int):
    """
    ``∇_a Q^π(s, a)`` by central differences with common random numbers, ``(S, d)``, and the mean cosine between
    the estimates of the two halves of the rollouts (the Monte Carlo's own agreement).
    """
    d = at.shape[-1]
    steps = np.concatenate([np.eye(d), -np.eye(d)])  # +e_0, ..., +e_{d-1}, -e_0, ...
    first = np.clip(at[:, None, :] + delta * steps[None], -1.0, 1.0)
    per_rollout = returns(world, model, obs, first, rollouts, horizon, seed)
    differences = (per_rollout[..., :d] - per_rollout[..., d:]) / (2 * delta)  # (rollouts, S, d)
    if len(differences) == 1:  # exact (the bandit)
        return th.as_tensor(differences[0]), 1.0
    half = len(differences) // 2
    halves = [th.as_tensor(part.mean(axis=0)) for part in (differences[:half], differences[half:])]
    return th.as_tensor(differences.mean(axis=0)), cosine_similarity(*halves, dim=1).mean().item()


@th.no_grad()
def head_gradient(model, obs: th.Tensor, actions: th.Tensor) -> th.Tensor:
    """DSPG's gradient head ``H(s, a)`` (in the RMS-normalised units it is trained in)."""
    return model.grad_head(model.grad_head.features(obs), actions)


def actor_update(model, obs: th.Tensor, direction: th.Tensor) -> th.Tensor:
    """
    ``Σ_s J_θ μ(s)ᵀ v(s)``, flattened: the step in the actor's parameters that following ``v`` at every state makes
    (what an actor update does with a batch), so that its cosine between two ``v`` says how alike the updates are.

    :param direction: ``(S, d)`` action-gradients ``v(s)`` at ``μ(s)``
    """
    parameters = list(model.actor.parameters())
    with th.enable_grad():
        grads = th.autograd.grad((model.actor(obs) * direction).sum(), parameters)
    return th.cat([grad.flatten() for grad in grads])


def measure(env_id: str, algo: str, seed: int, args: argparse.Namespace) -> list[dict]:
    """Train one model to each checkpoint of its world and measure its gradients there."""
    checkpoints, delta = WORLDS[env_id]
    env = gym.make(env_id)
    hyperparams, _ = grid_hyperparams(algo, env_id, env.action_space.shape, ALGOS, VARIANTS)
    model = algo_class(algo.partition("-")[0])("MlpPolicy", env, seed=seed, **hyperparams)
    rng, rows = np.random.default_rng(seed), []
    for checkpoint in checkpoints:
        model.learn(checkpoint - model.num_timesteps, reset_num_timesteps=False)
        buffer = model.replay_buffer
        recent = np.arange(max(0, buffer.pos - args.recent), buffer.pos)  # the buffer has not wrapped at these budgets
        obs_np = buffer.observations[rng.choice(recent, size=args.states, replace=False), 0]
        at_np = np.clip(actor_mean(model, obs_np), -1.0 + delta, 1.0 - delta)
        start = time.perf_counter()
        truth, ceiling = mc_gradient(env.unwrapped, model, obs_np, at_np, delta, args.rollouts, args.horizon, seed)
        obs, at = th.as_tensor(obs_np), th.as_tensor(at_np)
        estimates = {"critic": critic_gradient(model.policy, obs, at)}
        if algo == "dspg":
            estimates["head"] = head_gradient(model, obs, at)
        row = dict(env=env_id, algo=algo, seed=seed, steps=checkpoint, mc_ceiling=ceiling, mc_s=time.perf_counter() - start)
        norms = truth.norm(dim=1)
        row["mc_norm"], weight = norms.mean().item(), norms / norms.sum()  # near an optimum the direction is ill-defined
        true_update = actor_update(model, obs, truth.float())
        for name, estimate in estimates.items():
            cosines = cosine_similarity(estimate, truth.float(), dim=1)
            row[f"cos_{name}"], row[f"wcos_{name}"] = cosines.mean().item(), (weight * cosines).sum().item()
            row[f"update_cos_{name}"] = cosine_similarity(actor_update(model, obs, estimate), true_update, dim=0).item()
        print(row, flush=True)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worlds", nargs="+", default=list(WORLDS), choices=list(WORLDS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--states", type=int, default=48, help="states per checkpoint, from the recent replay data")
    parser.add_argument("--recent", type=int, default=2_000, help="how many of the latest transitions they come from")
    parser.add_argument("--rollouts", type=int, default=1_000, help="Monte-Carlo rollouts per state and perturbation")
    parser.add_argument("--horizon", type=int, default=100, help="rollout length on HitReach")
    parser.add_argument("--out", default=None, help="write a Markdown table here")
    args = parser.parse_args()
    th.set_num_threads(1)
    rows = []
    for seed in args.seeds:
        for env_id in args.worlds:
            rows += [row for algo in ALGOS for row in measure(env_id, algo, seed, args)]
            if args.out:  # after every seed of every world, so that an interrupted run keeps what it measured
                write_table(rows, args, Path(args.out))


def markdown(table) -> list[str]:
    """A pandas table with a (multi-)index as Markdown rows."""
    names = list(table.index.names)
    rows = [f"| {' | '.join([*names, *table.columns])} |", "|" + "---|" * (len(names) + len(table.columns))]
    for index, values in table.iterrows():
        index = index if isinstance(index, tuple) else (index,)
        cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in values]
        rows.append(f"| {' | '.join([*map(str, index), *cells])} |")
    return rows


def write_table(rows: list[dict], args: argparse.Namespace, path: Path) -> None:
    """Mean over seeds per world and checkpoint, then every row."""
    import pandas as pd

    df = pd.DataFrame(rows)
    dspg, td3 = (
        df[df.algo == "dspg"].set_index(["env", "steps", "seed"]),
        df[df.algo == "td3-explore"].set_index(["env", "steps", "seed"]),
    )
    table = pd.DataFrame({
        "DSPG head": dspg.cos_head, "DSPG critic ∇_a Q̂": dspg.cos_critic, "TD3-explore critic ∇_a Q̂": td3.cos_critic,
        "DSPG head, weighted": dspg.wcos_head, "DSPG critic, weighted": dspg.wcos_critic,
        "TD3-explore critic, weighted": td3.wcos_critic,
        **({  # runs before the column was added have none
            "DSPG head, actor update": dspg.update_cos_head, "DSPG critic, actor update": dspg.update_cos_critic,
            "TD3-explore critic, actor update": td3.update_cos_critic,
        } if "update_cos_head" in dspg else {}),
        "MC ceiling, DSPG": dspg.mc_ceiling, "MC ceiling, TD3-explore": td3.mc_ceiling,
        "‖∇_a Q^π‖ (DSPG / TD3)": dspg.mc_norm.round(3).astype(str) + " / " + td3.mc_norm.round(3).astype(str),
    })  # fmt: skip
    summary = table.iloc[:, :-1].groupby(level=["env", "steps"]).mean()
    lines = [
        "# Which action-gradient is right (Monte-Carlo ground truth)",
        "",
        f"Command: `python {' '.join(sys.argv)}`  ",
        f"Machine: {platform.machine()} CPU, one torch thread. Settings: {args.states} states per checkpoint from the "
        f"latest {args.recent} transitions, {args.rollouts} rollouts per state and perturbation (the one-step "
        f"HitBandit's gradient is exact), horizon {args.horizon}; on the hit worlds the rewards are Rao-Blackwellised "
        "(hit probabilities), on Hopper the only noise is the target policy's smoothing after the first step. "
        "Cells: mean cosine over states to the Monte-Carlo `∇_a Q^π(s, μ(s))` of the same model's policy "
        "(benchmarks/hit_gradients.py has the protocol); *weighted*: each state's cosine weighted by `‖∇_a Q^π‖` (near "
        "an optimum the true direction is ill-defined, and a plain mean counts those states fully); *actor update*: "
        "the cosine between the actor-parameter steps `Σ_s J_θ μ(s)ᵀ v(s)` over the same states that the estimate "
        "and the truth make (what a batch update does with them); the MC ceiling `c` is the mean cosine between the "
        "gradients of its two halves of rollouts: with noise of equal size at every state a perfect estimator's "
        "expected cosine to the whole Monte Carlo is about `√(2c / (1 + c))` (0.48 at `c` = 0.13, 0.82 at 0.5, 1 at 1).",
        "",
        "## Mean over seeds",
        "",
        *markdown(summary),
        "",
        "## Every seed",
        "",
        *markdown(table),
        "",
    ]
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
