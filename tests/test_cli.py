"""Every command line ends a user's mistake in one line on stderr and exit status 2, never a traceback;
every Config flag has help text, its choices and its preset's value."""

import argparse
import dataclasses
import json

import pytest

from fbn_keras import cli, config


def run_main(main, argv, capsys):
    """(exit status, stderr) of `main(argv)` run in this process."""
    try:
        status = main(argv)
    except SystemExit as exit_:
        status = exit_.code
    return status, capsys.readouterr().err


def assert_one_line(status, err, *names):
    lines = err.strip().splitlines()
    assert status == 2, (status, err)
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for name in names:
        assert name in lines[0], (name, lines[0])


@pytest.fixture
def corrupt_keras(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"PK\x03\x04 twenty bytes of junk")   # a zip signature, then nothing a zip needs
    return path


@pytest.fixture
def empty_dir(tmp_path):
    path = tmp_path / "empty"
    path.mkdir()
    return path


# === Config: validation and flags ===

@pytest.mark.parametrize("overrides, message", [
    (dict(steps=-3), "steps=-3"),
    (dict(steps=0), "steps=0"),
    (dict(steps=None, epochs=0.0), "epochs=0.0"),
    (dict(learning_rate=0.0), "learning_rate=0.0"),
    (dict(learning_rate=float("nan")), "learning_rate=nan"),
    (dict(au_threshold=1.0), "au_threshold=1.0"),
    (dict(au_threshold=0.0), "au_threshold=0.0"),
    (dict(log_every=0), "log_every=0"),
    (dict(lambda_dm=-1.0), "lambda_dm=-1.0"),
    (dict(soft_unannotated="foo"), "soft_unannotated='foo'"),
    (dict(lr_schedule="step"), "lr_schedule='step'"),
    (dict(coann_on_tie="last"), "coann_on_tie='last'"),
])
def test_validate_rejects_out_of_range_values_naming_them(overrides, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        config.preset("tiny", **overrides)


def test_validate_accepts_the_edges_of_each_range():
    c = config.preset("tiny", steps=1, au_threshold=0.01, eval_every=0, lambda_dm=0.0, dropout=0.0, seed=0)
    assert (c.steps, c.au_threshold, c.eval_every) == (1, 0.01, 0)


def test_every_config_field_has_help_text():
    fields = [f.name for f in dataclasses.fields(config.Config)]
    missing = [name for name in fields if not config.FLAG_HELP.get(name, "").strip()]
    assert missing == []
    assert sorted(set(config.FLAG_HELP) - set(fields)) == []          # no help for a field that is gone


def test_every_enumerated_field_has_its_choices():
    import typing

    hints = typing.get_type_hints(config.Config)
    text = {f.name for f in dataclasses.fields(config.Config) if str in (hints[f.name], *typing.get_args(hints[f.name]))}
    free = {"preset", "tasks", "vgg_face_weights", "video_databases", "init_from", "relation"}   # names, paths
    assert sorted(text - free - set(config.CHOICES)) == []
    for name, choices in config.CHOICES.items():
        assert getattr(config.Config(), name) in choices, name
        with pytest.raises(ValueError, match=f"{name}='nonesuch'"):
            config.preset("tiny", **{name: "nonesuch"})


def test_flags_carry_choices_help_and_the_presets_values():
    parser = argparse.ArgumentParser()
    config.add_config_flags(parser)
    actions = {a.dest: a for a in parser._actions}
    for name, choices in config.CHOICES.items():
        assert tuple(actions[name].choices) == tuple(choices)
    for field in dataclasses.fields(config.Config):
        text = actions[field.name].help
        assert text and "None" not in text, (field.name, text)
    # The steps differ by preset: each preset's value is shown; the image size is one value for all.
    assert "paper 200000, small 900, tiny 20" in actions["steps"].help
    assert actions["image_size"].help.endswith("(default: 96)")
    assert "unset" in actions["vgg_face_weights"].help
    help_text = parser.format_help()                                   # '%' in a help line is escaped
    assert "5% over the run" in help_text


# === The shared helper ===

def test_entry_point_turns_expected_errors_into_one_line_and_lets_bugs_raise(capsys):
    @cli.entry_point("fbn_keras.demo")
    def main(argv=None):
        kind = argv[0]
        if kind == "user":
            raise cli.UserError("--thing 7 is not a thing")
        if kind == "file":
            raise FileNotFoundError("/nowhere/x.jpg: no such file")
        if kind == "scoped":
            with cli.user_errors(ValueError):
                raise ValueError("steps must be > 0.\nReceived: steps=-3")
        raise ValueError("a bug")

    assert_one_line(*run_main(main, ["user"], capsys), "python -m fbn_keras.demo: error:", "--thing 7")
    assert_one_line(*run_main(main, ["file"], capsys), "/nowhere/x.jpg")
    assert_one_line(*run_main(main, ["scoped"], capsys), "steps must be > 0.; Received: steps=-3")
    with pytest.raises(ValueError, match="a bug"):                     # unexpected: the traceback stays
        main(["bug"])


def test_argparse_types_name_the_bad_value():
    with pytest.raises(argparse.ArgumentTypeError, match="must be >= 1, got -3"):
        cli.positive_int("-3")
    with pytest.raises(argparse.ArgumentTypeError, match="expected int >= 1, got 'x'"):
        cli.positive_int("x")
    with pytest.raises(argparse.ArgumentTypeError, match=r"must be in \(0, 1\), got 1"):
        cli.open_unit_float("1")
    assert cli.positive_float("1e-4") == 1e-4


# === Each command line ===

def test_train(capsys, empty_dir, tmp_path):
    from fbn_keras import train

    assert_one_line(*run_main(train.main, ["--soft-unannotated", "foo"], capsys), "--soft-unannotated", "'foo'")
    assert_one_line(*run_main(train.main, ["--steps", "-3"], capsys), "steps=-3")
    assert_one_line(*run_main(train.main, ["--learning-rate", "0"], capsys), "learning_rate=0.0")
    assert_one_line(*run_main(train.main, ["--data", str(empty_dir)], capsys), str(empty_dir), "no built database")
    missing = tmp_path / "nope"
    assert_one_line(*run_main(train.main, ["--data", str(missing)], capsys), str(missing), "no such folder")
    assert not missing.exists() and list(empty_dir.iterdir()) == []    # nothing written on the way out


def test_train_names_a_task_without_training_records(capsys, tmp_path):
    from fbn_keras import train
    from fbn_keras.manifest import MANIFEST

    data = tmp_path / "data"
    data.mkdir()
    # A built folder whose only database has VA records: training all three tasks cannot start.
    split = {"complete": True, "items": 4, "records": 4, "tasks": {"va": 4, "au": 0, "expr": 0, "compound": 0},
             "skips": {}, "shards": {"va": [{"file": "va/db-train-00000-of-00001.tfrecord", "records": 4}]}}
    (data / MANIFEST).write_text(json.dumps({
        "format": 1, "builds": {"db": {"complete": True}}, "databases": {"db": {"splits": {"train": split}}},
        "complete_shards": ["va/db-train-00000-of-00001.tfrecord"]}))
    assert_one_line(*run_main(train.main, ["--data", str(data)], capsys), "au, expr")


def test_evaluate(capsys, empty_dir, corrupt_keras):
    from fbn_keras import evaluate

    assert_one_line(*run_main(evaluate.main, [str(corrupt_keras), "--data", str(empty_dir)], capsys),
                    str(empty_dir))
    assert_one_line(*run_main(evaluate.main, [str(corrupt_keras), "--data", str(empty_dir), "--split", "dev"],
                              capsys), "'dev'")
    assert_one_line(*run_main(evaluate.main, [str(corrupt_keras), "--data", str(empty_dir), "--au-threshold",
                                              "1.5"], capsys), "1.5")


def test_evaluate_names_a_corrupt_model(capsys, tmp_path, corrupt_keras):
    from fbn_keras import evaluate

    data = tmp_path / "data"
    data.mkdir()
    split = {"complete": True, "items": 1, "records": 1, "tasks": {"va": 0, "au": 0, "expr": 1, "compound": 0},
             "skips": {}, "shards": {"expr": [{"file": "expr/x.tfrecord", "records": 1}]}}
    (data / "manifest.json").write_text(json.dumps({
        "format": 1, "builds": {}, "databases": {"rafdb": {"splits": {"test": split}}},
        "complete_shards": ["expr/x.tfrecord"]}))
    assert_one_line(*run_main(evaluate.main, [str(corrupt_keras), "--data", str(data)], capsys),
                    str(corrupt_keras), "not a valid .keras")


def test_predict(capsys, tmp_path, corrupt_keras):
    from fbn_keras import predict

    photo = tmp_path / "face.jpg"
    photo.write_bytes(b"not read: the model fails first")
    out = str(tmp_path / "out.csv")
    missing = tmp_path / "missing.jpg"
    assert_one_line(*run_main(predict.main, [str(corrupt_keras), str(missing), "--out", out], capsys),
                    str(missing))
    assert_one_line(*run_main(predict.main, [str(corrupt_keras), str(photo), "--out", out], capsys),
                    str(corrupt_keras))
    assert_one_line(*run_main(predict.main, [str(corrupt_keras), str(photo), "--out", out, "--every", "-1"],
                              capsys), "--every", "-1")


def test_export(capsys, tmp_path, corrupt_keras):
    from fbn_keras import export

    out = str(tmp_path / "served")
    assert_one_line(*run_main(export.main, [str(corrupt_keras), "--format", "savedmodel", "--out", out], capsys),
                    str(corrupt_keras))
    assert_one_line(*run_main(export.main, [str(corrupt_keras), "--format", "onnx", "--out", out], capsys),
                    "'onnx'")


def test_finetune_compound(capsys, empty_dir, corrupt_keras):
    from fbn_keras import finetune_compound

    argv = [str(corrupt_keras), "--data", str(empty_dir)]
    assert_one_line(*run_main(finetune_compound.main, argv + ["--steps", "0"], capsys), "--steps", "0")
    assert_one_line(*run_main(finetune_compound.main, argv + ["--learning-rate", "-1"], capsys), "-1")
    assert_one_line(*run_main(finetune_compound.main, argv, capsys), str(empty_dir))


def test_model_and_synthetic(capsys):
    from fbn_keras import model
    from fbn_keras.synthetic import __main__ as synthetic

    assert_one_line(*run_main(model.main, ["--steps", "-3"], capsys), "steps=-3")
    assert_one_line(*run_main(model.main, ["--backbone", "vgg19"], capsys), "'vgg19'")
    assert_one_line(*run_main(synthetic.main, ["--benchmark", "0"], capsys), "--benchmark", "0")


def test_build(capsys, tmp_path, empty_dir):
    from tfrecords_tools import build

    out = str(tmp_path / "out")
    assert_one_line(*run_main(build.main, ["nonesuch", "--out", out], capsys), "'nonesuch'")
    assert_one_line(*run_main(build.main, ["rafdb", "--root", str(empty_dir), "--out", out, "--shard-size", "0"],
                              capsys), "--shard-size", "0")
    assert_one_line(*run_main(build.main, ["disfa", "--root", str(empty_dir), "--out", out, "--camera", "top"],
                              capsys), "'top'")
    missing = tmp_path / "no-such-root"
    assert_one_line(*run_main(build.main, ["rafdb", "--root", str(missing), "--out", out], capsys), str(missing))


def test_verify(capsys, empty_dir):
    from tfrecords_tools import verify

    assert_one_line(*run_main(verify.main, [str(empty_dir)], capsys), str(empty_dir), "manifest.json")
    assert_one_line(*run_main(verify.main, [], capsys), "out")


def test_finetune_compound_names_a_layer_the_model_lacks(capsys, tmp_path):
    from fbn_keras import finetune_compound
    from fbn_keras.config import preset
    from fbn_keras.model import build_facebehaviornet

    model_path = tmp_path / "model.keras"
    build_facebehaviornet(preset("tiny", image_size=32)).save(model_path)
    data = tmp_path / "data"
    data.mkdir()
    split = {"complete": True, "items": 1, "records": 1, "tasks": {"va": 0, "au": 0, "expr": 0, "compound": 1},
             "skips": {}, "shards": {"compound": [{"file": "compound/x.tfrecord", "records": 1}]}}
    (data / "manifest.json").write_text(json.dumps({
        "format": 1, "builds": {}, "databases": {"rafdb-compound": {"splits": {"train": split}}},
        "complete_shards": ["compound/x.tfrecord"]}))
    argv = [str(model_path), "--data", str(data), "--feature-layer", "fc9"]
    assert_one_line(*run_main(finetune_compound.main, argv, capsys), "'fc9'", str(model_path))


def test_console_scripts_name_the_command_lines_mains():
    import importlib
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    scripts = project["scripts"]
    assert {"fbn-train", "fbn-evaluate", "fbn-predict", "fbn-export", "fbn-finetune-compound", "fbn-build"} <= set(scripts)
    for name, target in scripts.items():
        module, _, attr = target.partition(":")
        assert callable(getattr(importlib.import_module(module), attr)), name


MAINS = {
    "fbn_keras.train": [], "fbn_keras.evaluate": [], "fbn_keras.predict": [], "fbn_keras.export": [],
    "fbn_keras.finetune_compound": [], "fbn_keras.model": [], "fbn_keras.synthetic.__main__": [],
    "tfrecords_tools.verify": [],
    **{f"tfrecords_tools.build {d}": [d] for d in ("synthetic", "affectnet", "affwild2", "affwild", "rafdb",
                                                  "emotionet", "disfa", "bp4d", "afew")},
}


@pytest.mark.parametrize("name", sorted(MAINS))
def test_every_flag_of_every_command_has_help_text(name, monkeypatch):
    import importlib

    parsers = []

    def capture(self, args=None, namespace=None):
        parsers.append(self)
        raise SystemExit(0)

    monkeypatch.setattr(cli.ArgumentParser, "parse_args", capture)
    with pytest.raises(SystemExit):
        importlib.import_module(name.split()[0]).main(MAINS[name])
    parser = parsers[0]
    assert isinstance(parser, cli.ArgumentParser)                      # one-line errors
    bare = [a.option_strings or a.dest for a in parser._actions if not (a.help or "").strip()]
    assert bare == []
    parser.format_help()                                               # no stray '%' in any help text


def test_pyproject_ranges_admit_the_pinned_requirements():
    import tomllib
    from pathlib import Path

    from packaging.requirements import Requirement

    root = Path(__file__).parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    ranges = [Requirement(r) for r in project["dependencies"]]
    ranges += [Requirement(r) for extra in project["optional-dependencies"].values() for r in extra]
    pins = {}
    for line in (root / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.split("#")[0].strip().partition("==")
            pins[name.lower()] = version
    for req in ranges:
        assert req.name.lower() in pins, f"{req.name} is in pyproject.toml but not pinned in requirements.txt"
        assert req.specifier.contains(pins[req.name.lower()]), (str(req), pins[req.name.lower()])
    listed = {r.name.lower() for r in ranges}
    assert sorted(set(pins) - listed) == []          # every pinned package is a dependency or an extra


def test_a_vgg_face_weights_file_that_does_not_fit_ends_in_one_line(capsys, tmp_path):
    import numpy as np

    from fbn_keras import model

    net = model.build_facebehaviornet(config.preset("tiny", image_size=32))
    path = tmp_path / "vgg_face.npz"
    # conv1_1 with 2 filters where the tiny trunk has 4; the other twelve layers absent.
    np.savez(path, **{"conv1_1/kernel": np.zeros((3, 3, 3, 2)), "conv1_1/bias": np.zeros(2)})

    @cli.entry_point("fbn_keras.train")
    def main(argv=None):
        model.load_vgg_face_weights(net, path)
        return 0

    assert_one_line(*run_main(main, [], capsys), str(path), "13 of 13", "conv1_1: kernel (3, 3, 3, 2)",
                    "conv5_3: missing kernel and bias")
