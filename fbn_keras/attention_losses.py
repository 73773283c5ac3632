"""VGGFACE-GRU-attention's objective, eq. 6 of the multi-task learning and generation paper (Section IV-C):
L_total = α·L'_VA + β·L_basic_expressions.

L'_VA is the CCC loss of eq. 4 (`losses.ccc_loss`, or per window with `ccc_scope="sequence"`) or the MSE
averaged over valence and arousal; L_expr is the softmax cross entropy (`losses.expression_loss`), or the
MSE between the one-hot label and the softmax output ("after softmax") or the logits ("before softmax"),
averaged over the 7 classes. Every term is masked per frame (VA: `va_mask`; expressions: label -1; both:
`frame_mask`) and, inside a `tf.distribute` replica context, is this replica's share of the global-batch
loss, as in `fbn_keras.losses`.
"""

from __future__ import annotations

from typing import Any, Mapping

from keras import ops

from fbn_keras import losses, sequence_losses, taxonomy
from fbn_keras.config import ATTN_EXPR_LOSSES, ATTN_VA_LOSSES, CCC_SCOPES


def va_mse_loss(labels, mask, preds):
    """MSE variant of L'_VA: per frame ((v − v̂)² + (a − â)²)/2, averaged over the frames with mask 1.

    Args: labels, preds: (N, 2); mask: (N,). Returns: scalar, this replica's share; 0 when nothing is labelled.
    """
    row = ops.reshape(ops.cast(mask, "float32"), (-1,)) > 0
    y = ops.cast(labels, "float32")
    p = ops.cast(preds, "float32")
    y = ops.where(row[:, None], y, p)                    # `where`: NaN labels under mask 0 stay out
    return losses._masked_mean(ops.mean((p - y) ** 2, axis=-1), row)


def expression_mse_loss(labels, logits, after_softmax: bool):
    """MSE variants of L_expr: mean over the K classes of (one-hot − softmax(z))² ("after softmax") or
    (one-hot − z)² ("before softmax"), averaged over the rows with a label (−1 = missing).

    Args: labels: (N,) int; logits: (N, K). Returns: scalar, this replica's share; 0 when nothing is labelled.
    """
    num_classes = int(logits.shape[-1])
    losses._check_class_codes(labels, num_classes, "expression")
    labels = ops.reshape(ops.cast(labels, "int32"), (-1,))
    valid = losses._valid_classes(labels, num_classes)
    onehot = ops.one_hot(ops.where(valid, labels, ops.zeros_like(labels)), num_classes)
    z = ops.cast(logits, "float32")
    out = ops.softmax(z, axis=-1) if after_softmax else z
    return losses._masked_mean(ops.mean((out - onehot) ** 2, axis=-1), valid)


class AttentionLoss:
    """Eq. 6: {"va": L'_VA, "expr": L_expr, "total": α·L'_VA + β·L_expr} over (B, T) windows.

    Args:
        config: reads `attn_alpha` (α), `attn_beta` (β), `attn_va_loss` ("ccc" | "mse"),
            `attn_expr_loss` ("ce" | "mse_softmax" | "mse_logits") and `ccc_scope` (the CCC over all
            labelled frames of the global batch, or per window).
    Example:
        loss = AttentionLoss(config)(model(inputs), labels)["total"]
    """

    def __init__(self, config):
        if config.attn_va_loss not in ATTN_VA_LOSSES:
            raise ValueError(f"attn_va_loss must be one of {ATTN_VA_LOSSES}. "
                             f"Received: attn_va_loss={config.attn_va_loss!r}")
        if config.attn_expr_loss not in ATTN_EXPR_LOSSES:
            raise ValueError(f"attn_expr_loss must be one of {ATTN_EXPR_LOSSES}. "
                             f"Received: attn_expr_loss={config.attn_expr_loss!r}")
        if config.ccc_scope not in CCC_SCOPES:
            raise ValueError(f"ccc_scope must be one of {CCC_SCOPES}. Received: ccc_scope={config.ccc_scope!r}")
        for name in ("attn_alpha", "attn_beta"):
            value = getattr(config, name)
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be in [0, 1] (eq. 6). Received: {name}={value!r}")
        self.alpha, self.beta = float(config.attn_alpha), float(config.attn_beta)
        self.va_loss, self.expr_loss = config.attn_va_loss, config.attn_expr_loss
        self.ccc_scope = config.ccc_scope

    def term_names(self) -> tuple[str, ...]:
        """The names of the terms `__call__` returns, besides 'total'."""
        return ("va", "expr")

    def __call__(self, outputs: Mapping[str, Any], labels: Mapping[str, Any]) -> dict[str, Any]:
        losses._require(outputs, ("va", "expr"), "outputs")
        losses._require(labels, ("va", "va_mask", "expr", "frame_mask"), "labels")
        frame = ops.cast(labels["frame_mask"], "float32") > 0                       # (B, T)
        va_mask = ops.logical_and(ops.cast(labels["va_mask"], "float32") > 0, frame)
        flat_va = ops.reshape(labels["va"], (-1, 2))
        flat_pred = ops.reshape(outputs["va"], (-1, 2))
        if self.va_loss == "mse":
            va = va_mse_loss(flat_va, ops.reshape(va_mask, (-1,)), flat_pred)
        elif self.ccc_scope == "batch":
            va = losses.ccc_loss(flat_va, ops.reshape(va_mask, (-1,)), flat_pred)
        else:
            va = sequence_losses.sequence_ccc_loss(labels["va"], va_mask, outputs["va"])
        expr = ops.cast(labels["expr"], "int32")
        expr = ops.reshape(ops.where(frame, expr, -ops.ones_like(expr)), (-1,))
        logits = ops.reshape(outputs["expr"], (-1, taxonomy.NUM_EXPRESSIONS))
        if self.expr_loss == "ce":
            ex = losses.expression_loss(expr, logits)
        else:
            ex = expression_mse_loss(expr, logits, after_softmax=self.expr_loss == "mse_softmax")
        return {"va": va, "expr": ex, "total": self.alpha * va + self.beta * ex}
