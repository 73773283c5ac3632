"""The paper's evaluation metrics (main paper Section 4): numpy in, float out.

Class indices for expressions, binary (N, K) arrays for AUs, (N,) or (N, 2)
floats for valence/arousal. Empty or mismatched input raises a ValueError
naming what was received. Expression and VA masks are the caller's job
(select the labelled rows before calling); the AU metrics take an optional
(N, K) mask, since databases such as EmotioNet leave single AUs of a frame
unannotated.

Classes absent from the labels: macro F1, UAR and the mean diagonal all
average over the classes that occur in `y_true` (a class with no labelled row
has no recall, and its F1 is 0 by construction whatever the model does); a
prediction of an absent class still counts as a miss of the true class.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score

#: Aff-Wild2 ABAW expression total (the ABAW 2020 challenge's rule): 0.67·F1 + 0.33·accuracy.
ABAW_F1_WEIGHT = 0.67
ABAW_ACC_WEIGHT = 0.33


# === Input checks ===

def _pair(y_true, y_pred, name: str, dtype=None) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays, same shape, non-empty, finite."""
    t = np.asarray(y_true, dtype=dtype)
    p = np.asarray(y_pred, dtype=dtype)
    if t.shape != p.shape:
        raise ValueError(f"{name}: y_true and y_pred must have the same shape. Received {t.shape} and {p.shape}")
    if t.size == 0 or t.shape[0] == 0:
        raise ValueError(f"{name}: empty input (no labelled rows). Received shape {t.shape}")
    if np.issubdtype(t.dtype, np.floating) and not (np.all(np.isfinite(t)) and np.all(np.isfinite(p))):
        raise ValueError(f"{name}: input contains NaN or inf; drop the unlabelled rows first")
    return t, p


def _classes(y_true, y_pred, num_classes: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """1-D integer class arrays with every value in [0, num_classes)."""
    t, p = _pair(np.ravel(y_true), np.ravel(y_pred), name)
    if not (np.issubdtype(t.dtype, np.integer) and np.issubdtype(p.dtype, np.integer)):
        if not (np.all(t == np.round(t)) and np.all(p == np.round(p))):
            raise ValueError(f"{name}: expected integer class labels. Received dtypes {t.dtype}, {p.dtype}")
    t, p = t.astype(np.int64), p.astype(np.int64)
    for arr, which in ((t, "y_true"), (p, "y_pred")):
        bad = arr[(arr < 0) | (arr >= num_classes)]
        if bad.size:
            raise ValueError(f"{name}: {which} holds labels outside [0, {num_classes}) "
                             f"(missing labels, -1, must be dropped first). Received: {sorted(set(bad.tolist()))[:10]}")
    return t, p


def _binary(y_true, y_pred, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, K) arrays of 0/1 (a 1-D array is one column)."""
    t, p = _pair(y_true, y_pred, name)
    if t.ndim == 1:
        t, p = t[:, None], p[:, None]
    if t.ndim != 2:
        raise ValueError(f"{name}: expected (N, K) binary arrays. Received shape {t.shape}")
    for arr, which in ((t, "y_true"), (p, "y_pred")):
        if not np.all((arr == 0) | (arr == 1)):
            raise ValueError(f"{name}: {which} must be binary 0/1 (threshold probabilities first)")
    return t.astype(np.int64), p.astype(np.int64)


# === Continuous affect ===

def ccc(y_true, y_pred) -> float:
    """Concordance correlation coefficient 2·cov / (var_t + var_p + (mean_t − mean_p)²), population moments.

    Main paper eq. 1's ρ. For (N, D) input, the mean of the per-column CCCs.
    A column where both are constant and equal has CCC 0 by convention here
    (denominator 0): it carries no evidence of agreement in variation.
    """
    t, p = _pair(y_true, y_pred, "ccc", dtype=np.float64)
    t = t.reshape(t.shape[0], -1)
    p = p.reshape(p.shape[0], -1)
    mt, mp = t.mean(0), p.mean(0)
    cov = ((t - mt) * (p - mp)).mean(0)
    den = t.var(0) + p.var(0) + (mt - mp) ** 2
    per_col = np.where(den > 0, 2.0 * cov / np.where(den > 0, den, 1.0), 0.0)
    return float(per_col.mean())


# === Action units ===

def _au_columns(y_true, y_pred, mask, name: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(labels, predictions) of each AU column over its annotated rows; columns with none are left out."""
    t, p = _binary(y_true, y_pred, name)
    if mask is None:
        m = np.ones(t.shape, bool)
    else:
        m = np.asarray(mask)
        m = m[:, None] if m.ndim == 1 else m
        if m.shape != t.shape:
            raise ValueError(f"{name}: mask must have the labels' shape {t.shape}. Received {m.shape}")
        m = m > 0
    cols = [(t[m[:, k], k], p[m[:, k], k]) for k in range(t.shape[1]) if m[:, k].any()]
    if not cols:
        raise ValueError(f"{name}: the mask leaves no annotated entry")
    return cols


def f1_mean(y_true, y_pred, mask=None) -> float:
    """Mean over AUs (columns) of the binary F1 (DISFA, BP4D, Aff-Wild2, EmotioNet).

    Each AU is scored on the rows where `mask` (N, K) is nonzero (all rows
    without a mask); an AU with no annotated row is left out of the mean. An AU
    with no positive label and no positive prediction scores F1 0.
    """
    cols = _au_columns(y_true, y_pred, mask, "f1_mean")
    return float(np.mean([f1_score(t, p, zero_division=0) for t, p in cols]))


def au_accuracy_mean(y_true, y_pred, mask=None) -> float:
    """Mean over AUs of the per-AU accuracy on that AU's annotated rows (EmotioNet); `mask` as in f1_mean."""
    cols = _au_columns(y_true, y_pred, mask, "au_accuracy_mean")
    return float(np.mean([np.mean(t == p) for t, p in cols]))


def afa(y_true, y_pred, mask=None) -> float:
    """EmotioNet's final score: ½·(mean F1 over AUs + mean accuracy over AUs); `mask` as in f1_mean."""
    return 0.5 * (f1_mean(y_true, y_pred, mask) + au_accuracy_mean(y_true, y_pred, mask))


# === Expressions ===

def accuracy(y_true, y_pred) -> float:
    """Total accuracy: fraction of rows whose prediction equals the label (AFEW)."""
    t, p = _pair(np.ravel(y_true), np.ravel(y_pred), "accuracy")
    return float(accuracy_score(t, p))


def _present(t: np.ndarray) -> list[int]:
    """The classes that occur in y_true: the ones macro F1, UAR and the mean diagonal average over."""
    return sorted(set(t.tolist()))


def macro_f1(y_true, y_pred, num_classes: int = 7) -> float:
    """Unweighted mean of the per-class F1 over the classes present in y_true (AffectNet, Aff-Wild2).

    Labels and predictions lie in [0, num_classes). A class absent from y_true
    is left out of the mean, as in `mean_diagonal` and `uar` (its F1 would be 0
    whatever the model does); predicting it still costs the true class its
    recall. On a test set holding every class this is the usual macro F1.
    """
    t, p = _classes(y_true, y_pred, num_classes, "macro_f1")
    return float(f1_score(t, p, labels=_present(t), average="macro", zero_division=0))


def weighted_f1(y_true, y_pred, num_classes: int = 7) -> float:
    """Per-class F1 weighted by the class's support in y_true (multi-task learning and generation paper,
    Section V: "weighted average of f1 scores", beside macro F1 and total accuracy, Tables IX–XI).

    Classes absent from y_true have weight 0; predicting one still costs the true class its recall.
    """
    t, p = _classes(y_true, y_pred, num_classes, "weighted_f1")
    return float(f1_score(t, p, labels=_present(t), average="weighted", zero_division=0))


def abaw_expr_score(y_true, y_pred, num_classes: int = 7) -> float:
    """Aff-Wild2 ABAW expression total: 0.67·macro F1 + 0.33·accuracy."""
    return ABAW_F1_WEIGHT * macro_f1(y_true, y_pred, num_classes) + ABAW_ACC_WEIGHT * accuracy(y_true, y_pred)


def confusion(y_true, y_pred, num_classes: int = 7) -> np.ndarray:
    """(num_classes, num_classes) counts, rows = true class, columns = predicted class."""
    t, p = _classes(y_true, y_pred, num_classes, "confusion")
    return confusion_matrix(t, p, labels=list(range(num_classes)))


def mean_diagonal(y_true, y_pred, num_classes: int = 7) -> float:
    """RAF-DB's metric: mean of the row-normalised confusion matrix's diagonal over the classes present in y_true.

    This is the mean per-class recall over the classes that occur (equal to `uar`);
    an absent class's row is empty and is left out, as in `macro_f1`.
    """
    cm = confusion(y_true, y_pred, num_classes).astype(np.float64)
    support = cm.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(cm)[present] / support[present]))


