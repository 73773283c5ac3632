"""MTANet (Zhang & Gu, ABAW 2020): the model of Section III-A, the losses of eq. 1–5 against hand values,
the uncertainty weights' behaviour, masks, the global batch under tf.distribute, and VGGFace2 loading."""

import math

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from fbn_keras import mtanet, taxonomy
from fbn_keras.config import preset
from fbn_keras.model import WeightsFileError


def _tiny(**overrides):
    return preset("tiny", image_size=32, **overrides)


# === Model ===

def test_au_slots_are_the_eight_affwild2_aus():
    slots = mtanet.mtanet_au_slots()
    assert [taxonomy.AUS[i] for i in slots] == [1, 2, 4, 6, 12, 15, 20, 25]
    assert slots == (0, 1, 2, 4, 8, 10, 12, 15)


def test_paper_size_model_has_the_1024_neck_and_three_heads():
    """At 112×112, width 1: backbone 26,092,144 (tests/test_se_resnet.py's hand count), neck 2·(2048·512 + 512),
    heads 1024·2 + 2, 1024·8 + 8, 1024·7 + 7."""
    model = mtanet.build_mtanet(preset("paper", image_size=112))
    assert model.get_layer("se_resnet50").output.shape == (None, 4, 4, 2048)
    assert model.get_layer("neck_concat").output.shape == (None, 1024)
    assert {k: tuple(v.shape) for k, v in model.output.items()} == {"va": (None, 2), "au": (None, 8),
                                                                    "expr": (None, 7)}
    neck = 2 * (2048 * 512 + 512)
    heads = (1024 * 2 + 2) + (1024 * 8 + 8) + (1024 * 7 + 7)
    assert model.count_params() == 26_092_144 + neck + heads
    assert model.get_layer("neck_avg_dropout").rate == 0.5


@pytest.fixture(scope="module")
def two_models():
    keras.utils.set_random_seed(1)
    source = mtanet.build_mtanet(_tiny())
    keras.utils.set_random_seed(2)
    target = mtanet.build_mtanet(_tiny())
    return source, target


def test_tiny_model_runs_and_round_trips_in_safe_mode(tmp_path, two_models):
    model = two_models[0]
    x = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    out = model(x)
    assert {k: tuple(v.shape) for k, v in out.items()} == {"va": (2, 2), "au": (2, 8), "expr": (2, 7)}
    assert model.get_layer("neck_concat").output.shape[-1] == 2 * 32      # 2 · round(512/16)
    path = tmp_path / "mtanet.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    again = loaded(x)
    for k in out:
        np.testing.assert_allclose(again[k].numpy(), out[k].numpy(), atol=1e-5)


@pytest.mark.parametrize("backbone", ["resnext50", "resnext50_cbam"])
def test_other_backbones_build_under_their_names(backbone):
    model = mtanet.build_mtanet(_tiny(mtanet_backbone=backbone))
    assert model.get_layer(backbone).output.shape == (None, 1, 1, 128)
    assert tuple(model.output["au"].shape) == (None, 8)


def test_unknown_backbone_is_rejected_before_building():
    with pytest.raises(ValueError, match="mtanet_backbone='vgg'"):
        _tiny(mtanet_backbone="vgg")


# === Task losses (eq. 1–4) ===

def _batch():
    """4 images: VA on 0, 1, 3; expression on 0, 2, 3; some of the 8 AUs on 0, 1, 3; image 2 has no AU."""
    rng = np.random.default_rng(5)
    outputs = {"va": rng.normal(size=(4, 2)).astype(np.float32),
               "au": rng.normal(size=(4, 8)).astype(np.float32),
               "expr": rng.normal(size=(4, 7)).astype(np.float32)}
    au = np.full((4, 17), np.nan, np.float32)       # NaN wherever not annotated: must never leak
    au_mask = np.zeros((4, 17), np.float32)
    slots = list(mtanet.mtanet_au_slots())
    au[0, slots] = [1, 0, 0, 1, 1, 0, 0, 1]
    au_mask[0, slots] = 1
    au[1, slots[:3]] = [0, 1, 1]
    au_mask[1, slots[:3]] = 1
    au[3, slots] = 0
    au_mask[3, slots] = 1
    au[2, 3], au_mask[2, 3] = 1, 1                   # AU5: annotated but not one of the 8
    va = np.array([[0.5, -0.2], [-0.3, 0.4], [np.nan, np.nan], [0.1, 0.9]], np.float32)
    labels = {"va": va, "va_mask": np.array([1, 1, 0, 1], np.float32),
              "expr": np.array([3, -1, 0, 6], np.int32), "au": au, "au_mask": au_mask}
    return outputs, labels


