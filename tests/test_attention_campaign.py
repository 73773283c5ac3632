"""VGGFACE-GRU-attention's campaign table (the generation paper's Tables X-XI): the plan, one tiny run end to end,
the two tables beside the paper's numbers, and the claims, on numbers worked out by hand."""

import json
import math

import pytest

from fbn_keras import campaign, experiments, paper_results, verdicts

V, A = ("affwild2", "ccc_valence"), ("affwild2", "ccc_arousal")
ACC, WF1, F1 = ("affwild2", "expr_acc"), ("affwild2", "expr_f1_weighted"), ("affwild2", "expr_f1")


# === The paper's numbers ===

def test_tables_x_and_xi_as_the_paper_prints_them():
    t10, t11 = paper_results.ATTENTION_TABLE10, paper_results.ATTENTION_TABLE11
    assert len(t10) == 7 and len(t11) == 12
    # Table X, (0.5, 0.5): CCC 0.616 - 0.510, total accuracy 0.645, F1 weighted - unweighted 0.643 - 0.514.
    assert t10["(0.5, 0.5)"] == {V: 0.616, A: 0.510, ACC: 0.645, WF1: 0.643, F1: 0.514}
    # Only expressions: no CCC ("-"), 0.494, 0.488 - 0.415; only VA: 0.579 - 0.409 and nothing else.
    assert t10["(0, 1)"] == {ACC: 0.494, WF1: 0.488, F1: 0.415}
    assert t10["(1, 0)"] == {V: 0.579, A: 0.409}
    assert t10["(1, 1)"][WF1] == 0.501 and t10["(0.75, 0.25)"][A] == 0.424
    # Table XI's row "CCC based, Cross Entropy, 10^-3" is Table X's (0.5, 0.5) network: its first F1 column
    # (0.643) is Table X's weighted one.
    assert t11["CCC, CE, 1e-3"] == t10["(0.5, 0.5)"]
    assert t11["CCC, MSE before softmax, 1e-4"] == {V: 0.491, A: 0.433, ACC: 0.588, WF1: 0.581, F1: 0.497}
    assert t11["MSE, MSE after softmax, 1e-3"] == {V: 0.515, A: 0.468, ACC: 0.581, WF1: 0.527, F1: 0.423}


# === The plan ===

def test_the_attention_table_plans_seven_video_runs_at_table_xis_best_learning_rate():
    runs = campaign.plan([0, 1], ["attention"])
    assert [r.label for r in runs[:7]] == ["attention", "no attention", "only expressions (0, 1)", "only VA (1, 0)",
                                           "MSE after softmax", "MSE before softmax", "MSE + CE"]
    assert [r.seed for r in runs] == [0] * 7 + [1] * 7
    assert "attention/only_expressions_(0-1)-s1" in {r.id for r in runs}
    small = campaign.RUN_PRESETS["small"]
    configs = {r.label: r.config(small) for r in runs if r.seed == 0}
    for c in configs.values():      # the video settings (400 steps, windows 4 x 32, from the image network)
        assert (c.model, c.video_databases, c.learning_rate, c.steps, c.seq_batch, c.seq_length, c.init_from,
                c.image_size) == ("vggface-gru-attention", "synthv-affwild2", 1e-3, 400, 4, 32, "@image", 96)
    assert all(r.video and r.data_kind == "video" for r in runs)
    fields = {label: (c.attention, c.attn_alpha, c.attn_beta, c.attn_va_loss, c.attn_expr_loss)
              for label, c in configs.items()}
    assert fields == {"attention": (True, 0.5, 0.5, "ccc", "ce"), "no attention": (False, 0.5, 0.5, "ccc", "ce"),
                      "only expressions (0, 1)": (True, 0.0, 1.0, "ccc", "ce"),
                      "only VA (1, 0)": (True, 1.0, 0.0, "ccc", "ce"),
                      "MSE after softmax": (True, 0.5, 0.5, "ccc", "mse_softmax"),
                      "MSE before softmax": (True, 0.5, 0.5, "ccc", "mse_logits"),
                      "MSE + CE": (True, 0.5, 0.5, "mse", "ce")}
    # Table XI's column our runs fill is the one of the learning rate they use.
    assert all(row.endswith("1e-3") for row in experiments.ATTENTION11_METHODS.values())
    assert campaign.ATTENTION_LR == 1e-3


# === Our results as Tables X and XI ===

def _result(label, seed, numbers, preset="small"):
    metrics = {"synthv-affwild2": {"ccc_valence": numbers[0], "ccc_arousal": numbers[1], "expr_acc": numbers[2],
                                   "expr_f1_weighted": numbers[3], "expr_f1": numbers[4], "n_expr": 500}}
    return {"table": "attention", "label": label, "seed": seed, "metrics": metrics, "preset": preset,
            "git": {"code_commit": "abc", "dirty": False}, "data": {"digest": "d1"},
            "wall_s": {"train": 240.0, "evaluate": 60.0}, "finetuned": None}