def uar(y_true, y_pred, num_classes: int) -> float:
    """Unweighted average recall over the classes present in y_true (EmotioNet compound), as `macro_f1` averages."""
    t, p = _classes(y_true, y_pred, num_classes, "uar")
    return float(recall_score(t, p, labels=_present(t), average="macro", zero_division=0))


def clip_accuracy(y_true, y_pred, clip_ids) -> float:
    """AFEW's per-clip accuracy: each clip's prediction is the vote of its frames, compared with its label.

    `y_pred` is either (N,) class indices (majority vote over the clip's frames;
    ties go to the lowest class index) or (N, K) probabilities (the class of the
    clip's mean probability, the mean-probability vote). `y_true` is the frame
    labels; every frame of a clip must carry the clip's label.
    """
    t = np.ravel(np.asarray(y_true))
    p = np.asarray(y_pred)
    ids = np.ravel(np.asarray(clip_ids))
    if t.size == 0:
        raise ValueError("clip_accuracy: empty input (no labelled frames)")
    if p.shape[0] != t.size or ids.size != t.size:
        raise ValueError(f"clip_accuracy: y_true, y_pred and clip_ids need one row per frame. "
                         f"Received {t.shape}, {p.shape}, {ids.shape}")
    if p.ndim not in (1, 2):
        raise ValueError(f"clip_accuracy: y_pred must be (N,) classes or (N, K) probabilities. Received {p.shape}")
    correct = []
    for clip in np.unique(ids):
        rows = ids == clip
        labels = np.unique(t[rows])
        if labels.size != 1:
            raise ValueError(f"clip_accuracy: clip {clip!r} has frames with different labels {labels.tolist()}")
        if p.ndim == 2:
            vote = int(np.argmax(p[rows].mean(axis=0)))
        else:
            classes, counts = np.unique(p[rows].astype(np.int64), return_counts=True)
            vote = int(classes[np.argmax(counts)])      # np.unique sorts: ties go to the lowest class
        correct.append(vote == int(labels[0]))
    return float(np.mean(correct))
