"""The collapse probe (a trained head that gives every face the same prediction) and the runner's restart of
a collapsed network from a fresh draw, recorded in its result."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from fbn_keras import campaign, collapse, experiments
from fbn_keras.config import Config, preset


def test_constant_heads_on_hand_made_predictions():
    # VA: std over faces of (0.10, 0.10, 0.10) is 0, of (0.2, 0.2, 0.2) is 0: constant.
    flat_va = np.array([[0.1, 0.2], [0.1, 0.2], [0.1, 0.2]])
    # std of (-0.5, 0, 0.5) is 0.41 > 0.01: varies.
    live_va = np.array([[-0.5, 0.2], [0.0, 0.2], [0.5, 0.2]])
    # std of (0, 0.02) is 0.01 exactly: not below the spread, so not constant; (0, 0.018): 0.009, constant.
    edge_va = np.array([[0.0, 0.0], [0.02, 0.0]])
    near_va = np.array([[0.0, 0.0], [0.018, 0.0]])
    one_class = np.array([[0.1, 0.2, 0.7], [0.3, 0.3, 0.4], [0.0, 0.1, 0.9]])     # argmax 2, 2, 2
    two_classes = np.array([[0.1, 0.2, 0.7], [0.3, 0.4, 0.3], [0.0, 0.1, 0.9]])   # argmax 2, 1, 2
    same_calls = np.array([[0.2, 0.9], [0.45, 0.8], [0.1, 0.51]])    # at 0.5: (no, yes) for every face
    other_calls = np.array([[0.2, 0.9], [0.55, 0.8], [0.1, 0.51]])   # AU 1 called for the second face only
    heads = ["va", "expr", "au"]
    assert collapse.constant_heads({"va": flat_va, "expr": one_class, "au": same_calls}, heads) == heads
    assert collapse.constant_heads({"va": live_va, "expr": two_classes, "au": other_calls}, heads) == []
    assert collapse.constant_heads({"va": edge_va}, ["va"]) == []
    assert collapse.constant_heads({"va": near_va}, ["va"]) == ["va"]
    # Diverged: std of (-30, 30) is 30 > 20 on valence, so the head counts whatever arousal does; (-15, 15): 15.
    assert collapse.constant_heads({"va": np.array([[-30.0, 0.1], [30.0, -0.1]])}, ["va"]) == ["va"]
    assert collapse.constant_heads({"va": np.array([[-15.0, 0.1], [15.0, -0.1]])}, ["va"]) == []
    # At threshold 0.85 the second AU is called for the first face only (0.9): the calls vary.
    assert collapse.constant_heads({"au": same_calls}, ["au"], au_threshold=0.85) == []
    # Only the heads asked about: a single-task VA network's untrained expression head is not judged.
    assert collapse.constant_heads({"va": live_va, "expr": one_class}, ["va"]) == []


def test_constant_heads_rejects_what_it_cannot_judge():
    with pytest.raises(ValueError, match="at least 2 faces"):
        collapse.constant_heads({"va": np.zeros((1, 2))}, ["va"])
    with pytest.raises(ValueError, match="Unknown head"):
        collapse.constant_heads({"va": np.zeros((3, 2))}, ["va", "pose"])


def test_restart_draws_a_new_seed_and_keeps_restart_zero_as_the_seed_itself():
    base = preset("tiny", seed=3)
    assert base.draw_seed == 3
    drawn = {dataclasses.replace(base, restart=r).draw_seed for r in (1, 2, 3)}
    assert len(drawn) == 3 and 3 not in drawn
    assert dataclasses.replace(base, restart=1).draw_seed == dataclasses.replace(base, restart=1).draw_seed
    assert dataclasses.replace(base, restart=1).draw_seed != preset("tiny", seed=4, restart=1).draw_seed
    with pytest.raises(ValueError, match="restart must be >= 0"):
        Config(restart=-1)


def test_restart_zero_keeps_the_run_folders_trained_before_the_field():
    """The folder of Table 6's FaceBehaviorNet without coupling, seed 0, as the campaign named it before
    `restart` and `trunk_init` existed (on the test-bed of fingerprint fcc1db882114); a restart gets its
    own folder."""
    run = next(r for r in campaign.plan([0], ["table6"]) if r.label == "none")
    config = run.config(campaign.RUN_PRESETS["small"])
    fingerprint = {"digest": "fcc1db882114"}
    assert campaign.run_folder(Path("runs"), config, fingerprint).name == "vgg_face-vaauexpr-none-0ef94645b8db"
    again = campaign.run_folder(Path("runs"), dataclasses.replace(config, restart=1), fingerprint)
    assert again.name.startswith("vgg_face-vaauexpr-none-") and again.name != "vgg_face-vaauexpr-none-0ef94645b8db"


def _fake_training(monkeypatch, dead_draws):
    """`_train_or_load` that trains nothing (a folder per draw, 10 s of training each) and a probe that
    finds draws `dead_draws` collapsed on the expression head."""
    trained = []

    def train_or_load(run, config, data_dir, runs_dir, fingerprint, member_dirs=None):
        out = Path(runs_dir) / f"draw{config.restart}"
        out.mkdir(parents=True, exist_ok=True)
        (out / campaign.TIMING_FILE).write_text(json.dumps({"train_s": 10.0}))
        trained.append(config.restart)
        return out, config.restart

    monkeypatch.setattr(campaign, "_train_or_load", train_or_load)
    monkeypatch.setattr(collapse, "collapsed_heads",
                        lambda model, data_dir, tasks, au_threshold: ["expr"] if model in dead_draws else [])
    return trained


def test_a_collapsed_draw_is_trained_again_until_one_learns(tmp_path, monkeypatch):
    trained = _fake_training(monkeypatch, dead_draws={0, 1})
    run = next(r for r in campaign.plan([1], ["tables3_5"]) if r.label == "single expr")
    run_preset = dataclasses.replace(campaign.RUN_PRESETS["tiny"], restarts=3)
    out, model, config, attempts = campaign._train_checked(run, run.config(run_preset), tmp_path, tmp_path,
                                                           {"digest": "d"}, run_preset)
    assert trained == [0, 1, 2] and out.name == "draw2" and config.restart == 2
    assert attempts == [{"restart": 0, "collapsed": ["expr"], "train_s": 10.0},
                        {"restart": 1, "collapsed": ["expr"], "train_s": 10.0},
                        {"restart": 2, "collapsed": [], "train_s": 10.0}]


def test_restarts_stop_at_the_presets_limit_and_keep_the_last_draw(tmp_path, monkeypatch):
    trained = _fake_training(monkeypatch, dead_draws={0, 1, 2})
    run = next(r for r in campaign.plan([0], ["table6"]) if r.label == "none")
    run_preset = dataclasses.replace(campaign.RUN_PRESETS["tiny"], restarts=1)
    out, _, config, attempts = campaign._train_checked(run, run.config(run_preset), tmp_path, tmp_path,
                                                       {"digest": "d"}, run_preset)
    assert trained == [0, 1] and config.restart == 1 and [a["collapsed"] for a in attempts] == [["expr"]] * 2


def test_the_probe_does_not_apply_beyond_facebehaviornet_on_images(tmp_path, monkeypatch):
    trained = _fake_training(monkeypatch, dead_draws={0})
    run = next(r for r in campaign.plan([0], ["mtanet"]))
    run_preset = dataclasses.replace(campaign.RUN_PRESETS["tiny"], restarts=3)
    _, _, config, attempts = campaign._train_checked(run, run.config(run_preset), tmp_path, tmp_path,
                                                     {"digest": "d"}, run_preset)
    assert attempts == [] and config.restart == 0
    # Nor where no restart is allowed (the tiny preset): one draw, not probed.
    fbn = next(r for r in campaign.plan([0], ["table6"]) if r.label == "none")
    tiny = campaign.RUN_PRESETS["tiny"]
    assert tiny.restarts == 0
    _, _, config, attempts = campaign._train_checked(fbn, fbn.config(tiny), tmp_path, tmp_path, {"digest": "d"}, tiny)
    assert attempts == [] and config.restart == 0 and trained == [0, 0]


def test_collapse_lines_count_draws_and_name_the_restarted_runs():
    ok = {"restart": 0, "collapsed": [], "train_s": 1.0}
    dead = {"restart": 0, "collapsed": ["expr"], "train_s": 1.0}
    results = [{"run": "single_expr-s1", "attempts": [dead, dead, ok]},
               {"run": "single_va-s0", "attempts": [ok]},
               {"run": "single_au-s2", "attempts": [dead, dead]},
               {"run": "multi-task-s0"}]                          # written before the probe
    lines = experiments._collapse_lines(results)
    # Draws: 3 + 1 + 2 = 6, of which 2 + 0 + 2 = 4 collapsed.
    assert lines[0].startswith("collapse probe: 4 of 6 draws collapsed")
    assert "single_expr-s1 (2), single_au-s2 (1)" in lines[0] and "1 result(s) predate the probe" in lines[0]
    assert lines[1].startswith("WARNING: single_au-s2 collapsed at every draw")
    assert experiments._collapse_lines([{"run": "x"}]) == []


@pytest.mark.slow
def test_tiny_run_restarts_a_collapsed_network_from_another_draw(tmp_path, monkeypatch):
    """Real tiny training, the probe made to find the first draw collapsed and the second one alive (3 steps
    leave a tiny network at one class, so the real verdict would be 'collapsed' every time): the runner
    trains a second network from other initial weights and records both draws in the result, whose
    training time is theirs summed; the provenance reports the restart."""
    import keras

    calls = []

    def first_draw_dead(preds, heads, *args, **kwargs):
        calls.append((sorted(heads), {k: v.shape for k, v in preds.items()}))
        return list(heads) if len(calls) == 1 else []

    monkeypatch.setattr(collapse, "constant_heads", first_draw_dead)
    monkeypatch.setitem(campaign.RUN_PRESETS, "tiny", dataclasses.replace(campaign.RUN_PRESETS["tiny"], restarts=2))
    runs, results = tmp_path / "runs", tmp_path / "results"
    assert experiments.main(["run", "--preset", "tiny", "--run", "tables3_5/single_expr-s0", "--seeds", "0",
                             "--runs-dir", str(runs), "--results-dir", str(results)]) == 0
    body = json.loads((results / "tables3_5" / "single_expr-s0.json").read_text())
    assert len(calls) == 2 and calls[0][0] == ["expr"] and calls[0][1]["expr"][1] == 7
    assert [a["restart"] for a in body["attempts"]] == [0, 1]
    assert body["attempts"][0]["collapsed"] == ["expr"] and body["attempts"][1]["collapsed"] == []
    assert body["config"]["restart"] == 1
    assert body["wall_s"]["train"] == pytest.approx(sum(a["train_s"] for a in body["attempts"]))
    folders = sorted(p for p in runs.iterdir() if p.is_dir())
    assert len(folders) == 2
    first, second = (keras.saving.load_model(f / "model.keras") for f in folders)
    assert not np.allclose(first.trainable_weights[0].numpy(), second.trainable_weights[0].numpy())
    run = next(r for r in campaign.plan([0], ["tables3_5"]) if r.label == "single expr")
    assert campaign.status(run, campaign.RUN_PRESETS["tiny"], results) == "done"
    assert "collapse probe: 1 of 2 draws collapsed" in experiments.render("tables3_5", results)


def test_the_probe_finds_every_head_of_a_dead_trunk_constant():
    """A tiny FaceBehaviorNet whose trunk output is zeroed (the last convolution's kernel and bias at 0, then
    ReLU): every head outputs its bias for every face. The probe reads at most 20 faces per database."""
    from fbn_keras import data, model as fbn_model, testbed

    data_dir = testbed.ensure_synthetic_testbed(scale=campaign.RUN_PRESETS["tiny"].scale)
    net = fbn_model.build_facebehaviornet(preset("tiny"))
    last_conv = net.get_layer("conv5_3")     # ReLU(0 x + 0) = 0: nothing reaches the heads
    last_conv.set_weights([np.zeros_like(w) for w in last_conv.get_weights()])
    preds = collapse.probe_predictions(net, data_dir, "validation", max_per_database=20)
    # Each database gives its first 20 validation faces, or all of them when it has fewer.
    faces = sum(min(20, info["splits"]["validation"]["records"])
                for info in data.list_databases(data_dir).values() if "validation" in info["splits"])
    assert {k: v.shape for k, v in preds.items()} == {"va": (faces, 2), "expr": (faces, 7), "au": (faces, 17)}
    assert collapse.collapsed_heads(net, data_dir, ["va", "expr", "au"]) == ["va", "expr", "au"]
