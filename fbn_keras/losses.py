"""FaceBehaviorNet's objective: masked task losses, coupling terms, and their global-batch form.

Main paper eq. 1–3 (journal eq. 7–9) and the co-annotation rules of Section 3,
as pure functions in `keras.ops`. Label conventions (docs/LABELS.md): expression -1
is missing; VA rows carry a mask; each AU carries δ_i.

Distribution convention. Inside a `tf.distribute` replica context every loss
returns *this replica's share* of the global-batch loss: masked means divide
the local sum by the all-reduced global count, and the CCC is formed from
sufficient statistics summed over replicas and then divided by the number of
replicas. Summing the returned values over replicas
(`strategy.reduce("SUM", ...)`), as the optimizer does with gradients, gives
the loss of the whole global batch. Outside a replica context (or on another
backend) the same functions are the plain single-device losses.
"""

from __future__ import annotations

from typing import Any, Mapping

import keras
import numpy as np
from keras import ops

from fbn_keras import taxonomy
from fbn_keras.config import DM_FORMS, DM_REDUCTIONS

#: Clip range of q in eq. 2–3: keeps log q finite.
Q_MIN = 1e-7
#: Added to the CCC denominator so constant inputs give CCC 0, not NaN.
CCC_EPS = 1e-8
_NEUTRAL = taxonomy.expression_index("neutral")


# === Global-batch reduction (the only backend-specific part) ===

