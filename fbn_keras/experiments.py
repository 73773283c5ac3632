"""The experiments behind the notebooks of the paper's Tables 2–7: our numbers beside the paper's.

Two ways to our numbers. The campaign (`python -m fbn_keras.experiments --list | run`, see
`fbn_keras.campaign`) trains every table's networks for several seeds and commits one result JSON
per run; `render` turns those results into the tables (mean, sd over seeds, the paper's number),
the verdicts on the paper's claims (`fbn_keras.verdicts`) and their provenance. That is what the
notebooks show by default. With `TRAIN = True` a notebook trains from scratch instead, one seed:
it picks a `Setup` (data folder, preset, steps) and calls one table
function; each trains what it needs through `fbn_keras.train`, scores it with
`fbn_keras.evaluate` (and `fbn_keras.finetune_compound` for Table 7), and
returns a DataFrame whose rows are the paper's (database, metric) columns and
whose columns are (method, "ours" | "paper"). Runs are cached by config and
data folder, so the notebooks share the models they have in common (the
VGG-FACE network without coupling is in Tables 2–7 alike).

Example:
    s = setup()                                  # synthetic test-bed, tiny preset
    print(table6(s).round(3))
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import shutil
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from fbn_keras import paper_results, taxonomy
from fbn_keras.config import BACKBONES, COUPLINGS, Config, preset

log = logging.getLogger(__name__)

Key = paper_results.Key
OURS, SD, PAPER = "ours", "sd", "paper"

#: Tables 3–5 compare the single-task networks with FaceBehaviorNet trained
#: without coupling: the paper's FaceBehaviorNet numbers there are Table 6's
#: "no coupling loss" row (and Table 2's VGG-FACE column).
MULTI_TASK_COUPLING = "none"
#: Table 7's "all coupling losses" (main paper): co-annotation, soft co-annotation
#: and distribution matching. The journal's Table VI uses soft+dm instead.
ALL_COUPLINGS = "coann+soft+dm"
SINGLE_TASK = "VGG-FACE single task"
FBN = "FaceBehaviorNet"
TABLE7_METHODS: dict[str, tuple[str, str]] = {   # row → (coupling of the network, zero-shot | fine-tuned)
    "zero-shot, no coupling loss": ("none", "zero-shot"),
    "zero-shot, all coupling losses": (ALL_COUPLINGS, "zero-shot"),
    "fine-tuned, no coupling loss": ("none", "fine-tuned"),
    "fine-tuned, all coupling losses": (ALL_COUPLINGS, "fine-tuned"),
}
TABLE7_ROWS: tuple[Key, ...] = (("emotionet", "compound_f1"), ("emotionet", "compound_uar"),
                                ("rafdb", "compound_mean_diag"))
#: Default scale of the synthetic test-bed for the notebooks (a tenth of the full one).
NOTEBOOK_SCALE = 0.1
#: Config fields every table run sets unless told otherwise: no periodic validation
#: during training (each table scores its networks on the test splits at the end),
#: and one checkpoint, at the end (an interrupted table run retrains from scratch).
RUN_DEFAULTS: dict[str, Any] = {"eval_every": 0, "checkpoint_every": 10**9}


# === Set-up and cached runs ===

@dataclasses.dataclass
class Setup:
    """What every table of one notebook run shares: data, preset and training length, and where runs go."""

    data_dir: Path
    runs_dir: Path
    preset: str = "tiny"
    steps: Optional[int] = None        # None: the preset's
    finetune_steps: int = 60
    finetune_batch: int = 16
    seed: int = 0
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)

    def config(self, **fields: Any) -> Config:
        """The preset with this set-up's steps, seed and overrides, then `fields`."""
        base: dict[str, Any] = {"seed": self.seed, **self.overrides}
        if self.steps is not None:
            base["steps"] = self.steps
        return preset(self.preset, **{**base, **fields})


def setup(data_dir: Optional[str | Path] = None, preset_name: str = "tiny", steps: Optional[int] = None,
          runs_dir: Optional[str | Path] = None, scale: float = NOTEBOOK_SCALE, seed: int = 0,
          finetune_steps: int = 60, **overrides: Any) -> Setup:
    """A Setup; without `data_dir`, the synthetic test-bed at `scale` (built on first use)."""
    from fbn_keras import testbed

    if data_dir is None:
        data_dir = testbed.ensure_synthetic_testbed(scale=scale, seed=seed)
    runs = Path(runs_dir) if runs_dir is not None else testbed.cache_root() / "experiments"
    overrides = {**RUN_DEFAULTS, **overrides}
    preset(preset_name, **overrides)   # fail here, not deep in a table, on a bad preset or field
    return Setup(Path(data_dir), runs, preset_name, steps, finetune_steps, seed=seed, overrides=dict(overrides))


