"""Gradient quality on one-step worlds with a known ``∇_a E[R]`` (``sb3_dspg/experiments/one_step.py``).

For each outcome-noise type and action dimension, trains a DSPG policy's critic ``Q(s, a)``, denoiser and
gradient head on the world's data with the shipped DSPG step (the critic is DSPG's baseline at ``ã``
and, differentiated, the DDPG-style estimate). Then, at the policy mean of held-out states, compares
with the analytic gradient:
(a) DSPG's gradient head ``H(s, μ(s))``; (b) the batch-mean of 256 per-sample estimates ``ĝ``;
(c) ``∇_a Q̂(s, μ(s))``. Reported: mean cosine, and relative error ``‖est − g*‖/‖g*‖`` after
undoing DSPG's known shrinkage ``k = β²/(β² + σ²)`` (and the head's RMS scaling).

    python benchmarks/gradient_quality.py --dims 1 4 16 64 --steps 1500

``--pretrain N`` adds the pretraining axis (docs/design.md §8): every world is trained twice on ``--steps``
rewarded batches, once from scratch and once after ``N`` reward-free denoiser updates, over ``--seeds``.

    python benchmarks/gradient_quality.py --noises gaussian bimodal --dims 4 --steps 100 300 --pretrain 1500 \
        --seeds 0 1 2 --out benchmarks/results/gradient_quality_pretrain.md
"""

import argparse
import math
import platform
import sys
import time
from pathlib import Path

import torch as th
from torch.nn.functional import cosine_similarity

from sb3_dspg.experiments.one_step import (
    OneStepWorld,
    batch_mean_estimates,
    blend_weight,
    critic_gradient,
    precision_weighted_blend,
    train_on_world,
)
from sb3_dspg.policies import DSPGPolicy


