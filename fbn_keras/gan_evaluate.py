"""Score the semi-supervised GAN's discriminator as a VA regressor and AU classifier (multi-task learning and
generation paper, Section IV-D and Table IX).

    python -m fbn_keras.evaluate runs/gan --data DIR [--split test]     # a run folder of fbn_keras.train_gan

D's "va" head is scored by the CCC of valence and of arousal (and the MSE
averaged over V and A, the alternative VA loss); its "au" head, 8 logits for
AUs 1, 2, 4, 6, 12, 15, 20, 25, at sigmoid ≥ 0.5 by the weighted F1 (per-AU F1
weighted by each AU's positive support), the macro F1 (mean over AUs) and the
total accuracy (mean over every annotated image × AU decision); docs/FAITHFULNESS.md
records these readings. Each database of the data folder with VA or AU labels
on the split is scored on the labels it has: an AU that no image of the
database annotates is left out. A head that D's variant lacks has no scores.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Mapping, Optional

import numpy as np

from fbn_keras import metrics, paper_results, taxonomy
from fbn_keras.gan import GAN_AUS, GanConfig

log = logging.getLogger("fbn_keras.gan_evaluate")

#: Columns of Table IX, in its order: metric key → the table's label.
COLUMNS: dict[str, str] = {"ccc_v": "CCC-V", "ccc_a": "CCC-A", "au_f1_weighted": "F1 weighted",
                           "au_f1_macro": "F1 macro", "au_total_acc": "Total accuracy"}
#: Table IX (Aff-Wild, AU part): D's heads besides the fake class and its VA loss (the AU-only row's loss is
#: cross entropy alone) → the printed numbers (`fbn_keras.paper_results.GAN_TABLE9`, by metric).
TABLE_IX_ROWS: dict[tuple[str, str], str] = {
    ("va", "ccc"): "only VA, CCC", ("va", "mse"): "only VA, MSE", ("au", "cross entropy"): "only AU",
    ("va+au", "ccc"): "VA+AU, CCC+CE", ("va+au", "mse"): "VA+AU, MSE+CE",
}
TABLE_IX: dict[tuple[str, str], dict[str, float]] = {
    key: {metric: value for (_, metric), value in paper_results.GAN_TABLE9[row].items()}
    for key, row in TABLE_IX_ROWS.items()
}
#: What fbn_keras.train_gan writes into a run folder (its DISCRIMINATOR_FILE, and fbn_keras.train's names).
DISCRIMINATOR_FILE = "discriminator.keras"
CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"


# === Multi-label AU metrics (pure: numpy in, float out) ===

def au_f1_weighted(y_true, y_pred, mask=None) -> float:
    """Per-AU binary F1 weighted by the AU's positive support (Section IV-D's "weighted average of f1 scores of
    all AU"); each AU on its annotated rows (`mask` (N, K), as `metrics.f1_mean`), an AU with none left out.

    Every annotated AU without a positive label has weight 0; when no AU has one, the score is 0.
    """
    cols = metrics._au_columns(y_true, y_pred, mask, "au_f1_weighted")
    f1 = np.array([_binary_f1(t, p) for t, p in cols])
    support = np.array([t.sum() for t, _ in cols], np.float64)
    return float((f1 * support).sum() / support.sum()) if support.sum() > 0 else 0.0


def au_f1_macro(y_true, y_pred, mask=None) -> float:
    """Unweighted mean of the per-AU F1 ("macro f1 score", Section IV-D): `metrics.f1_mean`."""
    return metrics.f1_mean(y_true, y_pred, mask)


def au_total_accuracy(y_true, y_pred, mask=None) -> float:
    """Fraction of correct image × AU decisions over every annotated one (Table IX's "total accuracy")."""
    cols = metrics._au_columns(y_true, y_pred, mask, "au_total_accuracy")
    return float(sum(int((t == p).sum()) for t, p in cols) / sum(len(t) for t, _ in cols))


def _binary_f1(t: np.ndarray, p: np.ndarray) -> float:
    tp = int(((t == 1) & (p == 1)).sum())
    wrong = int((t != p).sum())
    return 2.0 * tp / (2.0 * tp + wrong) if tp else 0.0


# === Scoring D's outputs ===

def score_discriminator_outputs(name: str, outputs: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray],
                                au_threshold: float = 0.5) -> dict[str, float]:
    """Table IX's metrics for one database from D's stacked outputs ("va" (N, 2), "au" (N, 8) logits, either
    may be absent) and the records' labels ("va", "va_mask", "au" (N, 17), "au_mask" (N, 17))."""
    out: dict[str, float] = {}
    if "va" in outputs:
        rows = np.asarray(labels["va_mask"]).reshape(-1) > 0
        if rows.any():
            t, p = np.asarray(labels["va"], np.float64)[rows], np.asarray(outputs["va"], np.float64)[rows]
            out.update(ccc_v=metrics.ccc(t[:, 0], p[:, 0]), ccc_a=metrics.ccc(t[:, 1], p[:, 1]),
                       va_mse=float(np.mean((t - p) ** 2)), n_va=int(rows.sum()))
    if "au" in outputs:
        cols = [taxonomy.au_index(a) for a in GAN_AUS]
        mask = np.asarray(labels["au_mask"])[:, cols] > 0
        rows = mask.any(axis=1)
        if rows.any():
            mask = mask[rows]
            t = (np.asarray(labels["au"])[rows][:, cols] >= 0.5).astype(np.int64)
            # sigmoid(logit) ≥ threshold, compared on the logit side (no overflow for large logits)
            p = (np.asarray(outputs["au"], np.float64)[rows] >= np.log(au_threshold / (1.0 - au_threshold)))
            p = p.astype(np.int64)
            out.update(au_f1_weighted=au_f1_weighted(t, p, mask), au_f1_macro=au_f1_macro(t, p, mask),
                       au_total_acc=au_total_accuracy(t, p, mask), n_au=int(rows.sum()),
                       n_au_scored=int(mask.any(axis=0).sum()))
    if not out:
        log.warning("%s: no label for D's heads %s; left out", name, sorted(outputs))
    return out