def run_name(config: Config, data_dir: Path) -> str:
    """A readable, unique folder name for (config, data): backbone, tasks, coupling and a hash of the rest."""
    blob = json.dumps({"config": config.to_dict(), "data": str(Path(data_dir).resolve())}, sort_keys=True)
    digest = hashlib.sha1(blob.encode()).hexdigest()[:10]
    return f"{config.backbone}-{config.tasks.replace('+', '')}-{config.coupling.replace('+', '_')}-{digest}"


def trained_model(s: Setup, config: Config):
    """The model of `config` on `s.data_dir`: loaded from the cache, else trained (an interrupted run resumes)."""
    from fbn_keras import runs, train
    from fbn_keras.manifest import locked

    out = s.runs_dir / run_name(config, s.data_dir)
    with locked(s.runs_dir, f".{out.name}.lock"):   # two notebooks asking for one run: one trains
        if not (out / train.MODEL_FILE).exists():
            log.info("training %s", out.name)
            return train.train(config, s.data_dir, out, resume=True, verbose=False).model
    return runs.load_run(out / train.MODEL_FILE)[0]


def scores(s: Setup, config: Config, split: str = "test") -> dict[str, dict[str, float]]:
    """`evaluate.evaluate_model` of `config`'s model on `split`: {database: {metric: value}}, cached as JSON."""
    from fbn_keras import evaluate
    from fbn_keras.manifest import locked

    out = s.runs_dir / run_name(config, s.data_dir)
    path = out / f"eval_{split}.json"
    model = None
    if not path.exists():
        model = trained_model(s, config)
    with locked(s.runs_dir, f".{out.name}.lock"):
        if not path.exists():
            results = evaluate.evaluate_model(model, s.data_dir, split, au_threshold=config.au_threshold)
            evaluate.write_results(results, out, split, config)
    return json.loads(path.read_text())["results"]


def finetuned_scores(s: Setup, config: Config, split: str = "test") -> dict[str, dict[str, float]]:
    """Few-shot scores of `config`'s model fine-tuned on each compound database: {database: metrics}, cached."""
    from fbn_keras import finetune_compound
    from fbn_keras.manifest import locked

    out = s.runs_dir / run_name(config, s.data_dir)
    found: dict[str, dict[str, float]] = {}
    for database in finetune_compound.compound_databases(s.data_dir):
        path = out / f"finetune_{database}_{s.finetune_steps}steps_{split}.json"
        if not path.exists():
            model = trained_model(s, config)
            with locked(s.runs_dir, f".{out.name}.lock"):
                if not path.exists():
                    result = finetune_compound.finetune(
                        model, s.data_dir, database, steps=s.finetune_steps, batch_size=s.finetune_batch,
                        learning_rate=config.learning_rate, seed=s.seed, test_split=split)
                    path.write_text(json.dumps(result.metrics, indent=2, sort_keys=True) + "\n")
        found[database] = json.loads(path.read_text())
    return found


# === Our results in the paper's keys ===

def paper_keys(results: Mapping[str, Mapping[str, float]]) -> dict[Key, float]:
    """{database: {metric: v}} → {(paper database, metric): v}: synthetic names → real ones, counts dropped.

    Compound sets are named after their database in Table 7 ("rafdb", "emotionet").
    """
    out: dict[Key, float] = {}
    for name, metrics in results.items():
        real = (taxonomy.SYNTHETIC_OF.get(name) or taxonomy.SYNTHETIC_VIDEO_OF.get(name)
                or taxonomy.SYNTHETIC_INTENSITY_OF.get(name, name))
        real = real[: -len("-compound")] if real.endswith("-compound") else real
        for metric, value in metrics.items():
            if not metric.startswith("n_") and isinstance(value, (int, float)):   # not "unit": "frame"
                out[(real, metric)] = float(value)
    return out


def _task_of(metric: str) -> str:
    return "va" if metric.startswith("ccc") else metric.split("_", 1)[0]


def comparison(ours: Mapping[str, Mapping[Key, float]], paper: Mapping[str, Mapping[Key, float]],
               rows: Sequence[Key], methods: Sequence[str],
               sd: Optional[Mapping[str, Mapping[Key, float]]] = None) -> pd.DataFrame:
    """Rows (database, metric), columns (method, ours | paper), or (method, ours | sd | paper) when `sd`
    (over seeds) is given; NaN where a number does not exist."""
    sources = (OURS, SD, PAPER) if sd is not None else (OURS, PAPER)
    index = pd.MultiIndex.from_tuples(list(rows), names=["database", "metric"])
    columns = pd.MultiIndex.from_tuples([(m, src) for m in methods for src in sources],
                                        names=["method", "source"])
    frame = pd.DataFrame(np.nan, index=index, columns=columns)
    for m in methods:
        for key in rows:
            frame.loc[key, (m, OURS)] = ours.get(m, {}).get(key, np.nan)
            frame.loc[key, (m, PAPER)] = paper.get(m, {}).get(key, np.nan)
            if sd is not None:
                frame.loc[key, (m, SD)] = sd.get(m, {}).get(key, np.nan)
    return frame


