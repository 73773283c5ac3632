"""Score a sequence model (the journal's video networks) on tiled test videos (journal Sections IV, V-B; Table IV).

    preds = predict_sequences(model, data_dir, "test", config)      # {database: {group: per-frame arrays}}
    scores = score_sequences(preds, au_threshold=0.5)                 # {database: {metric: value, "unit": …}}
    scores = evaluate_sequence_model(model, data_dir, "test", config, postprocess=True)

Tiling (docs/FAITHFULNESS.md, "Video"): every test video is cut into tiles of T
frames from its first frame, every `eval_stride` frames (default T); the model
runs on each tile and `sequences.stitch` maps the tiles back to frames (a frame
in several overlapping tiles gets their mean). Scores are taken over all test
frames of a database (CCC eq. 1 over the frames, not a mean of per-video CCCs).
A database labelled per utterance (OMG-Emotion, journal Section V-B) is scored
per utterance: an utterance's estimate is the mean over its tiles of the median
of each tile's per-frame predictions, and CCC runs over the utterances. The
optional post-processing (Section V-B) is a median filter of the per-frame VA
within each video and a moving average over a video's utterances, each kept
only when it raises the validation CCC, then applied unchanged to the test split.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np

from fbn_keras import metrics, taxonomy

log = logging.getLogger(__name__)

#: Table IV's totals: E_total^Expr = 0.67·F1 + 0.33·TAcc, E_total^AU = 0.5·AF + 0.5·TAcc.
EXPR_F1_WEIGHT = metrics.ABAW_F1_WEIGHT
AU_F1_WEIGHT = 0.5
#: The post-processing windows tried on the validation split: median filter over frames, moving average
#: over utterances (docs/FAITHFULNESS.md, "Evaluating the video networks").
MEDIAN_WINDOWS: tuple[int, ...] = tuple(range(1, 32, 2))
SMOOTH_WINDOWS: tuple[int, ...] = (1, 2, 3, 4, 5)
#: Real databases labelled per utterance, scored per utterance (journal Section V-B).
UTTERANCE_DATABASES: tuple[str, ...] = ("omg",)
#: Paper values of the sequence length T when the config leaves it unset (journal Sections V-A, VI-A).
DEFAULT_LENGTH = 80
_LABEL_KEYS = ("va", "va_mask", "expr", "au", "au_mask", "frame_mask")


def unit_of(database: str) -> str:
    """"utterance" for a database labelled per utterance (OMG-Emotion and its synthetic twin), else "frame"."""
    real = taxonomy.SYNTHETIC_VIDEO_OF.get(database, taxonomy.SYNTHETIC_OF.get(database, database))
    return "utterance" if real in UTTERANCE_DATABASES else "frame"


def _natural(text: str) -> list:
    """Sort key that puts "utterance_9" before "utterance_10"."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]


def utterance_video(group: str) -> tuple[str, list]:
    """(video, order key) of an utterance group: OMG's `<video>/<utterance>` (tfrecords_tools/omg.py) or the
    synthetic set's `<video>-uNN` (fbn_keras/synthetic/video.py); any other name is its own video."""
    if "/" in group:
        video, utt = group.rsplit("/", 1)
        return video, _natural(utt)
    m = re.fullmatch(r"(.*)-u(\d+)", group)
    if m:
        return m.group(1), [int(m.group(2))]
    return group, []


# === Predictions ===

def input_names(model) -> list[str]:
    """The names of a sequence model's inputs ("frames", "landmarks", "audio")."""
    names = [t.name.split(":")[0] for t in model.inputs]
    unknown = sorted(set(names) - {"frames", "landmarks", "audio"})
    if unknown or "frames" not in names and "audio" not in names:
        raise ValueError(f"Expected a sequence model with inputs among frames, landmarks, audio. Received: {names}")
    return names


