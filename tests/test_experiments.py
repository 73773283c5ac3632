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


# === The campaign: plan, result files, rendering ===

def _result(table, label, seed, metrics, finetuned=None):
    return {"table": table, "label": label, "seed": seed, "metrics": metrics, "finetuned": finetuned}


def test_plan_names_are_stable_and_cover_every_table():
    from fbn_keras import campaign

    runs = campaign.plan([0, 1])
    ids = [r.id for r in runs]
    # Image tables 3 + 4 + 8 + 2 + 3 runs per seed; video tables II 5, III 5, IV 3 per seed, V (the
    # estimator, no training) once; MTANet 4 and FaceRNET 8 per seed; the generation paper's Tables X-XI
    # ("attention") 7 per seed, and its Table IX ("gan": five rows and the scarce-label pair) 7 per seed.
    assert len(ids) == len(set(ids)) == 2 * (3 + 4 + 8 + 2 + 3) + 2 * (5 + 5 + 3) + 1 + 2 * (4 + 8) + 2 * 7 + 2 * 7
    assert "table6/coann_soft_dm-s1" in ids and "tables3_5/single_va-s0" in ids
    assert "control/soft_dm-affwild2-s0" in ids
    run = next(r for r in runs if r.id == "control/soft_dm-affwild2-s1")
    c = run.config(campaign.RUN_PRESETS["small"])
    assert (c.coupling, c.relation, c.seed, c.image_size, c.steps, c.eval_every) == ("soft+dm", "affwild2", 1, 96, 900, 0)
    # A video run: the video settings on top, members named by label (no machine paths in a result).
    fusion = next(r for r in runs if r.id == "video3/fusion-rnn-s1").config(campaign.RUN_PRESETS["small"])
    assert (fusion.model, fusion.init_from, fusion.steps, fusion.video_databases) == (
        "fusion-rnn", "@cnn1rnn,@cnn3rnn", 400, "synthv-omg")
    assert next(r for r in runs if r.id == "video3/decision-level_fusion-s0").fuse == ("cnn1rnn", "cnn3rnn")
    assert next(r for r in runs if r.id == "video2/cnn-s0").config(campaign.RUN_PRESETS["small"]).init_from == "@image"


def test_scores_from_results_map_runs_to_the_tables_methods():
    results = [
        _result("tables3_5", "single va", 0, {"synth-affwild": {"ccc_v": 0.5, "ccc_a": 0.4},
                                              "synth-rafdb": {"expr_mean_diag": 0.9}}),
        _result("tables3_5", "multi-task", 0, {"synth-affwild": {"ccc_v": 0.6}, "synth-rafdb": {"expr_mean_diag": 0.7}}),
        _result("table7", "coann+soft+dm", 1, {"synth-rafdb-compound": {"compound_mean_diag": 0.3},
                                               "synth-rafdb": {"expr_mean_diag": 0.7}},
                finetuned={"synth-rafdb-compound": {"compound_mean_diag": 0.4, "n_compound": 30}}),
    ]
    got = experiments.scores_from_results(results)
    # The single-task VA network counts only for its task, in Table 3; the multi-task one in Tables 3-5.
    assert got["table3"]["VGG-FACE single task"] == {0: {("affwild", "ccc_v"): 0.5, ("affwild", "ccc_a"): 0.4}}
    assert "VGG-FACE single task" not in got.get("table4", {})
    assert got["table4"]["FaceBehaviorNet"][0][("rafdb", "expr_mean_diag")] == 0.7
    assert got["table7"]["zero-shot, all coupling losses"] == {1: {("rafdb", "compound_mean_diag"): 0.3}}
    assert got["table7"]["fine-tuned, all coupling losses"] == {1: {("rafdb", "compound_mean_diag"): 0.4}}


def test_results_frame_mean_and_sd_over_seeds():
    key = ("disfa", "au_f1")
    scores = {"none": {0: {key: 0.5}, 1: {key: 0.7}}, "dm": {0: {key: 0.6}}}
    frame = experiments.results_frame("table6", scores)
    assert frame.loc[key, ("none", "ours")] == pytest.approx(0.6)
    assert frame.loc[key, ("none", "sd")] == pytest.approx(math.sqrt(0.02))   # (0.1² + 0.1²) / (2 - 1)
    assert math.isnan(frame.loc[key, ("dm", "sd")])                           # one seed: no sd
    assert frame.loc[key, ("none", "paper")] == pytest.approx(0.52)