def _rows_of(*tables: Mapping[Key, float]) -> list[Key]:
    rows: list[Key] = []
    for t in tables:
        rows += [k for k in t if k not in rows]
    return rows


# === The tables ===

def table2(s: Setup) -> pd.DataFrame:
    """Table 2: VGG-FACE vs ResNet-50 vs DenseNet-121 in the multi-task framework (no coupling)."""
    ours = {bb: paper_keys(scores(s, s.config(backbone=bb, coupling=MULTI_TASK_COUPLING))) for bb in BACKBONES}
    return comparison(ours, paper_results.TABLE2, _rows_of(paper_results.TABLE2["vgg_face"]), BACKBONES)


def tables3_5(s: Setup) -> dict[str, pd.DataFrame]:
    """Tables 3 (VA), 4 (expressions), 5 (AUs): the single-task network of each task vs FaceBehaviorNet."""
    multi = paper_keys(scores(s, s.config(coupling=MULTI_TASK_COUPLING)))
    out = {}
    for name, table, task in (("Table 3", paper_results.TABLE3, "va"), ("Table 4", paper_results.TABLE4, "expr"),
                              ("Table 5", paper_results.TABLE5, "au")):
        single = paper_keys(scores(s, s.config(tasks=task, coupling="none")))
        single = {k: v for k, v in single.items() if _task_of(k[1]) == task}
        rows = _rows_of(table[SINGLE_TASK], table[FBN])
        out[name] = comparison({SINGLE_TASK: single, FBN: multi}, table, rows, (SINGLE_TASK, FBN))
    return out


def table6(s: Setup) -> pd.DataFrame:
    """Table 6: FaceBehaviorNet trained with each of the seven coupling configurations."""
    ours = {c: paper_keys(scores(s, s.config(coupling=c))) for c in COUPLINGS}
    return comparison(ours, paper_results.TABLE6, paper_results.TABLE6_COLUMNS, COUPLINGS)


def table7(s: Setup) -> pd.DataFrame:
    """Table 7: compound expressions, zero-shot (eq. 10) and fine-tuned, without and with all coupling losses."""
    ours: dict[str, dict[Key, float]] = {}
    for method, (coupling, mode) in TABLE7_METHODS.items():
        config = s.config(coupling=coupling)
        found = scores(s, config) if mode == "zero-shot" else finetuned_scores(s, config)
        ours[method] = {k: v for k, v in paper_keys(found).items() if k[1].startswith("compound_")}
    return comparison(ours, paper_results.TABLE7, TABLE7_ROWS, tuple(TABLE7_METHODS))


# === What our numbers say about the paper's claims ===

def _wins(frame: pd.DataFrame, better: str, worse: str, strict: bool = True) -> tuple[int, int]:
    """(rows where `better` > `worse` (>= unless `strict`) in our numbers, rows where both exist)."""
    a, b = frame[(better, OURS)], frame[(worse, OURS)]
    both = a.notna() & b.notna()
    ahead = a[both] > b[both] if strict else a[both] >= b[both]
    return int(ahead.sum()), int(both.sum())


#: A score counts as clearly above chance from this multiple of chance on.
CLEAR_OF_CHANCE = 1.5


def claims(table: str, frame: pd.DataFrame, chance: Optional[float] = None) -> list[str]:
    """One line per claim the paper makes with this table, and whether our numbers agree."""
    lines: list[str] = []
    methods = list(dict.fromkeys(frame.columns.get_level_values(0)))
    if table == "Table 2":
        for other in methods[1:]:
            w, n = _wins(frame, methods[0], other)
            lines.append(f"Paper: VGG-FACE beats {other} on every column. Ours: VGG-FACE > {other} on {w}/{n}.")
    elif table in ("Table 3", "Table 4", "Table 5"):
        w, n = _wins(frame, FBN, SINGLE_TASK)
        lines.append(f"Paper: FaceBehaviorNet beats the single-task network on every column. "
                     f"Ours: FaceBehaviorNet > single task on {w}/{n}.")
    elif table == "Table 6":
        for c in methods[1:]:
            w, n = _wins(frame, c, "none", strict=False)   # the paper's claim: "better (or in the worst case equal)"
            lines.append(f"Paper: '{c}' >= no coupling on every column. Ours: on {w}/{n}.")
        means = {c: float(frame[(c, OURS)].mean()) for c in methods}
        best = max(means, key=lambda c: -math.inf if math.isnan(means[c]) else means[c])
        lines.append(f"Paper: 'soft+dm' is best. Ours: best mean over our columns is '{best}' "
                     f"({means[best]:.3f}; 'soft+dm' {means['soft+dm']:.3f}, 'none' {means['none']:.3f}).")
    elif table == "Table 7":
        if chance is not None:
            for m in methods:
                v = frame.loc[("rafdb", "compound_mean_diag"), (m, OURS)]
                verdict = "clearly above chance" if v > CLEAR_OF_CHANCE * chance else "at chance level"
                lines.append(f"RAF-DB mean diagonal, {m}: {v:.3f} vs chance {chance:.3f} ({verdict}).")
        for coupling in ("no coupling loss", "all coupling losses"):
            w, n = _wins(frame, f"fine-tuned, {coupling}", f"zero-shot, {coupling}")
            lines.append(f"Paper: fine-tuning beats zero-shot ({coupling}). Ours: on {w}/{n}.")
        for mode in ("zero-shot", "fine-tuned"):
            w, n = _wins(frame, f"{mode}, all coupling losses", f"{mode}, no coupling loss")
            lines.append(f"Paper: all coupling losses beat none ({mode}). Ours: on {w}/{n}.")
    else:
        raise ValueError(f"Unknown table {table!r}")
    return lines


