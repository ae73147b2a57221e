"""
Rename an algorithm's runs in a ``compare`` results folder, e.g. when a default changes.

``compare`` labels a run by its folder, ``<out>/<world>/<algo>_<seed>``. When DSPG's defaults change, the runs
labelled ``dspg`` were made with the old ones and must not be read (or resumed) as the new default: relabel them to a
variant that names the old setting, and the variant that ran the new setting to ``dspg``::

    sb3-dspg relabel benchmarks/results/noisy dspg dspg-c0 --variant '{"critic_grad_weight": 0.0}' --links benchmarks/results
    sb3-dspg relabel benchmarks/results/noisy dspg-c01 dspg --links benchmarks/results

Each moved run's ``done.json`` (and ``failed.json``) gets the new ``algo`` and ``variant`` (the settings that set it
apart from the defaults, none for a plain algorithm). Runs that are links into another study are renamed as links;
the study they point into keeps its labels. Links elsewhere under ``--links`` that point at a moved run are
re-pointed and keep their own names, so other studies still find their runs.

With ``new`` equal to ``old`` and a ``--variant``, the runs keep their label and only their records get the variant:
for a variant whose runs were made under an earlier default, so that it names that default's setting too::

    sb3-dspg relabel benchmarks/results/noisy dspg-crossq dspg-crossq \\
      --variant '{"critic_type": "crossq", "critic_grad_weight": 0.0}'

``--envs`` moves only the runs of some worlds, for a label whose runs elsewhere were made after the change (the
runs a variant made before 0.3.0 on the hit worlds, when a newer grid has used the same label on other worlds)::

    sb3-dspg relabel benchmarks/results/noisy dspg-centred dspg-c0-centred \\
      --variant '{"centre_advantage": true, "critic_grad_weight": 0.0}' --envs sb3_dspg/HitBandit-v0
"""

import argparse
import json
import os
from pathlib import Path
from typing import Any

RECORDS = ("done.json", "failed.json")


def run_folders(out: Path, algo: str, worlds: list[str] | None = None) -> list[Path]:
    """
    The ended runs ``<out>/<world>/<algo>_<seed>`` (folders or links with a ``done.json`` or ``failed.json``), sorted.

    :param worlds: only these world folders (names under ``out``); all when ``None``
    """
    found = []
    for world in sorted(path for path in out.iterdir() if path.is_dir() and (worlds is None or path.name in worlds)):
        for run in sorted(world.glob(f"{algo}_*")):
            if run.name[len(algo) + 1 :].isdigit() and any((run / name).exists() for name in RECORDS):
                found.append(run)
    return found


def relabel(
    out: Path,
    old: str,
    new: str,
    variant: dict[str, Any] | None = None,
    links: Path | None = None,
    envs: list[str] | None = None,
) -> list[tuple[Path, Path]]:
    """
    Rename every ended run of ``old`` under ``out`` to ``new``. A run still in progress (no record yet) is left
    where it is, so that the process writing it is not disturbed; relabel it once it has ended.

    :param out: a ``compare`` results folder (its subfolders are worlds)
    :param old: the runs' current label, e.g. ``"dspg"``
    :param new: their label from now on, e.g. ``"dspg-c0"``
    :param variant: the keyword arguments ``new`` stands for, recorded in each moved run's ``done.json`` as
        ``compare --variant`` does (``None``: a plain algorithm, the record's ``variant`` is dropped)
    :param links: a folder whose symbolic links to a moved run are re-pointed (e.g. ``benchmarks/results``)
    :param envs: only the runs of these env specs (as ``compare --envs`` names them, e.g. ``sb3_dspg/HitBandit-v0``
        or ``"sb3_dspg/HitReach-v0:noise_scale=0.9"``); every world when ``None``
    :return: the ``(old path, new path)`` pairs, in the order they were moved (equal paths when ``new == old``)
    :raises ValueError: if the labels are malformed, or equal with no ``variant``, an env of ``envs`` has no folder
        under ``out``, no run has label ``old``, or a ``new`` run exists
    """
    from sb3_dspg.experiments.compare import slug

    for name, label in (("old", old), ("new", new)):
        if not label or "/" in label or label != label.strip():
            raise ValueError(f"{name}: an algorithm label such as 'dspg' or 'dspg-c0', got {label!r}")
    if old == new and variant is None:
        raise ValueError(f"new: must differ from old (both are {old!r}) unless a variant is given to record")
    worlds = None if envs is None else [slug(spec) for spec in envs]
    if unknown := [spec for spec, world in zip(envs or [], worlds or [], strict=True) if not (out / world).is_dir()]:
        raise ValueError(f"envs: no world folder under {out} for {unknown}")
    moves = [(run, run.with_name(f"{new}{run.name[len(old) :]}")) for run in run_folders(out, old, worlds)]
    if not moves:
        raise ValueError(f"old: no ended runs labelled {old!r} under {out}" + (f" for {envs}" if envs else ""))
    if old == new:  # same label: only the records change
        for run, _ in moves:
            if not run.is_symlink():
                _rewrite_records(run, new, variant)
        return moves
    if taken := [str(target) for _, target in moves if target.exists() or target.is_symlink()]:
        raise ValueError(f"new: runs labelled {new!r} exist already ({', '.join(taken[:3])}); relabel those first")
    repoint = _links_into(links, [source for source, _ in moves]) if links is not None else []
    for source, target in moves:
        source.rename(target)
        if not target.is_symlink():
            _rewrite_records(target, new, variant)
    targets = dict(moves)
    for link, source in repoint:
        link.unlink()
        link.symlink_to(os.path.relpath(targets[source], link.parent))
    return moves


def _links_into(root: Path, sources: list[Path]) -> list[tuple[Path, Path]]:
    """The symbolic links under ``root`` (not the moved runs themselves) that resolve to one of ``sources``."""
    wanted = {source.resolve(): source for source in sources if not source.is_symlink()}
    moved = set(sources)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path.is_symlink() and path not in moved and (source := wanted.get(path.resolve())) is not None:
                found.append((path, source))
    return found


def _rewrite_records(run: Path, algo: str, variant: dict[str, Any] | None) -> None:
    for name in RECORDS:
        if (record_path := run / name).exists():
            record = json.loads(record_path.read_text())
            record["algo"] = algo
            record.pop("variant", None)
            if variant is not None:
                record["variant"] = variant
            record_path.write_text(json.dumps(record))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="sb3-dspg relabel", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", help="a compare results folder, e.g. benchmarks/results/noisy")
    parser.add_argument("old", help="the runs' current label, e.g. dspg")
    parser.add_argument("new", help="their new label, e.g. dspg-c0")
    parser.add_argument("--variant", default=None, help="JSON keyword arguments the new label stands for")
    parser.add_argument("--links", default=None, help="re-point the symbolic links under this folder that lead to a moved run")
    parser.add_argument("--envs", nargs="+", default=None, metavar="ENV", help="only the runs of these envs (default: all)")
    args = parser.parse_args(argv)
    try:
        variant = json.loads(args.variant) if args.variant is not None else None
    except json.JSONDecodeError:
        variant = args.variant
    if variant is not None and not isinstance(variant, dict):
        raise SystemExit(f"--variant: a JSON object of keyword arguments, got {args.variant!r}")
    try:
        moves = relabel(Path(args.out), args.old, args.new, variant, Path(args.links) if args.links else None, args.envs)
    except ValueError as error:
        raise SystemExit(str(error)) from error
    action = "recorded the variant of" if args.new == args.old else "relabelled"
    print(f"{action} {len(moves)} runs: {args.old} -> {args.new}")