def _hand_losses(outputs, labels):
    """Eq. 1–4 in numpy float64, written from the equations."""
    slots = list(mtanet.mtanet_au_slots())
    # eq. 1: −x[class] + log Σ e^{x_i} over images with a class
    ce = [-outputs["expr"][i, c] + math.log(np.exp(outputs["expr"][i].astype(np.float64)).sum())
          for i, c in enumerate(labels["expr"]) if c >= 0]
    # eq. 2: −Σ_i [y log σ(x) + (1 − y) log(1 − σ(x))] over the annotated of the 8 AUs, per image
    per_image = []
    for n in range(4):
        terms = []
        for k, col in enumerate(slots):
            if labels["au_mask"][n, col]:
                y, p = labels["au"][n, col], 1 / (1 + math.exp(-float(outputs["au"][n, k])))
                terms.append(-(y * math.log(p) + (1 - y) * math.log(1 - p)))
        if terms:
            per_image.append(sum(terms))
    # eq. 3–4 over the VA-labelled images
    keep = labels["va_mask"] > 0
    y, p = labels["va"][keep].astype(np.float64), outputs["va"][keep].astype(np.float64)
    rho = [2 * np.mean((y[:, d] - y[:, d].mean()) * (p[:, d] - p[:, d].mean()))
           / (y[:, d].var() + p[:, d].var() + (y[:, d].mean() - p[:, d].mean()) ** 2) for d in (0, 1)]
    return {"va": 1 - 0.5 * (rho[0] + rho[1]), "au": np.mean(per_image), "expr": np.mean(ce)}


def test_task_losses_match_the_equations_by_hand():
    outputs, labels = _batch()
    got = mtanet.mtanet_task_losses(outputs, labels, mtanet.mtanet_au_slots())
    want = _hand_losses(outputs, labels)
    for k in ("va", "au", "expr"):
        assert float(got[k]) == pytest.approx(want[k], rel=1e-5), k


def test_au_loss_is_a_sum_over_aus_not_a_mean():
    """One image, all 8 AUs annotated at logit 0: each BCE is log 2, eq. 2's sum is 8·log 2."""
    labels = {"va": np.zeros((1, 2), np.float32), "va_mask": np.zeros(1, np.float32),
              "expr": np.array([-1]), "au": np.ones((1, 17), np.float32), "au_mask": np.ones((1, 17), np.float32)}
    outputs = {"va": np.zeros((1, 2), np.float32), "au": np.zeros((1, 8), np.float32),
               "expr": np.zeros((1, 7), np.float32)}
    got = mtanet.mtanet_task_losses(outputs, labels)
    assert float(got["au"]) == pytest.approx(8 * math.log(2), rel=1e-6)
    assert float(got["va"]) == 0.0 and float(got["expr"]) == 0.0     # no VA / expression label: exactly 0


def test_unlabelled_images_change_no_loss():
    outputs, labels = _batch()
    base = mtanet.mtanet_task_losses(outputs, labels)
    wild = {k: np.concatenate([v, 50 * np.ones_like(v[:1])]) for k, v in outputs.items()}
    empty = {"va": np.full((1, 2), np.nan, np.float32), "va_mask": np.zeros(1, np.float32),
             "expr": np.array([-1], np.int32), "au": np.full((1, 17), np.nan, np.float32),
             "au_mask": np.zeros((1, 17), np.float32)}
    more = {k: np.concatenate([labels[k], empty[k]]) for k in labels}
    got = mtanet.mtanet_task_losses(wild, more)
    for k in base:
        assert float(got[k]) == pytest.approx(float(base[k]), rel=1e-6), k