def show(frame: pd.DataFrame, digits: int = 3) -> str:
    """The table as text, NaN as '-' (a number the paper does not report, or a database we do not have)."""
    return frame.round(digits).to_string(na_rep="-")


def save(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write the table as CSV (two header rows: method, source)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path)
    return path


def load(path: str | Path) -> pd.DataFrame:
    """Read a table written by `save`."""
    return pd.read_csv(path, header=[0, 1], index_col=[0, 1])


def clear_runs(s: Setup) -> None:
    """Remove every cached run of this set-up's runs folder (the next table retrains)."""
    shutil.rmtree(s.runs_dir, ignore_errors=True)


# === Committed results (fbn_keras.campaign) → tables, verdicts, provenance ===

#: Result tables (campaign.TABLES) → the tables they fill, in the verdicts' names.
FILLS: dict[str, tuple[str, ...]] = {"table2": ("table2",), "tables3_5": ("table3", "table4", "table5"),
                                     "table6": ("table6",), "table7": ("table7",), "control": ("control",),
                                     "video2": ("video2",), "video3": ("video3",), "video4": ("video4",),
                                     "video5": ("video5",), "mtanet": ("mtanet",),
                                     "facernet": ("facernet2", "facernet3"), "gan": ("gan",),
                                     "attention": ("attention10", "attention11")}
#: MTANet's Table I: Aff-Wild2's four columns; our runs by backbone, and eq. 5's weighting on SENet-50
#: (the paper reports no such ablation: no paper number).
MTANET_ROWS: tuple[Key, ...] = tuple(("affwild2", m) for m in ("ccc_v", "ccc_a", "au_f1", "expr_f1"))
MTANET_METHODS: tuple[str, ...] = ("se_resnet50", "resnext50", "resnext50_cbam", "se_resnet50, uncertainty")
#: FaceRNET's Tables 2-3: Pearson rho per reaction and their mean (the paper reports the mean only).
FACERNET_ROWS: tuple[Key, ...] = tuple(("hume-reaction", f"pearson_{r}") for r in (*taxonomy.REACTIONS, "mean"))
#: Our method → the paper's row: Table 2 by the REC representations fed to the GRU, Table 3 by ablation
#: (the mean predictor is ours, no paper row).
FACERNET2_METHODS: dict[str, str] = {"features va": "va", "features expr": "expr", "features au": "au",
                                     "FaceRNET": "va+expr+au"}
FACERNET3_METHODS: dict[str, Optional[str]] = {"FaceRNET": "FaceRNET", "no mask": "FaceRNET w/o Mask & Routing",
                                               "no GRU": None, "mean predictor": None}
#: The generation paper's Tables X-XI (VGGFACE-GRU-attention): CCC V, CCC A, total accuracy, weighted and
#: unweighted F1; our runs (campaign.ATTENTION_ROWS) → the paper's rows. Table X by eq. 6's (alpha, beta) ("no
#: attention" is ours: no paper row), Table XI by VA loss, expression loss and the learning rate our runs use
#: (campaign.ATTENTION_LR).
ATTENTION_ROWS: tuple[Key, ...] = paper_results.ATTENTION_KEYS
ATTENTION10_METHODS: dict[str, Optional[str]] = {"only expressions (0, 1)": "(0, 1)", "only VA (1, 0)": "(1, 0)",
                                                 "attention": "(0.5, 0.5)", "no attention": None}
ATTENTION11_METHODS: dict[str, str] = {"attention": "CCC, CE, 1e-3",
                                       "MSE after softmax": "CCC, MSE after softmax, 1e-3",
                                       "MSE before softmax": "CCC, MSE before softmax, 1e-3",
                                       "MSE + CE": "MSE, CE, 1e-3"}
#: A single-task run of Table X has one trained head: its other task's numbers are left out ("-" in the paper).
ATTENTION_SINGLE: dict[str, str] = {"only expressions (0, 1)": "expr", "only VA (1, 0)": "va"}
#: The generation paper's Table IX: D's five columns on the test-bed's stand-in for Aff-Wild's AU part
#: (`paper_results.GAN_TESTBED_DATABASE`); the paper's five rows, then our semi-supervised pair (no paper
#: numbers): D with and without the fake class when few images are labelled (campaign.GAN_ROWS).
GAN_ROWS: tuple[Key, ...] = tuple((paper_results.GAN_TESTBED_DATABASE, m)
                                  for m in ("ccc_v", "ccc_a", "au_f1_weighted", "au_f1_macro", "au_total_acc"))
