"""The experiment campaign behind Tables 2–7: the plan of runs, their result files, and the runner.

A run is (table, configuration, seed) with a stable name, e.g. `table6/soft_dm-s1`.
It trains through `fbn_keras.train` into a run folder outside the repository
(`$FBN_CACHE/experiments/<config and data digest>`; a killed run resumes from its
checkpoint, and tables that need the same network share the folder), scores the
test splits with `fbn_keras.evaluate` (Table 7 also fine-tunes a compound head,
`fbn_keras.finetune_compound`), and writes one small JSON into
`notebooks/results/<table>/<run>.json` (tmp file + rename): the resolved config,
the git commit, the data fingerprint, steps, wall time, host and every metric.

    python -m fbn_keras.experiments --list                       # the plan and what exists
    python -m fbn_keras.experiments run --seeds 0,1,2            # everything missing
    python -m fbn_keras.experiments run --table table6 --max-runs 2

A result whose config or data fingerprint no longer matches the plan is stale:
listed as such, never counted, and replaced only with `--replace-stale`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from fbn_keras.config import BACKBONES, COUPLINGS, Config, preset

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "notebooks" / "results"
#: The files whose last commit dates the code that made a result (the notebooks compare it).
CODE_PATHS: tuple[str, ...] = ("fbn_keras", "tfrecords_tools")
TABLES: tuple[str, ...] = ("table2", "tables3_5", "table6", "table7", "control")
RESULT_FORMAT = 1
TIMING_FILE = "experiment_timing.json"


@dataclasses.dataclass(frozen=True)
class RunPreset:
    """How a campaign trains: the config preset and overrides, the test-bed scale, Table 7's fine-tuning."""

    config_preset: str
    overrides: dict[str, Any]
    scale: float
    finetune_steps: int
    finetune_batch: int


#: `small`: the config preset `small` (96x96, width 1/8, 900 steps), on the full synthetic test-bed.
#: `tiny`: a smoke setting for CI (32x32, 3 steps, a tenth of the test-bed): it checks the plumbing only.
#: Both: no validation during training (the test splits are scored at the end).
RUN_PRESETS: dict[str, RunPreset] = {
    "small": RunPreset("small", {"eval_every": 0}, scale=1.0, finetune_steps=300, finetune_batch=32),
    "tiny": RunPreset("tiny", {"eval_every": 0, "image_size": 32, "steps": 3, "checkpoint_every": 2},
                      scale=0.1, finetune_steps=2, finetune_batch=8),
}


@dataclasses.dataclass(frozen=True)
class Run:
    """One planned run: its table, its label in that table, the config fields it sets, and its seed."""

    table: str
    label: str
    fields: tuple[tuple[str, Any], ...]
    seed: int
    finetune: bool = False     # Table 7: also fine-tune a compound head

    @property
    def name(self) -> str:
        safe = self.label.replace("+", "_").replace(", ", "-").replace(" ", "_")
        return f"{safe}-s{self.seed}"

    @property
    def id(self) -> str:
        return f"{self.table}/{self.name}"

    def config(self, run_preset: RunPreset) -> Config:
        return preset(run_preset.config_preset, **{**run_preset.overrides, **dict(self.fields), "seed": self.seed})


def _labels(table: str) -> list[tuple[str, dict[str, Any], bool]]:
    """(label, config fields, fine-tune?) of every configuration a table needs."""
    if table == "table2":
        return [(bb, {"backbone": bb, "coupling": "none"}, False) for bb in BACKBONES]
    if table == "tables3_5":
        return ([(f"single {t}", {"tasks": t, "coupling": "none"}, False) for t in ("va", "expr", "au")]
                + [("multi-task", {"coupling": "none"}, False)])
    if table == "table6":
        return [(c, {"coupling": c}, False) for c in COUPLINGS]
    if table == "table7":
        return [(c, {"coupling": c}, True) for c in ("none", "coann+soft+dm")]
    if table == "control":
        return [("none", {"coupling": "none"}, False),
                ("soft+dm, cognitive", {"coupling": "soft+dm", "relation": "cognitive"}, False),
                ("soft+dm, affwild2", {"coupling": "soft+dm", "relation": "affwild2"}, False)]
    raise ValueError(f"Unknown table {table!r}; expected one of {TABLES}")


