"""The semi-supervised GAN's objective (multi-task learning and generation paper, Section IV-C1, eq. 1–5).

    L_total = L_gen + R_images + F_images                                   (1)
    L_gen   = log x + w_r · L_δ(real − fake)                                (2)
    R_images = R_VA + R_AU + R_fake,  F_images = F_VA + F_AU + F_fake        (3)
    L_VA = 1 − (ρ_a + ρ_v)/2 (4) with ρ the CCC (5); or the MSE averaged over V and A.

D minimises R_images + F_images; G minimises L_gen. On a real image the
targets are its labels and fake = 0; on a generated one they are smoothed:
0.01 for V, A and the 8 AUs, 0.9 for fake. x is D's fake probability on G(z),
clipped to [1e-7, 1] inside the log; the Huber loss (δ = 1) compares the batch
of real images with the batch of generated ones element by element.

Every term returns this replica's share of the global-batch loss, as
`fbn_keras.losses` does (its module docstring), so the terms of one step
sum over replicas to the loss of the whole batch.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from keras import ops

from fbn_keras import taxonomy
from fbn_keras.gan import GAN_AUS, GanConfig
# `_masked_mean` is the one place the global-batch mean (local sum ÷ all-reduced count) lives.
from fbn_keras.losses import Q_MIN, _masked_mean, au_loss, ccc_loss

#: Columns of the 8 GAN AUs in the 17-AU label layout (taxonomy.AUS).
AU_COLUMNS: tuple[int, ...] = tuple(taxonomy.au_index(au) for au in GAN_AUS)


def gan_au_labels(au, au_mask):
    """(N, 17) AU labels and δ in taxonomy.AUS order → the (N, 8) columns of AUs 1, 2, 4, 6, 12, 15, 20, 25."""
    columns = np.asarray(AU_COLUMNS)
    return ops.take(ops.cast(au, "float32"), columns, axis=-1), ops.take(ops.cast(au_mask, "float32"), columns, axis=-1)


def mse_va_loss(labels, mask, preds):
    """The MSE alternative to eq. 4: per image the mean of (ŷ − y)² over V and A, averaged over the
    labelled images of the global batch; 0 when none is labelled."""
    err = ops.mean(ops.square(ops.cast(preds, "float32") - ops.cast(labels, "float32")), axis=-1)
    mask = ops.reshape(ops.cast(mask, "float32"), (-1,))
    # `where` first: a NaN label under mask 0 must not reach the sum.
    return _masked_mean(ops.where(mask > 0, err, ops.zeros_like(err)), mask)


def va_loss(labels, mask, preds, kind: str = "ccc"):
    """L_VA: eq. 4–5's CCC loss (`losses.ccc_loss`) or `mse_va_loss`."""
    if kind == "ccc":
        return ccc_loss(labels, mask, preds)
    if kind == "mse":
        return mse_va_loss(labels, mask, preds)
    raise ValueError(f"kind must be 'ccc' or 'mse'. Received: kind={kind!r}")


def bce_mean(targets, logits):
    """Binary cross entropy of (N, K) logits against targets, averaged over the K outputs of each image
    and over every image of the global batch (`losses.au_loss` with every δ = 1)."""
    logits = ops.cast(logits, "float32")
    targets = ops.broadcast_to(ops.cast(targets, "float32"), ops.shape(logits))
    return au_loss(targets, ops.ones_like(logits), logits)


def huber_loss(real, fake, delta: float = 1.0):
    """L_δ(real − fake) of eq. 2: ½d² where |d| ≤ δ, else δ(|d| − ½δ), averaged over every element of
    the batch pair (a batch of real images against the batch of generated ones: no pairing exists)."""
    d = ops.cast(real, "float32") - ops.cast(fake, "float32")
    a = ops.abs(d)
    elem = ops.where(a <= delta, 0.5 * d * d, delta * (a - 0.5 * delta))
    per_image = ops.mean(elem, axis=tuple(range(1, len(elem.shape))))
    return _masked_mean(per_image, ops.ones_like(per_image))