def test_task_losses_reject_mismatched_au_slots():
    outputs, labels = _batch()
    with pytest.raises(ValueError, match=r"au_slots must name one label column per AU output \(8\)"):
        mtanet.mtanet_task_losses(outputs, labels, (0, 1, 2))


# === Eq. 5 ===

def _set(weighting, s):
    for t, value in zip(mtanet.TASKS, s):
        weighting.log_variances[t].assign(value)


def test_eq5_against_hand_values():
    w = mtanet.UncertaintyWeighting()
    s_va, s_au, s_expr = 0.2, -0.1, 0.5
    _set(w, (s_va, s_au, s_expr))
    L = {"va": 0.8, "au": 2.0, "expr": 1.5}
    out = w({k: tf.constant(v) for k, v in L.items()})
    # eq. 5 with σ² = e^s: 1/(2σ_va²)·L_va + 1/σ_au²·L_au + 1/σ_expr²·L_expr + log σ_va + log σ_au + log σ_expr
    sigma = {"va": math.exp(s_va / 2), "au": math.exp(s_au / 2), "expr": math.exp(s_expr / 2)}
    want = (0.8 / (2 * sigma["va"] ** 2) + 2.0 / sigma["au"] ** 2 + 1.5 / sigma["expr"] ** 2
            + math.log(sigma["va"]) + math.log(sigma["au"]) + math.log(sigma["expr"]))
    assert want == pytest.approx(0.5 * math.exp(-0.2) * 0.8 + math.exp(0.1) * 2.0 + math.exp(-0.5) * 1.5 + 0.3)
    assert float(out["total"]) == pytest.approx(want, rel=1e-6)
    for t in mtanet.TASKS:
        assert float(out[f"sigma_{t}"]) == pytest.approx(sigma[t], rel=1e-6)


def test_initial_uncertainty_weights_are_half_one_one():
    w = mtanet.UncertaintyWeighting()
    assert [float(v) for v in w.trainable_variables] == [0.0, 0.0, 0.0]
    out = w({"va": 1.0, "au": 1.0, "expr": 1.0})
    assert float(out["total"]) == pytest.approx(2.5)
    assert all(v.trainable for v in w.trainable_variables)


def test_gradient_wrt_each_log_variance_is_minus_weighted_loss_plus_half():
    w = mtanet.UncertaintyWeighting()
    s = (0.3, -0.4, 1.1)
    _set(w, s)
    L = {"va": 1.2, "au": 0.7, "expr": 2.5}
    with tf.GradientTape() as tape:
        total = w(L)["total"]
    grads = tape.gradient(total, w.trainable_variables)
    factor = {"va": 0.5, "au": 1.0, "expr": 1.0}
    for t, s_t, g in zip(mtanet.TASKS, s, grads):
        assert float(g) == pytest.approx(-factor[t] * math.exp(-s_t) * L[t] + 0.5, rel=1e-5), t


def test_sgd_on_fixed_losses_drives_log_variances_to_their_optimum():
    """d/ds (c·e^{−s}·L + ½s) = 0 at s* = log(2cL): a larger loss ends with a larger σ, a smaller weight."""
    w = mtanet.UncertaintyWeighting()
    L = {"va": 3.0, "au": 4.0, "expr": 1.0}
    sgd = keras.optimizers.SGD(learning_rate=0.5)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            total = w(L)["total"]
        sgd.apply(tape.gradient(total, w.trainable_variables), w.trainable_variables)

    for _ in range(3):
        step()
    early = {t: float(w.log_variances[t]) for t in mtanet.TASKS}
    # first gradients −c·L + ½: va −1, au −3.5, expr −0.5, so every s_t rises, the larger c·L the faster
    assert early["au"] > early["va"] > early["expr"] > 0
    for _ in range(300):
        step()
    s = {t: float(w.log_variances[t]) for t in mtanet.TASKS}
    assert s["va"] == pytest.approx(math.log(2 * 0.5 * 3.0), abs=1e-3)
    assert s["au"] == pytest.approx(math.log(2 * 4.0), abs=1e-3)
    assert s["expr"] == pytest.approx(math.log(2 * 1.0), abs=1e-3)
    weights = {t: float(v) for t, v in w.weights().items()}
    # at the optimum every weighted loss c·e^{−s}·L is ½: the weight is 1/(2L)
    assert weights == pytest.approx({"va": 1 / 6, "au": 1 / 8, "expr": 1 / 2}, rel=1e-3)


