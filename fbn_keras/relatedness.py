"""Empirical emotion–AU relatedness from labelled frames: the estimator behind journal Table V (right).

Section VI-B: "the percentage of images annotated with the specific expression
in which this AU was activated". Over the frames that carry both an expression
label and AU labels,

    w(e, au) = #{frames: expression e, AU on} / #{frames: expression e, AU annotated},

the denominator counting only frames whose AU mask annotates that AU (a
database that does not annotate an AU says nothing about it). AUs with
w ≥ `cutoff` (default 0.1, the smallest weight Table V prints) make up each
emotion's row, all observational with weight w, as in `taxonomy.AFFWILD2_TABLE`;
neutral has no row (Table V has none). Tables are saved as JSON and load back
as `taxonomy` tables, so `--relation table.json` couples FaceBehaviorNet's
tasks through them (docs/FAITHFULNESS.md, "Sequence losses, fusion and task
relatedness").

    python -m fbn_keras.relatedness --data DATA --databases affwild2 --out table.json
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np

from fbn_keras import cli, taxonomy
from fbn_keras.taxonomy import EmotionAUs

#: Smallest weight Table V (right) prints: the default cut-off.
DEFAULT_CUTOFF = 0.1
#: Marks a saved relation table.
FORMAT = "fbn_keras relation table"


def relation_counts(expr, au, au_mask) -> tuple[np.ndarray, np.ndarray]:
    """(on, annotated), each (7, 17) int64: per expression and AU, frames with the AU on / annotated.

    Frames without an expression label (-1 or out of range) count nowhere; an AU
    counts where its mask is > 0 and its label finite; "on" is a label ≥ 0.5.

    Args:
        expr: (N,) int expression indices; au: (N, 17) labels; au_mask: (N, 17) δ.
    """
    expr = np.asarray(expr).reshape(-1)
    au = np.asarray(au, np.float64).reshape(len(expr), -1)
    mask = np.asarray(au_mask, np.float64).reshape(len(expr), -1)
    if au.shape[1] != taxonomy.NUM_AUS or mask.shape != au.shape:
        raise ValueError(f"au and au_mask must be (N, {taxonomy.NUM_AUS}) beside expr (N,). "
                         f"Received: expr {expr.shape}, au {au.shape}, au_mask {mask.shape}")
    valid = (expr >= 0) & (expr < taxonomy.NUM_EXPRESSIONS)
    annotated = (mask > 0) & np.isfinite(au) & np.isfinite(mask) & valid[:, None]
    on = annotated & (np.nan_to_num(au) >= 0.5)
    onehot = np.eye(taxonomy.NUM_EXPRESSIONS, dtype=np.int64)[np.where(valid, expr, 0)] * valid[:, None]
    return onehot.T @ on.astype(np.int64), onehot.T @ annotated.astype(np.int64)


def relation_weights(on, annotated) -> np.ndarray:
    """(7, 17) float64 w = on / annotated; NaN where nothing was annotated."""
    on, annotated = np.asarray(on, np.float64), np.asarray(annotated, np.float64)
    return np.divide(on, annotated, out=np.full(on.shape, np.nan), where=annotated > 0)


def table_from_weights(weights, cutoff: float = DEFAULT_CUTOFF) -> dict[str, EmotionAUs]:
    """Rows of the six emotions: the AUs with w ≥ cutoff, observational with weight w, largest first."""
    if not 0 < cutoff <= 1:
        raise ValueError(f"cutoff must be in (0, 1]. Received: cutoff={cutoff!r}")
    weights = np.asarray(weights, np.float64)
    table = {}
    for e, emotion in enumerate(taxonomy.EXPRESSIONS):
        if emotion == "neutral":
            continue
        row = {au: float(weights[e, k]) for k, au in enumerate(taxonomy.AUS)
               if np.isfinite(weights[e, k]) and weights[e, k] >= cutoff}
        table[emotion] = EmotionAUs((), dict(sorted(row.items(), key=lambda kv: -kv[1])))
    return table


def estimate_relation(expr, au, au_mask, cutoff: float = DEFAULT_CUTOFF) -> dict[str, EmotionAUs]:
    """Table V's empirical table from frames with expression and AU labels (see the module docstring)."""
    return table_from_weights(relation_weights(*relation_counts(expr, au, au_mask)), cutoff)


# === JSON ===

def save_relation(table: Mapping[str, EmotionAUs], path: str | Path) -> None:
    """Write a relation table as JSON: {"format", "emotions": {name: {"prototypical", "observational"}}}."""
    emotions = {name: {"prototypical": [int(a) for a in entry.prototypical],
                       "observational": {str(int(a)): round(float(w), 6) for a, w in entry.observational.items()}}
                for name, entry in table.items()}
    Path(path).write_text(json.dumps({"format": FORMAT, "emotions": emotions}, indent=2) + "\n")