GAN_METHODS: tuple[str, ...] = ("only VA, CCC", "only VA, MSE", "only AU", "VA+AU, CCC+CE", "VA+AU, MSE+CE",
                                "VA+AU, scarce labels", "VA+AU, no fake class, scarce labels")
#: The journal's video tables: (paper numbers by method, rows, our methods).
_VIDEO_ROWS: dict[str, tuple[Key, ...]] = {
    "video2": tuple(("affwild", m) for m in ("ccc_valence", "ccc_arousal", "ccc_mean", "mse_valence", "mse_arousal")),
    "video3": tuple(("omg", m) for m in ("ccc_valence", "ccc_arousal", "ccc_mean")),
    "video4": tuple(("affwild2", m) for m in ("ccc_valence", "ccc_arousal", "ccc_mean", "expr_f1", "expr_acc",
                                              "expr_total", "au_f1", "au_acc", "au_total")),
}
_VIDEO_METHODS: dict[str, tuple[str, ...]] = {
    "video2": ("cnn", "vgg-face-lstm", "affwildnet", "cnn, control", "affwildnet, control"),
    "video3": ("cnn1rnn", "cnn3rnn", "decision-level fusion", "fusion-fc", "fusion-rnn"),
    "video4": ("mt-vgg", "mt-vgg-gru", "av-mt-vgg-gru"),
}
#: Table (verdicts' name) → (paper numbers by method, rows, our methods, CSV file).
_SINGLE = {"table3": "va", "table4": "expr", "table5": "au"}


def _layout(table: str) -> tuple[Mapping[str, Mapping[Key, float]], list[Key], list[str]]:
    if table == "table2":
        return paper_results.TABLE2, list(paper_results.TABLE2["vgg_face"]), list(BACKBONES)
    if table in _SINGLE:
        paper = {"table3": paper_results.TABLE3, "table4": paper_results.TABLE4, "table5": paper_results.TABLE5}[table]
        return paper, _rows_of(paper[SINGLE_TASK], paper[FBN]), [SINGLE_TASK, FBN]
    if table == "table6":
        return paper_results.TABLE6, list(paper_results.TABLE6_COLUMNS), list(COUPLINGS)
    if table == "table7":
        return paper_results.TABLE7, list(TABLE7_ROWS), list(TABLE7_METHODS)
    if table == "control":
        paper = {"none": paper_results.TABLE6["none"], "soft+dm, cognitive": paper_results.TABLE6["soft+dm"]}
        return paper, list(paper_results.TABLE6_COLUMNS), ["none", "soft+dm, cognitive", "soft+dm, affwild2"]
    if table in _VIDEO_ROWS:
        paper = {"video2": paper_results.JOURNAL_TABLE2, "video3": paper_results.JOURNAL_TABLE3,
                 "video4": paper_results.JOURNAL_TABLE4}[table]
        return paper, list(_VIDEO_ROWS[table]), list(_VIDEO_METHODS[table])
    if table == "mtanet":
        return paper_results.MTANET_TABLE1, list(MTANET_ROWS), list(MTANET_METHODS)
    if table == "gan":
        return paper_results.gan_table9_on(), list(GAN_ROWS), list(GAN_METHODS)
    if table in ("attention10", "attention11"):
        names, paper = ((ATTENTION10_METHODS, paper_results.ATTENTION_TABLE10) if table == "attention10" else
                        (ATTENTION11_METHODS, paper_results.ATTENTION_TABLE11))
        return ({ours: paper[row] for ours, row in names.items() if row is not None}, list(ATTENTION_ROWS),
                list(names))
    if table in ("facernet2", "facernet3"):
        names, paper = ((FACERNET2_METHODS, paper_results.FACERNET_TABLE2) if table == "facernet2" else
                        (FACERNET3_METHODS, paper_results.FACERNET_TABLE3))
        return ({ours: paper[row] for ours, row in names.items() if row is not None}, list(FACERNET_ROWS),
                list(names))
    raise ValueError(f"Unknown table {table!r}")


def _difference(scores: Mapping[int, Mapping[Key, float]], minus: Mapping[int, Mapping[Key, float]],
                keys: Sequence[Key], as_key: Optional[Key] = None) -> dict[int, dict[Key, float]]:
    """Per seed, `scores` − `minus` on `keys` (seeds both have), keyed as `as_key` when given (one key)."""
    out: dict[int, dict[Key, float]] = {}
    for seed in sorted(set(scores) & set(minus)):
        for k in keys:
            if k in scores[seed] and k in minus[seed]:
                out.setdefault(seed, {})[as_key or k] = scores[seed][k] - minus[seed][k]
    return out