def resolve_au_slots(model, config=None, au_slots: Optional[Sequence[int]] = None) -> Optional[np.ndarray]:
    """Indices into the 17 AU slots (taxonomy.AUS) of the model's "au" outputs, in order; None without an AU head.

    Given explicitly, or read from the model's builder (`video_models.au_slots(config)`), or from
    `config.mt_aus` (paper8: the journal's 8 AUs; release: Aff-Wild2's 12), or all 17 when the head has 17.
    """
    outputs = model.output if isinstance(model.output, Mapping) else {}
    if "au" not in outputs:
        return None
    n = int(outputs["au"].shape[-1])
    if au_slots is None and n == taxonomy.NUM_AUS:
        au_slots = range(taxonomy.NUM_AUS)
    if au_slots is None and config is not None:
        try:
            from fbn_keras import video_models
            au_slots = video_models.au_slots(config)
        except (ImportError, AttributeError, ValueError):      # not one of the registered video networks
            aus = (taxonomy.AFFWILD2_PAPER_AUS if getattr(config, "mt_aus", "paper8") == "paper8"
                   else taxonomy.DATABASES["affwild2"].aus)
            au_slots = [taxonomy.au_index(a) for a in aus]
    slots = np.asarray(list(au_slots if au_slots is not None else []), np.int64)
    if slots.shape != (n,) or slots.min(initial=0) < 0 or slots.max(initial=0) >= taxonomy.NUM_AUS:
        raise ValueError(f"au_slots must give one of the 17 AU slots for each of the model's {n} AU outputs. "
                         f"Received: {slots.tolist()}")
    return slots


def window_sizes(model, config) -> tuple[int, int]:
    """(T, windows per batch) for `model`: T fixed by its input if it is, else `config.seq_length`, else the
    network's paper value (`video_models.VIDEO_MODELS`), else 80; likewise `config.seq_batch`, else 4."""
    shapes = {t.name.split(":")[0]: t.shape for t in model.inputs}
    fixed = next((s[1] for s in shapes.values() if len(s) > 1 and s[1] is not None), None)
    paper_length, paper_batch = DEFAULT_LENGTH, 4
    try:
        from fbn_keras import video_models
        info = video_models.VIDEO_MODELS[config.model]
        paper_length, paper_batch = info.paper_length, info.paper_batch
    except (ImportError, AttributeError, KeyError):
        pass
    return int(fixed or config.seq_length or paper_length), int(config.seq_batch or paper_batch)


def _forward(model):
    """One traced pass: inputs → {"va", "expr" softmax, "au" sigmoid} for the heads the model has."""
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def forward(inputs):
        out = model(inputs, training=False)
        probs = {"va": out["va"]} if "va" in out else {}
        if "expr" in out:
            probs["expr"] = tf.nn.softmax(out["expr"], axis=-1)
        if "au" in out:
            probs["au"] = tf.sigmoid(out["au"])
        return probs

    return forward


def _tile_bounds(frames: np.ndarray, tile_frames: list[np.ndarray]) -> np.ndarray:
    """(W, 2) [start, stop) positions in a group's sorted frame numbers of each tile (a contiguous run)."""
    out = [(int(np.searchsorted(frames, t[0])), int(np.searchsorted(frames, t[-1])) + 1) for t in tile_frames]
    return np.asarray(out, np.int64).reshape(-1, 2)