def test_render_without_results_says_so(tmp_path):
    text = experiments.render("table6", tmp_path / "results", tmp_path / "tables")
    assert text.startswith("No results for table6") and "python -m fbn_keras.experiments run" in text
    assert not (tmp_path / "tables").exists()


def test_tiny_campaign_run_writes_one_result_and_then_nothing(tmp_path, capsys):
    """One table cell of the runner at the tiny preset: a valid JSON; the second invocation does nothing;
    the rendered table agrees with its CSV; a changed config makes the result stale."""
    import json

    from fbn_keras import campaign

    args = ["run", "--preset", "tiny", "--run", "table6/none-s0", "--seeds", "0", "--runs-dir",
            str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results")]
    assert experiments.main(args) == 0
    path = tmp_path / "results" / "table6" / "none-s0.json"
    body = json.loads(path.read_text())
    assert body["config"]["coupling"] == "none" and body["config"]["preset"] == "tiny" and body["steps"] == 3
    assert body["git"]["commit"] and isinstance(body["git"]["dirty"], bool)
    assert body["data"]["generator"] and body["data"]["counts"]["synth-rafdb"]["test"] > 0
    assert 0.0 <= body["metrics"]["synth-rafdb"]["expr_mean_diag"] <= 1.0
    assert body["wall_s"]["train"] > 0 and body["host"]["tensorflow"]
    assert not list(path.parent.glob(".*.tmp"))        # written by rename
    capsys.readouterr()
    mtime = path.stat().st_mtime_ns
    assert experiments.main(args) == 0
    assert "0 result(s) written" in capsys.readouterr().out and path.stat().st_mtime_ns == mtime
    # Rendered: the text shows exactly the table saved as CSV.
    text = experiments.render("table6", tmp_path / "results", tmp_path / "tables")
    frame = experiments.load(tmp_path / "tables" / "table6.csv")
    assert experiments.show(frame) in text
    assert frame.loc[("rafdb", "expr_mean_diag"), ("none", "ours")] == pytest.approx(
        body["metrics"]["synth-rafdb"]["expr_mean_diag"])
    assert "1 runs, seeds [0], preset tiny" in text and "[NOT TESTABLE]" in text
    # A result made with another config is stale, not done.
    body["config"]["learning_rate"] = 0.5
    path.write_text(json.dumps(body))
    run = next(r for r in campaign.plan([0], ["table6"]) if r.label == "none")
    assert campaign.status(run, campaign.RUN_PRESETS["tiny"], tmp_path / "results") == \
        "stale: config differs in learning_rate"


def test_a_result_predating_a_new_config_field_stays_done(tmp_path):
    """A field added to Config after a result was written is not compared: the result stays 'done';
    a field it has with another value makes it stale; a field left at its default keeps the run folder."""
    import json

    from fbn_keras import campaign

    run = next(r for r in campaign.plan([0], ["table6"]) if r.label == "none")
    run_preset = campaign.RUN_PRESETS["tiny"]
    config = run.config(run_preset).to_dict()
    path = campaign.result_path(tmp_path, run)
    path.parent.mkdir(parents=True)
    older = {k: v for k, v in config.items() if k not in ("seq_length", "relation_weighted")}
    path.write_text(json.dumps({"config": older}))
    assert campaign.status(run, run_preset, tmp_path) == "done"
    older["image_size"] = 64                                                  # tiny sets 32
    path.write_text(json.dumps({"config": older}))
    assert campaign.status(run, run_preset, tmp_path) == "stale: config differs in image_size"
    fingerprint = {"digest": "d"}
    cfg = run.config(run_preset)
    assert campaign.run_folder(tmp_path, cfg, fingerprint) == campaign.run_folder(
        tmp_path, campaign.Config(**{**cfg.to_dict(), "relation_weighted": False}), fingerprint)


def test_member_references_resolve_to_run_folders():
    from pathlib import Path

    from fbn_keras import campaign

    dirs = {"cnn1rnn": Path("a"), "cnn3rnn": Path("b"), "image": Path("i"), "mt-vgg-gru": Path("m")}
    assert campaign._resolve_members("@cnn1rnn,@cnn3rnn", dirs) == "cnn1rnn=a,cnn3rnn=b"
    assert campaign._resolve_members("@image", dirs) == "i"
    assert campaign._resolve_members("visual_stream=@mt-vgg-gru", dirs) == "visual_stream=m"
    assert campaign._resolve_members("x.keras", dirs) == "x.keras"
    with pytest.raises(ValueError, match=r"names runs \['fusion-fc'\] that are not trained yet"):
        campaign._resolve_members("@fusion-fc", dirs)


def test_mtanet_and_facernet_plans():
    """MTANet's Table I: three backbones at stage 1's optimiser (Section IV-B: AdamW 1e-3, decay 1e-3), and
    eq. 5 on SENet-50; FaceRNET's Tables 2-3: its REC on the image test-bed, the RNN part at 1e-4 on it."""
    from fbn_keras import campaign

    small = campaign.RUN_PRESETS["small"]
    runs = {r.id: r for r in campaign.plan([0, 1], ["mtanet", "facernet"])}
    assert sorted(runs) == sorted(f"{t}/{n}-s{s}" for s in (0, 1) for t, n in (
        ("mtanet", "se_resnet50"), ("mtanet", "resnext50"), ("mtanet", "resnext50_cbam"),
        ("mtanet", "se_resnet50-uncertainty"), ("facernet", "rec"), ("facernet", "FaceRNET"),
        ("facernet", "features_va"), ("facernet", "features_expr"), ("facernet", "features_au"),
        ("facernet", "no_mask"), ("facernet", "no_GRU"), ("facernet", "mean_predictor")))
    eq5 = runs["mtanet/se_resnet50-uncertainty-s1"].config(small)
    assert (eq5.model, eq5.mtanet_backbone, eq5.mtanet_weighting, eq5.optimizer, eq5.learning_rate,
            eq5.weight_decay, eq5.steps, eq5.image_size, eq5.seed) == (
        "mtanet", "se_resnet50", "uncertainty", "adamw", 1e-3, 1e-3, 900, 96, 1)
    assert runs["mtanet/resnext50_cbam-s0"].config(small).mtanet_weighting == "sum"
    assert runs["mtanet/resnext50-s0"].data_kind == "image"
    rec, full = runs["facernet/rec-s0"], runs["facernet/FaceRNET-s0"]
    assert rec.data_kind == "image" and rec.config(small).facernet_stage == "rec"
    c = full.config(small)
    assert full.data_kind == "reaction" and (c.facernet_stage, c.init_from, c.learning_rate, c.facernet_features,
                                             c.facernet_mask, c.facernet_frames) == (
        "rnn", "@rec", 1e-4, "va+expr+au", "route", 48)
    assert runs["facernet/no_mask-s1"].config(small).facernet_mask == "none"
    no_gru = runs["facernet/no_GRU-s0"].config(small)
    assert (no_gru.facernet_rnn, no_gru.facernet_mask, no_gru.init_from) == ("none", "route", "@rec")
    assert runs["facernet/features_au-s0"].config(small).facernet_features == "au"
    baseline = runs["facernet/mean_predictor-s0"]
    assert baseline.baseline and baseline.config(small).init_from == ""
    # The tiny preset's reaction runs see 8 frames of each video.
    assert full.config(campaign.RUN_PRESETS["tiny"]).facernet_frames == 8


def test_facernet_results_fill_tables_2_and_3_beside_the_papers_numbers():
    rho = ("hume-reaction", "pearson_mean")
    results = [_result("facernet", "FaceRNET", 0, {"synthv-hume-reaction": {"pearson_mean": 0.3, "n_videos": 6}}),
               _result("facernet", "no mask", 0, {"synthv-hume-reaction": {"pearson_mean": 0.2}}),
               _result("mtanet", "resnext50", 1, {"synth-affwild2": {"ccc_v": 0.1, "au_f1": 0.4}})]
    scores = experiments.scores_from_results(results)
    assert scores["facernet2"]["FaceRNET"] == scores["facernet3"]["FaceRNET"] == {0: {rho: 0.3}}
    assert scores["mtanet"]["resnext50"] == {1: {("affwild2", "ccc_v"): 0.1, ("affwild2", "au_f1"): 0.4}}
    t3 = experiments.results_frame("facernet3", scores["facernet3"])
    assert t3.loc[rho, ("no mask", "ours")] == 0.2 and t3.loc[rho, ("no mask", "paper")] == 0.469
    assert math.isnan(t3.loc[rho, ("mean predictor", "paper")])          # ours: no paper row
    t2 = experiments.results_frame("facernet2", scores["facernet2"])
    assert t2.loc[rho, ("features expr", "paper")] == 0.476 and t2.loc[rho, ("FaceRNET", "paper")] == 0.494
    t1 = experiments.results_frame("mtanet", scores["mtanet"])
    assert t1.loc[("affwild2", "au_f1"), ("resnext50", "paper")] == 0.403
    assert t1[("se_resnet50, uncertainty", "paper")].isna().all()     # the paper reports no eq. 5 ablation


def test_mtanet_and_facernet_claims_read_the_papers_direction():
    from fbn_keras import verdicts

    claims = {c.id: c for c in verdicts.OTHER_CLAIMS}
    # Table I means over V, A, AU, Expr: SENet-50 (0.28 + 0.34 + 0.427 + 0.32) / 4 = 0.34175,
    # ResNeXt-50 (0.22 + 0.31 + 0.403 + 0.30) / 4 = 0.30825, + CBAM (0.27 + 0.34 + 0.397 + 0.31) / 4 = 0.32925.
    assert [(p.better, p.worse) for p in claims["mtanet-senet-resnext"].pairs] == [("se_resnet50", "resnext50")]
    assert [(p.better, p.worse) for p in claims["mtanet-cbam-resnext"].pairs] == [("resnext50_cbam", "resnext50")]
    assert "0.342 vs 0.308" in claims["mtanet-senet-resnext"].text
    # Table 2: 0.494 above 0.461, 0.476, 0.480; Table 3: 0.494 above 0.469 (w/o Mask & Routing).
    assert [(p.better, p.worse) for p in claims["facernet-all-features"].pairs] == [
        ("FaceRNET", "features va"), ("FaceRNET", "features expr"), ("FaceRNET", "features au")]
    assert [(p.better, p.worse) for p in claims["facernet-mask"].pairs] == [("FaceRNET", "no mask")]
    assert [(p.better, p.worse) for p in claims["facernet-no-gru"].pairs] == [("FaceRNET", "no GRU")]


def test_a_claim_against_a_baseline_at_chance_by_construction():
    """The mean predictor's rho is 0 on every seed: with chance 0 it is dropped as near chance; the claim's
    own chance level (-inf) keeps it, and the verdict is FaceRNET's gap over 0."""
    from fbn_keras import verdicts

    rho = ("hume-reaction", "pearson_mean")
    claim = next(c for c in verdicts.OTHER_CLAIMS if c.id == "facernet-mean-predictor")
    # FaceRNET 0.30, 0.34 (mean 0.32, sd 0.0283); the predictor 0, 0 (sd 0): gap 0.32 > 0.057.
    scores = {"facernet3": {"FaceRNET": {0: {rho: 0.30}, 1: {rho: 0.34}},
                            "mean predictor": {0: {rho: 0.0}, 1: {rho: 0.0}}}}
    overall, found = verdicts.judge(claim, scores)
    assert overall == verdicts.SUPPORTED
    assert found[0].gap == pytest.approx(0.32) and found[0].sd == pytest.approx(math.sqrt(0.0008))
    plain = verdicts.Claim("x", "facernet3", "x", claim.pairs)         # no override: 0 <= 1.5 x 0 is chance
    overall, found = verdicts.judge(plain, scores)
    assert overall == verdicts.NOT_TESTABLE and found[0].reason.startswith("near chance")
    # FaceRNET 0.05, -0.05 (mean 0, sd 0.0707): gap 0 -> not testable.
    noisy = {"facernet3": {"FaceRNET": {0: {rho: 0.05}, 1: {rho: -0.05}},
                           "mean predictor": {0: {rho: 0.0}, 1: {rho: 0.0}}}}
    assert verdicts.judge(claim, noisy)[0] == verdicts.NOT_TESTABLE


def test_tiny_facernet_cell_end_to_end(tmp_path):
    """FaceRNET's cell at the tiny preset: its REC is trained first on the image test-bed (the '@rec'
    reference), FaceRNET then on the reaction videos; the mean predictor trains nothing and scores rho 0."""
    import json

    args = ["run", "--preset", "tiny", "--run", "facernet/FaceRNET-s0", "--run", "facernet/mean_predictor-s0",
            "--seeds", "0", "--runs-dir", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results")]
    assert experiments.main(args) == 0
    body = json.loads((tmp_path / "results" / "facernet" / "FaceRNET-s0.json").read_text())
    assert body["config"]["init_from"] == "@rec" and body["config"]["facernet_frames"] == 8 and body["steps"] == 3
    assert body["data"]["generator"] == "synthetic-intensity"
    assert body["data"]["counts"]["synthv-hume-reaction"]["test"] > 0
    scores = body["metrics"]["synthv-hume-reaction"]
    assert scores["n_videos"] == 3 and -1.0 <= scores["pearson_mean"] <= 1.0
    assert len(list((tmp_path / "runs").glob("facernet-*"))) == 2          # the REC's folder and FaceRNET's
    base = json.loads((tmp_path / "results" / "facernet" / "mean_predictor-s0.json").read_text())
    assert base["steps"] == 0 and base["wall_s"]["train"] is None
    assert all(v == 0.0 for k, v in base["metrics"]["synthv-hume-reaction"].items() if k.startswith("pearson_"))
    assert base["metrics"]["synthv-hume-reaction"]["mse_mean"] > 0
    text = experiments.render("facernet", tmp_path / "results", tmp_path / "tables")
    t3 = experiments.load(tmp_path / "tables" / "facernet3.csv")
    assert t3.loc[("hume-reaction", "pearson_mean"), ("FaceRNET", "ours")] == pytest.approx(scores["pearson_mean"])
    assert "FaceRNET Table 3" in text and (tmp_path / "tables" / "facernet2.csv").exists()


def test_table_iii_reads_its_own_larger_omg_test_bed(tmp_path, monkeypatch):
    from fbn_keras import campaign
    """small: Table III on the OMG-like set alone at 8x the default videos (40 / 8 / 8); the other video
    tables share the default test-bed; tiny keeps one test-bed for all."""
    from fbn_keras.records import synthetic_video

    built = []
    monkeypatch.setattr(synthetic_video, "ensure_video_testbed",
                        lambda scale=1.0, databases=None, **_: built.append((scale, databases)) or tmp_path)
    small, tiny = campaign.RUN_PRESETS["small"], campaign.RUN_PRESETS["tiny"]
    t3 = next(r for r in campaign.plan([0], ["video3"]) if r.label == "cnn1rnn")
    t2 = next(r for r in campaign.plan([0], ["video2"]) if r.label == "cnn")
    campaign.data_for(t3, small), campaign.data_for(t2, small), campaign.data_for(t3, tiny)
    assert built == [(8.0, ("synthv-omg",)), (1.0, None), (0.2, None)]
    assert campaign.data_key(t3, small) == "video3" and campaign.data_key(t2, small) == "video"
    assert campaign.data_key(t3, tiny) == "video"
    assert synthetic_video.videos(8.0, ["synthv-omg"]) == {("synthv-omg", "train"): 40,
                                                          ("synthv-omg", "validation"): 8, ("synthv-omg", "test"): 8}
    assert synthetic_video.testbed_dir(tmp_path, 8.0, 0, ["synthv-omg"]).name == \
        f"synthetic-video-{synthetic_video.VERSION}-s8-seed0-synthv-omg"