def evaluate(world: OneStepWorld, policy: DSPGPolicy, sigma: float, n_states: int) -> dict[str, tuple[float, float]]:
    shrink = world.beta**2 / (world.beta**2 + sigma**2)
    estimates, truths = batch_mean_estimates(world, policy, sigma, n_states=n_states)
    states = th.randn(n_states, world.dim)
    mean_actions, truth = world.policy_mean(states), world.true_gradient(states, world.policy_mean(states))
    with th.no_grad():
        head = policy.grad_head(policy.grad_head.features(states), mean_actions) * policy.grad_head.grad_rms()
    critic = critic_gradient(policy, states, mean_actions)

    def metrics(est: th.Tensor, ref: th.Tensor) -> tuple[float, float]:
        cos = cosine_similarity(est, ref, dim=1).mean().item()
        rel = ((est - ref).norm(dim=1) / ref.norm(dim=1)).median().item()
        return cos, rel

    results = {
        "head": metrics(head / shrink, truth),
        "batch-mean ĝ": metrics(estimates / shrink, truths),
        "∇_a Q̂": metrics(critic, truth),
    }
    if hasattr(policy, "blend_terms"):  # w·H + (1 − w)·∇_a Q̂, both unshrunk
        w = blend_weight(policy)
        results["blend"] = metrics(w * head / shrink + (1 - w) * critic, truth)
        results["w"] = (w, float("nan"))
    if hasattr(policy, "twin_heads"):  # the inverse-variance blend of the twin heads' and twin critics' means
        blend, head_mean, critic_mean, w = precision_weighted_blend(policy, states, mean_actions, shrink)
        results["twin-head mean"] = metrics(head_mean, truth)
        results["∇_a Q̄ (twin mean)"] = metrics(critic_mean, truth)
        results["precision blend"] = metrics(blend, truth)
        results["w_iv"] = (float(w), float("nan"))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--noises", nargs="+", default=["none", "gaussian", "bimodal", "student_t", "multiplicative"])
    parser.add_argument("--dims", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--steps", type=int, nargs="+", default=[1500], help="rewarded batches (several with --pretrain)")
    parser.add_argument("--pretrain", type=int, default=0, help="reward-free denoiser updates: compare with and without")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (a seed column when several)")
    parser.add_argument(
        "--baseline",
        choices=["critic", "noised"],
        default="critic",
        help="DSPG's critic at ã (default), or a network fitted at the noised actions (an option under study)",
    )
    parser.add_argument("--reward", choices=["quadratic", "hit"], default="quadratic", help="hit: Gaussian/bimodal only")
    parser.add_argument("--blend", action="store_true", help="add the fitted blend of head and ∇_a Q̂ (under study)")
    parser.add_argument(
        "--precision-blend",
        action="store_true",
        help="add the inverse-variance blend of twin heads and twin critics (under study)",
    )
    parser.add_argument(
        "--denoiser-arch",
        type=int,
        nargs="+",
        default=None,
        help="the denoiser's hidden layers (default: [256, 256], as every other network)",
    )
    parser.add_argument(
        "--outcome", choices=["transition", "return"], default="transition", help="the denoiser's condition: (y, R) or R"
    )
    parser.add_argument("--grad-clip", type=float, default=3.0, help="the head's targets clip ĝ at this many RMS (inf: off)")
    parser.add_argument("--sigma", type=float, default=0.2)
    parser.add_argument("--beta", type=float, default=0.4)
    parser.add_argument("--states", type=int, default=64)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "gradient_quality.md"))
    args = parser.parse_args()
    th.set_num_threads(1)
    if args.pretrain:
        return pretrain_axis(args)
    hit = args.reward == "hit"
    condition = "(a + ε, R)" if args.outcome == "transition" else "R alone (outcome='return')"
    clip = f"{args.grad_clip:g} RMS" if math.isfinite(args.grad_clip) else "no clipping"
    several = len(args.seeds) > 1  # then a seed column: the world stays seed 0's, training and held-out states vary
    lines = [
        "# Gradient quality on one-step worlds with a known gradient",
        "",
        f"Command: `python {' '.join(sys.argv)}`  ",
        f"Machine: {platform.machine()} CPU, 1 torch thread. Behaviour spread β={args.beta}, σ={args.sigma}, "
        f"{args.steps[0]} Adam steps of batch 256 (antithetic pairs) for every network, nets [256, 256]"
        + (f" (denoiser {args.denoiser_arch})" if args.denoiser_arch else "")
        + ", "
        + f"the shipped DSPG step (sb3_dspg.estimator), baseline b(s, ã): {args.baseline}; "
        f"state dim = action dim d, outcome = {condition}, head targets clipped at {clip}, reward {args.reward}. "
        f"Metrics over {args.states} held-out states: mean cosine to the analytic ∇_a E[R] at μ(s), median relative error"
        + ("; hit: of E[R] smoothed by N(0, kσ²), k = β²/(β²+σ²), DSPG's estimand (one_step.OneStepWorld)." * hit or "."),
        "",
        "| noise | d | " + "seed | " * several + "head cos | head rel.err | batch-mean ĝ cos | batch-mean ĝ rel.err "
        "| ∇_a Q̂ cos | ∇_a Q̂ rel.err |"
        + (" blend cos | blend rel.err | w (head) |" if args.blend else "")
        + (
            " twin-head mean cos | twin-head mean rel.err | ∇_a Q̄ cos | ∇_a Q̄ rel.err | precision blend cos "
            "| precision blend rel.err | w (head) |"
            if args.precision_blend
            else ""
        )
        + " train s |",
        "|---|---|---|---|---|---|---|---|"
        + "---|" * several
        + ("---|---|---|" if args.blend else "")
        + ("---|---|---|---|---|---|---|" if args.precision_blend else "")
        + "---|",
    ]
    columns = ("head", "batch-mean ĝ", "∇_a Q̂", *(("blend",) if args.blend else ()))
    precision_columns = ("twin-head mean", "∇_a Q̄ (twin mean)", "precision blend")
    for noise in args.noises:
        for dim in args.dims:
            for seed in args.seeds:
                th.manual_seed(0)
                shrink = args.beta**2 / (args.beta**2 + args.sigma**2)  # the hit truth: smoothed as DSPG's estimand
                smoothing = shrink**0.5 * args.sigma if args.reward == "hit" else 0.0
                world = OneStepWorld(noise, dim=dim, beta=args.beta, reward=args.reward, smoothing=smoothing)
                if seed:
                    th.manual_seed(seed)
                start = time.perf_counter()
                policy = train_on_world(
                    world,
                    args.sigma,
                    args.steps[0],
                    net_arch={"denoiser": args.denoiser_arch} if args.denoiser_arch else None,
                    baseline=args.baseline,
                    blend=args.blend,
                    twin_heads=args.precision_blend,
                    outcome=args.outcome,
                    grad_clip=args.grad_clip,
                )
                wall = time.perf_counter() - start
                th.manual_seed(1 + seed)
                res = evaluate(world, policy, args.sigma, args.states)
                cells = " | ".join(f"{res[k][0]:.3f} | {res[k][1]:.2f}" for k in columns)
                cells += f" | {res['w'][0]:.2f}" if args.blend else ""
                if args.precision_blend:
                    cells += " | " + " | ".join(f"{res[k][0]:.3f} | {res[k][1]:.2f}" for k in precision_columns)
                    cells += f" | {res['w_iv'][0]:.2f}"
                lines.append(f"| {noise} | {dim} | {f'{seed} | ' * several}{cells} | {wall:.0f} |")
                print(lines[-1], flush=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def pretrain_axis(args: argparse.Namespace) -> None:
    """Head and ∇_a Q̂ cosine after K rewarded batches, from scratch and after reward-free pretraining of the denoiser."""
    lines = [
        "# Gradient quality after K rewarded batches, with and without reward-free pretraining",
        "",
        f"Command: `python {' '.join(sys.argv)}`  ",
        f"Machine: {platform.machine()} CPU, 1 torch thread. β={args.beta}, σ={args.sigma}, batch 256, nets [256, 256]; "
        f"'pretrained': {args.pretrain} reward-free denoiser updates (outcome y without R) before the K rewarded ones. "
        f"Mean cosine to the analytic ∇_a E[R] over {args.states} held-out states; mean [min, max] over seeds {args.seeds}.",
        "",
        "| noise | d | K rewarded | head cos, scratch | head cos, pretrained | ∇_a Q̂ cos | ",
        "|---|---|---|---|---|---|",
    ]

    def spread(values: list[float]) -> str:
        return f"{sum(values) / len(values):.3f} [{min(values):.3f}, {max(values):.3f}]"

    for noise in args.noises:
        for dim in args.dims:
            for steps in args.steps:
                cells: dict[str, list[float]] = {"scratch": [], "pretrained": [], "critic": []}
                for seed in args.seeds:
                    for name, pretrain in (("scratch", 0), ("pretrained", args.pretrain)):
                        th.manual_seed(seed)
                        world = OneStepWorld(noise, dim=dim, beta=args.beta)
                        policy = train_on_world(world, args.sigma, steps, pretrain_steps=pretrain)
                        th.manual_seed(1000 + seed)
                        res = evaluate(world, policy, args.sigma, args.states)
                        cells[name].append(res["head"][0])
                        if name == "scratch":
                            cells["critic"].append(res["∇_a Q̂"][0])
                row = f"| {noise} | {dim} | {steps} | {spread(cells['scratch'])} | {spread(cells['pretrained'])} | "
                lines.append(row + f"{spread(cells['critic'])} |")
                print(lines[-1], flush=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