def plan(seeds: Sequence[int] = (0, 1, 2), tables: Optional[Sequence[str]] = None) -> list[Run]:
    """Every run of `tables` (default all) for each seed, in table order then seed order."""
    return [Run(t, label, tuple(sorted(fields.items())), seed, ft)
            for t in (tables or TABLES) for seed in seeds for label, fields, ft in _labels(t)]


# === Provenance ===

def git_state(paths: Sequence[str] = CODE_PATHS, repo: Path = REPO) -> dict[str, Any]:
    """{"commit": HEAD, "code_commit": last commit touching `paths`, "dirty": uncommitted changes there}."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""
    return {"commit": git("rev-parse", "HEAD") or None,
            "code_commit": git("log", "-1", "--format=%H", "--", *paths) or None,
            "dirty": bool(git("status", "--porcelain", "--", *paths))}


def data_fingerprint(data_dir: str | Path) -> dict[str, Any]:
    """Records per database and split from the folder's manifest, the synthetic generator version, a digest."""
    from fbn_keras import testbed
    from fbn_keras.manifest import Manifest

    m = Manifest.load(data_dir)
    counts = {db: {split: int(entry.get("records", 0)) for split, entry in sorted(m.splits(db).items())}
              for db in m.databases()}
    synthetic = m.build_complete(testbed.BUILD)
    body = {"counts": counts, "generator": testbed.VERSION if synthetic else None}
    body["digest"] = hashlib.sha1(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]
    return body


def host_info() -> dict[str, Any]:
    """The machine in a few words: OS, Python, TensorFlow, Keras, CPU count and accelerators."""
    import keras
    import tensorflow as tf

    return {"platform": platform.platform(), "python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "cpus": os.cpu_count(),
            "gpus": [d.name for d in tf.config.list_physical_devices("GPU")]}


def _field_defaults() -> dict[str, Any]:
    return {f.name: f.default for f in dataclasses.fields(Config)}


def _non_default(config: dict[str, Any]) -> dict[str, Any]:
    """The fields of `config` that differ from `Config`'s defaults: a field added later with a default that
    keeps the old behaviour changes neither a run's folder nor the status of its committed result."""
    defaults = _field_defaults()
    return {k: v for k, v in config.items() if k not in defaults or v != defaults[k]}


def run_folder(runs_dir: Path, config: Config, fingerprint: dict[str, Any]) -> Path:
    """The run folder of (config, data): shared by every table that needs this network."""
    blob = json.dumps({"config": _non_default(config.to_dict()), "data": fingerprint["digest"]}, sort_keys=True)
    digest = hashlib.sha1(blob.encode()).hexdigest()[:12]
    return runs_dir / f"{config.backbone}-{config.tasks.replace('+', '')}-{config.coupling.replace('+', '_')}-{digest}"


# === Result files ===

def result_path(results_dir: Path, run: Run) -> Path:
    return Path(results_dir) / run.table / f"{run.name}.json"