def _replica_context():
    """The active tf.distribute replica context, or None (other backend, no strategy, cross-replica)."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    if not tf.distribute.has_strategy() or tf.distribute.in_cross_replica_context():
        return None
    return tf.distribute.get_replica_context()


def _global_sum(x):
    """Sum of `x` over all replicas in sync (identity outside a replica context).

    TF defines the gradient of an all-reduce SUM as the all-reduce SUM of the
    upstream gradients, so a loss built on the global sums back-propagates the
    global-batch gradient to each replica's own inputs.
    """
    ctx = _replica_context()
    return x if ctx is None else ctx.all_reduce("SUM", x)


def _num_replicas() -> int:
    ctx = _replica_context()
    return 1 if ctx is None else int(ctx.num_replicas_in_sync)


def _masked_mean(values, row_mask):
    """Σ values over rows with row_mask 1, divided by the global count of such rows; 0 when there are none."""
    row_mask = ops.cast(row_mask, "float32")
    local = ops.sum(ops.where(row_mask > 0, values, ops.zeros_like(values)))
    count = _global_sum(ops.sum(row_mask))
    return local / ops.maximum(count, 1.0)


# === Small helpers ===

def _flat(x, dtype):
    """(N,) or (N, 1) → (N,) of `dtype`."""
    return ops.reshape(ops.cast(x, dtype), (-1,))


def _eager_numpy(x):
    """The values of `x` when they are concrete (numpy or an eager tensor), else None."""
    if isinstance(x, (np.ndarray, list, tuple, int)):
        return np.asarray(x)
    try:
        return np.asarray(x.numpy())
    except (AttributeError, NotImplementedError, TypeError, ValueError):
        return None


def _check_class_codes(labels, num_classes: int, what: str) -> None:
    """Raise on codes outside {-1, 0..K-1} when the labels are concrete.

    Inside a traced function the values are unknown here; such codes then count
    as missing (the data layer validates codes when it writes records).
    """
    values = _eager_numpy(labels)
    if values is None:
        return
    bad = values[(values < -1) | (values >= num_classes)]
    if bad.size:
        raise ValueError(f"{what} labels must be -1 (missing) or in [0, {num_classes}). "
                         f"Received: {sorted(set(bad.tolist()))[:10]}")


def _valid_classes(labels, num_classes: int):
    """Boolean (N,): the label is a class index (not -1 / out of range)."""
    return ops.logical_and(labels >= 0, labels < num_classes)


def _relation(relation):
    relation = ops.convert_to_tensor(np.asarray(relation, np.float32) if isinstance(relation, (list, tuple))
                                     else relation, "float32")
    if len(relation.shape) != 2:
        raise ValueError(f"relation must be a (num_emotions, num_aus) matrix. Received shape {relation.shape}")
    return relation


# === Task losses (eq. 1) ===

def expression_loss(labels, logits):
    """L_Emo of eq. 1: softmax cross entropy averaged over rows with an expression label.

    Args:
        labels: (N,) int, class index or -1 for missing.
        logits: (N, K) expression logits.
    Returns: scalar; exactly 0 when no row is labelled.
    """
    num_classes = int(logits.shape[-1])
    _check_class_codes(labels, num_classes, "expression")
    labels = _flat(labels, "int32")
    valid = _valid_classes(labels, num_classes)
    onehot = ops.one_hot(ops.where(valid, labels, ops.zeros_like(labels)), num_classes)
    ce = -ops.sum(onehot * ops.log_softmax(ops.cast(logits, "float32"), axis=-1), axis=-1)
    return _masked_mean(ce, valid)


def _bce_with_logits(labels, logits, pos_weight=None):
    """Element-wise binary cross entropy from logits, stable for |logits| ≫ 1; with `pos_weight`,
    −(w₊·y·log σ(z) + (1 − y)·log(1 − σ(z))), the positive term scaled by w₊."""
    if pos_weight is None:
        return ops.softplus(logits) - labels * logits
    return pos_weight * labels * ops.softplus(-logits) + (1.0 - labels) * ops.softplus(logits)


def au_loss(labels, mask, logits, weights=None, normalise_by_weights: bool = False, pos_weight=None):
    """L_AU of eq. 1: per image Σ_i δ_i·BCE_i / Σ_i δ_i, averaged over images with ≥ 1 annotated AU.

    `weights` (N, K) re-weight each AU's term (co-annotation: w for the
    observational AUs, Section 3). By default they multiply the terms and the
    normaliser stays Σδ, the number of annotated AUs of eq. 1 ("re-weight the
    contributions"); `normalise_by_weights=True` divides by Σ δ·w instead (a
    weighted mean). `pos_weight` (K,) scales each AU's positive term (not in
    the paper; `balanced_au_pos_weight`); None is eq. 1's plain BCE. Labels
    under δ = 0 are never read, so NaN there is harmless.

    Args:
        labels: (N, K) float in {0, 1}.
        mask: (N, K) δ in {0, 1}.
        logits: (N, K) AU logits.
    Returns: scalar; 0 when no AU is annotated.
    """
    mask = ops.cast(mask, "float32")
    logits = ops.cast(logits, "float32")
    annotated = mask > 0
    labels = ops.where(annotated, ops.cast(labels, "float32"), ops.zeros_like(mask))
    w = mask if weights is None else mask * ops.cast(weights, "float32")
    if pos_weight is not None:
        pos_weight = ops.reshape(ops.cast(pos_weight, "float32"), (1, -1))
    terms = ops.where(annotated, w * _bce_with_logits(labels, logits, pos_weight), ops.zeros_like(mask))
    norm = ops.sum(w if normalise_by_weights else mask, axis=-1)
    per_image = ops.sum(terms, axis=-1) / ops.maximum(norm, 1e-12)
    return _masked_mean(per_image, norm > 0)


def balanced_au_pos_weight(positives, annotated, max_weight: float, power: float = 1.0):
    """Per-AU weight of the positive BCE term, negatives/positives in the training labels, clipped to
    [1/max_weight, max_weight]: at the optimum σ(z) = ½ where an AU is as likely as its base rate.

    Not in the paper: class balancing as AU detectors commonly use it (e.g. JAA-Net), an option
    (`--au-pos-weight balanced`) for imbalanced AUs scored by F1. An AU with no annotated
    positive keeps weight 1 (nothing to balance).

    `power` ½ gives the square root of the ratio, a milder balance that moves the 0.5 threshold
    less far from the F1-optimal one for AUs the network already detects well.

    Args:
        positives, annotated: (K,) counts of label-1 and of annotated (δ = 1) training labels.
    Returns: (K,) float32 numpy array.
    """
    pos = np.asarray(positives, np.float64)
    ann = np.asarray(annotated, np.float64)
    if pos.shape != ann.shape or np.any(pos < 0) or np.any(pos > ann):
        raise ValueError(f"Need 0 <= positives <= annotated, same shape. Received: positives={pos}, annotated={ann}")
    if not max_weight >= 1:
        raise ValueError(f"max_weight must be >= 1. Received: max_weight={max_weight}")
    ratio = np.divide(ann - pos, pos, out=np.ones_like(pos), where=pos > 0)
    return np.clip(ratio ** power, 1.0 / max_weight, max_weight).astype(np.float32)


def concordance(labels, mask, preds, eps: float = CCC_EPS):
    """Per-dimension CCC (eq. 1's ρ_v, ρ_a) over the rows with mask 1 of the *global* batch.

    ρ = 2·cov(y, ŷ) / (var y + var ŷ + (ȳ − ŷ̄)² + eps), with population (1/n)
    moments formed from the count, Σy, Σŷ, Σy², Σŷ², Σyŷ, which are summed over
    replicas first. Returns (D,) CCCs and the global count n (a scalar);
    CCC is 0 when n = 0.
    """
    labels = ops.cast(labels, "float32")
    preds = ops.cast(preds, "float32")
    row = ops.reshape(ops.cast(mask, "float32"), (-1, 1)) > 0
    zeros = ops.zeros_like(preds)
    y = ops.where(row, labels, zeros)        # `where`, not ×mask: NaN labels under mask 0 stay out
    p = ops.where(row, preds, zeros)
    count = ops.sum(ops.cast(row, "float32"))
    stats = ops.stack([ops.sum(y, 0), ops.sum(p, 0), ops.sum(y * y, 0), ops.sum(p * p, 0),
                       ops.sum(y * p, 0)], axis=0)                      # (5, D)
    n = _global_sum(count)
    stats = _global_sum(stats)
    n_safe = ops.maximum(n, 1.0)
    my, mp = stats[0] / n_safe, stats[1] / n_safe
    var_y = ops.maximum(stats[2] / n_safe - my * my, 0.0)   # clamp float cancellation below 0
    var_p = ops.maximum(stats[3] / n_safe - mp * mp, 0.0)
    cov = stats[4] / n_safe - my * mp
    ccc = 2.0 * cov / (var_y + var_p + (my - mp) ** 2 + eps)
    return ops.where(n > 0, ccc, ops.zeros_like(ccc)), n


def ccc_loss(labels, mask, preds):
    """L_VA of eq. 1: 1 − (CCC_v + CCC_a)/2 over the labelled rows of the global batch.

    Args:
        labels: (N, 2) valence, arousal.
        mask: (N,) or (N, 1), 1 where VA is labelled.
        preds: (N, 2).
    Returns: scalar, this replica's share (÷ replicas in sync); exactly 0 when no row is labelled.
    """
    ccc, n = concordance(labels, mask, preds)
    loss = 1.0 - ops.mean(ccc)
    return ops.where(n > 0, loss, ops.zeros_like(loss)) / float(_num_replicas())


# === Distribution matching (eq. 2–3) ===

def au_mixture(expr_logits, relation, average_emotions: bool = False):
    """q(au_i|x) of eq. 2 (journal eq. 8): Σ_emo p(emo|x)·p(au_i|emo), with p(emo|x) = softmax(expr_logits).

    Eq. 2's denominator Σ_emo p(emo|x) is 1 for a softmax, so it is left out.
    `average_emotions=True` instead divides each AU's sum by the number of
    emotions relating to it: the ½ of the main paper's worked example,
    q(AU2) = ½(p(surprised) + p(fearful)) (FAITHFULNESS.md). Returns (N, K), unclipped.
    """
    relation = _relation(relation)
    if average_emotions:
        n_emotions = ops.sum(ops.cast(relation != 0, "float32"), axis=0)
        relation = relation / ops.maximum(n_emotions, 1.0)[None, :]
    p_emo = ops.softmax(ops.cast(expr_logits, "float32"), axis=-1)
    return ops.matmul(p_emo, relation)


# DM_FORMS (fbn_keras.config): "positive" is eq. 3 as printed, −p·log q; "bernoulli" is
# footnote 5's KL across the AUs, each AU a Bernoulli variable: KL(Bern(p) ‖ Bern(q)).


def distribution_matching_loss(expr_logits, au_logits, relation, stop_gradient_target: bool = True,
                               average_emotions: bool = False, form: str = "positive", reduction: str = "sum"):
    """L_DM of eq. 3 with q of eq. 2, averaged over every image.

    `form="positive"`: Σ_i −p(au_i|x)·log q(au_i|x), eq. 3 as printed, q clipped
    to [Q_MIN, 1]. `form="bernoulli"`: Σ_i KL(Bern(p_i) ‖ Bern(q_i)) =
    p·log(p/q) + (1−p)·log((1−p)/(1−q)), footnote 5's "KL across the 17 action
    units", q and p clipped to [Q_MIN, 1 − Q_MIN] inside the logs; it is 0 when
    q = p, so a neutral face (no AUs, q ≈ 0) is not pushed away from neutral.
    q = softmax(expr_logits) @ relation (eq. 2's denominator Σ p(emo|x) is 1).
    The sum runs over the AUs the relation covers (a column of zeros, e.g. AU14
    in the cognitive table, has q ≡ 0 and is left out). p(au|x) is the soft
    target of a distillation-style loss and is held constant when
    `stop_gradient_target` (FAITHFULNESS.md §5). `average_emotions`: see `au_mixture`.
    `reduction="sum"` is eq. 3's Σ_i; "mean" divides it by the number of covered AUs (the trainer's
    default, `Config.dm_reduction`: FAITHFULNESS.md §5, "Scale of the DM term").

    Args:
        expr_logits: (N, E); au_logits: (N, K); relation: (E, K) p(au|emo).
    """
    if form not in DM_FORMS:
        raise ValueError(f"form must be one of {DM_FORMS}. Received: form={form!r}")
    if reduction not in DM_REDUCTIONS:
        raise ValueError(f"reduction must be one of {DM_REDUCTIONS}. Received: reduction={reduction!r}")
    relation = _relation(relation)
    p_au = ops.sigmoid(ops.cast(au_logits, "float32"))
    if stop_gradient_target:
        p_au = ops.stop_gradient(p_au)
    q = au_mixture(expr_logits, relation, average_emotions)
    covered = ops.cast(ops.any(relation != 0, axis=0), "float32")       # (K,)
    if form == "positive":
        per_au = -p_au * ops.log(ops.clip(q, Q_MIN, 1.0))
    else:
        q = ops.clip(q, Q_MIN, 1.0 - Q_MIN)
        p_c = ops.clip(p_au, Q_MIN, 1.0 - Q_MIN)
        per_au = (p_au * (ops.log(p_c) - ops.log(q))
                  + (1.0 - p_au) * (ops.log(1.0 - p_c) - ops.log(1.0 - q)))
    per_image = ops.sum(covered * per_au, axis=-1)
    if reduction == "mean":
        per_image = per_image / ops.maximum(ops.sum(covered), 1.0)
    return _masked_mean(per_image, ops.ones_like(per_image))


# === Soft co-annotation (Section 3, "a mix of the two strategies") ===

UNANNOTATED = ("ignore", "absent")


def soft_coannotation_targets(au_labels, au_mask, relation, include_neutral: bool = True,
                              unannotated: str = "absent"):
    """Soft expression labels from AU labels: softmax over emotions of Σ w·y_au / Σ w.

    The sums run over each emotion's related AUs (relation entries are the
    weights w; the unweighted table gives w = 1). `unannotated="absent"` counts
    an unannotated AU as y = 0 and keeps the full Σ w, as the paper's worked
    example divides by (1 + 1 + 0.51); with `"ignore"` only annotated AUs count,
    in numerator and denominator, and an emotion none of whose AUs is annotated
    scores 0. Neutral scores 0 and takes part in the softmax when
    `include_neutral`, else its probability is 0.

    Returns: (targets (N, E), row_mask (N,) float, 1 for images with ≥ 1 annotated AU).
    """
    if unannotated not in UNANNOTATED:
        raise ValueError(f"unannotated must be one of {UNANNOTATED}. Received: unannotated={unannotated!r}")
    relation = _relation(relation)
    mask = ops.cast(au_mask, "float32")
    annotated = mask > 0
    y = ops.where(annotated, ops.cast(au_labels, "float32"), ops.zeros_like(mask))
    num = ops.matmul(y, ops.transpose(relation))                        # (N, E)
    if unannotated == "ignore":
        den = ops.matmul(mask, ops.transpose(relation))
    else:
        den = ops.broadcast_to(ops.sum(relation, axis=-1)[None, :], ops.shape(num))
    scores = ops.where(den > 0, num / ops.maximum(den, 1e-12), ops.zeros_like(num))
    if not include_neutral:
        is_neutral = ops.arange(int(relation.shape[0])) == _NEUTRAL
        scores = ops.where(is_neutral[None, :], ops.full_like(scores, -1e9), scores)
    targets = ops.softmax(scores, axis=-1)
    row_mask = ops.cast(ops.any(annotated, axis=-1), "float32")
    return targets, row_mask


def soft_coannotation_loss(expr_logits, au_labels, au_mask, relation, include_neutral: bool = True,
                           unannotated: str = "absent"):
    """Cross entropy between the soft co-annotation label and softmax(expr_logits) (cf. eq. 3),
    averaged over images with ≥ 1 annotated AU."""
    targets, row_mask = soft_coannotation_targets(au_labels, au_mask, relation, include_neutral, unannotated)
    ce = -ops.sum(ops.stop_gradient(targets) * ops.log_softmax(ops.cast(expr_logits, "float32"), axis=-1),
                  axis=-1)
    return _masked_mean(ce, row_mask)


# === Co-annotation (Section 3) ===

def coannotate_expression(expr_labels, relation):
    """AU targets for expression-labelled images: the emotion's related AUs set to 1, only they annotated.

    Pass the weights table (`taxonomy.relation_weights`): the returned weights
    are 1 for prototypical and w for observational AUs ("re-weight the
    contributions of the observational AUs"). Rows with expression -1 or an
    emotion without AUs (neutral) get an all-zero mask.

    Returns: (au_targets (N, K), au_mask (N, K), au_weights (N, K)), float32.
    """
    relation = _relation(relation)
    num_emotions = int(relation.shape[0])
    labels = _flat(expr_labels, "int32")
    valid = _valid_classes(labels, num_emotions)
    rows = ops.take(relation, ops.where(valid, labels, ops.zeros_like(labels)), axis=0)
    weights = ops.where(valid[:, None], rows, ops.zeros_like(rows))
    mask = ops.cast(weights > 0, "float32")
    return mask, mask, weights


TIES = ("drop", "first")


def coannotate_aus(au_labels, au_mask, relation, on_tie: str = "drop"):
    """Expression label for AU-labelled images: the emotion whose related AUs are all annotated and 1.

    If several qualify, the one with the most related AUs wins (a strict
    superset of another emotion's AUs is the more specific reading). Emotions
    with no related AUs (neutral) never qualify. When the largest requirement
    is shared by two qualifying emotions the image is ambiguous:
    `on_tie="drop"` leaves it unlabelled (-1), `"first"` takes the lower index.

    Returns: (N,) int32, -1 where no emotion qualifies.
    """
    if on_tie not in TIES:
        raise ValueError(f"on_tie must be one of {TIES}. Received: on_tie={on_tie!r}")
    required = ops.cast(_relation(relation) != 0, "float32")            # (E, K)
    n_required = ops.sum(required, axis=-1)                              # (E,)
    present = ops.cast(ops.logical_and(ops.cast(au_mask, "float32") > 0,
                                       ops.cast(au_labels, "float32") > 0.5), "float32")
    n_met = ops.matmul(present, ops.transpose(required))                 # (N, E), exact small integers
    qualifies = ops.logical_and(n_met == n_required[None, :], n_required[None, :] > 0)
    size = ops.where(qualifies, ops.broadcast_to(n_required[None, :], ops.shape(n_met)), ops.zeros_like(n_met))
    choice = ops.cast(ops.argmax(size, axis=-1), "int32")                # first index among the largest
    best = ops.take_along_axis(size, choice[:, None], axis=-1)[:, 0]     # (ops.max fails on 0 rows)
    n_best = ops.sum(ops.cast(ops.logical_and(size == best[:, None], qualifies), "int32"), axis=-1)
    keep = best > 0
    if on_tie == "drop":
        keep = ops.logical_and(keep, n_best == 1)
    return ops.where(keep, choice, -ops.ones_like(choice))


# === The whole objective ===

_OUTPUT_KEYS = ("va", "expr", "au")
_LABEL_KEYS = ("va", "va_mask", "expr", "au", "au_mask")


def _require(mapping: Mapping[str, Any], keys, what: str) -> None:
    missing = [k for k in keys if k not in mapping]
    if missing:
        raise KeyError(f"{what} lacks {missing}; expected keys {list(keys)}. Received: {sorted(mapping)}")


class MultiTaskLoss:
    """L_MT of eq. 1 plus the coupling terms of the configuration's Table 6 row.

    total = L_Emo + λ1·L_AU + λ2·L_VA + λ_soft·L_soft + λ_dm·L_DM, each term
    present only when it applies: a task outside `config.task_set` adds nothing,
    and the coupling terms (which tie the expression and AU heads) apply only
    when both `expr` and `au` are trained. With `coann`, co-annotated targets
    fill in the task an image lacks; an image with real labels of a task keeps
    them. Soft co-annotation is computed from the real AU labels.

    Args:
        config: a `fbn_keras.config.Config`; besides the coupling, relation and
            λ fields, its readings of the paper's open choices (FAITHFULNESS.md):
            `soft_weighted`, `soft_unannotated`, `au_normalise_by_weights`,
            `coann_on_tie`, `dm_average_emotions`, `dm_stop_gradient_target`, `dm_form`.
        soft_weighted: overrides `config.soft_weighted` when given.
        au_pos_weight: (K,) weights of the AUs' positive BCE terms (`balanced_au_pos_weight`), or
            None for eq. 1's plain BCE.
    Example:
        loss = MultiTaskLoss(config)(model(images), labels)["total"]
    """

    def __init__(self, config, soft_weighted: bool | None = None, au_pos_weight=None):
        self.config = config
        if au_pos_weight is not None:
            au_pos_weight = np.asarray(au_pos_weight, np.float32)
            if au_pos_weight.shape != (taxonomy.NUM_AUS,) or not np.all(np.isfinite(au_pos_weight) & (au_pos_weight > 0)):
                raise ValueError(f"au_pos_weight must be ({taxonomy.NUM_AUS},) positive finite values. "
                                 f"Received: {au_pos_weight}")
        self.au_pos_weight = au_pos_weight
        if soft_weighted is None:
            soft_weighted = config.soft_weighted
        self.soft_weighted = soft_weighted
        self.soft_unannotated = config.soft_unannotated
        self.au_normalise_by_weights = config.au_normalise_by_weights
        self.coann_on_tie = config.coann_on_tie
        self.dm_average_emotions = config.dm_average_emotions
        if self.soft_unannotated not in UNANNOTATED:
            raise ValueError(f"soft_unannotated must be one of {UNANNOTATED}. Received: {self.soft_unannotated!r}")
        if self.coann_on_tie not in TIES:
            raise ValueError(f"coann_on_tie must be one of {TIES}. Received: {self.coann_on_tie!r}")
        self.tasks = config.task_set
        self.coupling = config.coupling_terms if {"expr", "au"} <= self.tasks else frozenset()
        table = config.relation
        self.relation_dm = taxonomy.relation_matrix(table, weighted=config.relation_weighted)
        self.relation_soft = (taxonomy.relation_weights(table) if soft_weighted
                              else taxonomy.relation_matrix(table))
        self.relation_coann = taxonomy.relation_weights(table)

    def term_names(self) -> tuple[str, ...]:
        """The names of the terms `__call__` returns, besides 'total'."""
        names = [t for t in ("expr", "au", "va") if t in self.tasks]
        return tuple(names + [t for t in ("soft", "dm") if t in self.coupling])

    def _coannotated(self, labels):
        """(expr, au, au_mask, au_weights) with co-annotated targets merged in where a task is missing."""
        expr = _flat(labels["expr"], "int32")
        au, au_mask = ops.cast(labels["au"], "float32"), ops.cast(labels["au_mask"], "float32")
        if "coann" not in self.coupling:
            return expr, au, au_mask, None
        from_aus = coannotate_aus(au, au_mask, self.relation_coann, on_tie=self.coann_on_tie)
        co_au, co_mask, co_w = coannotate_expression(expr, self.relation_coann)
        has_au = ops.any(au_mask > 0, axis=-1)[:, None]
        has_expr = _valid_classes(expr, taxonomy.NUM_EXPRESSIONS)
        return (ops.where(has_expr, expr, from_aus),
                ops.where(has_au, au, co_au),
                ops.where(has_au, au_mask, co_mask),
                ops.where(has_au, ops.ones_like(co_w), co_w))

    def __call__(self, outputs: Mapping[str, Any], labels: Mapping[str, Any]) -> dict[str, Any]:
        _require(outputs, _OUTPUT_KEYS, "outputs")
        _require(labels, _LABEL_KEYS, "labels")
        cfg = self.config
        expr, au, au_mask, au_w = self._coannotated(labels)
        terms: dict[str, Any] = {}
        if "expr" in self.tasks:
            terms["expr"] = expression_loss(expr, outputs["expr"])
        if "au" in self.tasks:
            terms["au"] = au_loss(au, au_mask, outputs["au"], weights=au_w,
                                  normalise_by_weights=self.au_normalise_by_weights,
                                  pos_weight=self.au_pos_weight)
        if "va" in self.tasks:
            terms["va"] = ccc_loss(labels["va"], labels["va_mask"], outputs["va"])
        if "soft" in self.coupling:
            terms["soft"] = soft_coannotation_loss(outputs["expr"], labels["au"], labels["au_mask"],
                                                   self.relation_soft, include_neutral=cfg.soft_include_neutral,
                                                   unannotated=self.soft_unannotated)
        if "dm" in self.coupling:
            au_logits = outputs["au"]
            if self.au_pos_weight is not None:
                # A BCE with positives weighted by w shifts the optimal logit by log w; DM's target
                # p(au|x) is the prior-corrected sigmoid(z − log w), so the weighting does not leak
                # into the expression head (FAITHFULNESS.md §2, "Class balance").
                au_logits = ops.cast(au_logits, "float32") - np.log(self.au_pos_weight)[None, :]
            terms["dm"] = distribution_matching_loss(outputs["expr"], au_logits, self.relation_dm,
                                                     stop_gradient_target=cfg.dm_stop_gradient_target,
                                                     average_emotions=self.dm_average_emotions,
                                                     form=cfg.dm_form, reduction=cfg.dm_reduction)
        lam = {"expr": 1.0, "au": cfg.lambda_au, "va": cfg.lambda_va, "soft": cfg.lambda_soft,
               "dm": cfg.lambda_dm}
        total = ops.convert_to_tensor(0.0, "float32")
        for name, value in terms.items():
            total = total + lam[name] * value
        terms["total"] = total
        return terms
