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


@pytest.mark.slow
def test_notebooks_execute_and_fill_their_tables(tmp_path):
    maker = _maker()
    runs, tables = tmp_path / "runs", tmp_path / "tables"
    for name, spec in maker.NOTEBOOKS.items():
        nb = maker.with_parameters(maker.build(name, spec), RUNS_DIR=str(runs), TABLES_DIR=str(tables))
        maker.execute(nb, timeout=600)
        for csv, rows, methods, filled in EXPECTED[name]:
            frame = experiments.load(tables / csv)
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