def write_json(path: Path, body: dict) -> Path:
    """Write atomically: a temporary file beside `path`, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(body, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def load_results(results_dir: str | Path, table: Optional[str] = None) -> list[dict]:
    """Every result JSON under `results_dir` (of one table when given), sorted by path."""
    root = Path(results_dir)
    pattern = f"{table}/*.json" if table else "*/*.json"
    return [json.loads(p.read_text()) for p in sorted(root.glob(pattern))]


def status(run: Run, run_preset: RunPreset, results_dir: Path, fingerprint: Optional[dict] = None) -> str:
    """'done', 'missing' or 'stale: <why>' (config, or data when `fingerprint` is known, differs)."""
    path = result_path(results_dir, run)
    if not path.exists():
        return "missing"
    found = json.loads(path.read_text())
    want = run.config(run_preset).to_dict()
    # A field the result predates is not compared: a field is added with a default (and preset values)
    # that keep the networks trained before it unchanged (the sequence models' fields, say).
    had = found.get("config", {})
    diff = sorted(k for k in set(want) | set(had) if k in had and want.get(k) != had.get(k))
    if diff:
        return f"stale: config differs in {', '.join(diff)}"
    if fingerprint is not None and found.get("data", {}).get("digest") != fingerprint["digest"]:
        return "stale: data fingerprint differs"
    return "done"


# === Running ===

def execute(run: Run, run_preset: RunPreset, data_dir: Path, runs_dir: Path, results_dir: Path,
            fingerprint: dict[str, Any], preset_name: str) -> Path:
    """Train (or resume, or reuse) the run's network, score it, write its result JSON; returns the JSON path."""
    from fbn_keras import evaluate, finetune_compound, runs, train
    from fbn_keras.manifest import locked

    config = run.config(run_preset)
    out = run_folder(runs_dir, config, fingerprint)
    runs_dir.mkdir(parents=True, exist_ok=True)
    with locked(runs_dir, f".{out.name}.lock"):     # two runners wanting one network: one trains it
        if (out / train.MODEL_FILE).exists():
            model = runs.load_run(out / train.MODEL_FILE)[0]
        else:
            t0 = time.perf_counter()
            prior = json.loads((out / TIMING_FILE).read_text())["train_s"] if (out / TIMING_FILE).exists() else 0.0
            log.info("%s: training in %s", run.id, out)
            model = train.train(config, data_dir, out, resume=True, verbose=True).model
            write_json(out / TIMING_FILE, {"train_s": prior + time.perf_counter() - t0})
    train_s = json.loads((out / TIMING_FILE).read_text())["train_s"] if (out / TIMING_FILE).exists() else None
    t0 = time.perf_counter()
    metrics = evaluate.evaluate_model(model, data_dir, "test", au_threshold=config.au_threshold)
    finetuned = {}
    if run.finetune:
        for database in finetune_compound.compound_databases(data_dir):
            result = finetune_compound.finetune(
                model, data_dir, database, steps=run_preset.finetune_steps, batch_size=run_preset.finetune_batch,
                learning_rate=config.learning_rate, seed=run.seed, test_split="test")
            finetuned[database] = result.metrics
    body = {"format": RESULT_FORMAT, "table": run.table, "run": run.name, "label": run.label, "seed": run.seed,
            "preset": preset_name, "config": config.to_dict(), "git": git_state(), "data": fingerprint,
            "steps": config.steps, "finetune_steps": run_preset.finetune_steps if run.finetune else None,
            "wall_s": {"train": train_s, "evaluate": time.perf_counter() - t0}, "host": host_info(),
            "metrics": metrics, "finetuned": finetuned or None,
            "command": f"python -m fbn_keras.experiments run --preset {preset_name} --table {run.table} "
                       f"--seeds {run.seed}"}
    return write_json(result_path(results_dir, run), body)


def run_all(runs: Sequence[Run], preset_name: str, data_dir: Optional[Path] = None,
            runs_dir: Optional[Path] = None, results_dir: Path = RESULTS_DIR, max_runs: Optional[int] = None,
            replace_stale: bool = False) -> list[Path]:
    """Execute the runs of `runs` that are missing (and stale ones with `replace_stale`), at most `max_runs`."""
    from fbn_keras import testbed

    run_preset = RUN_PRESETS[preset_name]
    data_dir = Path(data_dir) if data_dir else testbed.ensure_synthetic_testbed(scale=run_preset.scale)
    runs_dir = Path(runs_dir) if runs_dir else testbed.cache_root() / "experiments"
    fingerprint = data_fingerprint(data_dir)
    written: list[Path] = []
    for run in runs:
        if max_runs is not None and len(written) >= max_runs:
            break
        state = status(run, run_preset, results_dir, fingerprint)
        if state == "done" or (state.startswith("stale") and not replace_stale):
            if state != "done":
                log.warning("%s is %s; kept (pass --replace-stale to rerun it)", run.id, state)
            continue
        t0 = time.perf_counter()
        written.append(execute(run, run_preset, data_dir, runs_dir, results_dir, fingerprint, preset_name))
        log.info("%s: done in %.0f s -> %s", run.id, time.perf_counter() - t0, written[-1])
    return written


def listing(runs: Sequence[Run], preset_name: str, results_dir: Path = RESULTS_DIR,
            data_dir: Optional[Path] = None) -> str:
    """The plan as text: one line per run with its status, then the counts."""
    fingerprint = data_fingerprint(data_dir) if data_dir else None
    lines, counts = [], {"done": 0, "missing": 0, "stale": 0}
    for run in runs:
        state = status(run, RUN_PRESETS[preset_name], results_dir, fingerprint)
        counts[state.split(":")[0]] += 1
        lines.append(f"{run.id:<40} {state}")
    lines.append(f"{len(runs)} runs: {counts['done']} done, {counts['missing']} missing, {counts['stale']} stale"
                 + ("" if fingerprint else " (data fingerprint not checked: pass --data-dir)"))
    return "\n".join(lines)