MADE_UP = [
    _result("attention", 0, (0.6, 0.5, 0.7, 0.68, 0.6)), _result("attention", 1, (0.7, 0.4, 0.8, 0.78, 0.7)),
    _result("only expressions (0, 1)", 0, (0.05, -0.1, 0.5, 0.48, 0.4)),
    _result("only expressions (0, 1)", 1, (0.01, 0.02, 0.6, 0.58, 0.5)),
    _result("only VA (1, 0)", 0, (0.5, 0.3, 0.2, 0.1, 0.1)), _result("only VA (1, 0)", 1, (0.6, 0.4, 0.1, 0.1, 0.1)),
    _result("MSE before softmax", 0, (0.6, 0.5, 0.3, 0.3, 0.3)),
]


def test_results_fill_tables_x_and_xi_beside_the_papers_numbers(tmp_path):
    scores = experiments.scores_from_results(MADE_UP)
    # A single-task run keeps only its trained head's numbers.
    assert scores["attention10"]["only VA (1, 0)"][0] == {V: 0.5, A: 0.3}
    assert set(scores["attention10"]["only expressions (0, 1)"][1]) == {ACC, WF1, F1}
    t10 = experiments.results_frame("attention10", scores["attention10"])
    # attention: valence (0.6 + 0.7) / 2 = 0.65, sd |0.6 - 0.7| / sqrt(2); the paper's (0.5, 0.5) 0.616.
    assert t10.loc[V, ("attention", "ours")] == pytest.approx(0.65)
    assert t10.loc[V, ("attention", "sd")] == pytest.approx(0.1 / math.sqrt(2))
    assert t10.loc[V, ("attention", "paper")] == 0.616 and t10.loc[WF1, ("only expressions (0, 1)", "paper")] == 0.488
    assert math.isnan(t10.loc[V, ("only expressions (0, 1)", "ours")])      # no VA head trained
    assert math.isnan(t10.loc[ACC, ("only VA (1, 0)", "paper")])           # "-" in the paper
    assert t10[("no attention", "paper")].isna().all() and t10[("no attention", "ours")].isna().all()
    t11 = experiments.results_frame("attention11", scores["attention11"])
    assert list(t11.index) == list(paper_results.ATTENTION_KEYS)
    assert t11.loc[ACC, ("attention", "ours")] == pytest.approx(0.75) and t11.loc[ACC, ("attention", "paper")] == 0.645
    assert t11.loc[F1, ("MSE before softmax", "paper")] == 0.469 and t11.loc[A, ("MSE + CE", "paper")] == 0.362
    # Rendered from result files: both tables, as text and as CSV, and the verdict lines.
    for r in MADE_UP:
        path = tmp_path / "results" / "attention" / f"{r['label'].replace(' ', '_')}-s{r['seed']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r))
    text = experiments.render("attention", tmp_path / "results", tmp_path / "tables", data_dir=tmp_path)
    frame = experiments.load(tmp_path / "tables" / "attention10.csv")
    assert experiments.show(frame) in text and (tmp_path / "tables" / "attention11.csv").exists()
    assert "=== attention11 ===" in text and "7 runs, seeds [0, 1], preset small" in text
    assert "[SUPPORTED] Generation paper Table X: eq. 6 with alpha = beta = 0.5 above the expression-only" in text
    assert "--table attention --seeds 0,1" in text


# === The claims ===

def test_claims_read_the_direction_of_tables_x_and_xi():
    claims = {c.id: c for c in verdicts.ATTENTION_CLAIMS}
    assert [(p.table, p.better, p.worse, p.keys) for p in claims["attention10-multi-task-expr"].pairs] == [
        ("attention10", "attention", "only expressions (0, 1)", (ACC, WF1, F1))]
    assert [(p.better, p.worse, p.keys) for p in claims["attention10-multi-task-va"].pairs] == [
        ("attention", "only VA (1, 0)", (V, A))]
    # Table XI at 1e-3: CE 0.645/0.643/0.514 (mean 0.6007) above after softmax 0.569/0.511/0.447 (0.509) and
    # before softmax 0.517/0.501/0.469 (0.4957); CCC loss 0.616/0.510 above MSE 0.532/0.362 on CCC.
    assert [(p.table, p.better, p.worse) for p in claims["attention11-ce-mse"].pairs] == [
        ("attention11", "attention", "MSE after softmax"), ("attention11", "attention", "MSE before softmax")]
    assert [(p.better, p.worse, p.keys) for p in claims["attention11-ccc-mse"].pairs] == [
        ("attention", "MSE + CE", (V, A))]
    assert "0.645/0.643/0.514 vs after softmax 0.569/0.511/0.447" in claims["attention11-ce-mse"].text
    assert claims["attention-vs-none"].pairs[0].keys == paper_results.ATTENTION_KEYS
    assert verdicts.chance_of(WF1) == pytest.approx(1 / 7)


def _scores(**methods):
    """{method: [(v, a, acc, wf1, f1) per seed]} → the scores of Tables X and XI (both hold every method)."""
    table = {m: {seed: dict(zip(paper_results.ATTENTION_KEYS, row)) for seed, row in enumerate(rows)}
             for m, rows in methods.items()}
    return {"attention10": table, "attention11": table}


