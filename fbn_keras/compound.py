"""Zero-shot compound expressions from FaceBehaviorNet's outputs (main paper 7.5, journal eq. 10).

Each candidate class is scored from the network's AU probabilities, its basic
expression probabilities and the sign of its valence; the prediction is the
argmax. A `ClassSpace` says which classes a database scores: RAF-DB's 11
compound classes, or EmotioNet's 6 basic + 10 compound classes (main paper Section 4; docs/LABELS.md).

Example:
    space = class_space("rafdb-compound")
    scores = zero_shot_scores(expr_probs, au_probs, valence, space)
    y_pred = scores.argmax(axis=1)            # column index into space
    compound_metrics(space.labels(expr, compound), y_pred, space, "mean_diagonal")
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Union

import numpy as np

from fbn_keras import taxonomy

log = logging.getLogger(__name__)

#: EmotioNet's challenge set has the 6 basic expressions, neutral excluded (main paper Section 4).
SIX_BASIC: tuple[int, ...] = taxonomy.BASIC_WITHOUT_NEUTRAL

#: Default weight on a basic class's single p(emo|x): 2, so that basic and
#: compound classes' expression terms both span [0, 2] (a compound has two).
#: Our choice, not the paper's: eq. 10 scores compound classes only, and the
#: paper does not say how EmotioNet's six basic classes are scored beside them.
DEFAULT_BASIC_EMOTION_WEIGHT = 2.0


# === Class spaces ===

@dataclasses.dataclass(frozen=True)
class ClassSpace:
    """The classes one compound evaluation scores: basic expressions first, then compounds.

    Column j of every score matrix is class j: `basic[j]` (an index into
    EXPRESSIONS) for j < len(basic), else `compound[j - len(basic)]` (an index
    into COMPOUNDS).
    """

    basic: tuple[int, ...] = ()
    compound: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        bad_b = [i for i in self.basic if not 0 <= i < taxonomy.NUM_EXPRESSIONS]
        bad_c = [i for i in self.compound if not 0 <= i < taxonomy.NUM_COMPOUNDS]
        if bad_b or bad_c or not (self.basic or self.compound):
            raise ValueError("A ClassSpace needs at least one class, basic indices in [0, 7) and compound "
                             f"indices in [0, 15). Received: basic={self.basic}, compound={self.compound}")

    def __len__(self) -> int:
        return len(self.basic) + len(self.compound)

    @property
    def names(self) -> tuple[str, ...]:
        return (tuple(taxonomy.EXPRESSIONS[i] for i in self.basic)
                + tuple(taxonomy.COMPOUND_NAMES[i] for i in self.compound))

    def lookup_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """(7,) and (15,) int64 arrays: column of each expression / compound in the space, -1 if absent."""
        expr_col = np.full(taxonomy.NUM_EXPRESSIONS, -1, np.int64)
        comp_col = np.full(taxonomy.NUM_COMPOUNDS, -1, np.int64)
        expr_col[list(self.basic)] = np.arange(len(self.basic))
        comp_col[list(self.compound)] = len(self.basic) + np.arange(len(self.compound))
        return expr_col, comp_col

    def labels(self, expr_labels, compound_labels) -> np.ndarray:
        """Column index of each record's class: its compound label if in the space, else its basic one; -1 if neither."""
        expr = np.asarray(expr_labels, np.int64).reshape(-1)
        comp = np.asarray(compound_labels, np.int64).reshape(-1)
        if expr.shape != comp.shape:
            raise ValueError(f"expr and compound labels differ in length: {expr.shape} vs {comp.shape}")
        expr_col, comp_col = self.lookup_tables()
        # Out-of-range codes (the readers already turn them into -1) count as missing.
        e = np.where((expr >= 0) & (expr < len(expr_col)), expr_col[np.clip(expr, 0, len(expr_col) - 1)], -1)
        c = np.where((comp >= 0) & (comp < len(comp_col)), comp_col[np.clip(comp, 0, len(comp_col) - 1)], -1)
        return np.where(c >= 0, c, e)   # a compound label wins over a basic one


def class_space(database: str) -> ClassSpace:
    """The ClassSpace of a compound database (real or synthetic name), from taxonomy.DATABASES."""
    db = taxonomy.database(database)
    if "compound" not in db.tasks:
        raise ValueError(f"{database!r} has no compound labels; compound databases are "
                         f"{[d.name for d in taxonomy.DATABASES.values() if 'compound' in d.tasks]}")
    return ClassSpace(basic=SIX_BASIC if "expr" in db.tasks else (), compound=db.compound_subset)


def _as_space(subset: Union[ClassSpace, tuple[int, ...]]) -> ClassSpace:
    return subset if isinstance(subset, ClassSpace) else ClassSpace(compound=tuple(subset))


# === Eq. 10 ===