def evaluate_discriminator(discriminator, data_dir: str | Path, split: str, gan_config: GanConfig, *,
                           au_threshold: float = 0.5, batch_size: int = 128,
                           skip_corrupt: Optional[bool] = None) -> dict[str, dict[str, float]]:
    """{database: {metric: value, "n_va"/"n_au": images scored}} over every database of `data_dir` with VA or AU
    records on `split`; images read as `fbn_keras.train_gan` reads them (`fbn_keras.data`, the GAN's size, [-1, 1]).

    Keys: "ccc_v", "ccc_a", "va_mse" where D has a "va" head; "au_f1_weighted", "au_f1_macro",
    "au_total_acc", "n_au_scored" (AUs annotated) where it has an "au" head.
    """
    import tensorflow as tf

    from fbn_keras import data as fbn_data

    if not 0.0 < au_threshold < 1.0:
        raise ValueError(f"au_threshold must be in (0, 1). Received: {au_threshold!r}")
    heads = [h for h in ("va", "au") if h in gan_config.heads]
    if not heads:
        raise ValueError(f"D has neither a va nor an au head. Received d_outputs={gan_config.d_outputs!r}")
    skip = gan_config.skip_corrupt_records if skip_corrupt is None else skip_corrupt

    @tf.function
    def forward(images):
        outputs = discriminator(images, training=False)
        return {h: outputs[h] for h in heads}

    results: dict[str, dict[str, float]] = {}
    for name, info in fbn_data.list_databases(data_dir).items():
        counts = info["splits"].get(split)
        if not counts or not (counts.get("va", 0) or counts.get("au", 0)):
            continue
        dataset = fbn_data.make_eval_dataset(data_dir, name, split=split, batch_size=batch_size,
                                             image_size=gan_config.image_size, skip_corrupt=skip)
        outputs: dict[str, list] = {}
        labels: dict[str, list] = {}
        with fbn_data.naming_corrupt_shards(fbn_data.shard_files(data_dir, split, databases=[name]), data_dir,
                                            f"evaluating {name}/{split}"):
            for images, batch_labels in dataset:
                for k, v in forward(images).items():
                    outputs.setdefault(k, []).append(np.asarray(v))
                for k in ("va", "va_mask", "au", "au_mask"):
                    labels.setdefault(k, []).append(np.asarray(batch_labels[k]))
        if not outputs:
            log.warning("%s has no %s records; left out", name, split)
            continue
        stacked = {k: np.concatenate(v) for k, v in outputs.items()}
        bad = [k for k, v in stacked.items() if not np.isfinite(v).all()]
        if bad:
            raise FloatingPointError(f"{name}/{split}: D predicts non-finite values on head(s) {bad}")
        scores = score_discriminator_outputs(name, stacked, {k: np.concatenate(v) for k, v in labels.items()},
                                             au_threshold)
        if scores:
            results[name] = scores
    return results


# === Run folders of fbn_keras.train_gan ===

def gan_config_file(path: str | Path) -> Optional[Path]:
    """The `config.json` of a GAN run (a run folder, or a file in it) when it holds a GanConfig; else None."""
    path = Path(path)
    candidate = (path if path.is_dir() else path.parent) / CONFIG_FILE
    if not candidate.is_file():
        return None
    try:
        saved = json.loads(candidate.read_text())
    except (OSError, ValueError):
        return None
    return candidate if isinstance(saved, dict) and {"gan_config", "d_outputs"} <= saved.keys() else None


