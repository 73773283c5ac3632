"""Export a trained FaceBehaviorNet for serving: a verified `.keras` copy or a TF SavedModel.

    python -m fbn_keras.export run/model.keras --format savedmodel --out served/
    python -m fbn_keras.export run/model.keras --format keras --out model.keras

The SavedModel's default signature (`serving_default`, endpoint `serve`) takes
float32 images (N, 96, 96, 3) in [-1, 1] and returns probabilities — serving
users want the paper's final predictions: `va` (N, 2) as regressed, `expr`
(N, 7) softmax, `au` (N, 17) sigmoid. A second endpoint, `serve_logits`,
returns the raw outputs. Every file written is read back and checked against
the source model before the command reports success.
"""

from __future__ import annotations

import argparse
import logging
import sys
import shutil
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from fbn_keras import cli
from fbn_keras import runs
from fbn_keras.model import probabilities

log = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("keras", "savedmodel")
#: Endpoint names in the SavedModel; the first is also `serving_default`.
SERVE, SERVE_LOGITS = "serve", "serve_logits"
_TOLERANCE = 1e-4


def load_model(path: str | Path) -> keras.Model:
    """`fbn_keras.runs.load_keras`: a `.keras` file in Keras safe mode, uncompiled (kept for callers of this name)."""
    return runs.load_keras(path)


def _probe(model: keras.Model, n: int = 2) -> np.ndarray:
    """A fixed batch of inputs in [-1, 1] on which an export is compared with its source."""
    size = int(model.input_shape[1])
    return np.random.default_rng(0).uniform(-1, 1, (n, size, size, 3)).astype(np.float32)


def _check_same(got: dict, want: dict, what: str) -> None:
    for name, value in want.items():
        diff = float(np.max(np.abs(np.asarray(got[name]) - np.asarray(value))))
        if not diff <= _TOLERANCE:
            raise RuntimeError(f"Export check failed: {what} output {name!r} differs from the source model "
                               f"by {diff:.3g}")


def _outputs(model: keras.Model, x: np.ndarray) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in model(x, training=False).items()}


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists():
        if not overwrite:
            raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
        if out.is_dir():
            shutil.rmtree(out)
        else:
            out.unlink()
    out.parent.mkdir(parents=True, exist_ok=True)


def export_keras(model: keras.Model, out: str | Path, *, overwrite: bool = False) -> Path:
    """Save `model` as `.keras` at `out`, then reload it in safe mode and check it gives the same outputs."""
    out = Path(out)
    if out.suffix != ".keras":
        raise ValueError(f"--out must end in .keras for --format keras. Received: {out}")
    _prepare_out(out, overwrite)
    model.save(out)
    x = _probe(model)
    _check_same(_outputs(load_model(out), x), _outputs(model, x), f"reloaded {out}")
    log.info("Wrote %s (checked: loads in safe mode, same outputs)", out)
    return out


def export_savedmodel(model: keras.Model, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write a TF SavedModel at `out` with endpoints `serve` (probabilities, the default) and `serve_logits`.

    Built with `keras.export.ExportArchive`, the tool behind `model.export`,
    because `model.export` can only serve the raw call and we serve probabilities.
    """
    out = Path(out)
    _prepare_out(out, overwrite)
    size = int(model.input_shape[1])
    spec = tf.TensorSpec((None, size, size, 3), tf.float32, name="image")
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(SERVE, runs.make_forward(model), input_signature=[spec])
    archive.add_endpoint(SERVE_LOGITS, lambda x: model(x, training=False), input_signature=[spec])
    archive.write_out(str(out), verbose=False)
    # Read back and compare both endpoints with the source model.
    x = _probe(model)
    loaded = tf.saved_model.load(str(out))
    want = _outputs(model, x)
    _check_same({k: v.numpy() for k, v in loaded.serve_logits(x).items()}, want, f"{out} {SERVE_LOGITS}")
    _check_same({k: v.numpy() for k, v in loaded.serve(x).items()}, probabilities(want), f"{out} {SERVE}")
    log.info("Wrote SavedModel %s (endpoints %s = serving_default, %s; checked against the source)",
             out, SERVE, SERVE_LOGITS)
    return out


def export(model_path: str | Path, fmt: str, out: str | Path, *, overwrite: bool = False) -> Path:
    """Load the run folder or `.keras` file at `model_path` (`runs.load_run`, safe mode) and export it as `fmt`."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}. Received: format={fmt!r}")
    model, _ = runs.load_run(model_path)
    writer = export_keras if fmt == "keras" else export_savedmodel
    return writer(model, out, overwrite=overwrite)


@cli.entry_point("fbn_keras.export")
def main(argv: list[str] | None = None) -> None:
    parser = cli.ArgumentParser(prog=cli.prog("fbn_keras.export"), description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a run folder written by fbn_keras.train, or a .keras file")
    parser.add_argument("--format", required=True, choices=FORMATS,
                        help="keras: a verified .keras copy; savedmodel: a TF SavedModel for serving")
    parser.add_argument("--out", required=True, help="a .keras file (keras) or a folder (savedmodel)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        out = export(args.model, args.format, args.out, overwrite=args.overwrite)
    except runs.RunLoadError as err:   # the model could not be loaded: one line naming it
        parser.error(str(err))
    print(f"Exported {args.model} as {args.format}: {out}")


if __name__ == "__main__":
    sys.exit(main())