def w_r_at(update, initial: float = 1.0, decay_updates: int = 0):
    """The annealed weight w_r of eq. 2 at `update` (updates of either network so far): `initial` falling
    linearly to 0 at `decay_updates` (constant when it is 0). The paper gives only the initial value 1."""
    update = ops.cast(update, "float32")
    if decay_updates <= 0:
        return ops.cast(initial, "float32") + 0.0 * update
    return initial * ops.maximum(0.0, 1.0 - update / float(decay_updates))


def discriminator_real_loss(outputs: Mapping[str, Any], labels: Mapping[str, Any], va_kind: str = "ccc") -> dict:
    """R_images of eq. 3 on a batch of real images: {"r_va", "r_au", "r_fake"} for the heads D has.

    R_VA: `va_loss` on the VA-labelled images; R_AU: BCE averaged over the 8 AUs
    (annotated ones, δ), then over images; R_fake: BCE against target 0.
    `labels`: "va" (N, 2), "va_mask" (N,), "au" (N, 17), "au_mask" (N, 17).
    """
    terms = {}
    if "va" in outputs:
        terms["r_va"] = va_loss(labels["va"], labels["va_mask"], outputs["va"], va_kind)
    if "au" in outputs:
        au, au_mask = gan_au_labels(labels["au"], labels["au_mask"])
        terms["r_au"] = au_loss(au, au_mask, outputs["au"])
    if "fake" in outputs:
        terms["r_fake"] = bce_mean(0.0, outputs["fake"])
    return terms


def discriminator_fake_loss(outputs: Mapping[str, Any], va_kind: str = "ccc", target_labels: float = 0.01,
                            target_fake: float = 0.9) -> dict:
    """F_images on a batch of generated images: {"f_va", "f_au", "f_fake"} with the smoothed targets.

    Under the CCC loss F_VA is constant: a constant target has no covariance
    with the predictions, so ρ = 0 and the term is 1 with zero gradient. It is
    kept, as the paper writes F_images "similar" to R_images (docs/FAITHFULNESS.md).
    """
    terms = {}
    if "va" in outputs:
        preds = ops.cast(outputs["va"], "float32")
        rows = ops.ones_like(preds[:, 0])
        terms["f_va"] = va_loss(ops.full_like(preds, target_labels), rows, preds, va_kind)
    if "au" in outputs:
        terms["f_au"] = bce_mean(target_labels, outputs["au"])
    if "fake" in outputs:
        terms["f_fake"] = bce_mean(target_fake, outputs["fake"])
    return terms


def discriminator_loss(real_outputs: Mapping[str, Any], labels: Mapping[str, Any],
                       fake_outputs: Mapping[str, Any] | None, config: GanConfig) -> dict:
    """D's part of eq. 1, R_images + F_images, with each term and "total"; without generated images
    (`fake_outputs` None: D has no fake class) it is R_images alone."""
    terms = discriminator_real_loss(real_outputs, labels, config.va_loss)
    if fake_outputs is not None:
        terms.update(discriminator_fake_loss(fake_outputs, config.va_loss, config.fake_target_labels,
                                             config.fake_target_fake))
    terms["total"] = sum(terms.values())
    return terms


def generator_loss(fake_logit, real_images, fake_images, w_r, delta: float = 1.0) -> dict:
    """L_gen of eq. 2: {"log_x": mean log x, "huber": L_δ(real − fake), "total": log x + w_r · L_δ}.

    x = sigmoid(fake_logit), D's fake-class probability on G(z), clipped to
    [1e-7, 1] before the log; log x is minimised as printed (driving x to 0,
    "real"), averaged over the generated images.
    """
    x = ops.clip(ops.sigmoid(ops.reshape(ops.cast(fake_logit, "float32"), (-1,))), Q_MIN, 1.0)
    log_x = _masked_mean(ops.log(x), ops.ones_like(x))
    huber = huber_loss(real_images, fake_images, delta)
    return {"log_x": log_x, "huber": huber, "total": log_x + ops.cast(w_r, "float32") * huber}
