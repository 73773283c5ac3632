"""The notebooks of Tables 2–7 and of the journal's video Tables II–V: generated as specified, never overwritten when executed, and rendering the
campaign's results into the tables they show and save.

The committed tables (`notebooks/tables/*.csv`) must be exactly what the committed results
(`notebooks/results/`) render to; with no committed results there are no committed tables.
The slow test runs the tiny campaign into temporary folders and executes every notebook on it,
as a user's session would after `python -m fbn_keras.experiments run`.
"""

import importlib.util
import math
from pathlib import Path

import nbformat
import pytest

from fbn_keras import campaign, experiments, paper_results
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


SOURCES = ("ours", "sd", "paper")
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
                          [("affwild2", "expr_f1"), ("emotionet", "au_f1")]),
                         ("control.csv", list(paper_results.TABLE6_COLUMNS),
                          ["none", "soft+dm, cognitive", "soft+dm, affwild2"], [("rafdb", "expr_mean_diag")])],
    "table7_compound": [("table7.csv", list(experiments.TABLE7_ROWS), list(experiments.TABLE7_METHODS),
                         [("rafdb", "compound_mean_diag")])],
    # The journal's video tables: rows are the columns of Tables II (Aff-Wild: CCC and MSE), III (OMG-Emotion:
    # CCC) and IV (Aff-Wild2: CCC, expressions' F1 / accuracy / total, AUs' F1 / accuracy / total).
    "video_tables2_3_affwildnet_fusion": [
        ("video2.csv", [("affwild", m) for m in ("ccc_valence", "ccc_arousal", "ccc_mean", "mse_valence", "mse_arousal")],
         ["cnn", "vgg-face-lstm", "affwildnet", "cnn, control", "affwildnet, control"], [("affwild", "ccc_valence")]),
        ("video3.csv", [("omg", m) for m in ("ccc_valence", "ccc_arousal", "ccc_mean")],
         ["cnn1rnn", "cnn3rnn", "decision-level fusion", "fusion-fc", "fusion-rnn"], [("omg", "ccc_arousal")])],
    "video_tables4_5_multitask_relatedness": [
        ("video4.csv", [("affwild2", m) for m in ("ccc_valence", "ccc_arousal", "ccc_mean", "expr_f1", "expr_acc",
                                                  "expr_total", "au_f1", "au_acc", "au_total")],
         ["mt-vgg", "mt-vgg-gru", "av-mt-vgg-gru"], [("affwild2", "ccc_valence"), ("affwild2", "expr_f1")]),
        ("video5.csv", None, None, [])],   # Table V: its own layout (RELATEDNESS_COLUMNS)
    # The generation paper's Tables X (by eq. 6's weights) and XI (by losses): CCC V, A, accuracy, weighted and
    # unweighted F1 on the Aff-Wild2-like video; Table X's single-task rows fill only their own task's columns.
    "attention_tables10_11": [
        ("attention10.csv", list(paper_results.ATTENTION_KEYS), list(experiments.ATTENTION10_METHODS), []),
        ("attention11.csv", list(paper_results.ATTENTION_KEYS), list(experiments.ATTENTION11_METHODS),
         [("affwild2", "ccc_valence"), ("affwild2", "expr_acc")])],
    # The generation paper's Table IX: D's CCC V, A, weighted / macro AU F1 and total accuracy on synth-affwild2;
    # a row fills only the heads its D has (as the paper's dashes).
    "gan_table9_discriminator": [("gan.csv", list(experiments.GAN_ROWS), list(experiments.GAN_METHODS), [])],
    # MTANet's Table I (Aff-Wild2's V, A, AU, Expr) by backbone; FaceRNET's Tables 2 (REC representations) and
    # 3 (ablations): Pearson rho per reaction and their mean.
    "mtanet_facernet_tables": [
        ("mtanet.csv", list(experiments.MTANET_ROWS), list(experiments.MTANET_METHODS), [("affwild2", "ccc_v")]),
        ("facernet2.csv", list(experiments.FACERNET_ROWS), list(experiments.FACERNET2_METHODS),
         [("hume-reaction", "pearson_mean")]),
        ("facernet3.csv", list(experiments.FACERNET_ROWS), list(experiments.FACERNET3_METHODS),
         [("hume-reaction", "pearson_mean")])],
}
#: Journal Table V beside ours: the generator's relation (the main paper's Table 1), our estimate, the journal's.
RELATEDNESS_COLUMNS = [("generator (main paper Table 1)", "w"), ("estimated", "ours"),
                       ("Aff-Wild2 (journal Table V)", "paper")]


def test_generator_writes_the_notebooks_it_knows():
    maker = _maker()
    assert set(maker.NOTEBOOKS) == set(EXPECTED)
    for name, spec in maker.NOTEBOOKS.items():
        nb = maker.build(name, spec)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1 and "TRAIN = False" in tagged[0].source and "DATA_DIR = None" in tagged[0].source
        assert (NOTEBOOKS / f"{name}.ipynb").exists(), f"{name}.ipynb not generated"
        # The command that regenerates the results is in the notebook.
        assert any("python -m fbn_keras.experiments run" in c.source for c in nb.cells if c.cell_type == "markdown")


