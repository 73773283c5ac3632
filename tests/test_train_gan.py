"""Training the semi-supervised GAN (multi-task learning and generation paper, Section IV-C1) at a tiny size."""

import csv
import math

import numpy as np
import pytest
import tensorflow as tf

from fbn_keras import cli
from fbn_keras import train_gan as tg
from fbn_keras.gan import gan_preset


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A tiny synthetic test-bed (a few dozen images per database), built once per module."""
    from fbn_keras.testbed import ensure_synthetic_testbed

    return ensure_synthetic_testbed(tmp_path_factory.getbasetemp() / "fbn-cache", scale=0.02)


def test_update_schedule():
    assert tg.update_schedule(5) == ("d", "g", "g", "g", "g", "g")          # configuration 1: G 5× per D
    assert tg.update_schedule(2) == ("d", "g", "g")                         # configuration 2
    assert tg.update_schedule(2, "discriminator") == ("d", "d", "g")
    assert tg.update_schedule(5, adversarial=False) == ("d",)


def test_image_grid_tiles_row_by_row_into_zero_one():
    images = np.array([-1.0, 0.0, 1.0, 0.5], np.float32)[:, None, None, None] * np.ones((4, 1, 2, 3), np.float32)
    grid = tg.image_grid(images)
    assert grid.shape == (1, 2, 4, 3)
    # (x + 1)/2: image 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right; each 1×2 pixels
    np.testing.assert_allclose(grid[0, :, :, 0], [[0, 0, 0.5, 0.5], [1, 1, 0.75, 0.75]])
    with pytest.raises(ValueError, match=r"square number .* Received shape \(3, 1, 2, 3\)"):
        tg.image_grid(images[:3])


def test_optimizers_carry_the_papers_settings():
    g, d = tg.make_optimizers(gan_preset("paper"))
    assert (float(g.learning_rate), float(d.learning_rate)) == pytest.approx((1e-4, 1e-5))
    assert (g.beta_1, g.beta_2, d.beta_1, d.beta_2) == (0.5, 0.999, 0.5, 0.999)
    assert (g.global_clipnorm, g.clipvalue, d.global_clipnorm) == (20.0, None, 20.0)
    g, _ = tg.make_optimizers(gan_preset("paper", clip="value"))
    assert (g.global_clipnorm, g.clipvalue) == (None, 20.0)


def test_dataset_gives_au_set_images_with_all_labels_and_z(data_dir):
    config = gan_preset("tiny", batch=4)
    images, labels = next(iter(tg.make_gan_dataset(data_dir, config)))
    assert images.shape == (4, 32, 32, 3)
    assert labels["z"].shape == (4, 100)
    assert float(tf.reduce_min(labels["z"])) >= -1.0 and float(tf.reduce_max(labels["z"])) <= 1.0
    assert labels["au"].shape == (4, 17) and labels["va"].shape == (4, 2)
    assert float(tf.reduce_sum(labels["au_mask"])) > 0


def test_each_update_is_skipped_when_its_loss_is_not_finite():
    from fbn_keras.gan import build_gan

    config = gan_preset("tiny", batch=2)
    strategy = tf.distribute.get_strategy()      # the default strategy: the same code path, one replica
    generator, discriminator = build_gan(config)
    g_opt, d_opt = tg.make_optimizers(config)
    steps = tg.make_gan_steps(generator, discriminator, g_opt, d_opt, config, strategy, tf.Variable(1.0))
    rng = np.random.default_rng(0)
    labels = {"va": np.zeros((2, 2), np.float32), "va_mask": np.ones(2, np.float32),
              "au": np.zeros((2, 17), np.float32), "au_mask": np.ones((2, 17), np.float32),
              "z": rng.uniform(-1, 1, (2, 100)).astype(np.float32)}
    images = rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    bad_images = images.copy()
    bad_images[0, 0, 0, 0] = np.nan
    bad_z = dict(labels, z=np.where(np.arange(100) == 3, np.nan, labels["z"]).astype(np.float32))
    for network, model, bad, good in (("d", discriminator, (bad_images, labels), (images, labels)),
                                      ("g", generator, (images, bad_z), (images, labels))):
        # Trainable weights only: batch norm's moving statistics follow every forward pass in training mode.
        weights = lambda: [v.numpy().copy() for v in model.trainable_variables]  # noqa: E731
        before = weights()
        _, applied = steps[network](bad)
        assert not bool(applied)
        assert all(np.array_equal(a, b) for a, b in zip(before, weights()))    # nothing applied
        losses, applied = steps[network](good)
        assert bool(applied) and math.isfinite(float(losses["total"]))
        assert not all(np.array_equal(a, b) for a, b in zip(before, weights()))


def test_tiny_run_then_resume(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    # Two steps of configuration 1 (1 D + 5 G updates each) from the command line.
    argv = ["--data", str(data_dir), "--out", str(out), "--preset", "tiny", "--steps", "2"]
    assert tg.main(argv) == 0
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [r["step"] for r in rows] == ["2"]
    terms = {"loss/d/r_va", "loss/d/r_au", "loss/d/r_fake", "loss/d/f_va", "loss/d/f_au", "loss/d/f_fake",
             "loss/d/total", "loss/g/log_x", "loss/g/huber", "loss/g/total"}
    assert terms <= set(rows[0])
    assert all(math.isfinite(float(rows[0][t])) for t in terms)
    for name in ("generator.keras", "discriminator.keras", "config.json"):
        assert (out / name).exists()
    assert tf.train.latest_checkpoint(str(out / "checkpoints")).endswith("ckpt-2")
    assert list((out / "tb" / "generated").iterdir())          # the grid of G(z)
    assert _iterations(out) == {"d_optimizer": 2, "g_optimizer": 2 * 5}

    # A fresh run refuses the folder; a resume restores both networks and optimizers and continues.
    with pytest.raises(FileExistsError, match="already holds checkpoints"):
        tg.train_gan(gan_preset("tiny", steps=3), data_dir, out)
    result = tg.train_gan(gan_preset("tiny", steps=3), data_dir, out, resume=True, verbose=False)
    assert result.step == 3
    assert all(math.isfinite(v) for v in result.last_losses.values())
    assert _iterations(out) == {"d_optimizer": 3, "g_optimizer": 3 * 5}    # counted on from the checkpoint
    assert tf.train.latest_checkpoint(str(out / "checkpoints")).endswith("ckpt-3")


def _iterations(out):
    """Updates each optimizer has made, read from the run's latest checkpoint."""
    path = tf.train.latest_checkpoint(str(out / "checkpoints"))
    found = {}
    for name, _ in tf.train.list_variables(path):
        for opt in ("d_optimizer", "g_optimizer"):
            if name.startswith(opt + "/") and "iteration" in name:
                found[opt] = int(tf.train.load_variable(path, name))
    return found


def test_without_the_fake_class_d_trains_alone(data_dir, tmp_path):
    config = gan_preset("tiny", d_outputs="va+au", steps=1, va_loss="mse")
    result = tg.train_gan(config, data_dir, tmp_path / "run", verbose=False)
    assert result.generator is None
    assert sorted(result.last_losses) == ["d/r_au", "d/r_va", "d/total"]
    assert not (tmp_path / "run" / "generator.keras").exists()


def test_every_flag_has_help_and_errors_are_one_line(capsys):
    parser = tg.build_parser()
    assert isinstance(parser, cli.ArgumentParser)
    assert [a.dest for a in parser._actions if not (a.help or "").strip()] == []
    parser.format_help()
    with pytest.raises(SystemExit):
        tg.main(["--gan-config", "3"])
    assert "invalid choice: '3'" in capsys.readouterr().err

