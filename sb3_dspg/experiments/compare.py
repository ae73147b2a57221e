"""Side-by-side comparison of DSPG with SB3's DDPG, TD3, SAC and sb3-contrib's TQC, CrossQ.

algorithms × envs × seeds → one training run each, in parallel worker processes or as Ray tasks on a cluster
(``--backend ray``; one torch thread each). A run that fails is recorded (``failed.json``, and a section of
``results.md``) and the grid goes on; the next call runs it again. Every run logs to TensorBoard under
``<out>/<env>/<algo>_<seed>`` and evaluates the deterministic policy with SB3's ``EvalCallback``. A run that
finished (``done.json``: its final return, wall time, code commit, tuning regime and the settings read back from
the model) is skipped, so an interrupted comparison resumes; the report warns where one algorithm's runs of a world
differ in their settings (a default changed between them; an option older runs lack counts as unchanged where the
newer runs use its default). Outputs under ``<out>``:
``evaluations.csv`` (every evaluation), ``results.md`` (per env: final IQM and mean with 95% stratified-
bootstrap CIs across seeds, from ``rliable``; a hand-written section headed ``## Plan, budget and reading`` at
its end is kept when it is rewritten), one learning-curve PNG per env, and with ``--sweep-param`` a
PNG of final return against that env parameter. The outputs cover every run under ``<out>``, whichever call
made it, so a call that runs part of a grid (``--worlds``, ``--algos``) still rewrites the whole report.
Needs the ``bench`` extra (``pip install -e ".[bench]"``).

Env specs may carry keyword arguments: ``sb3_dspg/NoisyBandit-v0:noise_scale=0.4``.
Hyper-parameters: :func:`sb3_dspg.hyperparams.tuned_hyperparams`, i.e. rl-zoo3's tuned ones for the peers
and ``sb3_dspg/hyperparams/dspg.yml`` for DSPG where an entry exists, otherwise library defaults with
``net_arch=[256, 256]`` for every algorithm.
"""

import argparse
import contextlib
import copy
import enum
import inspect
import json
import os
import platform
import shlex
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from sb3_dspg.experiments.backends import BACKENDS, Job, run_local, run_ray
from sb3_dspg.hyperparams import UNTUNED, tuned_hyperparams, zoo_entry, zoo_kwargs

ALGO_NAMES = ("dspg", "ddpg", "td3", "sac", "tqc", "crossq")


def parse_algo(name: str, variants: dict[str, dict[str, Any]] | None = None) -> tuple[str, int]:
    """
    ``"td3"`` → ``("td3", 0)``; ``"dspg-pretrain=10000"`` → ``("dspg", 10000)``: DSPG after that many reward-free
    env steps of :meth:`~sb3_dspg.DSPG.pretrain` (the run's ``timesteps`` count reward-labelled steps only);
    a name of ``variants`` (:func:`parse_variant`) → its base algorithm, e.g. ``"dspg-lean"`` → ``("dspg", 0)``.
    """
    if name in (variants or {}):
        return name.partition("-")[0], 0
    base, _, pretrain = name.partition("-pretrain=")
    if base not in ALGO_NAMES or (pretrain and (base != "dspg" or not pretrain.isdigit() or int(pretrain) < 1)):
        raise argparse.ArgumentTypeError(
            f"algo: one of {ALGO_NAMES}, dspg-pretrain=N with N >= 1, or a name given by --variant; got {name!r}"
        )
    return base, int(pretrain or 0)


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """
    ``'dspg-lean={"antithetic": false}'`` → ``("dspg-lean", {"antithetic": False})``: an algorithm with
    constructor keyword arguments over the grid's (:func:`with_variant`), written as in an rl-zoo3 file
    (``noise_type``/``noise_std`` give the action noise). The name is ``<algo>-<label>`` with ``<algo>`` of
    :data:`ALGO_NAMES`; it names the runs' folders.
    """
    name, _, kwargs = text.partition("=")
    base, _, label = name.partition("-")
    try:
        parsed = json.loads(kwargs)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"variant: {text!r}: the part after '=' is not JSON ({error})") from None
    if base not in ALGO_NAMES or not label or "pretrain" in label or not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError(
            f"variant: NAME=JSON with NAME '<algo>-<label>' (algo of {ALGO_NAMES}) and a JSON object of "
            f"constructor keyword arguments; got {text!r}"
        )
    return name, parsed


def with_variant(hyperparams: dict[str, Any], variant: dict[str, Any]) -> dict[str, Any]:
    """
    The grid's keyword arguments with a variant's over them: ``policy_kwargs`` merged key by key, and a
    ``net_arch`` dict merged into the grid's (a grid list ``L`` reads as ``{"pi": L, "qf": L, ...}``), so that
    ``{"net_arch": {"denoiser": [128, 128]}}`` changes the denoiser and keeps the grid's actor and critic.
    """
    merged = {**hyperparams, **variant}
    if "policy_kwargs" in variant:
        policy_kwargs = {**hyperparams.get("policy_kwargs", {}), **variant["policy_kwargs"]}
        grid_arch, arch = hyperparams.get("policy_kwargs", {}).get("net_arch"), variant["policy_kwargs"].get("net_arch")
        if isinstance(arch, dict) and grid_arch is not None:
            keys = ("pi", "qf", "denoiser", "grad_head")
            grid = grid_arch if isinstance(grid_arch, dict) else dict.fromkeys(keys, grid_arch)
            policy_kwargs["net_arch"] = {**grid, **arch}
        merged["policy_kwargs"] = policy_kwargs
    return merged


def algo_class(name: str) -> type:
    """The algorithm class for a name of :data:`ALGO_NAMES`."""
    if name == "dspg":
        from sb3_dspg import DSPG

        return DSPG
    if name in ("tqc", "crossq"):
        import sb3_contrib

        return getattr(sb3_contrib, name.upper() if name == "tqc" else "CrossQ")
    import stable_baselines3

    return getattr(stable_baselines3, name.upper())


