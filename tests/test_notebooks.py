"""The notebooks of Tables 2–7 run with their default parameters and produce every row and column of their table.

One test runs them in order in a fresh runs folder, so the networks they share
(the VGG-FACE FaceBehaviorNet without coupling is in every table) are trained
once, as in a user's session; only the output folders are redirected.
"""

import importlib.util
import math
from pathlib import Path

import pytest

from fbn_keras import experiments, paper_results
from fbn_keras.config import BACKBONES, COUPLINGS

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def _maker():
    spec = importlib.util.spec_from_file_location("make_notebooks", NOTEBOOKS / "make_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows(*tables):
    rows = []
    for t in tables:
        rows += [k for k in t if k not in rows]
    return rows


# Every table: the CSV the notebook writes, its rows (the paper's columns), its methods,
# and rows that the synthetic test-bed must fill in our columns.
EXPECTED = {
    "table2_backbones": [("table2.csv", list(paper_results.TABLE2["vgg_face"]), list(BACKBONES),
                          [("rafdb", "expr_mean_diag"), ("disfa", "au_f1"), ("affwild", "ccc_v")])],
    "tables3_5_single_vs_multi": [
        (f"table{n}.csv", _rows(t["VGG-FACE single task"], t["FaceBehaviorNet"]),
         ["VGG-FACE single task", "FaceBehaviorNet"], filled)
        for n, t, filled in ((3, paper_results.TABLE3, [("affectnet", "ccc_a")]),
                             (4, paper_results.TABLE4, [("rafdb", "expr_mean_diag")]),
                             (5, paper_results.TABLE5, [("bp4d", "au_f1"), ("emotionet", "au_mean_acc")]))],
    "table6_couplings": [("table6.csv", list(paper_results.TABLE6_COLUMNS), list(COUPLINGS),
                          [("affwild2", "expr_f1"), ("emotionet", "au_f1")])],
    "table7_compound": [("table7.csv", list(experiments.TABLE7_ROWS), list(experiments.TABLE7_METHODS),
                         [("rafdb", "compound_mean_diag")])],
}


def test_generator_writes_the_notebooks_it_knows():
    maker = _maker()
    assert set(maker.NOTEBOOKS) == set(EXPECTED)
    for name, spec in maker.NOTEBOOKS.items():
        nb = maker.build(name, spec)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1 and "DATA_DIR = None" in tagged[0].source
        assert (NOTEBOOKS / f"{name}.ipynb").exists(), f"{name}.ipynb not generated"


#: Per-cell ceiling while a notebook runs: it only guards against a hang (a table cell trains several
#: networks and takes minutes on a loaded 2-core machine), never asserts a speed.
HANG_GUARD_S = 3600


def _printed(nb) -> str:
    """Everything the executed notebook printed on stdout."""
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                   if o.get("output_type") == "stream" and o.get("name") == "stdout")


def _mean_diagonal_by_hand(run: Path, data_dir: Path, database: str) -> float:
    """The saved model of `run` on `database`'s test split, scored without fbn_keras.metrics: per class
    present in the labels, the share of its images predicted as it (the confusion matrix's row-normalised
    diagonal), averaged over those classes."""
    import keras
    import numpy as np

    from fbn_keras import data, runs

    model = keras.saving.load_model(run / "model.keras")
    forward = runs.make_forward(model)     # the pass every evaluation uses: the same argmax, bit for bit
    truth, guess = [], []
    for images, labels in data.make_eval_dataset(data_dir, database, "test", image_size=int(model.input_shape[1])):
        keep = labels["expr"].numpy() >= 0
        truth.append(labels["expr"].numpy()[keep])
        guess.append(np.argmax(np.asarray(forward(images)["expr"]), axis=-1)[keep])
    truth, guess = np.concatenate(truth), np.concatenate(guess)
    return float(np.mean([np.mean(guess[truth == c] == c) for c in np.unique(truth)]))


@pytest.mark.slow
def test_notebooks_execute_and_fill_their_tables(tmp_path):
    maker = _maker()
    runs, tables = tmp_path / "runs", tmp_path / "tables"
    for name, spec in maker.NOTEBOOKS.items():
        nb = maker.with_parameters(maker.build(name, spec), RUNS_DIR=str(runs), TABLES_DIR=str(tables))
        printed = _printed(maker.execute(nb, timeout=HANG_GUARD_S))
        for csv, rows, methods, filled in EXPECTED[name]:
            frame = experiments.load(tables / csv)
            # The table the notebook shows is the one it saved, cell for cell.
            assert experiments.show(frame) in printed, (name, csv)
            assert list(frame.index) == rows, (name, csv)
            assert list(frame.columns) == [(m, s) for m in methods for s in ("ours", "paper")], (name, csv)
            for key in filled:   # a database the test-bed has: a number in range in every "ours" column
                for m in methods:
                    v = frame.loc[key, (m, "ours")]
                    assert not math.isnan(v) and -1.0 <= v <= 1.0, (name, key, m, v)
            # The paper's column is the paper's own number.
            paper = {"table2_backbones": paper_results.TABLE2, "table6_couplings": paper_results.TABLE6,
                     "table7_compound": paper_results.TABLE7}.get(name)
            if paper is not None:
                m = methods[-1]
                key = next(k for k in rows if k in paper[m])
                assert frame.loc[key, (m, "paper")] == pytest.approx(paper[m][key])
    # One number recomputed from its saved network: Table 6's no-coupling RAF-DB mean diagonal.
    from fbn_keras import testbed
    from fbn_keras.config import Config

    plain = [p.parent for p in runs.glob("*/model.keras")
             if (lambda c: (c.backbone, c.tasks, c.coupling) == ("vgg_face", "va+au+expr", "none"))(
                 Config.load(p.parent / "config.json"))]
    assert len(plain) == 1, plain
    data_dir = testbed.ensure_synthetic_testbed(scale=maker_scale(maker))
    table6 = experiments.load(tables / "table6.csv")
    assert table6.loc[("rafdb", "expr_mean_diag"), ("none", "ours")] == pytest.approx(
        _mean_diagonal_by_hand(plain[0], data_dir, "synth-rafdb"), abs=1e-9)


def maker_scale(maker) -> float:
    """The synthetic test-bed scale the notebooks' parameters cell asks for (SCALE = ...)."""
    namespace: dict = {}
    exec(maker.PARAMETERS, namespace)
    return namespace["SCALE"]
