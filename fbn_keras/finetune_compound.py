"""Few-shot compound expressions: fine-tune a trained FaceBehaviorNet with a compound head (main paper 7.5).

    python -m fbn_keras.finetune_compound runs/x/model.keras --data DIR [--database rafdb-compound] \\
        [--steps 300] [--out DIR]

A new Dense layer over the class space of the compound database (RAF-DB's 11
compound classes; EmotioNet's 6 basic + 10 compound) is put on the shared
features, the input of FaceBehaviorNet's output layer (after `fc2` and its
dropout); the whole network is then trained on the database's small training
split ("we fine-tune the FaceBehaviorNet on the small training set"),
evaluated on its test split with the paper's metric, and saved.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path
from typing import Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from fbn_keras import compound, runs, taxonomy  # noqa: E402
from fbn_keras import cli  # noqa: E402
from fbn_keras import data as fbn_data  # noqa: E402

log = logging.getLogger("fbn_keras.finetune_compound")

#: The layer whose output feeds FaceBehaviorNet's 26-unit output layer: fc2
#: after its dropout, so fine-tuning keeps the paper's dropout on the features.
FEATURE_LAYER = "dropout2"
HEAD_NAME = "compound"
MODEL_FILE = "compound_model.keras"
RESULTS_FILE = "compound_results.json"


# === Model ===

def compound_model(base: keras.Model, num_classes: int, feature_layer: str = FEATURE_LAYER,
                   seed: Optional[int] = None) -> keras.Model:
    """`base`'s input → its `feature_layer` output → Dense(num_classes) logits named 'compound'.

    The trunk and FC layers are copies of `base`'s, weights included, so
    fine-tuning starts from what the multi-task training learned and leaves
    `base` itself untouched (its zero-shot predictions stay available).
    """
    names = [layer.name for layer in base.layers]
    if feature_layer not in names:
        raise ValueError(f"{base.name!r} has no layer {feature_layer!r}; its layers end with {names[-6:]}")
    if num_classes < 2:
        raise ValueError(f"A compound head needs at least 2 classes. Received: num_classes={num_classes}")
    copy = keras.models.clone_model(base)
    copy.set_weights(base.get_weights())
    features = copy.get_layer(feature_layer).output
    init = keras.initializers.GlorotUniform(seed=seed)
    logits = keras.layers.Dense(num_classes, kernel_initializer=init, name=HEAD_NAME)(features)
    return keras.Model(copy.input, logits, name="facebehaviornet_compound")


# === Input ===

def class_labels(space: compound.ClassSpace, expr: tf.Tensor, comp: tf.Tensor) -> tf.Tensor:
    """`ClassSpace.labels` in TensorFlow: column of each record's class, -1 if not in the space."""
    expr_col, comp_col = (tf.constant(t, tf.int32) for t in space.lookup_tables())
    expr, comp = tf.cast(expr, tf.int32), tf.cast(comp, tf.int32)
    e = tf.where(expr >= 0, tf.gather(expr_col, tf.maximum(expr, 0)), -1)
    c = tf.where(comp >= 0, tf.gather(comp_col, tf.maximum(comp, 0)), -1)
    return tf.where(c >= 0, c, e)


def compound_dataset(data_dir, database: str, split: str, space: compound.ClassSpace, *, batch_size: int,
                     image_size: int = 96, training: bool = False, seed: int = 0,
                     skip_corrupt: bool = False) -> tf.data.Dataset:
    """(images, class column) batches of one database's split, rows outside the space dropped.

    Training: shuffled and repeated. Evaluation: each record once, in file order.
    """
    ds = fbn_data.make_eval_dataset(data_dir, database, split=split, batch_size=256, image_size=image_size,
                                    skip_corrupt=skip_corrupt)
    ds = ds.unbatch().map(lambda image, labels: (image, class_labels(space, labels["expr"], labels["compound"])))
    ds = ds.filter(lambda image, y: y >= 0)
    if training:
        ds = ds.shuffle(2048, seed=seed, reshuffle_each_iteration=True).repeat()
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def compound_databases(data_dir) -> list[str]:
    """The databases in `data_dir` whose records carry compound labels (real or synthetic names)."""
    return [name for name in fbn_data.list_databases(data_dir)
            if "compound" in taxonomy.database(name).tasks]


def resolve_database(data_dir, database: Optional[str]) -> str:
    """`database` if it is in `data_dir`; its synthetic twin when only that is; the only compound one when None."""
    present = compound_databases(data_dir)
    if database is None:
        if len(present) != 1:
            raise ValueError(f"{data_dir} holds {len(present)} compound databases {present}; choose one with --database")
        return present[0]
    if database in present:
        return database
    twins = [n for n in present if taxonomy.SYNTHETIC_OF.get(n) == database]
    if twins:
        log.info("%s is not in %s; using its synthetic twin %s", database, data_dir, twins[0])
        return twins[0]
    raise ValueError(f"{database!r} is not in {data_dir}; its compound databases are {present}")


# === Fine-tuning and evaluation ===

@dataclasses.dataclass
class FinetuneResult:
    """The fine-tuned model, the database it learned, and its test metrics (keys as in paper_results)."""

    model: keras.Model
    database: str
    metrics: dict[str, float]
    history: dict[str, list[float]]