def parse_env_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"id:key=value,key=value"`` → ``(id, kwargs)``; values are parsed as JSON where possible."""
    env_id, _, rest = spec.partition(":")
    kwargs: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        try:
            kwargs[key] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[key] = value
    return env_id, kwargs


def sweep_level(spec: str, param: str) -> Any:
    """
    The value of env kwarg ``param`` in ``spec``: its own, else the registration's, else the env constructor's
    default (so a sweep can list the base env, ``sb3_dspg/HitBandit-v0``, next to its variants).

    :raises ValueError: the env takes no such parameter
    """
    import inspect

    import gymnasium as gym
    from gymnasium.envs.registration import load_env_creator

    import sb3_dspg  # noqa: F401  (registers the sb3_dspg/ ids)

    env_id, kwargs = parse_env_spec(spec)
    registered = gym.spec(env_id)
    if param in kwargs or param in registered.kwargs:
        return kwargs.get(param, registered.kwargs.get(param))
    entry = registered.entry_point
    default = inspect.signature(load_env_creator(entry) if isinstance(entry, str) else entry).parameters.get(param)
    if default is None or default.default is inspect.Parameter.empty:
        raise ValueError(f"sweep_param: {env_id} has no keyword argument {param!r} with a default")
    return default.default


def slug(spec: str) -> str:
    return spec.replace("/", "_").replace(":", "__").replace("=", "-").replace(",", "_")


SUITES_DIR = Path(__file__).parent / "suites"


class World(NamedTuple):
    """A group of env specs that share a budget and an evaluation protocol (one entry of a suite file)."""

    name: str
    specs: list[str]
    timesteps: int
    eval_freq: int
    eval_episodes: int
    sweep_param: str | None = None
    gym_packages: tuple[str, ...] = ()


def load_suite(suite: str, names: list[str] | None = None) -> tuple[dict[str, Any], list[World]]:
    """
    Read a suite file (``suites/<suite>.yml`` shipped with the package, or a path) and its worlds, in order.
    A world may name ``gym_packages``: modules every run imports first (e.g. one that registers its envs).

    :param names: only these worlds (all when ``None``); an unknown name raises ``ValueError``
    :return: ``(the suite's header: name, version, algos, seeds and its optional ``profile``, the algorithms of the
        report's performance profile), worlds``
    """
    import yaml

    path = Path(suite) if suite.endswith((".yml", ".yaml")) else SUITES_DIR / f"{suite}.yml"
    if not path.is_file():
        known = sorted(p.stem for p in SUITES_DIR.glob("*.yml"))
        raise ValueError(f"suite: no suite file {path}; shipped suites: {known}")
    table = yaml.safe_load(path.read_text())
    defaults, entries = table.get("defaults", {}), table["worlds"]
    unknown = sorted(set(names or []) - set(entries))
    if unknown:
        raise ValueError(f"worlds: {unknown} not in suite {table['name']!r}; it has {list(entries)}")
    worlds = [
        World(name, list(entry["envs"]), int(entry["timesteps"]), int(entry.get("eval_freq", defaults.get("eval_freq", 2000))),
              int(entry.get("eval_episodes", defaults.get("eval_episodes", 10))), entry.get("sweep_param"),
              tuple(entry.get("gym_packages", ())))
        for name, entry in entries.items()
        if names is None or name in names
    ]  # fmt: skip
    return {key: table[key] for key in ("name", "version", "algos", "seeds")} | {"profile": table.get("profile")}, worlds


def grid_hyperparams(
    algo: str, env_id: str, action_shape: tuple[int, ...], algos: list[str], variants: dict[str, dict] | None = None
) -> tuple[dict[str, Any], str]:
    """
    The same tuning effort for every algorithm of a grid: each one's tuned entry where *every* algorithm in
    ``algos`` has one for ``env_id``, otherwise :data:`~sb3_dspg.hyperparams.UNTUNED` for all of them; a
    variant's keyword arguments go over its base algorithm's.

    :return: ``(keyword arguments, "tuned" or "untuned")``
    """
    base, regime = parse_algo(algo, variants)[0], grid_regime(env_id, [*algos, algo], variants)
    hyperparams = tuned_hyperparams(base, env_id, action_shape) if regime == "tuned" else copy.deepcopy(UNTUNED)
    return with_variant(hyperparams, zoo_kwargs((variants or {}).get(algo, {}), action_shape, f"--variant {algo}")), regime


def grid_regime(env_id: str, algos: list[str], variants: dict[str, dict] | None = None) -> str:
    """
    ``"tuned"`` where every algorithm of the grid has a tuned entry for ``env_id`` (a noisy world reads its base
    env's), else ``"untuned"``.
    """
    return "tuned" if all(zoo_entry(parse_algo(name, variants)[0], env_id) is not None for name in algos) else "untuned"


def regime_conflicts(out: Path, specs: list[str], algos: list[str], variants: dict[str, dict] | None = None) -> list[str]:
    """
    The worlds of ``out`` whose completed runs recorded another tuning regime than the one this grid's new runs
    would get, e.g. a variant-only grid (tuned, since DSPG has an entry) added to a suite's untuned world.
    """
    conflicts = []
    for spec in specs:
        regime = grid_regime(parse_env_spec(spec)[0], algos, variants)
        others = {}
        for done in sorted((out / slug(spec)).glob("*/done.json")):
            recorded = json.loads(done.read_text()).get("hyperparams", regime)
            if recorded != regime:
                others[done.parent.name] = recorded
        if others:
            listed = ", ".join(f"{name}: {recorded}" for name, recorded in others.items())
            conflicts.append(f"{spec}: this grid's runs would be {regime}, the completed ones are not ({listed})")
    return conflicts


def code_version() -> str:
    """The git commit of the checkout this package runs from (``+dirty`` with uncommitted changes), else its version."""
    import subprocess

    import sb3_dspg

    root = Path(sb3_dspg.__file__).resolve().parent.parent
    git = ["git", "-C", str(root)]
    try:
        commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run([*git, "status", "--porcelain", "--", "sb3_dspg"], capture_output=True, text=True)
        return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return f"sb3-dspg {sb3_dspg.__version__}"


def run_one(
    spec: str,
    algo: str,
    seed: int,
    timesteps: int,
    eval_freq: int,
    eval_episodes: int,
    out: str,
    bar: bool = False,
    algos: list[str] | None = None,
    threads: int = 1,
    gym_packages: tuple[str, ...] = (),
    variants: dict[str, dict[str, Any]] | None = None,
) -> dict:
    """
    Train one (env, algo, seed), evaluating along the way, into ``<out>/<env>/<algo>_<seed>``; skip it if
    it already completed. Raises whatever the run raises (the caller records it as failed).

    :param algos: the grid's algorithms (for :func:`grid_hyperparams`)
    :param threads: torch threads of this run
    :param gym_packages: modules to import first, e.g. ones that register the env (as rl-zoo3's ``--gym-packages``)
    :param variants: name -> constructor keyword arguments, for algorithms named by ``--variant``
    """
    import importlib

    import gymnasium as gym
    import torch as th
    from stable_baselines3.common.callbacks import EvalCallback
    from stable_baselines3.common.monitor import Monitor

    import sb3_dspg  # noqa: F401  (registers the noisy worlds in this worker)

    for package in gym_packages:
        importlib.import_module(package)
    run_dir = Path(out) / slug(spec) / f"{algo}_{seed}"
    done = run_dir / "done.json"
    if done.exists():
        return json.loads(done.read_text())
    th.set_num_threads(threads)
    env_id, env_kwargs = parse_env_spec(spec)
    env = Monitor(gym.make(env_id, **env_kwargs))
    eval_env = Monitor(gym.make(env_id, **env_kwargs))
    eval_env.reset(seed=10_000 + seed)
    hyperparams, regime = grid_hyperparams(algo, env_id, env.action_space.shape, algos or [algo], variants)
    base, pretrain_steps = parse_algo(algo, variants)
    policy = "MlpPolicy"
    if isinstance(env.observation_space, gym.spaces.Dict):
        policy, hyperparams = "MultiInputPolicy", {**goal_env_settings(env), **hyperparams}
    model = algo_class(base)(policy, env, seed=seed, tensorboard_log=str(run_dir), verbose=0, **hyperparams)
    if pretrain_steps:
        model.pretrain(pretrain_steps, tb_log_name="pretrain")
    callback = EvalCallback(eval_env, eval_freq=eval_freq, n_eval_episodes=eval_episodes, log_path=str(run_dir), verbose=0)
    start = time.perf_counter()
    model.learn(timesteps, callback=callback, tb_log_name="tb", progress_bar=bar)
    result = dict(
        env=spec, algo=algo, seed=seed, timesteps=timesteps, wall_s=time.perf_counter() - start, hyperparams=regime,
        code=code_version(), final_return=float(np.mean(np.load(run_dir / "evaluations.npz")["results"][-1])),
    )  # fmt: skip
    if algo in (variants or {}):
        result["variant"] = variants[algo]  # type: ignore[index]
    result["settings"] = recorded_settings(model)
    done.write_text(json.dumps(result))
    return result


#: constructor arguments that differ between the runs of one grid by design, or name no setting
PER_RUN_ARGUMENTS = frozenset({"policy", "env", "seed", "tensorboard_log", "verbose", "device"})


def recorded_settings(model: Any) -> dict[str, Any]:
    """
    The settings a run was made with, read back from the model: each constructor argument the model keeps under
    its own name, where its value is plain data (numbers, strings, lists, dicts; classes and enums by name).
    A changed library default alters these without the command changing, so the report can tell runs apart that
    ``done.json``'s ``variant`` and ``hyperparams`` call the same (:func:`mixed_settings`).
    """

    def by_name(obj: Any) -> Any:
        if isinstance(obj, type):
            return f"{obj.__module__}.{obj.__qualname__}"
        if isinstance(obj, enum.Enum):
            return obj.value
        raise TypeError(type(obj).__name__)

    settings = {}
    for name in inspect.signature(type(model).__init__).parameters:
        if name in PER_RUN_ARGUMENTS or not hasattr(model, name):
            continue
        if callable(value := getattr(model, name)) and not isinstance(value, type):  # a schedule
            continue
        with contextlib.suppress(TypeError, ValueError):  # other objects (an action noise) are left out
            settings[name] = json.loads(json.dumps(value, default=by_name))
    return settings


def goal_env_settings(env: Any) -> dict[str, Any]:
    """
    Replay settings for a Dict-observation env: for a goal env (``achieved_goal``/``desired_goal`` keys and
    ``compute_reward``), SB3's ``HerReplayBuffer`` with rl-zoo3's usual relabelling (4 future goals per
    transition), the same for every algorithm of a grid; tuned hyper-parameters that name their own replay
    buffer go over these.
    """
    from stable_baselines3 import HerReplayBuffer

    keys = set(getattr(env.observation_space, "spaces", ()))
    if {"achieved_goal", "desired_goal"} <= keys and hasattr(env.unwrapped, "compute_reward"):
        return dict(
            replay_buffer_class=HerReplayBuffer,
            replay_buffer_kwargs=dict(n_sampled_goal=4, goal_selection_strategy="future"),
        )
    return {}


def failed_runs(out: Path, specs: list[str], algos: list[str], seeds: list[int]) -> list[dict]:
    """The runs of the grid that failed and have not completed since (their ``failed.json``)."""
    failed = []
    for spec in specs:
        for algo in algos:
            for seed in seeds:
                run_dir = out / slug(spec) / f"{algo}_{seed}"
                if (run_dir / "failed.json").exists() and not (run_dir / "done.json").exists():
                    failed.append(json.loads((run_dir / "failed.json").read_text()))
    return failed


def report_scope(
    out: Path, specs: list[str], algos: list[str], seeds: list[int], order: list[str] | None = None
) -> tuple[list[str], list[str], list[int]]:
    """
    What a report of ``out`` covers: the call's envs, algorithms and seeds, widened by every run recorded under
    ``out`` (``done.json`` or ``failed.json``), so that a call that runs part of a grid still writes the report
    of all of it.

    :param order: the order of the specs in the report (the suite's, in world order: then the call's specs take
        their place in it too); specs it does not list follow sorted
    :return: ``(specs, algos, seeds)``; the algorithms in one fixed order (:data:`ALGO_NAMES`, each followed by its
        variants, sorted), so that an algorithm keeps its row and its colour whichever call writes the report
    """
    found = []
    for path in [*out.glob("*/*/done.json"), *out.glob("*/*/failed.json")]:
        record = json.loads(path.read_text())
        if {"env", "algo", "seed"} <= set(record):
            found.append((record["env"], record["algo"], int(record["seed"])))
    rank = {spec: i for i, spec in enumerate(order or [])}
    found_specs = {env for env, _, _ in found}
    if order:  # every spec in the suite's order, the call's too
        specs, found_specs = [], found_specs | set(specs)
    others = sorted(found_specs - set(specs), key=lambda spec: (rank.get(spec, len(rank)), spec))

    def algo_rank(algo: str) -> tuple[int, bool, str]:
        base = algo.split("-")[0]
        return (ALGO_NAMES.index(base) if base in ALGO_NAMES else len(ALGO_NAMES), algo != base, algo)

    ordered = sorted({*algos, *(algo for _, algo, _ in found)}, key=algo_rank)
    return [*specs, *others], ordered, sorted(set(seeds) | {seed for _, _, seed in found})


def record_outcome(out: Path, job: Job, outcome: Any) -> str:
    """Write ``failed.json`` for a run that raised (cleared once it completes); return a one-line summary."""
    failed = out / slug(job.spec) / f"{job.algo}_{job.seed}" / "failed.json"
    if isinstance(outcome, BaseException):
        failed.parent.mkdir(parents=True, exist_ok=True)
        error = "".join(traceback.format_exception_only(type(outcome), outcome)).strip()
        failed.write_text(json.dumps(dict(env=job.spec, algo=job.algo, seed=job.seed, error=error)))
        return f"{job.algo} {job.spec} seed {job.seed}: FAILED ({error.splitlines()[-1][:80]})"
    failed.unlink(missing_ok=True)
    return f"{job.algo} {job.spec} seed {job.seed}: {outcome['final_return']:.1f}"


def tuning_regimes(out: Path, spec: str, algos: list[str], seeds: list[int]) -> dict[str, str]:
    """
    Per algorithm, the tuning regime its completed runs of ``spec`` recorded (``tuned``/``untuned``, joined if
    several); runs made before ``done.json`` recorded it are left out.
    """
    regimes: dict[str, str] = {}
    for algo in algos:
        found = set()
        for seed in seeds:
            done = out / slug(spec) / f"{algo}_{seed}" / "done.json"
            if done.exists() and "hyperparams" in (record := json.loads(done.read_text())):
                found.add(record["hyperparams"])
        if found:
            regimes[algo] = "+".join(sorted(found))
    return regimes


NOT_RECORDED = "(not recorded)"


def constructor_defaults(algo: str) -> dict[str, Any]:
    """
    The constructor defaults of ``algo``'s base algorithm (``"dspg-crossq01"`` → DSPG's) as plain data, as
    :func:`recorded_settings` writes them; ``{}`` for a name whose base is not in :data:`ALGO_NAMES`.
    """
    base = algo.partition("-")[0]
    if base not in ALGO_NAMES:
        return {}
    defaults = {}
    for name, parameter in inspect.signature(algo_class(base).__init__).parameters.items():
        with contextlib.suppress(TypeError, ValueError):  # object defaults are not recorded either
            if parameter.default is not inspect.Parameter.empty:
                defaults[name] = json.loads(json.dumps(parameter.default))
    return defaults


def setting_values(out: Path, spec: str, algo: str, seeds: list[int]) -> dict[str, list]:
    """
    The distinct values of each recorded setting (:func:`recorded_settings`) across ``algo``'s completed runs of
    ``spec``, :data:`NOT_RECORDED` for a run that lacks the key (an option added after it ran). Runs made before
    ``done.json`` recorded settings are left out.
    """
    records = []
    for seed in seeds:
        done = out / slug(spec) / f"{algo}_{seed}" / "done.json"
        if done.exists() and "settings" in (record := json.loads(done.read_text())):
            records.append(record["settings"])
    values: dict[str, list] = {}
    for key in sorted({key for settings in records for key in settings}):
        for settings in records:
            if (value := settings.get(key, NOT_RECORDED)) not in values.setdefault(key, []):
                values[key].append(value)
    return values


def mixed_settings(out: Path, spec: str, algos: list[str], seeds: list[int]) -> dict[str, dict[str, list]]:
    """
    Per algorithm, the recorded settings (:func:`setting_values`) whose values differ between its completed runs of
    ``spec``: ``{algo: {setting: [value, ...]}}``, e.g. seeds run before and after a default changed. A setting
    that older runs do not record and the newer ones record at its current constructor default is not a difference
    (:func:`unrecorded_defaults` lists it): an option is added with a default that keeps the old behaviour.
    """
    mixed: dict[str, dict[str, list]] = {}
    for algo in algos:
        defaults = constructor_defaults(algo)
        for key, values in setting_values(out, spec, algo, seeds).items():
            if len(values) > 1 and not _is_unrecorded_default(key, values, defaults):
                mixed.setdefault(algo, {})[key] = values
    return mixed


def unrecorded_defaults(out: Path, spec: str, algos: list[str], seeds: list[int]) -> dict[str, dict[str, Any]]:
    """
    Per algorithm, the settings that some of its completed runs of ``spec`` do not record (made before the option
    existed) and the others record at the option's current constructor default: ``{algo: {setting: default}}``.
    """
    found: dict[str, dict[str, Any]] = {}
    for algo in algos:
        defaults = constructor_defaults(algo)
        for key, values in setting_values(out, spec, algo, seeds).items():
            if _is_unrecorded_default(key, values, defaults):
                found.setdefault(algo, {})[key] = defaults[key]
    return found


def _is_unrecorded_default(key: str, values: list, defaults: dict[str, Any]) -> bool:
    """Whether ``values`` of ``key`` are :data:`NOT_RECORDED` and the key's current default, in either order."""
    return len(values) == 2 and NOT_RECORDED in values and key in defaults and defaults[key] in values


def collect(out: Path, specs: list[str], algos: list[str], seeds: list[int]):
    """Every evaluation of every completed run as a pandas DataFrame."""
    import pandas as pd

    rows = []
    for spec in specs:
        for algo in algos:
            for seed in seeds:
                run_dir = out / slug(spec) / f"{algo}_{seed}"
                if not (run_dir / "done.json").exists():
                    continue
                data = np.load(run_dir / "evaluations.npz")
                for step, returns in zip(data["timesteps"], data["results"], strict=True):
                    rows.append(dict(env=spec, algo=algo, seed=seed, timesteps=int(step), mean_return=float(np.mean(returns))))
    return pd.DataFrame(rows)


def final_scores(df, spec: str, algos: list[str]) -> dict[str, np.ndarray]:
    """Per algo, the last evaluation of each seed, shaped ``(n_seeds, 1)`` for rliable."""
    scores = {}
    for algo in algos:
        runs = df[(df.env == spec) & (df.algo == algo)]
        if len(runs):
            last = runs.sort_values("timesteps").groupby("seed").tail(1)
            scores[algo] = last["mean_return"].to_numpy()[:, None]
    return scores


def curve_means(df, spec: str, algos: list[str]) -> dict[str, np.ndarray]:
    """
    Per algo, the mean over all evaluations of each seed (the area under the learning curve over its length),
    shaped ``(n_seeds, 1)``: it separates algorithms that end at the same ceiling by how fast they got there.
    """
    scores = {}
    for algo in algos:
        runs = df[(df.env == spec) & (df.algo == algo)]
        if len(runs):
            scores[algo] = runs.groupby("seed")["mean_return"].mean().to_numpy()[:, None]
    return scores


def interval_estimates(scores: dict[str, np.ndarray], reps: int = 2000) -> tuple[dict, dict]:
    """IQM and mean with 95% stratified-bootstrap CIs across seeds (rliable)."""
    from rliable import metrics

    def aggregate(x: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(x), metrics.aggregate_mean(x)])

    return _bootstrap(scores, aggregate, reps)


@contextlib.contextmanager
def _seeded_global_rng(seed: int = 0) -> Iterator[None]:
    """NumPy's global generator seeded inside the block and restored after it (rliable resamples from it)."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _bootstrap(scores: dict, func, reps: int) -> tuple[dict, dict]:
    """
    rliable's point estimates and stratified-bootstrap CIs, one key at a time from a fixed seed: a report is
    reproducible, and an algorithm's CI does not depend on which others the report lists. rliable's resampling
    draws from NumPy's global generator (its ``random_state`` never reaches it), so that is seeded here and
    restored afterwards.
    """
    from rliable import library as rly

    points, cis = {}, {}
    for key, value in scores.items():
        with _seeded_global_rng():
            point, ci = rly.get_interval_estimates({key: value}, func, reps=reps)
        points[key], cis[key] = point[key], ci[key]
    return points, cis


def _iqm_with_ci(point: dict, ci: dict, algo: str) -> np.ndarray:
    """``[IQM, low, high]`` of ``algo`` from :func:`interval_estimates`' point estimates and CIs."""
    return np.array([point[algo][0], ci[algo][0, 0], ci[algo][1, 0]])


def _with_ci(values: np.ndarray, fmt: str) -> str:
    """``point [low, high]``."""
    return f"{values[0]:{fmt}} [{values[1]:{fmt}}, {values[2]:{fmt}}]"


def probability_of_improvement(scores_x: np.ndarray, scores_y: np.ndarray) -> float:
    """
    rliable's ``metrics.probability_of_improvement`` without SciPy's per-call overhead (the report's bootstrap
    calls it thousands of times per pair): per task, the share of run pairs where ``X`` beats ``Y``, ties counted
    half (the Mann-Whitney ``U / (n_x n_y)``), averaged over tasks. Equal to rliable's to the last bit.

    :param scores_x: ``(n_x, n_tasks)``
    :param scores_y: ``(n_y, n_tasks)``
    :return: ``P(X > Y)``
    """
    x, y = scores_x[:, None, :], scores_y[None, :, :]
    wins = (x > y).sum(axis=(0, 1)) + 0.5 * (x == y).sum(axis=(0, 1))
    return float(np.mean(wins / (len(scores_x) * len(scores_y))))


def improvement_probabilities(scores: dict[str, np.ndarray], reference: str, reps: int = 2000) -> dict[str, np.ndarray]:
    """
    ``P(reference > peer)``: the probability that a random run of ``reference`` beats a random run of the
    peer (rliable's probability of improvement, Mann-Whitney U statistic), with a 95% stratified-bootstrap CI.

    :return: per peer, ``[point, low, high]``
    """
    if reference not in scores:
        return {}
    pairs = {peer: (scores[reference], scores[peer]) for peer in scores if peer != reference}
    if not pairs:
        return {}
    point, ci = _bootstrap(pairs, probability_of_improvement, reps)
    return {peer: np.array([float(np.squeeze(point[peer])), *np.ravel(ci[peer])]) for peer in pairs}


def steps_to_reach(df, spec: str, scores: dict[str, np.ndarray], threshold: float) -> dict[str, str]:
    """
    Per algo, the median over seeds of the first evaluation step whose mean return reaches ``threshold``
    (DSPG's final IQM), with how many seeds reached it.
    """
    reach = {}
    for algo in scores:
        runs = df[(df.env == spec) & (df.algo == algo)]
        firsts = [group[group.mean_return >= threshold].timesteps.min() for _, group in runs.groupby("seed")]
        reached = [int(step) for step in firsts if not np.isnan(step)]
        seeds = runs.seed.nunique()
        reach[algo] = f"{int(np.median(reached))} ({len(reached)}/{seeds} seeds)" if reached else f"not reached (0/{seeds})"
    return reach


def normalised_scores(
    df, specs: list[str], algos: list[str], seeds: list[int]
) -> tuple[dict[str, np.ndarray], list[str], dict[str, str], dict[str, dict[str, str]]]:
    """
    The performance profile's scores: final returns ``(len(seeds), n_worlds)`` per algorithm, each world min-max
    normalised over these runs (0: the worst of them, 1: the best), over the worlds where every one of ``algos``
    completed every one of ``seeds`` (rliable needs the same runs on every world), so that no algorithm is scored on
    worlds another never ran.

    An entry of ``algos`` may name stand-ins, ``"td3-explore|td3"``: on each world the first of them that completed
    every seed is scored, under the entry's name (e.g. TD3 with exploration noise: a ``--variant`` on the untuned
    worlds, SB3's TD3 at its rl-zoo3 entry, which sets that noise, on the tuned ones).

    :return: ``(scores, the worlds used, the worlds left out -> why, the worlds where a stand-in after the first was
        scored -> {entry: the stand-in})``; ``scores`` is empty when no world qualifies
    """
    used, left_out, stand_ins, columns = [], {}, {}, {entry: [] for entry in algos}
    every = [algo for entry in algos for algo in entry.split("|")]
    for spec in specs:
        runs = df[(df.env == spec) & df.algo.isin(every) & df.seed.isin(seeds)] if len(df) else df
        if not len(runs):
            left_out[spec] = "no run of these algorithms"
            continue
        last = runs.sort_values("timesteps").groupby(["algo", "seed"]).tail(1)
        chosen, missing = {}, {}
        for entry in algos:
            gaps = {algo: sorted(set(seeds) - set(last[last.algo == algo].seed)) for algo in entry.split("|")}
            complete = [algo for algo, gap in gaps.items() if not gap]
            if complete:
                chosen[entry] = complete[0]
            else:  # name the stand-in closest to complete
                algo = min(gaps, key=lambda name: len(gaps[name]))
                missing[algo] = gaps[algo]
        if missing:
            left_out[spec] = "; ".join(
                f"{algo}: no run" if len(gap) == len(seeds) else f"{algo}: seed {', '.join(map(str, gap))} missing"
                for algo, gap in missing.items()
            )
            continue
        last = last[last.algo.isin(chosen.values())]
        low, high = last.mean_return.min(), last.mean_return.max()
        if high == low:  # every run at the same return: no ordering to profile
            left_out[spec] = f"every run ends at {high:.4g}"
            continue
        used.append(spec)
        if replaced := {entry: algo for entry, algo in chosen.items() if algo != entry.split("|")[0]}:
            stand_ins[spec] = replaced
        for entry, algo in chosen.items():
            final = last[last.algo == algo].sort_values("seed").mean_return.to_numpy()
            columns[entry].append((final - low) / (high - low))
    scores = {entry: np.stack(cols, axis=1) for entry, cols in columns.items()} if used else {}
    return scores, used, left_out, stand_ins


def algo_colour(index: int, n_algos: int) -> Any:
    """
    The colour of the ``index``-th of ``n_algos`` algorithms in every plot of a report: Matplotlib's default cycle
    (``C0``–``C9``) up to ten; beyond, ``tab20``'s ten dark shades and then its ten light ones, so that up to twenty
    algorithms never share a colour and the first ten keep distinct hues.
    """
    if n_algos <= 10:
        return f"C{index}"
    import matplotlib

    return matplotlib.colormaps["tab20"]((2 * index) % 20 + (index // 10) % 2)


def plot_performance_profile(scores: dict[str, np.ndarray], path: Path) -> None:
    """rliable's performance profile: the fraction of (run, world) pairs above each normalised score τ."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from rliable import library as rly
    from rliable import plot_utils

    taus = np.linspace(0.0, 1.0, 41)
    profiles, cis = {}, {}
    for algo, score in scores.items():  # seeded per algorithm, like the tables' CIs
        with _seeded_global_rng():
            profile, ci = rly.create_performance_profile({algo: score}, taus)
        profiles[algo], cis[algo] = profile[algo], ci[algo]
    fig, ax = plt.subplots(figsize=(6, 4))
    colors = {algo: algo_colour(i, len(scores)) for i, algo in enumerate(scores)}
    plot_utils.plot_performance_profiles(profiles, taus, performance_profile_cis=cis, colors=colors,
                                         xlabel=r"normalised final return $\tau$", ax=ax)  # fmt: skip
    # one handle per algorithm in its colour (the axes also hold the CI bands, which a plain legend would label)
    handles = [Line2D([], [], color=colors[algo], label=algo) for algo in scores]
    ax.legend(handles=handles, loc="lower left", fontsize="small")
    n_worlds = next(iter(scores.values())).shape[1]
    ax.set_title(
        f"performance profile over {n_worlds} worlds\n(final return, min-max normalised per world)", fontsize="medium"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_curves(df, spec: str, algos: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    rng = np.random.default_rng(0)
    for i, algo in enumerate(algos):
        runs = df[(df.env == spec) & (df.algo == algo)]
        if not len(runs):
            continue
        table = runs.pivot_table(index="timesteps", columns="seed", values="mean_return").dropna()
        x, y = table.index.to_numpy(), table.to_numpy()
        boot = y[:, rng.integers(0, y.shape[1], (1000, y.shape[1]))].mean(axis=2)
        colour = algo_colour(i, len(algos))
        ax.plot(x, y.mean(axis=1), color=colour, label=f"{algo} ({y.shape[1]} seeds)")
        ax.fill_between(x, *np.percentile(boot, [2.5, 97.5], axis=1), color=colour, alpha=0.2)
    ax.set(title=spec, xlabel="env steps", ylabel="mean evaluation return")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_sweep(df, specs: list[str], algos: list[str], param: str, path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = sorted((sweep_level(spec, param), spec) for spec in specs)
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, algo in enumerate(algos):
        xs, means, lows, highs = [], [], [], []
        for level, spec in levels:
            scores = final_scores(df, spec, [algo])
            if algo in scores:
                point, ci = interval_estimates(scores, reps=500)
                xs.append(level)
                means.append(point[algo][0])
                lows.append(ci[algo][0, 0])
                highs.append(ci[algo][1, 0])
        if xs:
            colour = algo_colour(i, len(algos))
            ax.plot(xs, means, "o-", color=colour, label=algo)
            ax.fill_between(xs, lows, highs, color=colour, alpha=0.2)
    ax.set(
        xlabel=param,
        ylabel="final IQM return (95% CI)",
        title=f"{title}: return against {param}" if title else f"return against {param}",
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def report(
    out: Path,
    specs: list[str],
    algos: list[str],
    seeds: list[int],
    command: str,
    sweeps: dict[str, tuple[str, list[str]]] | None = None,
    header: str = "# DSPG vs peers",
    reference: str = "dspg",
    profile: list[str] | None = None,
    profile_seeds: list[int] | None = None,
) -> str:
    """
    Write ``evaluations.csv``, ``results.md`` (a summary table of DSPG against the best peer per world: the ratio
    of their final IQMs, P(DSPG > best peer) and the lowest P(DSPG > peer) over all peers; then per world: IQM and
    mean with 95% CIs, P(DSPG > peer), learning curves), sweep plots and a performance profile.

    :param sweeps: plot name -> (the env parameter swept, the specs that sweep it): one plot each,
        ``sweep_<name>.png`` (a suite's world name, so that two worlds sweeping one parameter get a plot each)
    :param reference: the DSPG whose probabilities of improvement and steps-to-return the report gives (a variant
        such as ``dspg-crossq``: the report is then ``results_<reference>.md``); peers are the algorithms that are
        not a DSPG
    :param profile: the algorithms of the performance profile (default: ``algos``); it covers the worlds where
        each completed every one of ``profile_seeds`` (default: ``seeds``) and names the worlds it leaves out
    """
    df = collect(out, specs, algos, seeds)
    df.to_csv(out / "evaluations.csv", index=False)
    name = "DSPG" if reference == "dspg" else reference
    lines = [
        header,
        "",
        f"Command: `{command}` (the report covers every run under `--out`, whichever call made it)  ",
        f"Machine: {platform.machine()} CPU, {os.cpu_count()} cores, one torch thread per run.  ",
        "Final return: the last deterministic evaluation of each seed; IQM and mean across seeds with 95% "
        "stratified-bootstrap CIs (rliable); P(DSPG > peer): rliable's probability of improvement with its 95% CI. "
        "Learning-curve mean: each seed's mean over all its evaluations (the area under its curve), which separates "
        "algorithms that end at the same ceiling. Every evaluation is in `evaluations.csv`.",
        "",
    ]
    summary, options, sections = [], [], []
    for spec in specs:
        scores = final_scores(df, spec, algos)
        if not scores:
            continue
        point, ci = interval_estimates(scores)
        improvement = improvement_probabilities(scores, reference)
        reach = steps_to_reach(df, spec, scores, point[reference][0]) if reference in scores else {}
        curves = curve_means(df, spec, algos)
        curve_point, curve_ci = interval_estimates(curves)
        curve_improvement = improvement_probabilities(curves, reference)
        sections += [f"## {spec}", ""]
        mixed = tuning_regimes(out, spec, algos, seeds)
        if len(set(mixed.values())) > 1:  # e.g. runs linked in from a grid with another tuning regime
            listed = ", ".join(f"{algo}: {regime}" for algo, regime in mixed.items())
            sections += [f"**Warning: mixed tuning regimes** ({listed}); these rows were not run under the same "
                         "settings rule and are not comparable.", ""]  # fmt: skip
        for algo, differing in mixed_settings(out, spec, algos, seeds).items():  # e.g. a default that changed
            listed = "; ".join(f"`{key}`: {' / '.join(json.dumps(v) for v in values)}" for key, values in differing.items())
            sections += [f"**Warning: {algo}'s runs differ in their settings** ({listed}); its row mixes them.", ""]
        for algo, defaults in unrecorded_defaults(out, spec, algos, seeds).items():  # an option added later
            listed = ", ".join(f"`{key}` ({json.dumps(value)})" for key, value in defaults.items())
            sections += [f"Note: some of {algo}'s runs predate {listed}; the others use that default, which "
                         "keeps the older runs' behaviour.", ""]  # fmt: skip
        sections += [f"| algo | seeds | final IQM [95% CI] | final mean [95% CI] | P({name} > algo), final "
                     f"| learning-curve mean IQM [95% CI] | P({name} > algo), curve | steps to {name}'s final IQM |",
                     "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for algo in scores:
            p, c = point[algo], ci[algo]
            poi = _with_ci(improvement[algo], ".2f") if algo in improvement else "-"
            curve_poi = _with_ci(curve_improvement[algo], ".2f") if algo in curve_improvement else "-"
            curve = _iqm_with_ci(curve_point, curve_ci, algo)
            sections.append(
                f"| {algo} | {len(scores[algo])} | {p[0]:.4g} [{c[0, 0]:.4g}, {c[1, 0]:.4g}] | "
                f"{p[1]:.4g} [{c[0, 1]:.4g}, {c[1, 1]:.4g}] | {poi} | {_with_ci(curve, '.4g')} | {curve_poi} | "
                f"{reach.get(algo, '-')} |"
            )
        options += option_rows(spec, scores, curves, point, ci, curve_point, curve_ci, reference)
        png = f"curves_{slug(spec)}.png"
        plot_curves(df, spec, algos, out / png)
        sections += ["", f"![{spec}]({png})", ""]
        peers = [algo for algo in scores if not algo.startswith("dspg")]
        if reference in scores and peers:
            # the best final IQM; among peers tied there (a ceiling), the best learning-curve mean
            best = max(peers, key=lambda algo: (point[algo][0], curve_point[algo][0]))
            iqm = {algo: _with_ci(_iqm_with_ci(point, ci, algo), ".4g") for algo in scores}
            poi, curve_poi = _with_ci(improvement[best], ".2f"), _with_ci(curve_improvement[best], ".2f")
            # a ratio of returns means something only where both are positive (hit rates, returns of a live bonus)
            ours, theirs = point[reference][0], point[best][0]
            ratio = f"{ours / theirs:.2f}×" if ours > 0 and theirs > 0 else "-"
            # the claim "ahead of every peer" is as strong as its weakest pairing, which need not be the best peer
            weakest = min(peers, key=lambda algo: improvement[algo][0])
            summary.append(
                f"| {spec} | {iqm[reference]} | {best} {iqm[best]} | {ratio} | {poi} | {curve_poi} | "
                f"{improvement[weakest][0]:.2f} ({weakest}) | {len(scores[reference])} |"
            )
    if summary:
        columns = (f"| world | {name} final IQM [95% CI] | best peer final IQM [95% CI] | {name} ÷ best peer, final IQM "
                   f"| P({name} > best peer), final | P({name} > best peer), learning-curve mean "
                   f"| lowest P({name} > peer), final | {name} seeds |")  # fmt: skip
        lines += [f"## Where {name} stands", "", columns, "|---|---|---|---|---|---|---|---|", *summary, ""]
    if options:
        lines += [f"## DSPG's options against {name}", "",
                  f"Each other DSPG (a `--variant` or pretrained DSPG) where it ran beside {name}: P(option > {name}) "
                  f"above 0.5 says the option helps there. Settings: {variant_settings(out, specs, algos, seeds)}.", "",
                  f"| world | option | seeds | final IQM [95% CI] | P(option > {name}), final "
                  f"| learning-curve mean IQM [95% CI] | P(option > {name}), curve |",
                  "|---|---|---|---|---|---|---|", *options, ""]  # fmt: skip
    profile_algos, profile_seeds = profile or algos, profile_seeds or seeds
    profile_scores, used, left_out, stand_ins = normalised_scores(df, specs, profile_algos, profile_seeds)
    if len(used) >= 2:
        plot_performance_profile(profile_scores, out / "performance_profile.png")
        worlds = ", ".join(f"`{spec}`" for spec in used)
        lines += ["## Performance profile", "",
                  f"{', '.join(profile_algos)}, seeds {', '.join(map(str, profile_seeds))}, over the {len(used)} worlds "
                  f"where each of them completed every one of those seeds: {worlds}. Each world's final returns are "
                  "min-max normalised over these runs (0: the worst, 1: the best), so the profile ranks the "
                  "algorithms; it does not say how close any comes to a task's optimum.", ""]  # fmt: skip
        if stand_ins:
            lines += ["Stand-ins scored: " + "; ".join(
                f"`{spec}` ({', '.join(f'{algo} for {entry}' for entry, algo in replaced.items())})"
                for spec, replaced in stand_ins.items()) + ".", ""]  # fmt: skip
        if left_out:
            lines += ["Left out: " + "; ".join(f"`{spec}` ({why})" for spec, why in left_out.items()) + ".", ""]
        # the same normalised scores aggregated over the worlds: IQM over every (seed, world), P averaged over worlds
        point, ci = interval_estimates(profile_scores)
        improvement = improvement_probabilities(profile_scores, reference)
        lines += [f"| algo | normalised final IQM [95% CI] | P({name} > algo), averaged over the worlds |", "|---|---|---|"]
        for algo in profile_scores:
            poi = _with_ci(improvement[algo], ".2f") if algo in improvement else "-"
            cell = algo.replace("|", "\\|")  # a stand-in entry, "td3-explore|td3", inside a table cell
            lines.append(f"| {cell} | {_with_ci(_iqm_with_ci(point, ci, algo), '.3f')} | {poi} |")
        lines += ["", "![performance profile](performance_profile.png)", ""]
    lines += sections
    for plot, (param, swept) in (sweeps or {}).items():
        if df.empty or not df["env"].isin(swept).any():  # a swept world with no completed run yet
            continue
        plot_sweep(df, swept, algos, param, out / f"sweep_{plot}.png", title=plot)
        lines += [f"![{plot}](sweep_{plot}.png)", ""]
    failed = failed_runs(out, specs, algos, seeds)
    if failed:
        lines += ["## Failed runs", "", "Not in the tables above; the same command runs them again.", ""]
        lines += ["| env | algo | seed | error |", "|---|---|---|---|"]
        lines += [f"| {f['env']} | {f['algo']} | {f['seed']} | `{f['error'].splitlines()[-1]}` |" for f in failed]
        lines.append("")
    text = "\n".join(lines)
    results = out / ("results.md" if reference == "dspg" else f"results_{reference}.md")
    results.write_text(text + kept_notes(results))
    return text


def option_rows(
    spec: str,
    scores: dict[str, np.ndarray],
    curves: dict[str, np.ndarray],
    point: dict,
    ci: dict,
    curve_point: dict,
    curve_ci: dict,
    reference: str,
) -> list[str]:
    """
    The summary rows of the other DSPGs of one world against ``reference``: each option's final and learning-curve
    IQM with its CI and ``P(option > reference)`` (:func:`improvement_probabilities` from the option's side).

    :param spec: the world's env spec
    :param scores: per algo, final returns ``(n_seeds, 1)``; ``curves`` the learning-curve means, same shape
    :param point: per algo, ``[IQM, mean]`` of ``scores``; ``ci`` their 95% CIs, ``(2, 2)``; ``curve_point`` and
        ``curve_ci`` the same for ``curves``
    :param reference: the DSPG the options are measured against
    :return: one Markdown table row per option; none where ``reference`` did not run
    """
    if reference not in scores:
        return []
    rows = []
    for option in (algo for algo in scores if algo.startswith("dspg") and algo != reference):
        final = improvement_probabilities({option: scores[option], reference: scores[reference]}, option)[reference]
        curve = improvement_probabilities({option: curves[option], reference: curves[reference]}, option)[reference]
        iqm, curve_iqm = _iqm_with_ci(point, ci, option), _iqm_with_ci(curve_point, curve_ci, option)
        rows.append(
            f"| {spec} | {option} | {len(scores[option])} | {_with_ci(iqm, '.4g')} | {_with_ci(final, '.2f')} | "
            f"{_with_ci(curve_iqm, '.4g')} | {_with_ci(curve, '.2f')} |"
        )
    return rows


def variant_settings(out: Path, specs: list[str], algos: list[str], seeds: list[int]) -> str:
    """
    The constructor settings each DSPG option recorded (``done.json``'s ``variant``, the first run found), as
    ``name = {...}`` joined by ``;``; a pretrained DSPG's are in its name.
    """
    found: dict[str, str] = {}
    for algo in (algo for algo in algos if algo.startswith("dspg-")):
        for spec, seed in ((spec, seed) for spec in specs for seed in seeds):
            done = out / slug(spec) / f"{algo}_{seed}" / "done.json"
            if algo not in found and done.exists() and "variant" in (record := json.loads(done.read_text())):
                found[algo] = f"`{algo}` = `{json.dumps(record['variant'])}`"
    return "; ".join(found.values()) or "none recorded"


#: A hand-written section of ``results.md`` from this heading to the end survives the report's rewrites.
NOTES_HEADING = "## Plan, budget and reading"


def kept_notes(results: Path) -> str:
    """The hand-written part of an existing report (from :data:`NOTES_HEADING` on), to append to its rewrite."""
    if not results.exists():
        return ""
    old = results.read_text()
    start = old.find(f"\n{NOTES_HEADING}")
    return "\n" + old[start:].lstrip("\n") if start >= 0 else ""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="sb3-dspg compare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--suite", default=None, help="run a suite file: a name shipped in suites/ (noisy) or a .yml path")
    parser.add_argument("--worlds", nargs="+", default=None, help="with --suite: only these worlds of it")
    parser.add_argument(
        "--algos",
        nargs="+",
        default=None,
        help=f"of {ALGO_NAMES}, dspg-pretrain=N (DSPG after N reward-free steps) or a --variant name; "
        "default: the suite's, else 4 algos",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        type=parse_variant,
        metavar="NAME=JSON",
        help="an algorithm with other settings, e.g. 'dspg-lean={\"antithetic\": false}'; then list NAME in --algos",
    )
    parser.add_argument(
        "--envs",
        nargs="+",
        default=None,
        help="default: Pendulum-v1, ActuatorPendulum-v1; with --suite: only these of its worlds",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default: the suite's, else 0 1 2")
    parser.add_argument("--timesteps", type=int, default=20_000)
    parser.add_argument("--eval-freq", type=int, default=2_000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--workers", type=int, default=max(1, os.cpu_count() or 1), help="parallel runs (a local Ray's CPUs)")
    parser.add_argument("--out", default=None, help="default: runs/<suite name>, else runs/compare")
    parser.add_argument("--sweep-param", default=None, help="env kwarg that varies across --envs, for the sweep plot")
    parser.add_argument("--report-only", action="store_true", help="only aggregate the completed runs (all under --out)")
    parser.add_argument(
        "--reference", default="dspg", help="the DSPG (or DSPG variant) the report measures the peers against; "
        "not dspg: the report goes to results_<reference>.md"
    )  # fmt: skip
    parser.add_argument(
        "--profile", nargs="+", default=None, metavar="ALGO", help="the algorithms of the report's performance profile "
        "(default: the suite's profile, else every algorithm of the report); it covers the worlds where each ran every seed; "
        "'td3-explore|td3' scores, per world, the first of these stand-ins that ran every seed"
    )  # fmt: skip
    parser.add_argument("--backend", choices=BACKENDS, default="local", help="local process pool (default) or Ray tasks")
    parser.add_argument("--address", default=None, help="Ray cluster: 'auto' or 'ray://HOST:PORT' (default: start one)")
    parser.add_argument("--cpus-per-run", type=int, default=1, help="Ray num_cpus and torch threads of each run (default 1)")
    parser.add_argument("--max-retries", type=int, default=2, help="Ray: reruns of a task whose worker died (default 2)")
    parser.add_argument("--gym-packages", nargs="*", default=[], help="modules every run imports first (env registration)")
    args = parser.parse_args(argv)
    if args.address and args.backend != "ray":
        parser.error("--address needs --backend ray")
    if args.worlds and not args.suite:
        parser.error("--worlds needs --suite")
    if args.suite:
        suite, worlds = load_suite(args.suite, args.worlds)
        all_worlds = worlds if args.worlds is None else load_suite(args.suite)[1]  # what the report covers
        if args.envs:
            unknown = sorted(set(args.envs) - {spec for world in worlds for spec in world.specs})
            if unknown:
                parser.error(f"--envs: {unknown} not in the chosen worlds of suite {suite['name']!r}")
            worlds = [world._replace(specs=[s for s in world.specs if s in args.envs]) for world in worlds]
            worlds = [world for world in worlds if world.specs]
        header = f"# Suite {suite['name']!r} (version {suite['version']}): DSPG vs peers"
    else:
        suite = dict(name="compare", algos=["dspg", "ddpg", "td3", "sac"], seeds=[0, 1, 2])
        envs = args.envs or ["Pendulum-v1", "sb3_dspg/ActuatorPendulum-v1"]
        worlds = [World("cli", envs, args.timesteps, args.eval_freq, args.eval_episodes, args.sweep_param)]
        all_worlds = worlds
        header = "# DSPG vs peers"
    algos, seeds = args.algos or suite["algos"], args.seeds or suite["seeds"]
    variants = dict(args.variant)
    for algo in algos:
        try:
            parse_algo(algo, variants)
        except argparse.ArgumentTypeError as error:
            parser.error(str(error))
    out = Path(args.out or f"runs/{suite['name']}")
    # the report covers every run under --out, not only this call's part of the grid
    specs, report_algos, report_seeds = report_scope(
        out, [spec for world in worlds for spec in world.specs], algos, seeds, [s for w in all_worlds for s in w.specs]
    )
    if args.reference != "dspg" and (args.reference not in report_algos or not args.reference.startswith("dspg")):
        parser.error(f"--reference: a DSPG among the algorithms {report_algos}, got {args.reference!r}")
    out.mkdir(parents=True, exist_ok=True)
    given = sys.argv[1:] if argv is None else argv
    command = "sb3-dspg compare " + shlex.join(given)

    if not args.report_only:
        from tqdm import tqdm

        conflicts = regime_conflicts(out, [spec for world in worlds for spec in world.specs], algos, variants)
        if conflicts:
            parser.error(
                "mixed tuning regimes in --out; name the world's other algorithms in --algos (the settings rule looks at "
                "every algorithm of the grid; completed runs are skipped) or use another --out:\n  " + "\n  ".join(conflicts)
            )

        jobs = [Job(spec, algo, seed, world.timesteps, world.eval_freq, world.eval_episodes)
                for world in worlds for seed in seeds for spec in world.specs for algo in algos]  # fmt: skip
        jobs = [job for job in jobs if not (out / slug(job.spec) / f"{job.algo}_{job.seed}" / "done.json").exists()]
        packages = tuple(dict.fromkeys([*args.gym_packages, *(p for world in worlds for p in world.gym_packages)]))
        settings = dict(algos=algos, threads=args.cpus_per_run, gym_packages=packages, variants=variants)
        if args.backend == "ray":
            outcomes = run_ray(jobs, run_one, out, args.workers, args.address, args.cpus_per_run, args.max_retries, **settings)
        else:  # a per-run progress bar only when runs do not share the terminal
            outcomes = run_local(jobs, run_one, args.workers, out=str(out), bar=args.workers == 1, **settings)
        with tqdm(total=len(jobs), desc="runs") as overall:
            for job, outcome in outcomes:
                overall.set_postfix_str(record_outcome(out, job, outcome))
                overall.update()
    # a suite's sweep plot is named after its world (two worlds may sweep one parameter), a command line's after the parameter
    sweeps = {world.name if args.suite else world.sweep_param: (world.sweep_param, world.specs) for world in all_worlds
              if world.sweep_param}  # fmt: skip
    # the profile compares like with like: the suite's seeds (a call's --seeds may name a part of them)
    profile, profile_seeds = args.profile or suite.get("profile"), suite["seeds"] if args.suite else seeds
    print(report(out, specs, report_algos, report_seeds, command, sweeps, header, args.reference, profile, profile_seeds))


if __name__ == "__main__":
    main()