def derived_scores(scores: dict[str, dict[str, dict[int, dict[Key, float]]]]) -> None:
    """Add the differences some claims compare (in place): AffWildNet minus the CNN with and without the
    context knobs (video2), and the audio stream's gain on arousal and on valence (video4)."""
    v2 = scores.get("video2", {})
    va = (("affwild", "ccc_valence"), ("affwild", "ccc_arousal"))
    if "affwildnet" in v2 and "cnn" in v2:
        v2["gain, context"] = _difference(v2["affwildnet"], v2["cnn"], va)
    if "affwildnet, control" in v2 and "cnn, control" in v2:
        v2["gain, control"] = _difference(v2["affwildnet, control"], v2["cnn, control"], va)
    v4 = scores.get("video4", {})
    if "av-mt-vgg-gru" in v4 and "mt-vgg-gru" in v4:
        for dim in ("arousal", "valence"):
            v4[f"audio gain, {dim}"] = _difference(v4["av-mt-vgg-gru"], v4["mt-vgg-gru"],
                                                   (("affwild2", f"ccc_{dim}"),), ("affwild2", "gain"))


def scores_from_results(results: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, dict[int, dict[Key, float]]]]:
    """Result JSONs → {table: {method: {seed: {(database, metric): value}}}} in the paper's keys and methods."""
    out: dict[str, dict[str, dict[int, dict[Key, float]]]] = {}

    def put(table: str, method: str, seed: int, numbers: Mapping[Key, float]) -> None:
        out.setdefault(table, {}).setdefault(method, {}).setdefault(seed, {}).update(numbers)

    for r in results:
        keys, seed, label = paper_keys(r["metrics"]), int(r["seed"]), r["label"]
        if r["table"] == "tables3_5":
            if label == "multi-task":
                for t in _SINGLE:
                    put(t, FBN, seed, keys)
            else:
                task = label.split(" ", 1)[1]
                t = next(t for t, task_of in _SINGLE.items() if task_of == task)
                put(t, SINGLE_TASK, seed, {k: v for k, v in keys.items() if _task_of(k[1]) == task})
        elif r["table"] == "table7":
            for method, (coupling, mode) in TABLE7_METHODS.items():
                if coupling == label:
                    found = keys if mode == "zero-shot" else paper_keys(r.get("finetuned") or {})
                    put("table7", method, seed, {k: v for k, v in found.items() if k[1].startswith("compound_")})
        elif r["table"] == "attention":     # Tables X and XI share the paper's best run
            task = ATTENTION_SINGLE.get(label)
            for t in FILLS["attention"]:
                put(t, label, seed, {k: v for k, v in keys.items() if task is None or _task_of(k[1]) == task})
        elif r["table"] in FILLS and len(FILLS[r["table"]]) > 1:     # FaceRNET's runs fill Tables 2 and 3
            for t in FILLS[r["table"]]:
                put(t, label, seed, keys)
        else:
            put(r["table"], label, seed, keys)
    return out


def aggregate(scores: Mapping[str, Mapping[int, Mapping[Key, float]]]) -> tuple[dict, dict, dict]:
    """({method: {key: mean}}, {method: {key: sd}}, {method: seeds}) over seeds (sd: ddof 1)."""
    from fbn_keras import verdicts

    means: dict[str, dict[Key, float]] = {}
    sds: dict[str, dict[Key, float]] = {}
    for method, by_seed in scores.items():
        keys = {k for numbers in by_seed.values() for k in numbers}
        for k in keys:
            m, s = verdicts.mean_sd([n[k] for n in by_seed.values() if k in n])
            means.setdefault(method, {})[k], sds.setdefault(method, {})[k] = m, s
    return means, sds, {m: sorted(s) for m, s in scores.items()}


def results_frame(table: str, scores: Mapping[str, Mapping[int, Mapping[Key, float]]]) -> pd.DataFrame:
    """One table from our per-seed scores: rows (database, metric), columns (method, ours | sd | paper)."""
    paper, rows, methods = _layout(table)
    means, sds, _ = aggregate(scores)
    return comparison(means, paper, rows, methods, sd=sds)


def relatedness_frame(result: Mapping[str, Any]) -> pd.DataFrame:
    """Journal Table V (right) beside ours: rows (emotion, AU) of the generator's relation (the main paper's
    Table 1) or of the paper's Aff-Wild2 table; columns: the generator's weight, our estimate from the
    training frames, and the paper's empirical Aff-Wild2 weight (NaN where a table has no such pair)."""
    weights = np.array([[np.nan if w is None else w for w in row] for row in result["weights"]], float)
    rows = []
    for e, emotion in enumerate(taxonomy.EXPRESSIONS):
        if emotion == "neutral":
            continue
        generator = taxonomy.COGNITIVE_TABLE[emotion].weights()
        paper = taxonomy.AFFWILD2_TABLE.get(emotion)
        paper = paper.weights() if paper else {}
        for au in sorted(set(generator) | set(paper)):
            k = taxonomy.AUS.index(au) if au in taxonomy.AUS else None
            rows.append(((emotion, f"AU{au}"), generator.get(au, np.nan),
                         weights[e, k] if k is not None else np.nan, paper.get(au, np.nan)))
    index = pd.MultiIndex.from_tuples([r[0] for r in rows], names=["emotion", "au"])
    columns = pd.MultiIndex.from_tuples([("generator (main paper Table 1)", "w"), ("estimated", OURS),
                                         ("Aff-Wild2 (journal Table V)", PAPER)], names=["method", "source"])
    return pd.DataFrame([r[1:] for r in rows], index=index, columns=columns)