def test_executed_notebooks_are_kept_unless_forced(tmp_path, capsys):
    maker = _maker()
    name = "table7_compound"
    nb = maker.build(name, maker.NOTEBOOKS[name])
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="executed\n")]
    nbformat.write(nb, tmp_path / f"{name}.ipynb")
    maker.main(["--out", str(tmp_path), "--only", name])
    assert "kept" in capsys.readouterr().err
    assert "executed" in (tmp_path / f"{name}.ipynb").read_text()
    maker.main(["--out", str(tmp_path), "--only", name, "--force"])
    assert "executed" not in (tmp_path / f"{name}.ipynb").read_text()


def test_committed_tables_are_the_committed_results(tmp_path):
    """Each committed CSV equals what the committed results render to; no results, no CSV."""
    committed = sorted(p.name for p in (NOTEBOOKS / "tables").glob("*.csv"))
    rendered = tmp_path / "tables"
    for table in campaign.TABLES:
        experiments.render(table, NOTEBOOKS / "results", rendered)
    assert committed == sorted(p.name for p in rendered.glob("*.csv"))
    for name in committed:
        ours, theirs = experiments.load(NOTEBOOKS / "tables" / name), experiments.load(rendered / name)
        assert ours.equals(theirs), name


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


#: Every notebook is its own test (its tables' tiny campaign, then the notebook), so that `pytest -n 2`
#: with pytest.ini's work-stealing scheduler spreads them over both workers.
NOTEBOOK_NAMES = list(_maker().NOTEBOOKS)


@pytest.fixture(scope="session")
def shared_runs(tmp_path_factory) -> Path:
    """One run-folder root for every notebook's tiny campaign, shared by the xdist workers (their base
    temporary folders have one parent): tables that need the same network share its training, as the
    runner's run folders do for a user (Table 6's 'none' is also Table 2's VGG-FACE, Tables 3-5's
    multi-task network, Table 7's and the control's 'none', and the video networks' start); the runner's
    lock lets one process train it while the other waits."""
    import os

    root = tmp_path_factory.getbasetemp()
    return (root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root) / "notebook-runs"


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_notebooks_render_the_tiny_campaign(tmp_path, name, shared_runs):
    """The tiny campaign (one seed) of the notebook's tables (results into tmp_path, networks into the
    shared run folders), then the notebook on it with its default parameters."""
    from fbn_keras import testbed

    maker = _maker()
    results, runs, tables = tmp_path / "results", shared_runs, tmp_path / "tables"
    data_dir = testbed.ensure_synthetic_testbed(scale=campaign.RUN_PRESETS["tiny"].scale)
    shown = sorted(maker.NOTEBOOKS[name]["results"])   # the notebook's tables
    campaign.run_all(campaign.plan([0], shown), "tiny", data_dir, runs, results)
    nb = maker.with_parameters(maker.build(name, maker.NOTEBOOKS[name]),
                               RESULTS_DIR=str(results), TABLES_DIR=str(tables))
    printed = _printed(maker.execute(nb, timeout=HANG_GUARD_S))
    for csv, rows, methods, filled in EXPECTED[name]:
        frame = experiments.load(tables / csv)
        # The table the notebook shows is the one it saved, cell for cell.
        assert experiments.show(frame) in printed, (name, csv)
        if methods is None:   # Table V: happiness has AU12 prototypical in Table 1, w 0.82 in Aff-Wild2
            assert list(frame.columns) == RELATEDNESS_COLUMNS, (name, csv)
            assert frame.loc[("happiness", "AU12"), RELATEDNESS_COLUMNS[0]] == 1.0
            assert frame.loc[("happiness", "AU12"), RELATEDNESS_COLUMNS[2]] == pytest.approx(0.82)
            continue
        assert list(frame.index) == rows, (name, csv)
        assert list(frame.columns) == [(m, s) for m in methods for s in SOURCES], (name, csv)
        for key in filled:   # a database the test-bed has: a number in range in every "ours" column
            for m in methods:
                v = frame.loc[key, (m, "ours")]
                assert not math.isnan(v) and -1.0 <= v <= 1.0, (name, key, m, v)
        # No empty cell of ours where the paper has a number (the test-bed mimics every database).
        for m in methods:
            empty = frame.index[frame[(m, "paper")].notna() & frame[(m, "ours")].isna()]
            assert not len(empty), (name, csv, m, list(empty))
        # The paper's column is the paper's own number.
        paper = {"table2.csv": paper_results.TABLE2, "table6.csv": paper_results.TABLE6,
                 "table7.csv": paper_results.TABLE7}.get(csv)
        if paper is not None:
            m = methods[-1] if csv != "table6.csv" else "soft+dm"
            key = next(k for k in rows if k in paper[m])
            assert frame.loc[key, (m, "paper")] == pytest.approx(paper[m][key])
    assert "[SUPPORTED]" in printed or "[NOT TESTABLE]" in printed or "[CONTRADICTED]" in printed
    if "table6" not in shown:
        return
    # One number recomputed from its saved network: Table 6's no-coupling RAF-DB mean diagonal.
    none = next(r for r in campaign.plan([0], ["table6"]) if r.label == "none")
    folder = campaign.run_folder(runs, none.config(campaign.RUN_PRESETS["tiny"]), campaign.data_fingerprint(data_dir))
    assert (folder / "model.keras").exists(), folder
    table6 = experiments.load(tables / "table6.csv")
    assert table6.loc[("rafdb", "expr_mean_diag"), ("none", "ours")] == pytest.approx(
        _mean_diagonal_by_hand(folder, data_dir, "synth-rafdb"), abs=1e-9)