def test_uncertainty_weighting_rejects_a_non_finite_start():
    with pytest.raises(ValueError, match="initial_log_variance must be finite"):
        mtanet.UncertaintyWeighting(float("nan"))


# === MTANetLoss ===

def test_plain_sum_has_no_variables_and_adds_the_task_losses():
    loss = mtanet.MTANetLoss(_tiny())
    assert loss.trainable_variables == [] and loss.term_names() == ("va", "au", "expr")
    outputs, labels = _batch()
    got = loss(outputs, labels)
    want = _hand_losses(outputs, labels)
    assert float(got["total"]) == pytest.approx(want["va"] + want["au"] + want["expr"], rel=1e-5)
    assert not any(k.startswith("sigma") for k in got)


def test_uncertainty_loss_reports_sigmas_and_trains_three_scalars():
    loss = mtanet.MTANetLoss(_tiny(mtanet_weighting="uncertainty"))
    assert len(loss.trainable_variables) == 3
    assert loss.term_names() == ("va", "au", "expr", "sigma_va", "sigma_au", "sigma_expr")
    outputs, labels = _batch()
    got = loss(outputs, labels)
    want = _hand_losses(outputs, labels)
    assert float(got["total"]) == pytest.approx(0.5 * want["va"] + want["au"] + want["expr"], rel=1e-5)
    assert [float(got[f"sigma_{t}"]) for t in mtanet.TASKS] == [1.0, 1.0, 1.0]


def test_stages_are_the_papers_two_schedules():
    one, two = (_tiny(**mtanet.STAGES[s]) for s in ("stage1", "stage2"))
    assert (one.mtanet_weighting, one.optimizer, one.learning_rate, one.weight_decay) == ("sum", "adamw", 1e-3, 1e-3)
    assert (two.mtanet_weighting, two.optimizer, two.learning_rate, two.weight_decay) == (
        "uncertainty", "sgd", 1e-4, 5e-3)


def test_unknown_weighting_is_rejected():
    with pytest.raises(ValueError, match="mtanet_weighting='mean'"):
        _tiny(mtanet_weighting="mean")


def test_uncertainty_loss_is_the_global_batch_loss_under_two_replicas(two_cpu_strategy, one_cpu_strategy):
    """2 replicas on uneven halves: the SUM of replica values and of gradients (network and s_t) equals 1 device."""
    outputs_np, labels = _batch()
    x = np.random.default_rng(2).normal(size=(4, 3)).astype(np.float32)
    w0 = np.random.default_rng(4).normal(size=(3, 17)).astype(np.float32)
    names = ("va", "au", "expr", "sigma_va", "sigma_au", "sigma_expr", "total")

    def run(strategy):
        with strategy.scope():
            w = tf.Variable(w0)
            loss = mtanet.MTANetLoss(_tiny(mtanet_weighting="uncertainty"))
            for t, s in zip(mtanet.TASKS, (0.2, -0.3, 0.4)):
                loss.uncertainty.log_variances[t].assign(s)
        variables = [w] + loss.trainable_variables
        parts = ([(x[:3], {k: v[:3] for k, v in labels.items()}), (x[3:], {k: v[3:] for k, v in labels.items()})]
                 if strategy.num_replicas_in_sync == 2 else [(x, labels)])
        data = strategy.experimental_distribute_values_from_function(lambda ctx: parts[ctx.replica_id_in_sync_group])

        @tf.function
        def step(batch):
            def replica(d):
                xb, lb = d
                with tf.GradientTape() as tape:
                    z = tf.matmul(xb, w)
                    values = loss({"va": z[:, :2], "au": z[:, 2:10], "expr": z[:, 10:]}, lb)
                return tf.stack([values[k] for k in names]), tape.gradient(values["total"], variables)
            vec, grads = strategy.run(replica, args=(batch,))
            return (strategy.reduce("SUM", vec, axis=None),
                    [strategy.reduce("SUM", g, axis=None) for g in grads])

        vec, grads = step(data)
        return vec.numpy(), [g.numpy() for g in grads]

    vec2, grads2 = run(two_cpu_strategy)
    vec1, grads1 = run(one_cpu_strategy)
    np.testing.assert_allclose(vec2, vec1, rtol=1e-5, atol=1e-6)
    for g2, g1 in zip(grads2, grads1):
        np.testing.assert_allclose(g2, g1, rtol=1e-4, atol=1e-6)
    assert vec1[3] == pytest.approx(math.exp(0.1), rel=1e-6)       # σ_va = e^{s/2}, summed over replicas once