def csv_name(table: str) -> str:
    return f"{table}.csv"


def verdict_lines(tables: Sequence[str], scores_by_table: Mapping[str, Any]) -> list[str]:
    """One line per claim of the paper about `tables` (and the control), with its verdict."""
    from fbn_keras import verdicts

    claims = [c for c in verdicts.CLAIMS + verdicts.CONTROL_CLAIMS + verdicts.VIDEO_CLAIMS + verdicts.OTHER_CLAIMS
              + verdicts.ATTENTION_CLAIMS if c.table in tables]
    return [verdicts.line(c, *verdicts.judge(c, scores_by_table)) for c in claims]


def provenance(results: Sequence[Mapping[str, Any]], data_dir: Optional[str | Path] = None) -> list[str]:
    """Where the results came from, and whether the code (last commit of the code paths) and the data
    (fingerprint of `data_dir`, when given and built) still match."""
    from fbn_keras import campaign

    if not results:
        return []
    seeds = sorted({int(r["seed"]) for r in results})
    presets = sorted({r["preset"] for r in results})
    code = sorted({r["git"].get("code_commit") or "?" for r in results})
    dirty = sum(bool(r["git"].get("dirty")) for r in results)
    minutes = sum((r["wall_s"].get("train") or 0) + (r["wall_s"].get("evaluate") or 0) for r in results) / 60
    lines = [f"{len(results)} runs, seeds {seeds}, preset {', '.join(presets)}, "
             f"{minutes:.0f} min of compute (train + evaluate, summed over runs)",
             f"made by code at commit(s) {', '.join(c[:10] for c in code)}"
             + (f" ({dirty} from a tree with uncommitted changes)" if dirty else "")]
    lines += _collapse_lines(results)
    now = campaign.git_state().get("code_commit")
    if now and code != [now]:
        lines.append(f"WARNING: the code has changed since (now {now[:10]}): rerun to refresh these numbers.")
    digests = sorted({r["data"]["digest"] for r in results})
    if data_dir is not None and (Path(data_dir) / "manifest.json").exists():
        current = campaign.data_fingerprint(data_dir)["digest"]
        if digests != [current]:
            lines.append(f"WARNING: the data fingerprint differs (results {digests}, data now {current}).")
        else:
            lines.append(f"data fingerprint {current} matches.")
    else:
        lines.append(f"data fingerprint {', '.join(digests)} (not compared: the data folder is not built here)")
    return lines


