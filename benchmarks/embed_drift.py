"""
Why DSPG fails `hit_bandit_embed`: its actor against the directions the outcome does not inform (a diagnostic).

HitBandit with ``outcome_dim=2`` pays for the outcome ``y = P a + ε``; of ``d`` action directions ``d − 2`` do
nothing. Trains DSPG (the suite's untuned settings) in chunks and after each chunk records, on 500 fixed contexts,
the deterministic policy's mean ``|a|``, its miss distance ``‖P μ(s) − c(s)‖``, the share of its action in the
null space of ``P``, and the rewards collected in the chunk; and, on one replay batch of 4096, the batch means of
the per-sample estimate ``ĝ`` and of the outcome score in the null space (where the true ones are 0) and in ``P``'s
row space, with the advantage's mean. Usage::

    python benchmarks/embed_drift.py --dims 2 8 32 --steps 3000 --out benchmarks/results/embed_drift.md

``--set key=value`` changes a DSPG setting (``learning_starts=1000``, ``centre_advantage=true``,
``critic_grad_weight=\"auto\"``: then also the head's and the critic's shares of what the actor follows).
"""

import argparse
import json
import shlex
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch as th

import sb3_dspg.envs  # registers the ids; sample_noise
from sb3_dspg import DSPG, blend
from sb3_dspg.estimator import estimate_action_gradient


def null_part(x: th.Tensor, projection: th.Tensor) -> th.Tensor:
    """The part of each row of ``x`` in the null space of ``projection`` (orthonormal rows)."""
    return x - (x @ projection.T) @ projection


def probe(model: DSPG, projection: th.Tensor, batch_size: int = 4096) -> dict[str, float]:
    """Batch means of ``ĝ`` and of the outcome score, split into null space and ``P``'s row space."""
    data = model.replay_buffer.sample(batch_size)
    est = estimate_action_gradient(
        model.denoiser, model.critic, model.grad_head, data.observations, data.next_observations, data.rewards,
        data.actions, model._return_signal(data), model.denoise_sigma, model.cond_dropout, model.antithetic,
        model.grad_clip, update_statistics=False, centre_advantage=model.centre_advantage,
    )  # fmt: skip
    g, score = est.grad_estimate, est.outcome_score
    row = {
        "ĝ mean, null": null_part(g, projection).mean(0).norm().item(),
        "ĝ mean, P": (g @ projection.T).mean(0).norm().item(),
        "ĝ SE per coordinate": (g.std(0).mean() / np.sqrt(len(g))).item(),
        "score mean, null": null_part(score, projection).mean(0).norm().item(),
        "advantage mean": est.advantage.mean().item(),
    }
    if model.critic_grad_weight != 0:  # what the actor follows, split into the head's and the critic's share
        obs, actions = data.observations, model.actor(data.observations).detach()
        features = model.grad_head.features(obs).detach()
        head, _, weight = blend.actor_gradient(model.grad_head, model.critic, features, obs, actions, model.critic_grad_weight)
        slope = th.stack(blend.critic_action_gradients(model.critic, obs, actions)).mean(0) / model.grad_head.grad_rms()
        head_share, critic_share = (1 - weight) * head, weight * slope
        row.update({
            "c": weight.item(),
            "(1−c)·H mean, null": null_part(head_share, projection).mean(0).norm().item(),
            "c·∇Q̄ mean, null": null_part(critic_share, projection).mean(0).norm().item(),
            "(1−c)·H RMS": head_share.pow(2).sum(1).mean().sqrt().item(),
            "c·∇Q̄ RMS": critic_share.pow(2).sum(1).mean().sqrt().item(),
        })  # fmt: skip
    return row


def run(dim: int, steps: int, chunk: int, seed: int, settings: dict) -> list[dict]:
    env = gym.make("sb3_dspg/HitBandit-v0", action_dim=dim, outcome_dim=2)
    world = env.unwrapped
    projection = th.tensor(world.projection, dtype=th.float32)
    contexts = np.random.default_rng(1).uniform(-1, 1, (500, world.context_dim))
    obs = np.concatenate([contexts, np.zeros((500, 2))], axis=1).astype(np.float32)
    noise = np.random.default_rng(2)
    model = DSPG("MlpPolicy", env, seed=seed, policy_kwargs=dict(net_arch=[256, 256]), **settings)
    rows = []
    for end in range(chunk, steps + 1, chunk):
        model.learn(chunk, reset_num_timesteps=False)
        actions = model.predict(obs, deterministic=True)[0].astype(np.float64)
        mean_outcome = actions @ world.projection.T
        miss = mean_outcome - world.target(contexts)
        outcome = mean_outcome + sb3_dspg.envs.sample_noise(noise, world.noise, world.noise_scale, mean_outcome.shape)
        rewards = model.replay_buffer.rewards[max(0, model.replay_buffer.pos - chunk) : model.replay_buffer.pos]
        rows.append({
            "d": dim, "steps": end,
            "mean abs(a)": float(np.abs(actions).mean()),
            "‖P μ − c‖": float(np.linalg.norm(miss, axis=1).mean()),
            "null share of ‖μ‖": float(np.mean(np.linalg.norm(actions - mean_outcome @ world.projection, axis=1)
                                               / np.maximum(np.linalg.norm(actions, axis=1), 1e-9))),
            "greedy hit rate": float(np.mean(np.linalg.norm(outcome - world.target(contexts), axis=1) < 0.25)),
            "hit rate in the chunk": float(np.mean(rewards)),
            **probe(model, projection),
        })  # fmt: skip
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 8, 32])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--chunk", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="DSPG settings (JSON values)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/embed_drift.md"))
    args = parser.parse_args()
    th.set_num_threads(1)
    settings = {key: json.loads(value) for key, _, value in (item.partition("=") for item in args.set)}
    rows = [row for dim in args.dims for row in run(dim, args.steps, args.chunk, args.seed, settings)]
    columns = list(rows[0])
    lines = [
        "# DSPG on `hit_bandit_embed`: the actor against the directions the outcome does not inform",
        "",
        f"Command: `python benchmarks/embed_drift.py --dims {' '.join(map(str, args.dims))} --steps {args.steps} "
        f"--chunk {args.chunk} --seed {args.seed}{' --set ' + ' '.join(map(shlex.quote, args.set)) if args.set else ''}"
        f" --out {args.out}` (one seed: a diagnostic, not a learning claim).",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
        *("| " + " | ".join(f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c]) for c in columns) + " |"
          for row in rows),
        "",
    ]  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