def predict_classes(model: keras.Model, dataset: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(y_true, y_pred) column indices over an evaluation dataset of (images, labels): argmax of `runs.make_forward`."""
    forward = runs.make_forward(model)
    y_true, y_pred = [], []
    for images, y in dataset:
        y_true.append(y.numpy())
        y_pred.append(np.argmax(forward(images).numpy(), axis=-1))
    if not y_true:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(y_true).astype(np.int64), np.concatenate(y_pred).astype(np.int64)


def finetune(base: keras.Model, data_dir, database: Optional[str] = None, *, steps: int = 300,
             batch_size: int = 32, learning_rate: float = 1e-4, seed: int = 0,
             train_split: str = "train", test_split: str = "test",
             feature_layer: str = FEATURE_LAYER, verbose: int = 0, skip_corrupt: bool = False) -> FinetuneResult:
    """Fine-tune `base` with a compound head on `database`'s training split; score its test split.

    Adam on softmax cross entropy over the database's class space, every layer
    trainable (the paper fine-tunes the whole network), for `steps` steps. A
    corrupt record stops it with a one-line `CorruptShardError` naming the
    shard, unless `skip_corrupt` (skipped and counted, `fbn_keras.shard_check`).
    """
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1. Received: steps={steps}, batch_size={batch_size}")
    database = resolve_database(data_dir, database)
    space = compound.class_space(database)
    image_size = int(base.input_shape[1])
    keras.utils.set_random_seed(seed)
    model = compound_model(base, len(space), feature_layer, seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["sparse_categorical_accuracy"])
    train_ds = compound_dataset(data_dir, database, train_split, space, batch_size=batch_size,
                                image_size=image_size, training=True, seed=seed, skip_corrupt=skip_corrupt)
    with fbn_data.naming_corrupt_shards(fbn_data.shard_files(data_dir, train_split, databases=[database]),
                                        data_dir, f"fine-tuning on {database}/{train_split}"):
        history = model.fit(train_ds, steps_per_epoch=steps, epochs=1, shuffle=False, verbose=verbose)  # shuffled by tf.data
    with fbn_data.naming_corrupt_shards(fbn_data.shard_files(data_dir, test_split, databases=[database]),
                                        data_dir, f"scoring {database}/{test_split}"):
        y_true, y_pred = predict_classes(model, compound_dataset(data_dir, database, test_split, space, batch_size=128,
                                                                 image_size=image_size, skip_corrupt=skip_corrupt))
    db = taxonomy.database(database)
    metrics = compound.compound_metrics(y_true, y_pred, space, db.compound_metric)
    metrics["n_compound"] = int(y_true.size)
    log.info("%s %s after %d fine-tuning steps: %s", database, test_split, steps, metrics)
    return FinetuneResult(model=model, database=database, metrics=metrics,
                          history={k: [float(x) for x in v] for k, v in history.history.items()})


# === Command line ===

def build_parser() -> argparse.ArgumentParser:
    parser = cli.ArgumentParser(prog=cli.prog("fbn_keras.finetune_compound"), description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a run folder written by fbn_keras.train, or a .keras file")
    parser.add_argument("--data", required=True, help="built TFRecord folder holding a compound database")
    parser.add_argument("--database", default=None,
                        help="rafdb-compound or emotionet-compound (or a synthetic one); "
                             "default: the only compound database in --data")
    parser.add_argument("--steps", type=cli.positive_int, default=300, help="fine-tuning steps (default: 300)")
    parser.add_argument("--batch-size", type=cli.positive_int, default=32, help="images per step (default: 32)")
    parser.add_argument("--learning-rate", type=cli.positive_float, default=None,
                        help="default: the run's config.json beside MODEL, else 1e-4 (paper)")
    parser.add_argument("--seed", type=cli.non_negative_int, default=0, help="random seed (default: 0)")
    parser.add_argument("--feature-layer", default=FEATURE_LAYER,
                        help=f"layer whose output feeds the new compound head (default: {FEATURE_LAYER})")
    parser.add_argument("--out", default=None, help=f"folder for {MODEL_FILE} and {RESULTS_FILE} "
                                                    "(default: beside MODEL)")
    parser.add_argument("--skip-corrupt-records", action=argparse.BooleanOptionalAction, default=None,
                        help="skip a shard's records from its first corrupt one on and count them (default: the "
                             "run's config.json, else off: a corrupt record stops, naming its shard)")
    return parser


@cli.entry_point("fbn_keras.finetune_compound")
def main(argv: Optional[list[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    model_path = Path(args.model)
    try:
        database = resolve_database(args.data, args.database)
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    try:
        base, config = runs.load_run(model_path)   # safe mode: no code from the file runs
    except runs.RunLoadError as e:
        parser.error(str(e))
    if args.feature_layer not in {layer.name for layer in base.layers}:
        parser.error(f"--feature-layer {args.feature_layer!r} is not a layer of {model_path}")
    lr = args.learning_rate if args.learning_rate is not None else config.learning_rate
    from fbn_keras import shard_check

    skip = args.skip_corrupt_records if args.skip_corrupt_records is not None else config.skip_corrupt_records
    try:
        result = finetune(base, args.data, database, steps=args.steps, batch_size=args.batch_size, learning_rate=lr,
                          seed=args.seed, feature_layer=args.feature_layer, verbose=2, skip_corrupt=skip)
    except shard_check.CorruptShardError as err:
        log.error("%s", err)
        return 1
    if skip and shard_check.SKIPPED.total():
        log.warning("Corrupt records skipped: %s", shard_check.SKIPPED.to_dict())
    out = Path(args.out) if args.out else runs.run_dir(model_path)
    out.mkdir(parents=True, exist_ok=True)
    result.model.save(out / MODEL_FILE)
    (out / RESULTS_FILE).write_text(json.dumps(
        {"database": result.database, "steps": args.steps, "learning_rate": lr, "classes": list(
            compound.class_space(result.database).names), "metrics": result.metrics}, indent=2) + "\n")
    print(json.dumps({"database": result.database, **result.metrics}, indent=2))
    log.info("Wrote %s and %s", out / MODEL_FILE, out / RESULTS_FILE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