def _collapse_lines(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """What the collapse probe (`fbn_keras.collapse`) found over the results that record their draws: the
    share of draws that collapsed, the runs trained again, and a warning for a run that never recovered."""
    probed = [r for r in results if r.get("attempts")]
    if not probed:
        return []
    draws = [a for r in probed for a in r["attempts"]]
    dead = sum(bool(a["collapsed"]) for a in draws)
    redrawn = [f"{r['run']} ({len(r['attempts']) - 1})" for r in probed if len(r["attempts"]) > 1]
    lines = [f"collapse probe: {dead} of {len(draws)} draws collapsed (a trained head constant over the "
             f"validation faces, or a VA head diverged)" + (f"; trained again from a fresh draw (restarts): {', '.join(redrawn)}"
                                     if redrawn else "")
             + (f"; {len(results) - len(probed)} result(s) predate the probe" if len(probed) < len(results)
                else "")]
    still = [r["run"] for r in probed if r["attempts"][-1]["collapsed"]]
    if still:
        lines.append(f"WARNING: {', '.join(still)} collapsed at every draw: their numbers are a constant "
                     f"prediction's.")
    return lines


def render(result_table: str, results_dir: str | Path, tables_dir: Optional[str | Path] = None,
           data_dir: Optional[str | Path] = None) -> str:
    """Our committed results of one campaign table as text: provenance, each table (mean, sd over seeds,
    the paper's number), the verdicts and the command that regenerates them; writes the CSVs to
    `tables_dir` when given. With no results, says so and gives the command."""
    from fbn_keras import campaign

    results = campaign.load_results(results_dir, result_table)
    preset_name = results[0]["preset"] if results else "small"
    seeds = ",".join(str(s) for s in sorted({int(r["seed"]) for r in results})) or "0,1,2"
    command = f"python -m fbn_keras.experiments run --preset {preset_name} --table {result_table} --seeds {seeds}"
    if not results:
        shown = "notebooks/results" if Path(results_dir).resolve() == campaign.RESULTS_DIR else str(results_dir)
        return (f"No results for {result_table} in {shown}/ yet: no numbers of ours to show.\n"
                f"Make them with:\n    {command}\nthen commit {shown}/{result_table}/ and rerun this notebook.")
    if data_dir is None and results[0]["preset"] in campaign.RUN_PRESETS:   # the test-bed the runs used
        run_preset = campaign.RUN_PRESETS[results[0]["preset"]]
        if result_table in campaign.VIDEO_TABLES:
            from fbn_keras.records import synthetic_video
            scale, databases = campaign.video_testbed(run_preset, result_table)
            data_dir = synthetic_video.testbed_dir(scale=scale, databases=databases)
        elif result_table == "facernet":        # the REC's result is on the image test-bed: not one folder
            data_dir = None
        else:
            from fbn_keras import testbed
            data_dir = testbed.testbed_dir(scale=run_preset.scale)
    parts = ["\n".join(provenance(results, data_dir))]
    if result_table == "video5":
        frame = relatedness_frame(results[0])
        if tables_dir is not None:
            save(frame, Path(tables_dir) / csv_name("video5"))
        parts.append(f"=== video5 ===\n{show(frame)}")
        parts.append("Estimator (ours vs the generator's relation, over the AUs the data annotates): "
                     + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                 for k, v in results[0]["metrics"]["estimator"].items()))
        parts.append(f"Regenerate: {command}")
        return "\n\n".join(parts)
    scores = scores_from_results(results)
    derived_scores(scores)
    for table in FILLS[result_table]:
        frame = results_frame(table, scores.get(table, {}))
        if tables_dir is not None:
            save(frame, Path(tables_dir) / csv_name(table))
        parts.append(f"=== {table} ===\n{show(frame)}")
    parts.append("Verdicts (mean over seeds; not testable: gap < 2 sd, a number within 1.5x chance, "
                 "or fewer than 2 seeds):\n" + "\n".join(verdict_lines(FILLS[result_table], scores)))
    parts.append(f"Regenerate: {command}")
    return "\n\n".join(parts)


# === Command line (the campaign runner) ===

def main(argv: Optional[Sequence[str]] = None) -> int:
    """`python -m fbn_keras.experiments [--list | run] ...`: see fbn_keras.campaign."""
    import argparse

    from fbn_keras import campaign, cli, testbed

    parser = argparse.ArgumentParser(prog="python -m fbn_keras.experiments", description=campaign.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", choices=("list", "run"), default="list",
                        help="list the plan (default) or run what is missing")
    parser.add_argument("--list", action="store_true", help="same as the 'list' command")
    parser.add_argument("--table", action="append", choices=campaign.TABLES, default=None,
                        help="only this table (repeatable; default: all)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default: 0,1,2)")
    parser.add_argument("--preset", choices=sorted(campaign.RUN_PRESETS), default="small",
                        help="small: 96x96, 900 steps, full test-bed; tiny: CI smoke (default: small)")
    parser.add_argument("--run", action="append", default=None, metavar="TABLE/NAME",
                        help="only this run of the plan, e.g. table6/soft_dm-s1 (repeatable)")
    parser.add_argument("--max-runs", type=cli.positive_int, default=None, help="stop after this many runs")
    parser.add_argument("--data-dir", default=None, help="built TFRecord folder (default: the synthetic test-bed)")
    parser.add_argument("--runs-dir", default=None, help="run folders (default: $FBN_CACHE/experiments)")
    parser.add_argument("--results-dir", default=str(campaign.RESULTS_DIR), help="result JSONs (default: %(default)s)")
    parser.add_argument("--replace-stale", action="store_true", help="rerun results whose config or data changed")
    args = parser.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--seeds must be comma-separated integers. Received: {args.seeds!r}")
    runs = campaign.plan(seeds, args.table)
    if args.run:
        unknown = sorted(set(args.run) - {r.id for r in runs})
        if unknown:
            parser.error(f"--run {unknown[0]} is not in the plan of these tables and seeds (see --list)")
        runs = [r for r in runs if r.id in args.run]
    results_dir = Path(args.results_dir)
    if args.list or args.command == "list":
        data_dir = args.data_dir
        if data_dir is None:
            built = testbed.testbed_dir(scale=campaign.RUN_PRESETS[args.preset].scale)
            data_dir = built if (built / "manifest.json").exists() else None
        print(campaign.listing(runs, args.preset, results_dir, Path(data_dir) if data_dir else None))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    written = campaign.run_all(runs, args.preset, Path(args.data_dir) if args.data_dir else None,
                               Path(args.runs_dir) if args.runs_dir else None, results_dir,
                               args.max_runs, args.replace_stale)
    print(f"{len(written)} result(s) written" + "".join(f"\n  {p}" for p in written))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