def test_claim_verdicts_on_numbers_worked_out_by_hand():
    claims = {c.id: c for c in verdicts.ATTENTION_CLAIMS}
    scores = _scores(**{
        # Expression means per seed: attention (0.60 + 0.58 + 0.50) / 3 = 0.56 and 0.60; only expressions
        # 0.36 and 0.40. Gap 0.58 - 0.38 = 0.20; sd of (0.56, 0.60) = 0.0283: 0.20 > 2 sd, supported.
        "attention": [(0.5, 0.4, 0.60, 0.58, 0.50), (0.6, 0.5, 0.64, 0.62, 0.54)],
        "only expressions (0, 1)": [(0.0, 0.0, 0.40, 0.38, 0.30), (0.0, 0.0, 0.44, 0.42, 0.34)],
        # CCC means: attention 0.45, 0.55; only VA 0.52, 0.56: gap 0.50 - 0.54 = -0.04, sd 0.0707: not testable.
        "only VA (1, 0)": [(0.6, 0.44, 0.1, 0.1, 0.1), (0.6, 0.52, 0.1, 0.1, 0.1)],
        # After softmax at chance (F1 0.15 <= 1.5 / 7 = 0.214 on every expression column): dropped, so the
        # Table XI claim is not testable though CE beats MSE before softmax (0.30 per seed: gap 0.28, sd 0.0283).
        "MSE after softmax": [(0.5, 0.4, 0.20, 0.20, 0.15), (0.5, 0.4, 0.21, 0.20, 0.15)],
        "MSE before softmax": [(0.5, 0.4, 0.30, 0.30, 0.30), (0.5, 0.4, 0.30, 0.30, 0.30)],
        # MSE VA loss: CCC means 0.70, 0.70 above attention's 0.45, 0.55: gap -0.20, sd 0.0707: contradicted.
        "MSE + CE": [(0.8, 0.6, 0.6, 0.6, 0.5), (0.8, 0.6, 0.6, 0.6, 0.5)],
        # No attention, all five columns: attention's means (0.5 + 0.4 + 0.60 + 0.58 + 0.50) / 5 = 0.516 and
        # (0.6 + 0.5 + 0.64 + 0.62 + 0.54) / 5 = 0.58; no attention (0.3 + 0.2 + 0.4 + 0.4 + 0.3) / 5 = 0.32 and
        # 0.34: gap 0.548 - 0.33 = 0.218, sd 0.064 / sqrt(2) = 0.0453: supported.
        "no attention": [(0.3, 0.2, 0.4, 0.4, 0.3), (0.3, 0.3, 0.4, 0.4, 0.3)],
    })
    overall, found = verdicts.judge(claims["attention10-multi-task-expr"], scores)
    assert overall == verdicts.SUPPORTED
    assert found[0].gap == pytest.approx(0.20) and found[0].sd == pytest.approx(0.04 / math.sqrt(2))
    overall, found = verdicts.judge(claims["attention10-multi-task-va"], scores)
    assert overall == verdicts.NOT_TESTABLE and found[0].gap == pytest.approx(-0.04)
    overall, found = verdicts.judge(claims["attention11-ce-mse"], scores)
    assert overall == verdicts.NOT_TESTABLE
    assert found[0].reason.startswith("near chance") and found[1].verdict == verdicts.SUPPORTED
    assert found[1].gap == pytest.approx(0.28)
    overall, found = verdicts.judge(claims["attention11-ccc-mse"], scores)
    assert overall == verdicts.CONTRADICTED and found[0].gap == pytest.approx(-0.20)
    overall, found = verdicts.judge(claims["attention-vs-none"], scores)
    assert overall == verdicts.SUPPORTED and found[0].gap == pytest.approx(0.218)
    assert found[0].sd == pytest.approx(0.064 / math.sqrt(2))


# === One run of the table, end to end ===

def test_tiny_attention_cell_end_to_end(tmp_path):
    """The paper's best row at the tiny preset (from random initialisation: only the small preset starts from
    the image network): trained on the video test-bed, scored per frame on the test split, then rendered."""
    args = ["run", "--preset", "tiny", "--run", "attention/attention-s0", "--seeds", "0", "--runs-dir",
            str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results")]
    assert experiments.main(args) == 0
    body = json.loads((tmp_path / "results" / "attention" / "attention-s0.json").read_text())
    c = body["config"]
    assert (c["model"], c["learning_rate"], c["init_from"], c["seq_length"], body["steps"]) == (
        "vggface-gru-attention", 1e-3, "", 4, 3)
    scores = body["metrics"]["synthv-affwild2"]
    assert scores["unit"] == "frame" and scores["n_expr"] > 0 and scores["n_va"] > 0
    assert 0.0 <= scores["expr_f1_weighted"] <= 1.0 and -1.0 <= scores["ccc_valence"] <= 1.0
    text = experiments.render("attention", tmp_path / "results", tmp_path / "tables")
    t11 = experiments.load(tmp_path / "tables" / "attention11.csv")
    assert t11.loc[ACC, ("attention", "ours")] == pytest.approx(scores["expr_acc"])
    assert "=== attention10 ===" in text and "[NOT TESTABLE]" in text
