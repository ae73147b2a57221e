"""Checks of ``hit_gradients.py``'s Hopper ground truth on one DSPG model: value, horizon and step size.

Trains DSPG on Hopper-v5 (``dspg.yml``'s entry, as in the suite) and, on states of fresh rollouts of its policy
(exploration noise 0.1), measures (1) whether its critic knows the *values*: the correlation across states of
``Q̂(s, μ(s))`` with the Monte-Carlo ``Q^π(s, μ(s))``; (2) whether its critic and its gradient head know the
*slopes* at each horizon and finite-difference step: the mean cosine to the Monte-Carlo ``∇_a Q^π`` of the
return truncated at ``H`` steps, with that Monte Carlo's own half-split agreement.

    python benchmarks/hopper_checks.py --seed 7 --steps 20000
"""

import argparse

import gymnasium as gym
import numpy as np
import torch as th
from hit_gradients import ALGOS, VARIANTS, actor_mean, head_gradient, mc_gradient, returns
from torch.nn.functional import cosine_similarity

from sb3_dspg import DSPG
from sb3_dspg.experiments.compare import grid_hyperparams
from sb3_dspg.experiments.one_step import critic_gradient


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--states", type=int, default=32)
    parser.add_argument("--rollouts", type=int, default=32)
    args = parser.parse_args()
    th.set_num_threads(1)
    env = gym.make("Hopper-v5")
    hyperparams, _ = grid_hyperparams("dspg", "Hopper-v5", env.action_space.shape, ALGOS, VARIANTS)
    model = DSPG("MlpPolicy", env, seed=args.seed, **hyperparams).learn(args.steps)
    rng, visited = np.random.default_rng(args.seed), []
    obs, _ = env.reset(seed=args.seed)
    for _ in range(3_000):
        action = np.clip(model.predict(obs, deterministic=True)[0] + 0.1 * rng.standard_normal(3), -1.0, 1.0)
        obs, _, terminated, truncated, _ = env.step(action)
        visited.append(obs)
        if terminated or truncated:
            obs, _ = env.reset()
    obs_np = np.array(visited, dtype=np.float32)[rng.choice(len(visited), args.states, replace=False)]
    at_np = actor_mean(model, obs_np)
    value = returns(env.unwrapped, model, obs_np, at_np[:, None], args.rollouts, 300, args.seed).mean(axis=0)[:, 0]
    with th.no_grad():
        value_hat = model.critic.q1_forward(th.as_tensor(obs_np), th.as_tensor(at_np)).squeeze(1).numpy()
    print(f"values: corr(Q̂, Q^π) {np.corrcoef(value_hat, value)[0, 1]:.3f}, mean Q̂ {value_hat.mean():.1f}, "
          f"mean Q^π {value.mean():.1f} (std {value.std():.1f})")  # fmt: skip
    print("| δ | horizon | MC ceiling | DSPG head | DSPG critic ∇_a Q̂ |\n|---|---|---|---|---|")
    obs = th.as_tensor(obs_np)
    for delta in (0.05, 0.2):
        at = np.clip(at_np, -1.0 + delta, 1.0 - delta)
        estimates = [head_gradient(model, obs, th.as_tensor(at)), critic_gradient(model.policy, obs, th.as_tensor(at))]
        for horizon in (1, 10, 30, 100, 300):
            truth, ceiling = mc_gradient(env.unwrapped, model, obs_np, at, delta, args.rollouts, horizon, args.seed)
            cosines = [cosine_similarity(estimate, truth.float(), dim=1).mean().item() for estimate in estimates]
            print(f"| {delta} | {horizon} | {ceiling:.2f} | {cosines[0]:.3f} | {cosines[1]:.3f} |", flush=True)


if __name__ == "__main__":
    main()
