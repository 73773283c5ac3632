"""The sequence models' objective: per-frame task losses over (B, T) windows, summed unweighted.

Journal Section VI-A, eq. 4–6: L = L_CCE + L_BCE + L_CCC for the multi-task
networks (MT-VGG, MT-VGG-GRU, A/V-MT-VGG-GRU); eq. 2 (= eq. 6) alone for the
VA-only networks of Sections V-A and V-B. Every term is masked to the frames
that carry its label, and a padded frame (`frame_mask` 0) never contributes
(docs/FAITHFULNESS.md, "Sequence losses, fusion and task relatedness").

Distribution follows `fbn_keras.losses`: inside a `tf.distribute` replica
context each term is this replica's share, so the SUM over replicas is the
loss of the whole global batch.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from keras import ops

from fbn_keras import losses, taxonomy
from fbn_keras.config import AU_REDUCTIONS, CCC_SCOPES

#: The heads a sequence model may have, in the order the terms are reported.
HEADS: tuple[str, ...] = ("va", "expr", "au")
_LABELS_OF = {"va": ("va", "va_mask"), "expr": ("expr",), "au": ("au", "au_mask")}


def _frames(x, tail: tuple[int, ...] = ()):
    """(B, T, *tail) → (B·T, *tail)."""
    return ops.reshape(x, (-1,) + tail)


def sequence_ccc_loss(labels, mask, preds):
    """Eq. 2 / eq. 6 per sequence, 1 − (CCC_v + CCC_a)/2, averaged over the sequences with a VA label.

    The `ccc_scope="sequence"` reading: each window's CCC from its own masked
    frames (population moments), then the mean over the global batch's
    windows that have at least one labelled frame. A window lives on one
    replica, so only the count of windows is all-reduced.

    Args:
        labels, preds: (B, T, 2); mask: (B, T), 1 where VA is labelled.
    Returns: scalar, this replica's share; 0 when no window has a label.
    """
    y = ops.cast(labels, "float32")
    p = ops.cast(preds, "float32")
    m = ops.cast(mask, "float32") > 0
    keep = m[..., None]
    y = ops.where(keep, y, ops.zeros_like(y))             # `where`: NaN labels under mask 0 stay out
    p = ops.where(keep, p, ops.zeros_like(p))
    n = ops.sum(ops.cast(m, "float32"), axis=1)[:, None]  # (B, 1)
    n_safe = ops.maximum(n, 1.0)
    my, mp = ops.sum(y, 1) / n_safe, ops.sum(p, 1) / n_safe
    var_y = ops.maximum(ops.sum(y * y, 1) / n_safe - my * my, 0.0)
    var_p = ops.maximum(ops.sum(p * p, 1) / n_safe - mp * mp, 0.0)
    cov = ops.sum(y * p, 1) / n_safe - my * mp
    ccc = 2.0 * cov / (var_y + var_p + (my - mp) ** 2 + losses.CCC_EPS)   # (B, 2)
    per_sequence = 1.0 - ops.mean(ccc, axis=-1)
    return losses._masked_mean(per_sequence, n[:, 0] > 0)


def au_sum_loss(labels, mask, logits):
    """Eq. 5: per frame Σ_i δ_i·BCE_i over the annotated AUs, averaged over frames with ≥ 1 AU label.

    Args: labels, mask, logits: (N, K). Returns: scalar, this replica's share; 0 when nothing is annotated.
    """
    mask = ops.cast(mask, "float32")
    annotated = mask > 0
    labels = ops.where(annotated, ops.cast(labels, "float32"), ops.zeros_like(mask))
    bce = losses._bce_with_logits(labels, ops.cast(logits, "float32"))
    per_frame = ops.sum(ops.where(annotated, bce, ops.zeros_like(bce)), axis=-1)
    return losses._masked_mean(per_frame, ops.any(annotated, axis=-1))


class SequenceLoss:
    """Eq. 4–6 of Section VI-A (eq. 2 for VA-only nets): one term per head, "total" their unweighted sum.

    Args:
        config: a `fbn_keras.config.Config`; reads `ccc_scope` ("batch": one CCC
            per dimension over every masked frame of the global batch, D3;
            "sequence": the mean of per-window CCC losses) and `au_reduction`
            ("sum": eq. 5; "mean": `losses.au_loss`'s mean over annotated AUs).
        heads: the model's output heads, a subset of ("va", "expr", "au").
        au_slots: for an "au" head, the indices into `taxonomy.AUS` of its n
            outputs, in output order (e.g. the journal's 8 AUs).
    Example:
        loss = SequenceLoss(config, ("va", "expr", "au"), slots)(model(inputs), labels)["total"]
    """

    def __init__(self, config, heads: Iterable[str], au_slots: Iterable[int] = ()):
        heads = tuple(heads)
        au_slots = tuple(int(s) for s in au_slots)
        if not heads or any(h not in HEADS for h in heads) or len(set(heads)) != len(heads):
            raise ValueError(f"heads must be distinct names from {HEADS}, at least one. Received: heads={heads}")
        if "au" in heads and not au_slots:
            raise ValueError(f"An 'au' head needs au_slots (indices into the {taxonomy.NUM_AUS} AUs). "
                             f"Received: au_slots={au_slots}")
        if any(not 0 <= s < taxonomy.NUM_AUS for s in au_slots) or len(set(au_slots)) != len(au_slots):
            raise ValueError(f"au_slots must be distinct indices in [0, {taxonomy.NUM_AUS}). "
                             f"Received: au_slots={au_slots}")
        if config.ccc_scope not in CCC_SCOPES:
            raise ValueError(f"ccc_scope must be one of {CCC_SCOPES}. Received: ccc_scope={config.ccc_scope!r}")
        if config.au_reduction not in AU_REDUCTIONS:
            raise ValueError(f"au_reduction must be one of {AU_REDUCTIONS}. "
                             f"Received: au_reduction={config.au_reduction!r}")
        self.config = config
        self.heads = tuple(h for h in HEADS if h in heads)
        self.au_slots = au_slots
        self.ccc_scope = config.ccc_scope
        self.au_reduction = config.au_reduction

    def term_names(self) -> tuple[str, ...]:
        """The names of the terms `__call__` returns, besides 'total'."""
        return self.heads

    def __call__(self, outputs: Mapping[str, Any], labels: Mapping[str, Any]) -> dict[str, Any]:
        losses._require(outputs, self.heads, "outputs")
        losses._require(labels, ("frame_mask",) + sum((_LABELS_OF[h] for h in self.heads), ()), "labels")
        frame = ops.cast(labels["frame_mask"], "float32") > 0                        # (B, T)
        terms: dict[str, Any] = {}
        if "va" in self.heads:
            mask = ops.logical_and(ops.cast(labels["va_mask"], "float32") > 0, frame)
            if self.ccc_scope == "batch":
                terms["va"] = losses.ccc_loss(_frames(labels["va"], (2,)), _frames(mask),
                                              _frames(outputs["va"], (2,)))
            else:
                terms["va"] = sequence_ccc_loss(labels["va"], mask, outputs["va"])
        if "expr" in self.heads:
            expr = ops.cast(labels["expr"], "int32")
            expr = ops.where(frame, expr, -ops.ones_like(expr))
            logits = outputs["expr"]
            terms["expr"] = losses.expression_loss(_frames(expr), _frames(logits, (int(logits.shape[-1]),)))
        if "au" in self.heads:
            n = len(self.au_slots)
            logits = outputs["au"]
            if int(logits.shape[-1]) != n:
                raise ValueError(f"outputs['au'] has {int(logits.shape[-1])} AUs but au_slots names {n}. "
                                 f"Received: shape={tuple(logits.shape)}")
            slots = list(self.au_slots)
            au = ops.take(ops.cast(labels["au"], "float32"), slots, axis=-1)
            au_mask = ops.take(ops.cast(labels["au_mask"], "float32"), slots, axis=-1)
            au_mask = au_mask * ops.cast(frame, "float32")[..., None]
            au, au_mask, logits = _frames(au, (n,)), _frames(au_mask, (n,)), _frames(logits, (n,))
            terms["au"] = (au_sum_loss(au, au_mask, logits) if self.au_reduction == "sum"
                           else losses.au_loss(au, au_mask, logits))
        total = ops.convert_to_tensor(0.0, "float32")
        for value in terms.values():
            total = total + value
        terms["total"] = total
        return terms