def load_relation(path: str | Path) -> dict[str, EmotionAUs]:
    """A relation table saved by `save_relation` (ValueError naming what is wrong)."""
    try:
        raw = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not JSON: {err}") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT or not isinstance(raw.get("emotions"), dict):
        raise ValueError(f"{path} is not a relation table (expected {{'format': {FORMAT!r}, 'emotions': {{...}}}})")
    table = {}
    for name, entry in raw["emotions"].items():
        if name not in taxonomy.EXPRESSIONS:
            raise ValueError(f"{path}: unknown emotion {name!r}; expected names from {taxonomy.EXPRESSIONS}")
        try:
            proto = tuple(int(a) for a in entry.get("prototypical", []))
            obs = {int(a): float(w) for a, w in entry.get("observational", {}).items()}
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"{path}: row {name!r} must hold 'prototypical' AU numbers and "
                             f"'observational' {{AU: weight}}. Received: {entry!r}") from None
        bad = {a: w for a, w in obs.items() if not (math.isfinite(w) and 0 < w <= 1)}
        if bad:
            raise ValueError(f"{path}: weights of {name!r} must be in (0, 1]. Received: {bad}")
        table[name] = EmotionAUs(proto, obs)
    return table


# === Reading a built data folder ===

def read_labels(data_dir, databases: Optional[Iterable[str]] = None,
                splits: Sequence[str] = ("train",)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(expr (N,), au (N, 17), au_mask (N, 17)) of every record in the AU folder's shards of `splits`
    (each AU-labelled record is there exactly once); the labels only, not the images."""
    import tensorflow as tf

    from fbn_keras import data

    manifest = data._manifest(data_dir)
    names = None if databases is None else list(databases)
    files = [f for split in splits for f in data.listed_files(data_dir, manifest.shards("au", split, names))]
    spec = {k: data.FEATURES[k] for k in (data.EXPR, data.AU, data.AU_MASK)}
    parts: list[list[np.ndarray]] = [[], [], []]
    if files:
        with data.naming_corrupt_shards(files, data_dir, "reading the labels for the relatedness table"):
            for raws in data.read_records(files).batch(4096).map(lambda r: tf.io.parse_example(r, spec)):
                for part, key in zip(parts, (data.EXPR, data.AU, data.AU_MASK)):
                    part.append(raws[key].numpy())
    if not parts[0]:
        return (np.zeros((0,), np.int64), np.zeros((0, taxonomy.NUM_AUS), np.float32),
                np.zeros((0, taxonomy.NUM_AUS), np.float32))
    return tuple(np.concatenate(p) for p in parts)


def format_tables(estimated: Mapping[str, EmotionAUs], reference: Mapping[str, EmotionAUs] = taxonomy.AFFWILD2_TABLE,
                  frames: Optional[np.ndarray] = None) -> str:
    """The estimated rows beside Table V's Aff-Wild2 rows, one emotion a line."""
    def row(entry):
        return ", ".join(f"{a} ({w:.2f})" for a, w in entry.weights().items()) or "-"

    lines = [f"{'emotion':<10} {'frames':>7}  estimated | Table V (Aff-Wild2)"]
    for e, name in enumerate(taxonomy.EXPRESSIONS):
        if name not in estimated and name not in reference:
            continue
        n = "" if frames is None else str(int(frames[e]))
        lines.append(f"{name:<10} {n:>7}  {row(estimated.get(name, EmotionAUs((), {})))} | "
                     f"{row(reference.get(name, EmotionAUs((), {})))}")
    return "\n".join(lines)


@cli.entry_point("fbn_keras.relatedness")
def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = cli.ArgumentParser(prog=cli.prog("fbn_keras.relatedness"), description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="a built data folder (python -m tfrecords_tools.build)")
    parser.add_argument("--databases", nargs="+", default=None, help="databases to count (default: all)")
    parser.add_argument("--splits", nargs="+", default=["train"], help="splits to count (default: train)")
    parser.add_argument("--cutoff", type=float, default=DEFAULT_CUTOFF,
                        help=f"keep AUs with w >= this, in (0, 1] (default {DEFAULT_CUTOFF}, Table V's smallest)")
    parser.add_argument("--out", required=True, help="JSON file for the table (use it as --relation PATH)")
    args = parser.parse_args(argv)
    if not 0 < args.cutoff <= 1:
        parser.error(f"--cutoff must be in (0, 1]. Received: {args.cutoff}")
    databases = cli.check_data_dir(args.data)
    unknown = sorted(set(args.databases or ()) - set(databases))
    if unknown:
        raise cli.UserError(f"--databases {unknown} not in {args.data} (it holds {sorted(databases)})")
    expr, au, au_mask = read_labels(args.data, args.databases, args.splits)
    on, annotated = relation_counts(expr, au, au_mask)
    frames = np.bincount(np.asarray(expr)[((au_mask > 0).any(-1)) & (expr >= 0)],
                         minlength=taxonomy.NUM_EXPRESSIONS) if len(expr) else np.zeros(taxonomy.NUM_EXPRESSIONS)
    if not annotated.any():
        raise cli.UserError(f"--data {args.data}: no frame of {args.splits} has both an expression and AU labels")
    table = table_from_weights(relation_weights(on, annotated), args.cutoff)
    save_relation(table, args.out)
    print(format_tables(table, frames=frames))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
