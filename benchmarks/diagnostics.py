"""Why DSPG wins or loses on a world: its training diagnostics, read back from ``sb3-dspg compare`` runs.

Every DSPG run of a comparison logs to TensorBoard (``<out>/<env>/dspg_<seed>/tb_1``). This script reads those
logs for each world given and tabulates, at a few fractions of the training updates (from ``learning_starts`` to
the end; each value is the mean over the last tenth before that point), the median across seeds of:

- ``cos_to_critic_grad``: mean cosine between the per-sample estimate ``ĝ`` and the critic's ``∇_a Q̂`` at the same
  ``(s, ã)``; a single-sample ``ĝ`` is noisy, so compare it across worlds rather than to 1;
- ``cos_head_to_critic_grad`` (runs made before it existed lack it): the same for the head ``H(s, μ(s))`` the
  actor follows; near 1 DSPG is a costlier DDPG, near 0 it follows another direction (with a 1-D action: sign
  agreement − disagreement);
- ``cond / uncond``: the conditional over the unconditional denoising loss. Near 0 the outcome pins the noised
  action (a deterministic world: the score is a finite difference along the noise, docs/design.md §9); near 1
  the outcome says little about the action and the score is small;
- ``advantage_std``, ``score_norm``, ``grad_estimate_rms``, ``head_loss``: the size of the signal the head
  regresses on and how well it fits it (``head_loss`` is in units of the RMS-normalised target).

    python benchmarks/diagnostics.py benchmarks/results/noisy/sb3_dspg_HitBandit-v0 \
        benchmarks/results/noisy/InvertedPendulum-v5 benchmarks/results/lean/Pendulum-v1 \
        --out benchmarks/results/diagnostics.md

Writes a Markdown table (and a PNG of the two key diagnostics over training next to it).
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

TAGS = {
    "cos_to_critic_grad": "train/cos_to_critic_grad",
    "cos_head_to_critic_grad": "train/cos_head_to_critic_grad",
    "advantage_std": "train/advantage_std",
    "score_norm": "train/score_norm",
    "grad_estimate_rms": "train/grad_estimate_rms",
    "head_loss": "train/head_loss",
}
FRACTIONS = (0.1, 0.5, 1.0)
#: where the curves are sampled, as fractions of the training span
GRID = np.linspace(0.0, 1.0, 50)


def read_scalars(run_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """
    The training scalars of one run: tag → (steps, values), from its ``tb_*`` event files.

    :param run_dir: ``<out>/<env>/<algo>_<seed>``
    """
    scalars: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for events in sorted(run_dir.glob("tb_*/events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            points = accumulator.Scalars(tag)
            scalars[tag] = (np.array([p.step for p in points]), np.array([p.value for p in points]))
    return scalars


def at_fraction(steps: np.ndarray, values: np.ndarray, fraction: float, window: float = 0.1) -> float:
    """
    Mean of the values logged in the ``window`` (a fraction of the training span) that ends at ``fraction`` of
    it; the span runs from the first logged update (after ``learning_starts``) to the last.
    """
    start, span = steps.min(), max(steps.max() - steps.min(), 1)
    end = start + fraction * span
    chosen = (steps <= end) & (steps >= end - window * span)
    return float(np.mean(values[chosen])) if chosen.any() else float(values[np.argmin(np.abs(steps - end))])


def world_diagnostics(world_dir: Path, algo: str = "dspg") -> tuple[dict[str, list[float]], dict[str, list[np.ndarray]], int]:
    """
    Per diagnostic, the median across seeds at each of :data:`FRACTIONS`, the per-seed curves of the two key
    ones (on a common grid of 50 points), and the number of seeds read.

    :param world_dir: ``<out>/<env>``
    :param algo: the label of the DSPG runs to read (``dspg`` or a variant's, e.g. ``dspg-crossq01``)
    """
    runs = [scalars for d in sorted(world_dir.glob(f"{algo}_*")) if (scalars := read_scalars(d))]
    if not runs:
        raise ValueError(f"world_dir: no DSPG TensorBoard logs under {world_dir}/{algo}_*/tb_*")
    tags = {**TAGS, "cond / uncond": "cond / uncond"}
    for run in runs:  # the derived series, so that it is tabulated and plotted like a logged one
        steps, cond = run["train/denoiser_loss_cond"]
        run["cond / uncond"] = (steps, cond / run["train/denoiser_loss_uncond"][1])
    table: dict[str, list[float]] = {}
    for name, tag in tags.items():
        if any(tag in run for run in runs):  # runs of older versions lack the newer diagnostics
            table[name] = [float(np.median([at_fraction(*run[tag], f) for run in runs if tag in run])) for f in FRACTIONS]
    curves: dict[str, list[np.ndarray]] = {}
    for name in ("cos_to_critic_grad", "cond / uncond"):
        series = [run[tags[name]] for run in runs]
        curves[name] = [np.interp(steps.min() + GRID * (steps.max() - steps.min()), steps, v) for steps, v in series]
    return table, curves, len(runs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("worlds", nargs="+", type=Path, help="<out>/<env> folders of sb3-dspg compare runs")
    parser.add_argument("--out", type=Path, default=None, help="Markdown file (default: print only)")
    parser.add_argument(
        "--algos", nargs="+", default=["dspg"], help="labels of DSPG runs to read in every world (default: dspg)"
    )
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    header = "| world | seeds | diagnostic | " + " | ".join(f"at {int(f * 100)}% of the updates" for f in FRACTIONS) + " |"
    lines = [header, "|" + "---|" * (3 + len(FRACTIONS))]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for world in args.worlds:
        for algo in args.algos:
            table, curves, seeds = world_diagnostics(world, algo)
            label = world.name if args.algos == ["dspg"] else f"{world.name} {algo}"
            for name, values in table.items():
                lines.append(f"| {label} | {seeds} | {name} | " + " | ".join(f"{v:.3g}" for v in values) + " |")
            for axis, (name, per_seed) in zip(axes, curves.items(), strict=True):
                axis.plot(100 * GRID, np.median(per_seed, axis=0), label=label)
                axis.set(title=f"{name} (median over seeds)", xlabel="% of the training updates")
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    command = "python benchmarks/diagnostics.py " + " ".join(sys.argv[1:] if argv is None else argv)
    text = "\n".join([f"Command: `{command}`", "", *lines, ""])
    print(text)
    if args.out:
        args.out.write_text(text)
        figure.savefig(args.out.with_suffix(".png"), dpi=110)


if __name__ == "__main__":
    main()