# === VGGFace2 weights ===

def _backbone_arrays(model):
    """{"layer/weight": array} of the backbone, as a converted VGGFace2 file holds them."""
    backbone = model.get_layer("se_resnet50")
    return {f"{layer.name}/{w.name}": np.asarray(w.numpy()) for layer in backbone.layers for w in layer.weights}


def test_vggface2_weights_load_by_name_from_npz(tmp_path, two_models):
    source, target = two_models
    arrays = _backbone_arrays(source)
    arrays["fc1000/kernel"] = np.zeros((4, 4), np.float32)          # other entries are ignored
    path = tmp_path / "senet50.npz"
    np.savez(path, **arrays)
    loaded = mtanet.load_vggface2_weights(target, path, channel_order="rgb")
    assert "conv2_block1_se_reduce" in loaded and "conv1_bn" in loaded
    for key, value in _backbone_arrays(target).items():
        np.testing.assert_array_equal(value, arrays[key], err_msg=key)
    assert not np.allclose(target.get_layer("neck_avg_fc").kernel.numpy(), source.get_layer("neck_avg_fc").kernel.numpy())


def test_vggface2_weights_load_from_a_keras2_style_h5_with_bgr_stem(tmp_path, two_models):
    source, target = two_models
    arrays = _backbone_arrays(source)
    path = tmp_path / "senet50.h5"
    with h5py.File(path, "w") as f:                                # Keras 2 layout: layer/layer/weight:0
        for key, value in arrays.items():
            layer, weight = key.split("/")
            f.create_dataset(f"{layer}/{layer}/{weight}:0", data=value)
    mtanet.load_vggface2_weights(target, path)                     # default: BGR, reversed into RGB
    stem = target.get_layer("se_resnet50").get_layer("conv1_conv").kernel.numpy()
    np.testing.assert_array_equal(stem, arrays["conv1_conv/kernel"][:, :, ::-1, :])
    bn = target.get_layer("se_resnet50").get_layer("conv3_block2_2_bn")
    np.testing.assert_array_equal(bn.moving_variance.numpy(), arrays["conv3_block2_2_bn/moving_variance"])


def test_vggface2_weights_report_every_problem_at_once_and_assign_nothing(tmp_path, two_models):
    source, target = two_models
    arrays = _backbone_arrays(source)
    del arrays["conv2_block1_se_expand/kernel"], arrays["conv2_block1_se_expand/bias"]
    del arrays["conv4_block3_1_bn/moving_mean"]
    arrays["conv5_block1_2_conv/kernel"] = np.zeros((1, 1, 2, 2), np.float32)
    path = tmp_path / "broken.npz"
    np.savez(path, **arrays)
    before = target.get_layer("se_resnet50").get_layer("conv1_conv").kernel.numpy().copy()
    with pytest.raises(WeightsFileError, match="3 of") as info:
        mtanet.load_vggface2_weights(target, path, channel_order="rgb")
    message = str(info.value)
    assert "conv2_block1_se_expand: missing" in message
    assert "conv4_block3_1_bn: moving_mean missing" in message
    assert "conv5_block1_2_conv: kernel (1, 1, 2, 2), model expects (3, 3, 32, 32)" in message
    np.testing.assert_array_equal(target.get_layer("se_resnet50").get_layer("conv1_conv").kernel.numpy(), before)


def test_vggface2_loader_rejects_a_bad_channel_order(tmp_path, two_models):
    with pytest.raises(ValueError, match="channel_order='bgrx'"):
        mtanet.load_vggface2_weights(two_models[1], tmp_path / "x.npz", channel_order="bgrx")