def predict_sequences(model, data_dir, split: str, config, databases: Optional[Iterable[str]] = None,
                      au_slots: Optional[Sequence[int]] = None, batch_size: Optional[int] = None) -> dict:
    """{database: {group: {"frame" (n,), "va" (n, 2), "expr" (n, 7), "au" (n, 17) with NaN in the slots the model
    lacks, "labels": {"va", "va_mask", "expr", "au", "au_mask", "frame_mask"}, "tiles" (W, 2)}}}.

    Each database's `split` is tiled by `sequences.make_sequence_dataset(training=False)` with T =
    `config.seq_length` (`window_sizes`) and stride `config.eval_stride`, the model's inputs taken by name, and the tiles
    stitched back to frames; "tiles" gives each tile's [start, stop) rows (the journal's "sequences").
    Heads the model lacks are absent.
    """
    from fbn_keras import sequences

    names = input_names(model)
    length, batch = window_sizes(model, config)
    batch = int(batch_size or batch)
    stride = config.eval_stride
    if stride is not None and not 1 <= int(stride) <= length:
        raise ValueError(f"eval_stride must be in [1, T={length}]. Received: eval_stride={stride}")
    slots = resolve_au_slots(model, config, au_slots)
    index = sequences.load_index(data_dir)["databases"]
    wanted = sorted(n for n, e in index.items() if e.get(split, {}).get("complete")) if databases is None \
        else list(databases)
    frames_input = {t.name.split(":")[0]: t for t in model.inputs}.get("frames")
    size = int(frames_input.shape[2]) if frames_input is not None and frames_input.shape[2] else config.image_size
    forward = _forward(model)
    out: dict[str, dict] = {}
    for db in wanted:
        ds = sequences.make_sequence_dataset(
            data_dir, [db], split, length=length, batch_size=batch, training=False, stride=stride,
            split_at_gap=config.split_at_gap, image_size=size, landmarks="landmarks" in names,
            audio="audio" in names)
        heads: dict[str, list] = {}
        labels: list[np.ndarray] = []
        groups: list[np.ndarray] = []
        frames: list[np.ndarray] = []
        for inputs, lab in ds:
            probs = forward({k: inputs[k] for k in names})
            for k, v in probs.items():
                heads.setdefault(k, []).append(np.asarray(v, np.float64))
            labels.append(np.concatenate([
                np.asarray(lab["va"], np.float64), np.asarray(lab["va_mask"], np.float64)[..., None],
                np.asarray(lab["expr"], np.float64)[..., None], np.asarray(lab["au"], np.float64),
                np.asarray(lab["au_mask"], np.float64), np.asarray(lab["frame_mask"], np.float64)[..., None]], -1))
            groups.append(np.asarray(lab["group"]))
            frames.append(np.asarray(lab["frame"]))
        if not labels:
            log.warning("%s has no %s sequences; left out", db, split)
            continue
        stacked = {k: np.concatenate(v) for k, v in heads.items()}
        bad = [k for k, v in stacked.items() if not np.isfinite(v).all()]
        if bad:
            raise FloatingPointError(f"{db}/{split}: the model predicts non-finite values on head(s) {bad}")
        if "au" in stacked:
            full = np.full(stacked["au"].shape[:2] + (taxonomy.NUM_AUS,), np.nan)
            full[..., slots] = stacked["au"]
            stacked["au"] = full
        widths = {k: v.shape[-1] for k, v in stacked.items()}
        all_groups, all_frames = np.concatenate(groups), np.concatenate(frames)
        joined = np.concatenate([np.concatenate(labels)] + [stacked[k] for k in widths], -1)
        tiles: dict[str, list[np.ndarray]] = {}
        for g, f in zip(all_groups, all_frames):
            g = g.decode() if isinstance(g, bytes) else str(g)
            tiles.setdefault(g, []).append(f[f >= 0])
        per_db = {}
        for group, (numbers, values) in sequences.stitch(joined, all_groups, all_frames).items():
            n_au = taxonomy.NUM_AUS
            cut = np.cumsum([0, 2, 1, 1, n_au, n_au, 1])
            lab = {k: values[:, a:b] for k, a, b in zip(_LABEL_KEYS, cut[:-1], cut[1:])}
            for k in ("va_mask", "expr", "frame_mask"):
                lab[k] = lab[k][:, 0]
            lab["expr"] = np.rint(lab["expr"]).astype(np.int64)
            entry: dict[str, Any] = {"frame": numbers, "labels": lab,
                                     "tiles": _tile_bounds(numbers, tiles[group])}
            at = cut[-1]
            for k, w in widths.items():
                entry[k] = values[:, at:at + w]
                at += w
            per_db[group] = entry
        out[db] = per_db
    return out


# === Scores ===