def load_discriminator(path: str | Path):
    """(D, GanConfig) of a GAN run folder (or its discriminator.keras): the saved D, or, when the latest
    checkpoint is newer or D was never saved (an interrupted run), D rebuilt and restored from it."""
    import os

    import keras
    import tensorflow as tf

    from fbn_keras.gan import build_discriminator

    path = Path(path)
    config_file = gan_config_file(path)
    if config_file is None:
        raise ValueError(f"{path}: no config.json of a GAN run (written by fbn_keras.train_gan)")
    config = GanConfig.load(config_file)
    folder = config_file.parent
    model_file = path if path.is_file() else folder / DISCRIMINATOR_FILE
    latest = tf.train.latest_checkpoint(str(folder / CHECKPOINT_DIR)) if (folder / CHECKPOINT_DIR).is_dir() else None
    if latest and (not model_file.is_file() or os.path.getmtime(latest + ".index") > os.path.getmtime(model_file)):
        discriminator = build_discriminator(config)
        tf.train.Checkpoint(discriminator=discriminator).restore(latest).expect_partial()
        log.info("Loaded D from %s", latest)
        return discriminator, config
    if not model_file.is_file():
        raise ValueError(f"{folder}: neither {DISCRIMINATOR_FILE} nor a checkpoint in {CHECKPOINT_DIR}/")
    return keras.saving.load_model(model_file, compile=False, safe_mode=True), config


# === Reporting ===

def paper_row(config: GanConfig) -> Optional[dict[str, float]]:
    """Table IX's numbers for D's variant and VA loss; None for a variant the table does not report."""
    if not config.adversarial:
        return None
    heads = "+".join(h for h in config.heads if h != "fake")
    return TABLE_IX.get((heads, "cross entropy" if heads == "au" else config.va_loss))


def format_gan_table(results: Mapping[str, Mapping[str, float]], config: GanConfig, split: str = "test") -> str:
    """A Markdown table laid out like Table IX: one row per database, then the paper's row for the variant."""
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    header = ["Database"] + list(COLUMNS.values())
    rows = [header, ["---"] * len(header)]
    for db, scores in results.items():
        rows.append([db] + [fmt(scores.get(k)) for k in COLUMNS])
    paper = paper_row(config)
    if paper is not None:
        rows.append(["Table IX (paper, Aff-Wild)"] + [fmt(paper.get(k)) for k in COLUMNS])
    title = f"### GAN discriminator ({config.d_outputs}, VA loss {config.va_loss}) on {split} (Table IX)"
    return title + "\n\n" + "\n".join("| " + " | ".join(r) + " |" for r in rows) + "\n"


def write_gan_results(results: Mapping[str, Mapping[str, float]], out_dir: str | Path, split: str,
                      config: GanConfig) -> tuple[Path, Path]:
    """Write `eval_<split>.json` and `eval_<split>.md` (Table IX's layout) into `out_dir`; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / f"eval_{split}.json", out_dir / f"eval_{split}.md"
    json_path.write_text(json.dumps({"split": split, "model": "gan", "d_outputs": config.d_outputs,
                                     "va_loss": config.va_loss, "gan_config": config.gan_config,
                                     "paper": paper_row(config), "results": results},
                                    indent=2, sort_keys=True) + "\n")
    md_path.write_text(format_gan_table(results, config, split))
    return json_path, md_path


def main_gan(run: str | Path, data_dir: str | Path, split: str, out_dir: Optional[str | Path] = None, *,
             au_threshold: float = 0.5, batch_size: int = 128, skip_corrupt: Optional[bool] = None) -> int:
    """`python -m fbn_keras.evaluate RUN` for a GAN run: score D, write eval_<split>.json/.md, print the table."""
    from fbn_keras import cli, shard_check

    with cli.user_errors(ValueError):
        discriminator, config = load_discriminator(run)
    try:
        results = evaluate_discriminator(discriminator, data_dir, split, config, au_threshold=au_threshold,
                                         batch_size=batch_size, skip_corrupt=skip_corrupt)
    except shard_check.CorruptShardError as err:
        log.error("%s", err)
        return 1
    if not results:
        log.error("No database in %s has VA or AU labels for D's heads on its %r split", data_dir, split)
        return 1
    run = Path(run)
    paths = write_gan_results(results, out_dir or (run if run.is_dir() else run.parent), split, config)
    print(format_gan_table(results, config, split))
    log.info("Wrote %s and %s", *paths)
    return 0
