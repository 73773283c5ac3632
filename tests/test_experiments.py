"""The notebooks' table logic: result keys, the ours/paper layout and the claim lines, on numbers set by hand."""

import math

import pytest

from fbn_keras import experiments, paper_results


def test_paper_keys_maps_synthetic_and_compound_names():
    got = experiments.paper_keys({
        "synth-rafdb": {"expr_mean_diag": 0.5, "n_expr": 50},
        "synth-rafdb-compound": {"compound_mean_diag": 0.25, "n_compound": 30},
        "emotionet-compound": {"compound_f1": 0.1, "compound_uar": 0.2},
        "bp4d": {"au_f1": 0.4},
    })
    assert got == {("rafdb", "expr_mean_diag"): 0.5, ("rafdb", "compound_mean_diag"): 0.25,
                   ("emotionet", "compound_f1"): 0.1, ("emotionet", "compound_uar"): 0.2,
                   ("bp4d", "au_f1"): 0.4}


def test_comparison_layout_and_missing_numbers():
    rows = [("affwild", "ccc_v"), ("afew", "expr_acc")]
    frame = experiments.comparison({"a": {("affwild", "ccc_v"): 0.3}}, {"a": {("afew", "expr_acc"): 0.4}},
                                   rows, ["a", "b"])
    assert list(frame.index) == rows
    assert list(frame.columns) == [("a", "ours"), ("a", "paper"), ("b", "ours"), ("b", "paper")]
    assert frame.loc[("affwild", "ccc_v"), ("a", "ours")] == 0.3
    assert frame.loc[("afew", "expr_acc"), ("a", "paper")] == 0.4
    assert math.isnan(frame.loc[("afew", "expr_acc"), ("a", "ours")])
    assert frame[("b", "ours")].isna().all()


def test_csv_round_trip(tmp_path):
    frame = experiments.comparison({"x": {("disfa", "au_f1"): 0.52}}, paper_results.TABLE6,
                                   [("disfa", "au_f1"), ("bp4d", "au_f1")], ["x", "none"])
    back = experiments.load(experiments.save(frame, tmp_path / "t.csv"))
    assert list(back.index) == list(frame.index) and list(back.columns) == list(frame.columns)
    assert back.loc[("bp4d", "au_f1"), ("none", "paper")] == pytest.approx(0.63)


def test_claims_count_rows_where_our_numbers_agree():
    rows = [("disfa", "au_f1"), ("bp4d", "au_f1"), ("afew", "expr_acc")]
    ours = {"FaceBehaviorNet": {rows[0]: 0.5, rows[1]: 0.3},
            "VGG-FACE single task": {rows[0]: 0.4, rows[1]: 0.35, rows[2]: 0.2}}
    frame = experiments.comparison(ours, {}, rows, ["VGG-FACE single task", "FaceBehaviorNet"])
    # Both numbers exist on 2 rows; FaceBehaviorNet is ahead on 1 of them.
    assert experiments.claims("Table 5", frame) == [
        "Paper: FaceBehaviorNet beats the single-task network on every column. "
        "Ours: FaceBehaviorNet > single task on 1/2."]


def test_table6_claims_count_ties_as_agreement():
    key = ("disfa", "au_f1")
    ours = {c: {key: 0.5} for c in experiments.COUPLINGS}
    ours["dm"] = {key: 0.4}
    frame = experiments.comparison(ours, {}, [key], experiments.COUPLINGS)
    lines = experiments.claims("Table 6", frame)
    assert lines[0] == "Paper: 'coann' >= no coupling on every column. Ours: on 1/1."   # a tie agrees
    assert lines[2] == "Paper: 'dm' >= no coupling on every column. Ours: on 0/1."


def test_table7_claims_compare_with_chance():
    key = ("rafdb", "compound_mean_diag")
    ours = {m: {key: v} for m, v in zip(experiments.TABLE7_METHODS, (0.2, 0.1, 0.4, 0.1))}
    frame = experiments.comparison(ours, paper_results.TABLE7, list(experiments.TABLE7_ROWS),
                                   list(experiments.TABLE7_METHODS))
    lines = experiments.claims("Table 7", frame, chance=1 / 11)
    assert "zero-shot, no coupling loss: 0.200 vs chance 0.091 (clearly above chance)" in lines[0]
    assert lines[1].endswith("0.100 vs chance 0.091 (at chance level).")   # 0.1 < 1.5 x chance
    assert lines[4].endswith("Ours: on 1/1.")    # fine-tuned 0.4 > zero-shot 0.2 (no coupling)
    assert lines[5].endswith("Ours: on 0/1.")    # a tie (0.1, 0.1) is not a win
    assert lines[6].endswith("Ours: on 0/1.")    # zero-shot: all couplings 0.1 < none 0.2


def test_setup_config_applies_steps_and_overrides(tmp_path):
    s = experiments.Setup(data_dir=tmp_path, runs_dir=tmp_path / "runs", steps=7,
                          overrides={"image_size": 48, "eval_every": 0})
    c = s.config(coupling="dm")
    assert (c.preset, c.steps, c.image_size, c.eval_every, c.coupling) == ("tiny", 7, 48, 0, "dm")
    # Different configs or data folders never share a run folder.
    assert experiments.run_name(c, tmp_path) != experiments.run_name(s.config(coupling="soft"), tmp_path)
    assert experiments.run_name(c, tmp_path) != experiments.run_name(c, tmp_path / "other")
