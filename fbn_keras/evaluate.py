"""Score a trained FaceBehaviorNet with each database's own metric (main paper Section 4; Tables 3–5, 7).

    python -m fbn_keras.evaluate runs/latest/model.keras --data DIR [--split test] [--out DIR]

For every database in the data folder and every task it carries: CCC of
valence and of arousal; macro F1 (AffectNet, Aff-Wild2, with the ABAW totals
for Aff-Wild2), total accuracy per clip (AFEW), the mean diagonal of the
confusion matrix (RAF-DB); mean F1 over the database's own AUs (DISFA, BP4D,
BP4D+, Aff-Wild2), plus mean accuracy and AFA (EmotioNet); zero-shot compound
expressions (eq. 10) for the compound sets. Written as JSON and as Markdown
tables laid out like the paper's, with the paper's own numbers beside ours.

A run of one of the journal's video networks (its config.json names a `model` other
than facebehaviornet) is scored on tiled test videos by `fbn_keras.evaluate_sequences`
(per frame, or per utterance for OMG-Emotion; Table IV's columns); `--postprocess`
adds the median filter and utterance smoothing chosen on the validation split.

A run of the semi-supervised GAN (`fbn_keras.train_gan`; its config.json is a GanConfig)
scores its discriminator with `fbn_keras.gan_evaluate` in Table IX's columns (multi-task
learning and generation paper): CCC-V, CCC-A, F1 weighted, F1 macro, total accuracy.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Mapping, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402

from fbn_keras import cli, metrics, paper_results, taxonomy  # noqa: E402
from fbn_keras.manifest import SPLITS  # noqa: E402

log = logging.getLogger("fbn_keras.evaluate")

#: ABAW 2020 track totals for Aff-Wild2: expression 0.67·F1 + 0.33·accuracy (in
#: metrics.abaw_expr_score); action units 0.5·F1 + 0.5·accuracy; VA mean CCC.
ABAW_AU_F1_WEIGHT = 0.5

#: Column labels, in the words of the paper's tables.
METRIC_LABELS: dict[str, str] = {
    "ccc_v": "CCC-V", "ccc_a": "CCC-A", "va_abaw": "ABAW VA total (mean CCC)",
    "expr_f1": "Expr F1", "expr_acc": "Total Accuracy", "expr_mean_diag": "Mean diag. of conf. matrix",
    "expr_abaw": "ABAW Expr total (0.67 F1 + 0.33 Acc)",
    "au_f1": "AU F1", "au_mean_acc": "AU Mean Accuracy", "au_afa": "AFA",
    "au_abaw": "ABAW AU total (0.5 F1 + 0.5 Acc)",
    "compound_f1": "Compound F1", "compound_uar": "Compound UAR", "compound_mean_diag": "Compound mean diag.",
}
#: The paper's tables: title and the metric keys each shows (Tables 3, 4, 5, 7; ABAW totals last).
TABLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Valence & arousal (CCC; paper Table 3)", ("ccc_v", "ccc_a")),
    ("Basic expressions (paper Table 4)", ("expr_f1", "expr_acc", "expr_mean_diag")),
    ("Action units (paper Table 5)", ("au_f1", "au_mean_acc", "au_afa")),
    ("Compound expressions, zero-shot (paper Table 7)", ("compound_f1", "compound_uar", "compound_mean_diag")),
    ("Aff-Wild2 ABAW totals", ("va_abaw", "expr_abaw", "au_abaw")),
)


# === Metrics from predictions (pure: numpy in, dict out) ===

def score_database(name: str, preds: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray],
                   au_threshold: float = 0.5) -> dict[str, float]:
    """The paper's metrics for one database (main paper Section 4), from stacked predictions and labels.

    `preds`: "va" (N,2), "expr" (N,7) probabilities, "au" (N,17) probabilities.
    `labels`: "va", "va_mask", "expr", "au", "au_mask", and "group" (AFEW's clip
    id), "compound" where the task needs them. Counts of the rows scored are
    returned as "n_<task>"; a task with no labelled row is left out, with a warning.
    """
    db = taxonomy.database(name)
    out: dict[str, float] = {}
    if "va" in db.tasks:
        out.update(_score_va(name, preds, labels))
    if "expr" in db.tasks and db.expr_metric:
        out.update(_score_expr(name, db, preds, labels))
    if "au" in db.tasks:
        out.update(_score_au(name, db, preds, labels, au_threshold))
    if "compound" in db.tasks:
        out.update(_score_compound(name, db, preds, labels))
    return out


def _score_va(name, preds, labels) -> dict[str, float]:
    rows = np.asarray(labels["va_mask"]).reshape(-1) > 0
    if not rows.any():
        log.warning("%s: no VA-labelled rows; CCC left out", name)
        return {}
    t, p = np.asarray(labels["va"])[rows], np.asarray(preds["va"])[rows]
    out = {"ccc_v": metrics.ccc(t[:, 0], p[:, 0]), "ccc_a": metrics.ccc(t[:, 1], p[:, 1]), "n_va": int(rows.sum())}
    if taxonomy.SYNTHETIC_OF.get(name, name) == "affwild2":
        out["va_abaw"] = 0.5 * (out["ccc_v"] + out["ccc_a"])
    return out


def _score_expr(name, db, preds, labels) -> dict[str, float]:
    """Expression metrics over the database's own classes (`Database.expr_classes`).

    The prediction is the most probable of those classes (EmotioNet's six basic
    classes have no neutral, so the model's neutral output takes no part), and
    the class-averaged metrics run over the classes present in the labels.
    """
    classes = np.asarray(db.expr_classes, np.int64)
    position = np.full(taxonomy.NUM_EXPRESSIONS, -1, np.int64)
    position[classes] = np.arange(len(classes))
    expr = np.asarray(labels["expr"]).reshape(-1).astype(np.int64)
    labelled = (expr >= 0) & (expr < taxonomy.NUM_EXPRESSIONS)
    rows = labelled & (position[np.clip(expr, 0, taxonomy.NUM_EXPRESSIONS - 1)] >= 0)
    outside = int((labelled & ~rows).sum())
    if outside:
        log.warning("%s: %d rows carry an expression outside the database's classes %s and are left out", name,
                    outside, [taxonomy.EXPRESSIONS[c] for c in classes])
    if not rows.any():
        log.warning("%s: no expression-labelled rows; expression metrics left out", name)
        return {}
    probs = np.asarray(preds["expr"])[rows][:, classes]
    t, p = position[expr[rows]], probs.argmax(axis=1)
    k = len(classes)
    out: dict[str, float] = {"n_expr": int(rows.sum())}
    if db.expr_metric == "f1":
        out["expr_f1"] = metrics.macro_f1(t, p, k)
    elif db.expr_metric == "abaw_f1":
        out.update(expr_f1=metrics.macro_f1(t, p, k), expr_acc=metrics.accuracy(t, p),
                   expr_abaw=metrics.abaw_expr_score(t, p, k))
    elif db.expr_metric == "accuracy":
        out["expr_acc"] = metrics.accuracy(t, p)
    elif db.expr_metric == "clip_accuracy":
        # AFEW scores clips: each clip's class is that of its frames' mean probability.
        out["expr_acc"] = metrics.clip_accuracy(t, probs, np.asarray(labels["group"]).reshape(-1)[rows])
    elif db.expr_metric == "mean_diagonal":
        out["expr_mean_diag"] = metrics.mean_diagonal(t, p, k)
    else:
        raise ValueError(f"{name}: unknown expression metric {db.expr_metric!r}")
    return out


def _score_au(name, db, preds, labels, au_threshold) -> dict[str, float]:
    """AU metrics over the database's own AUs, each AU on the frames that annotate it.

    A frame with one AU unannotated (EmotioNet's 999) still counts for its other
    AUs; an AU no frame annotates is left out of the means, with a warning.
    """
    cols = [taxonomy.au_index(a) for a in db.aus]
    mask = np.asarray(labels["au_mask"])[:, cols] > 0
    rows = mask.any(axis=1)
    if not rows.any():
        log.warning("%s: no AU-labelled rows; AU metrics left out", name)
        return {}
    mask = mask[rows]
    unseen = [f"AU{a}" for a, seen in zip(db.aus, mask.any(axis=0)) if not seen]
    if unseen:
        log.warning("%s: no frame annotates %s; left out of the AU means", name, ", ".join(unseen))
    partial = int((~mask.all(axis=1)).sum())
    if partial:
        log.info("%s: %d frames annotate only some of the database's AUs; each AU is scored where annotated",
                 name, partial)
    t = (np.asarray(labels["au"])[rows][:, cols] >= 0.5).astype(np.int64)
    p = (np.asarray(preds["au"])[rows][:, cols] >= au_threshold).astype(np.int64)
    out: dict[str, float] = {"au_f1": metrics.f1_mean(t, p, mask), "n_au": int(rows.sum())}
    if db.au_metric == "afa":
        out.update(au_mean_acc=metrics.au_accuracy_mean(t, p, mask), au_afa=metrics.afa(t, p, mask))
    if taxonomy.SYNTHETIC_OF.get(name, name) == "affwild2":
        acc = metrics.au_accuracy_mean(t, p, mask)
        out["au_abaw"] = ABAW_AU_F1_WEIGHT * out["au_f1"] + (1 - ABAW_AU_F1_WEIGHT) * acc
    return out


def _score_compound(name, db, preds, labels) -> dict[str, float]:
    from fbn_keras import compound  # the zero-shot rule (journal eq. 10)

    space = compound.class_space(name)
    y_true = space.labels(labels["expr"], labels["compound"])
    if not (y_true >= 0).any():
        log.warning("%s: no compound-labelled rows; compound metrics left out", name)
        return {}
    y_pred = compound.zero_shot_classify(preds["expr"], preds["au"], np.asarray(preds["va"])[:, 0], space)
    out = compound.compound_metrics(y_true, y_pred, space, db.compound_metric)
    out["n_compound"] = int((y_true >= 0).sum())
    return out


# === Predictions over a data folder ===

def make_forward(model):
    """`fbn_keras.runs.make_forward`: one traced pass images → probabilities (kept for callers of this name)."""
    from fbn_keras import runs

    return runs.make_forward(model)


def predict_database(model, data_dir: str | Path, database: str, split: str = "test",
                     batch_size: int = 128, forward=None,
                     skip_corrupt: bool = False) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Run `model` over one database's split: (probabilities by head, labels), stacked as numpy.

    A corrupt record stops it with a one-line `CorruptShardError` naming the shard, unless
    `skip_corrupt` (then the shard's remaining records are skipped and counted, `fbn_keras.shard_check`).
    """
    from fbn_keras import data as fbn_data

    forward = forward or make_forward(model)
    preds: dict[str, list] = {}
    labels: dict[str, list] = {}
    dataset = fbn_data.make_eval_dataset(data_dir, database, split=split, batch_size=batch_size,
                                         image_size=int(model.input_shape[1]), skip_corrupt=skip_corrupt)
    with fbn_data.naming_corrupt_shards(fbn_data.shard_files(data_dir, split, databases=[database]), data_dir,
                                        f"evaluating {database}/{split}"):
        for images, batch_labels in dataset:
            for k, v in forward(images).items():
                preds.setdefault(k, []).append(np.asarray(v))
            for k, v in batch_labels.items():
                labels.setdefault(k, []).append(np.asarray(v))
    if not preds:
        return {}, {}
    stacked_preds = {k: np.concatenate(v) for k, v in preds.items()}
    bad = [k for k, v in stacked_preds.items() if not np.isfinite(v).all()]
    if bad:
        raise FloatingPointError(f"{database}/{split}: the model predicts non-finite values on head(s) {bad}")
    return stacked_preds, {k: np.concatenate(v) for k, v in labels.items()}


def evaluate_model(model, data_dir: str | Path, split: str = "test", *, au_threshold: float = 0.5,
                   batch_size: int = 128, databases: Optional[list[str]] = None,
                   forward=None, skip_corrupt: bool = False,
                   au_slots: Optional[tuple[int, ...]] = None) -> dict[str, dict[str, float]]:
    """{database: {metric: value, "n_<task>": rows scored}} for every database with a `split` in `data_dir`.

    `forward` (from `make_forward(model)`) reuses one traced pass across calls; `skip_corrupt`: see
    `predict_database`. `au_slots`: a model with an AU head for some of the 17 AUs (MTANet's 8) is scored
    on those columns only (`runs.make_forward` scatters its outputs into the 17; the others are unannotated).
    """
    from fbn_keras import data as fbn_data

    available = fbn_data.list_databases(data_dir)
    forward = forward or make_forward(model)
    results: dict[str, dict[str, float]] = {}
    for name in databases or [n for n, info in available.items() if split in info["splits"]]:
        preds, labels = predict_database(model, data_dir, name, split, batch_size, forward, skip_corrupt)
        if au_slots is not None and "au_mask" in labels:
            outside = np.setdiff1d(np.arange(labels["au_mask"].shape[-1]), np.asarray(au_slots, int))
            labels["au_mask"] = labels["au_mask"].copy()
            labels["au_mask"][:, outside] = 0.0
        if not preds:
            log.warning("%s has no %s records; left out", name, split)
            continue
        scores = score_database(name, preds, labels, au_threshold)
        if scores:
            results[name] = scores
    return results


# === Reporting ===

def paper_column(coupling: Optional[str] = None) -> dict[tuple[str, str], float]:
    """The paper's FaceBehaviorNet numbers keyed (real database, metric), for a run with `coupling`.

    With a coupling name, only that configuration's numbers (`paper_results.fbn_numbers`:
    its Table 6 row, and Table 7's zero-shot row for "none" and "coann+soft+dm"); empty
    for a configuration the paper does not report ("coann+dm"). Without one, Tables 3–5's
    FaceBehaviorNet row. Table 7 names the compound sets after their databases; ours are
    "<db>-compound".
    """
    if coupling is None:
        column: dict[tuple[str, str], float] = {}
        for table in (paper_results.TABLE3, paper_results.TABLE4, paper_results.TABLE5):
            column.update(table["FaceBehaviorNet"])
        return column
    numbers = paper_results.fbn_numbers(coupling)
    return {((f"{db}-compound" if metric.startswith("compound_") else db), metric): v
            for (db, metric), v in numbers.items()}


def paper_label(coupling: Optional[str] = None, compound: bool = False) -> str:
    """The row label of the paper's numbers: the table row of the run's configuration they come from."""
    if coupling is None:
        return "FaceBehaviorNet (paper)"
    if compound:
        return f"FaceBehaviorNet (paper, Table 7 '{paper_results.TABLE7_ZERO_SHOT.get(coupling, '')}')"
    return f"FaceBehaviorNet (paper, Table 6 '{paper_results.TABLE6_ROW_NAMES.get(coupling, '')}')"


def _fmt(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:.3f}"


def format_table(results: Mapping[str, Mapping[str, float]], coupling: Optional[str] = None) -> str:
    """Markdown tables, one per task as in the paper, columns = database × metric, rows = ours and the paper's.

    The paper's row holds its numbers for the run's own coupling configuration (`paper_column`);
    a table with no paper number in any of its columns has no paper row.
    """
    paper = paper_column(coupling)
    blocks = []
    for title, keys in TABLES:
        cols = [(db, k) for db in results for k in keys if k in results[db]]
        if not cols:
            continue
        header = ["Database"] + [f"{db} {METRIC_LABELS[k]}" for db, k in cols]
        rows = [header, ["---"] * len(header), ["fbn-keras (ours)"] + [_fmt(results[db][k]) for db, k in cols]]
        theirs = [paper.get((taxonomy.SYNTHETIC_OF.get(db, db), k)) for db, k in cols]
        if any(v is not None for v in theirs):
            rows.append([paper_label(coupling, compound=keys[0].startswith("compound_"))]
                        + [_fmt(v) for v in theirs])
        lines = ["| " + " | ".join(r) + " |" for r in rows]
        blocks.append(f"### {title}\n\n" + "\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def write_results(results: Mapping[str, Mapping[str, float]], out_dir: str | Path, split: str,
                  config: Any = None) -> tuple[Path, Path]:
    """Write `eval_<split>.json` and `eval_<split>.md` into `out_dir`; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    coupling = getattr(config, "coupling", None)
    json_path, md_path = out_dir / f"eval_{split}.json", out_dir / f"eval_{split}.md"
    json_path.write_text(json.dumps({"split": split, "coupling": coupling, "results": results},
                                    indent=2, sort_keys=True) + "\n")
    md_path.write_text(format_table(results, coupling))
    return json_path, md_path


# === Command line ===

def setup_logging() -> None:
    """INFO for this project's loggers; TensorFlow's and absl's chatter (checkpoint sharding...) at WARNING."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for name in ("tensorflow", "absl"):
        logging.getLogger(name).setLevel(logging.WARNING)


@cli.entry_point("fbn_keras.evaluate")
def main(argv: Optional[list[str]] = None) -> int:
    setup_logging()
    parser = cli.ArgumentParser(prog=cli.prog("fbn_keras.evaluate"), description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a run folder written by fbn_keras.train or fbn_keras.train_gan, "
                                      "or a .keras file")
    parser.add_argument("--data", required=True, help="built TFRecord folder")
    parser.add_argument("--split", default="test", choices=SPLITS, help="split to score (default: test)")
    parser.add_argument("--out", default=None, help="folder for eval_<split>.json/.md (default: beside MODEL)")
    parser.add_argument("--batch-size", type=cli.positive_int, default=128, help="images per batch (default: 128)")
    parser.add_argument("--au-threshold", type=cli.open_unit_float, default=None,
                        help="AU presence threshold in (0, 1) (default: the run's config.json, else 0.5)")
    parser.add_argument("--skip-corrupt-records", action=argparse.BooleanOptionalAction, default=None,
                        help="skip a shard's records from its first corrupt one on and count them (default: the "
                             "run's config.json, else off: a corrupt record stops, naming its shard)")
    parser.add_argument("--postprocess", action="store_true",
                        help="sequence models: median filter and utterance smoothing chosen on the validation "
                             "split, then applied to SPLIT (journal Section V-B)")
    args = parser.parse_args(argv)
    cli.check_data_dir(args.data)

    from fbn_keras import gan_evaluate, runs

    model_path = Path(args.model)
    if gan_evaluate.gan_config_file(model_path):    # a run of fbn_keras.train_gan: D scored as in Table IX
        return gan_evaluate.main_gan(model_path, args.data, args.split, args.out,
                                     au_threshold=args.au_threshold or 0.5, batch_size=args.batch_size,
                                     skip_corrupt=args.skip_corrupt_records)
    try:
        model, run_config = runs.load_run(model_path)   # safe mode: no code from the file runs
    except runs.RunLoadError as err:
        parser.error(str(err))
    # The run's own coupling names the paper's column only when its config.json says it.
    config = run_config if runs.config_path(model_path) else None
    threshold = args.au_threshold if args.au_threshold is not None else run_config.au_threshold
    skip = args.skip_corrupt_records if args.skip_corrupt_records is not None else run_config.skip_corrupt_records
    if run_config.model != "facebehaviornet":
        return _main_sequences(model, run_config, args, threshold, runs.run_dir(model_path))
    from fbn_keras import shard_check

    try:
        results = evaluate_model(model, args.data, args.split, au_threshold=threshold, batch_size=args.batch_size,
                                 skip_corrupt=skip)
    except shard_check.CorruptShardError as err:
        log.error("%s", err)
        return 1
    if skip and shard_check.SKIPPED.total():
        log.warning("Corrupt records skipped: %s", shard_check.SKIPPED.to_dict())
    if not results:
        log.error("No database in %s has a %r split", args.data, args.split)
        return 1
    paths = write_results(results, args.out or runs.run_dir(model_path), args.split, config)
    print(format_table(results, getattr(config, "coupling", None)))
    log.info("Wrote %s and %s", *paths)
    return 0


def _main_sequences(model, config, args, threshold: float, out_default: Path) -> int:
    """A journal video network: tiled test videos scored per frame or per utterance, Table IV's columns."""
    import dataclasses

    from fbn_keras import evaluate_sequences

    config = dataclasses.replace(config, au_threshold=threshold)
    results = evaluate_sequences.evaluate_sequence_model(model, args.data, args.split, config,
                                                         postprocess=args.postprocess)
    if not results:
        log.error("No sequence database in %s has a %r split", args.data, args.split)
        return 1
    out_dir = Path(args.out or out_default)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = evaluate_sequences.format_sequence_table(results, f"{config.model} on {args.split}")
    (out_dir / f"eval_{args.split}.json").write_text(json.dumps(
        {"split": args.split, "model": config.model, "postprocess": args.postprocess, "results": results},
        indent=2, sort_keys=True) + "\n")
    (out_dir / f"eval_{args.split}.md").write_text(table)
    print(table)
    log.info("Wrote %s and %s", out_dir / f"eval_{args.split}.json", out_dir / f"eval_{args.split}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