def _va_scores(t: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """CCC (eq. 1) and MSE of valence, arousal and their means."""
    out = {"ccc_valence": metrics.ccc(t[:, 0], p[:, 0]), "ccc_arousal": metrics.ccc(t[:, 1], p[:, 1]),
           "mse_valence": float(np.mean((t[:, 0] - p[:, 0]) ** 2)),
           "mse_arousal": float(np.mean((t[:, 1] - p[:, 1]) ** 2))}
    out["ccc_mean"] = 0.5 * (out["ccc_valence"] + out["ccc_arousal"])
    out["mse_mean"] = 0.5 * (out["mse_valence"] + out["mse_arousal"])
    return out


def utterance_estimate(entry: Mapping[str, Any]) -> np.ndarray:
    """(2,) VA of one utterance: the mean over its tiles of the median of each tile's per-frame VA (Section V-B).

    A moving average set by `apply_postprocessing` ("utterance_va") takes its place.
    """
    if "utterance_va" in entry:
        return np.asarray(entry["utterance_va"], np.float64)
    va = np.asarray(entry["va"], np.float64)
    tiles = np.asarray(entry.get("tiles", np.array([[0, len(va)]])), np.int64).reshape(-1, 2)
    return np.mean([np.median(va[a:b], axis=0) for a, b in tiles if b > a], axis=0)


def utterance_table(groups: Mapping[str, Mapping[str, Any]]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(utterance names, labels (U, 2), estimates (U, 2)) of the utterances with a VA label: the label is the
    mean of its labelled frames' VA (every frame carries the utterance's pair)."""
    names, labels, estimates = [], [], []
    for name, entry in groups.items():
        lab = entry["labels"]
        rows = (np.asarray(lab["va_mask"]) > 0) & (np.asarray(lab["frame_mask"]) > 0)
        if rows.any():
            names.append(name)
            labels.append(np.asarray(lab["va"])[rows].mean(axis=0))
            estimates.append(utterance_estimate(entry))
    return names, np.asarray(labels).reshape(-1, 2), np.asarray(estimates).reshape(-1, 2)


def _concat(groups: Mapping[str, Mapping[str, Any]], key: str, labels: bool = False) -> np.ndarray:
    return np.concatenate([np.asarray((g["labels"] if labels else g)[key]) for g in groups.values()])


def score_database(database: str, groups: Mapping[str, Mapping[str, Any]], au_threshold: float = 0.5) -> dict:
    """Table IV's metrics for one database's predictions (see `score_sequences`)."""
    db = taxonomy.database(database)
    unit = unit_of(database)
    out: dict[str, Any] = {"unit": unit}
    if not groups:
        return out
    frame_mask = _concat(groups, "frame_mask", True) > 0
    first = next(iter(groups.values()))
    if "va" in db.tasks and "va" in first:
        if unit == "utterance":
            _, t, p = utterance_table(groups)
            if len(t):
                out.update(_va_scores(t, p), n_va=len(t))
        else:
            rows = (_concat(groups, "va_mask", True) > 0) & frame_mask
            if rows.any():
                out.update(_va_scores(_concat(groups, "va", True)[rows], _concat(groups, "va")[rows]),
                           n_va=int(rows.sum()))
        if "n_va" not in out:
            log.warning("%s: no VA-labelled %s; CCC left out", database, unit)
    if "expr" in db.tasks and "expr" in first:
        classes = np.asarray(db.expr_classes, np.int64)
        position = np.full(taxonomy.NUM_EXPRESSIONS, -1, np.int64)
        position[classes] = np.arange(len(classes))
        expr = _concat(groups, "expr", True)
        rows = (expr >= 0) & frame_mask
        rows &= position[np.clip(expr, 0, taxonomy.NUM_EXPRESSIONS - 1)] >= 0
        if rows.any():
            t = position[expr[rows]]
            p = _concat(groups, "expr")[rows][:, classes].argmax(axis=1)
            f1, acc = metrics.macro_f1(t, p, len(classes)), metrics.accuracy(t, p)
            out.update(expr_f1=f1, expr_acc=acc, expr_total=EXPR_F1_WEIGHT * f1 + (1 - EXPR_F1_WEIGHT) * acc,
                       expr_f1_weighted=metrics.weighted_f1(t, p, len(classes)), n_expr=int(rows.sum()))
    if "au" in db.tasks and "au" in first:
        probs = _concat(groups, "au")
        covered = [taxonomy.au_index(a) for a in db.aus if np.isfinite(probs[:, taxonomy.au_index(a)]).all()]
        lacking = [a for a in db.aus if taxonomy.au_index(a) not in covered]
        if lacking:
            log.warning("%s: the model predicts none of AU%s; scored over the AUs it predicts", database,
                        ", AU".join(map(str, lacking)))
        mask = (_concat(groups, "au_mask", True)[:, covered] > 0) & frame_mask[:, None]
        rows = mask.any(axis=1)
        if covered and rows.any():
            t = (_concat(groups, "au", True)[rows][:, covered] >= 0.5).astype(np.int64)
            p = (probs[rows][:, covered] >= au_threshold).astype(np.int64)
            af = metrics.f1_mean(t, p, mask[rows])
            acc = metrics.au_accuracy_mean(t, p, mask[rows])
            out.update(au_f1=af, au_acc=acc, au_total=AU_F1_WEIGHT * af + (1 - AU_F1_WEIGHT) * acc,
                       n_au=int(rows.sum()))
    return out


def score_sequences(predictions: Mapping[str, Mapping[str, Mapping[str, Any]]],
                    au_threshold: float = 0.5) -> dict[str, dict[str, Any]]:
    """{database: {metric: value}} from `predict_sequences`' output (journal Section IV, Table IV).

    "unit": "frame" (every labelled test frame of the database counts once) or "utterance" (per-utterance
    estimates, `utterance_estimate`). VA: ccc_valence, ccc_arousal, ccc_mean, mse_* (eq. 1). Expressions
    over the database's classes: expr_f1 (macro), expr_acc (total accuracy), expr_total = 0.67·F1 +
    0.33·TAcc, expr_f1_weighted (F1 weighted by class support, the generation paper's Tables X–XI). AUs
    over the database's AUs that the model predicts, present at `au_threshold`: au_f1 (AF, the mean F1 over
    AUs), au_acc (mean accuracy over AUs), au_total = 0.5·AF + 0.5·TAcc. "n_<task>" counts.
    """
    if not 0 < au_threshold < 1:
        raise ValueError(f"au_threshold must be in (0, 1). Received: au_threshold={au_threshold}")
    return {db: score_database(db, groups, au_threshold) for db, groups in predictions.items()}


# === Post-processing (journal Section V-B) ===

def median_filter(values, window: int) -> np.ndarray:
    """Running median along axis 0 over `window` (odd) rows centred on each row; the ends are padded by
    repeating the first and last rows (scipy.ndimage's "nearest"), so the output has the input's length."""
    x = np.asarray(values, np.float64)
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be an odd number >= 1. Received: window={window}")
    if window == 1 or len(x) == 0:
        return x.copy()
    half = window // 2
    padded = np.concatenate([np.repeat(x[:1], half, 0), x, np.repeat(x[-1:], half, 0)])
    views = np.lib.stride_tricks.sliding_window_view(padded, window, axis=0)   # (n, …, window)
    return np.median(views, axis=-1)


def moving_average(values, window: int) -> np.ndarray:
    """Mean along axis 0 over `window` rows around each row: rows t − ⌊w/2⌋ … t + ⌈w/2⌉ − 1 (centred for odd w,
    one more before than after for even w), cut at the ends (the mean of the rows that exist)."""
    x = np.asarray(values, np.float64)
    if window < 1:
        raise ValueError(f"window must be >= 1. Received: window={window}")
    n = len(x)
    out = np.empty_like(x)
    for t in range(n):
        a, b = max(0, t - window // 2), min(n, t + (window + 1) // 2)
        out[t] = x[a:b].mean(axis=0)
    return out


def apply_postprocessing(predictions: Mapping[str, Mapping[str, Mapping[str, Any]]],
                         choice: Mapping[str, Mapping[str, int]]) -> dict:
    """A copy of `predictions` with each database's chosen post-processing: "median" window over the per-frame
    VA of each group (a video, or an utterance's clip), then for an utterance database a "smooth" window of
    moving average over each video's utterances in order (stored as each group's "utterance_va")."""
    out: dict[str, dict] = {}
    for db, groups in predictions.items():
        c = choice.get(db, {})
        median, smooth = int(c.get("median", 1)), int(c.get("smooth", 1))
        new = {g: {**e, "va": median_filter(e["va"], median)} if "va" in e else dict(e) for g, e in groups.items()}
        if unit_of(db) == "utterance" and smooth > 1 and any("va" in e for e in new.values()):
            videos: dict[str, list[tuple[list, str]]] = {}
            for g in new:
                video, order = utterance_video(g)
                videos.setdefault(video, []).append((order, g))
            for members in videos.values():
                names = [g for _, g in sorted(members)]
                smoothed = moving_average(np.stack([utterance_estimate(new[g]) for g in names]), smooth)
                for g, v in zip(names, smoothed):
                    new[g]["utterance_va"] = v
        out[db] = new
    return out


def choose_postprocessing(val_predictions: Mapping[str, Mapping[str, Mapping[str, Any]]],
                          medians: Sequence[int] = MEDIAN_WINDOWS,
                          smoothings: Sequence[int] = SMOOTH_WINDOWS) -> dict[str, dict[str, Any]]:
    """Per database, the post-processing the validation split supports: {"median": w, "smooth": s,
    "ccc_before", "ccc_after"} (validation mean CCC). The median window is chosen first, then the
    utterance smoothing on top of it; each is kept (> 1) only when it raises the validation CCC."""
    choice: dict[str, dict[str, Any]] = {}
    for db, groups in val_predictions.items():
        def ccc(median: int, smooth: int) -> float:
            scores = score_database(db, apply_postprocessing({db: groups}, {db: {"median": median,
                                                                                  "smooth": smooth}})[db])
            return scores.get("ccc_mean", float("nan"))

        base = ccc(1, 1)
        if not np.isfinite(base):
            choice[db] = {"median": 1, "smooth": 1, "ccc_before": base, "ccc_after": base}
            continue
        best_m, best = 1, base
        for w in medians:
            c = ccc(w, 1)
            if c > best:
                best_m, best = w, c
        best_s = 1
        if unit_of(db) == "utterance":
            for s in smoothings:
                c = ccc(best_m, s)
                if c > best:
                    best_s, best = s, c
        choice[db] = {"median": best_m, "smooth": best_s, "ccc_before": base, "ccc_after": best}
    return choice


# === Together ===

def evaluate_sequence_model(model, data_dir, split: str, config, postprocess: bool = False,
                            databases: Optional[Iterable[str]] = None,
                            au_slots: Optional[Sequence[int]] = None) -> dict[str, dict[str, Any]]:
    """{database: scores} of a sequence model on `split`; with `postprocess`, the filters chosen on the
    validation split (`choose_postprocessing`) are applied to `split` and reported as "median"/"smooth"
    (a database without a validation split is left unfiltered)."""
    threshold = float(getattr(config, "au_threshold", 0.5))
    predictions = predict_sequences(model, data_dir, split, config, databases, au_slots)
    if not postprocess:
        return score_sequences(predictions, threshold)
    from fbn_keras import sequences

    index = sequences.load_index(data_dir)["databases"]
    with_val = [db for db in predictions if index.get(db, {}).get("validation", {}).get("complete")]
    choice = choose_postprocessing(predict_sequences(model, data_dir, "validation", config, with_val, au_slots)) \
        if with_val else {}
    scores = score_sequences(apply_postprocessing(predictions, choice), threshold)
    for db in scores:
        c = choice.get(db, {"median": 1, "smooth": 1})
        scores[db].update(median=int(c["median"]), smooth=int(c["smooth"]))
    return scores


def _fmt(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:.3f}"


#: format_sequence_table's columns: (header, metric key).
TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("CCC-V", "ccc_valence"), ("CCC-A", "ccc_arousal"), ("CCC mean", "ccc_mean"),
    ("MSE-V", "mse_valence"), ("MSE-A", "mse_arousal"),
    ("Expr F1", "expr_f1"), ("Expr TAcc", "expr_acc"), ("AU AF", "au_f1"), ("AU TAcc", "au_acc"))


def format_sequence_table(results: Mapping[str, Mapping[str, Any]], title: str = "") -> str:
    """A Markdown table, one row per database, with Table IV's columns: VA as CCC_V-CCC_A, Expr E_total,
    AU E_total, then their parts (CCC, MSE, F1, TAcc, AF) and the scoring unit ('-' where not scored)."""
    header = ["Database", "unit", "VA (CCC_V-CCC_A)", "Expr E_total", "AU E_total"] + [h for h, _ in TABLE_COLUMNS]
    if any("median" in r for r in results.values()):
        header += ["median", "smooth"]
    rows = [header, ["---"] * len(header)]
    for db, r in results.items():
        va = f"{r['ccc_valence']:.2f}-{r['ccc_arousal']:.2f}" if "ccc_valence" in r else "-"
        row = [db, str(r.get("unit", "frame")), va, _fmt(r.get("expr_total")), _fmt(r.get("au_total"))]
        row += [_fmt(r.get(k)) for _, k in TABLE_COLUMNS]
        if "median" in header:
            row += [str(r.get("median", 1)), str(r.get("smooth", 1))]
        rows.append(row)
    lines = ["| " + " | ".join(r) + " |" for r in rows]
    return (f"### {title}\n\n" if title else "") + "\n".join(lines) + "\n"