def candidate_terms(space: ClassSpace, *, basic_emotion_weight: float = DEFAULT_BASIC_EMOTION_WEIGHT,
                    basic_valence: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The per-class constants of eq. 10: p(au|class) (C, 17), expression weights (C, 7), valence flags (C,).

    Compound classes use Du et al.'s AUs (p = 1, prototypical and observational)
    and weight 1 on each of their two emotions; basic classes use Table 1's AUs
    and `basic_emotion_weight` on their one emotion. The valence term is on for
    'happily surprised' and 'happily disgusted' only, and on basic happiness
    too when `basic_valence`.
    """
    basic_rel = taxonomy.relation_matrix("cognitive")
    comp_rel = taxonomy.compound_relation_matrix()
    n = len(space)
    au_rel = np.zeros((n, taxonomy.NUM_AUS), np.float32)
    emo_w = np.zeros((n, taxonomy.NUM_EXPRESSIONS), np.float32)
    valence_on = np.zeros((n,), bool)
    for col, e in enumerate(space.basic):
        au_rel[col] = basic_rel[e]
        emo_w[col, e] = basic_emotion_weight
        valence_on[col] = basic_valence and taxonomy.EXPRESSIONS[e] == "happiness"
    for k, c in enumerate(space.compound):
        col = len(space.basic) + k
        comp = taxonomy.COMPOUNDS[c]
        au_rel[col] = comp_rel[c]
        for name in comp.emotions:
            emo_w[col, taxonomy.expression_index(name)] += 1.0
        valence_on[col] = comp.positive_valence
    empty = [space.names[j] for j in range(n) if au_rel[j].sum() == 0]
    if empty:  # neutral: eq. 10's first term would be 0/0
        raise ValueError(f"Classes with no related AU cannot be scored by eq. 10: {empty}")
    return au_rel, emo_w, valence_on


def _check_inputs(expr_probs, au_probs, valence) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    expr = np.asarray(expr_probs, np.float32)
    au = np.asarray(au_probs, np.float32)
    v = np.asarray(valence, np.float32).reshape(-1)
    if expr.ndim != 2 or expr.shape[1] != taxonomy.NUM_EXPRESSIONS:
        raise ValueError(f"expr_probs must be (N, {taxonomy.NUM_EXPRESSIONS}). Received: shape {expr.shape}")
    if au.shape != (expr.shape[0], taxonomy.NUM_AUS):
        raise ValueError(f"au_probs must be (N, {taxonomy.NUM_AUS}) with N={expr.shape[0]}. Received: {au.shape}")
    if v.shape != (expr.shape[0],):
        raise ValueError(f"valence must be (N,) with N={expr.shape[0]}. Received: shape {v.shape}")
    for name, arr in (("expr_probs", expr), ("au_probs", au), ("valence", v)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} has {int(np.sum(~np.isfinite(arr)))} non-finite values")
    return expr, au, v


def zero_shot_scores(expr_probs, au_probs, valence, subset: Union[ClassSpace, tuple[int, ...]], *,
                     basic_emotion_weight: float = DEFAULT_BASIC_EMOTION_WEIGHT,
                     basic_valence: bool = False) -> np.ndarray:
    """Candidate score of each class (journal eq. 10): (N, C) float32.

    score(c) = Σ_k p(au_k|x)·p(au_k|c) / Σ_k p(au_k|c) + Σ_e w(c, e)·p(e|x)
               + 0.5·(sign(v) + 1) for the positive-valence classes,
    with w(c, e) = 1 for a compound's two emotions. `subset` is a ClassSpace or
    a tuple of COMPOUNDS indices. At v = 0 the paper leaves the term undefined;
    sign(0) = 0, giving 0.5 halfway between its two values, is our choice.
    """
    expr, au, v = _check_inputs(expr_probs, au_probs, valence)
    au_rel, emo_w, valence_on = candidate_terms(_as_space(subset), basic_emotion_weight=basic_emotion_weight,
                                                basic_valence=basic_valence)
    au_term = au @ au_rel.T / au_rel.sum(axis=1)
    emo_term = expr @ emo_w.T
    valence_term = 0.5 * (np.sign(v) + 1.0)
    return (au_term + emo_term + valence_term[:, None] * valence_on[None, :]).astype(np.float32)


def zero_shot_classify(expr_probs, au_probs, valence, subset: Union[ClassSpace, tuple[int, ...]],
                       **options) -> np.ndarray:
    """Argmax of eq. 10 as a column index into the class space: (N,) int64."""
    return np.argmax(zero_shot_scores(expr_probs, au_probs, valence, subset, **options), axis=1).astype(np.int64)


def zero_shot_predict(expr_probs, au_probs, valence, subset: tuple[int, ...]) -> np.ndarray:
    """Argmax of eq. 10 over a compound subset, as indices into COMPOUNDS: (N,) int64."""
    return np.asarray(subset, np.int64)[zero_shot_classify(expr_probs, au_probs, valence, tuple(subset))]


# === Evaluation ===

def compound_metrics(y_true, y_pred, space: ClassSpace, metric: str) -> dict[str, float]:
    """The paper's compound metric (main paper Section 4) over the space's classes, keyed as in paper_results.

    `metric` is a Database.compound_metric: "mean_diagonal" (RAF-DB) →
    compound_mean_diag; "f1_uar" (EmotioNet) → compound_f1 (macro over the
    classes) and compound_uar. Rows with y_true = -1 are dropped and logged.
    """
    from fbn_keras import metrics  # the shared metric implementations

    y_true = np.asarray(y_true, np.int64).reshape(-1)
    y_pred = np.asarray(y_pred, np.int64).reshape(-1)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {y_true.shape} vs {y_pred.shape}")
    keep = y_true >= 0
    if not keep.all():
        log.warning("compound_metrics: %d of %d rows have no label in the class space and are left out",
                    int((~keep).sum()), y_true.size)
    y_true, y_pred = y_true[keep], y_pred[keep]
    if y_true.size == 0:
        raise ValueError("compound_metrics: no labelled rows to evaluate")
    k = len(space)
    if metric == "mean_diagonal":
        return {"compound_mean_diag": float(metrics.mean_diagonal(y_true, y_pred, num_classes=k))}
    if metric == "f1_uar":
        return {"compound_f1": float(metrics.macro_f1(y_true, y_pred, num_classes=k)),
                "compound_uar": float(metrics.uar(y_true, y_pred, num_classes=k))}
    raise ValueError(f"metric must be 'mean_diagonal' or 'f1_uar'. Received: metric={metric!r}")
