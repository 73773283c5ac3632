"""The one home of FaceBehaviorNet's label spaces and task-relatedness tables.

Everything else in the project imports these facts from here (docs/LABELS.md
describes them): the expression order, the AU list (main paper Section 3 and
footnote 1), the cognitive (main paper Table 1 = journal Table V left) and
empirical Aff-Wild2 (journal Table V right) relation tables, the
compound-expression table of Du, Tao & Martinez (2014), and which labels each
database carries (main paper Section 4).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np

# === Label spaces (main paper Section 3) ===

#: The 7 basic expressions in the ABAW order; the index is the class id.
EXPRESSIONS: tuple[str, ...] = (
    "neutral", "anger", "disgust", "fear", "happiness", "sadness", "surprise",
)
NUM_EXPRESSIONS = len(EXPRESSIONS)

#: The 17 action units: the union of the AUs annotated in Aff-Wild2, DISFA,
#: BP4D (FERA 2015), BP4D+ (FERA 2017) and EmotioNet (paper footnote 1).
AUS: tuple[int, ...] = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 24, 25, 26)
NUM_AUS = len(AUS)

#: Valence then arousal, each in [-1, 1].
VA_NAMES: tuple[str, ...] = ("valence", "arousal")

#: The 7 emotional reactions whose intensities (each in [0, 1]) Hume-Reaction labels per video, in its
#: label files' column order (FaceRNET paper, Section 1; MuSe 2022 ERI / ABAW5 ERI).
REACTIONS: tuple[str, ...] = ("Adoration", "Amusement", "Anxiety", "Disgust", "Empathic-Pain", "Fear", "Surprise")
NUM_REACTIONS = len(REACTIONS)

#: FACS names of the 17 AUs (Ekman & Friesen's Facial Action Coding System), for labels and docs/LABELS.md.
AU_NAMES: dict[int, str] = {
    1: "inner brow raiser", 2: "outer brow raiser", 4: "brow lowerer", 5: "upper lid raiser",
    6: "cheek raiser", 7: "lid tightener", 9: "nose wrinkler", 10: "upper lip raiser",
    12: "lip corner puller", 14: "dimpler", 15: "lip corner depressor", 17: "chin raiser",
    20: "lip stretcher", 23: "lip tightener", 24: "lip pressor", 25: "lips part", 26: "jaw drop",
}


def expression_index(name: str) -> int:
    """Index of an expression name in EXPRESSIONS (raises with the valid names)."""
    try:
        return EXPRESSIONS.index(name)
    except ValueError:
        raise ValueError(f"Unknown expression {name!r}; expected one of {EXPRESSIONS}") from None


def au_index(au: int) -> int:
    """Column of AU number `au` in AUS (raises with the valid numbers)."""
    try:
        return AUS.index(int(au))
    except ValueError:
        raise ValueError(f"AU{au} is not one of the {NUM_AUS} AUs {AUS}") from None


def au_names(prefix: str = "AU", width: int = 2) -> list[str]:
    """Column names such as AU01 … AU26, in AUS order (OpenFace/py-feat style)."""
    return [f"{prefix}{au:0{width}d}" for au in AUS]


# === Task relatedness (main paper Table 1, journal Table V) ===

@dataclasses.dataclass(frozen=True)
class EmotionAUs:
    """One row of a relatedness table: prototypical AUs (weight 1) and observational AUs with weight w."""

    prototypical: tuple[int, ...]
    observational: Mapping[int, float]

    def weights(self) -> dict[int, float]:
        """AU number → weight (1 for prototypical, w for observational)."""
        out = {au: 1.0 for au in self.prototypical}
        out.update(self.observational)
        return out


#: Main paper Table 1 / journal Table V (left): Du, Tao & Martinez (2014).
#: AU11 (sadness, 0.26) is kept here as printed; it is in no training set and
#: is dropped when the table is projected onto AUS.
COGNITIVE_TABLE: dict[str, EmotionAUs] = {
    "happiness": EmotionAUs((12, 25), {6: 0.51}),
    "sadness": EmotionAUs((4, 15), {1: 0.6, 6: 0.5, 11: 0.26, 17: 0.67}),
    "fear": EmotionAUs((1, 4, 20, 25), {2: 0.57, 5: 0.63, 26: 0.33}),
    "anger": EmotionAUs((4, 7, 24), {10: 0.26, 17: 0.52, 23: 0.29}),
    "surprise": EmotionAUs((1, 2, 25, 26), {5: 0.66}),
    "disgust": EmotionAUs((9, 10, 17), {4: 0.31, 24: 0.26}),
}

#: Journal Table V (right): AU frequencies per expression inferred from Aff-Wild2.
#: The table has no prototypical/observational split; every AU carries its
#: weight w. The sadness row's first AU number is lost in the journal text
#: ("(0.53), 15 (0.42), ..."): we read it as AU4, sadness's first prototypical
#: AU in the cognitive table (docs/FAITHFULNESS.md).
AFFWILD2_TABLE: dict[str, EmotionAUs] = {
    "happiness": EmotionAUs((), {12: 0.82, 25: 0.7, 6: 0.57, 7: 0.83, 10: 0.63}),
    "sadness": EmotionAUs((), {4: 0.53, 15: 0.42, 1: 0.31, 7: 0.13, 17: 0.1}),
    "fear": EmotionAUs((), {1: 0.52, 4: 0.4, 25: 0.85, 5: 0.38, 7: 0.57, 10: 0.57}),
    "anger": EmotionAUs((), {4: 0.65, 7: 0.45, 25: 0.4, 10: 0.33, 9: 0.15}),
    "surprise": EmotionAUs((), {1: 0.38, 2: 0.37, 25: 0.85, 26: 0.3, 5: 0.5, 7: 0.2}),
    "disgust": EmotionAUs((), {9: 0.21, 10: 0.85, 17: 0.23, 4: 0.6, 7: 0.75, 25: 0.8}),
}

RELATION_TABLES: dict[str, dict[str, EmotionAUs]] = {
    "cognitive": COGNITIVE_TABLE,
    "affwild2": AFFWILD2_TABLE,
}


def _table(table: str) -> dict[str, EmotionAUs]:
    """A named table, or one saved as JSON by `fbn_keras.relatedness.save_relation` (a path ending .json)."""
    if table not in RELATION_TABLES and str(table).endswith(".json"):
        from fbn_keras.relatedness import load_relation   # lazy: relatedness imports this module
        return load_relation(table)
    try:
        return RELATION_TABLES[table]
    except KeyError:
        raise ValueError(f"Unknown relation table {table!r}; expected one of {sorted(RELATION_TABLES)} "
                         f"or a .json table (fbn_keras.relatedness)") from None


def relation_matrix(table: str = "cognitive", weighted: bool = False,
                    aus: tuple[int, ...] = AUS) -> np.ndarray:
    """p(au | emotion) as a (7, len(aus)) float32 array (main paper eq. 2, footnote 4).

    `table` names one of RELATION_TABLES or is the path of a .json table
    (`fbn_keras.relatedness.save_relation`, journal Table V's estimator).

    Entry is 1 for an AU related to the emotion (or its weight w when
    `weighted`), else 0. The neutral row is zero; AUs outside `aus` drop out.
    """
    rows = _table(table)
    out = np.zeros((NUM_EXPRESSIONS, len(aus)), np.float32)
    for emotion, entry in rows.items():
        for au, w in entry.weights().items():
            if au in aus:
                out[expression_index(emotion), aus.index(au)] = w if weighted else 1.0
    return out


def relation_weights(table: str = "cognitive", aus: tuple[int, ...] = AUS) -> np.ndarray:
    """(7, len(aus)) float32: the weight w of each related AU (1 for prototypical), 0 elsewhere.

    Used by co-annotation (observational AUs re-weighted by w) and by the
    re-weighted soft co-annotation score.
    """
    return relation_matrix(table, weighted=True, aus=aus)


# === Compound expressions (main paper Section 7.5; Du, Tao & Martinez 2014, Table 1) ===

@dataclasses.dataclass(frozen=True)
class Compound:
    """A compound expression: its two basic emotions and its AUs (all with p(au|class) = 1)."""

    name: str
    emotions: tuple[str, str]
    prototypical: tuple[int, ...]
    observational: tuple[int, ...]

    @property
    def positive_valence(self) -> bool:
        """Journal eq. 10's valence term applies to the 'happily …' classes only."""
        return self.name in ("happily surprised", "happily disgusted")


COMPOUNDS: tuple[Compound, ...] = (
    Compound("happily surprised", ("happiness", "surprise"), (1, 2, 12, 25), (5, 26)),
    Compound("happily disgusted", ("happiness", "disgust"), (10, 12, 25), (4, 6, 9)),
    Compound("sadly fearful", ("sadness", "fear"), (1, 4, 20, 25), (2, 5, 6, 15)),
    Compound("sadly angry", ("sadness", "anger"), (4, 15), (6, 7, 11, 17)),
    Compound("sadly surprised", ("sadness", "surprise"), (1, 4, 25, 26), (2, 6)),
    Compound("sadly disgusted", ("sadness", "disgust"), (4, 10), (1, 6, 9, 11, 15, 17, 25)),
    Compound("fearfully angry", ("fear", "anger"), (4, 20, 25), (5, 7, 10, 11)),
    Compound("fearfully surprised", ("fear", "surprise"), (1, 2, 5, 20, 25), (4, 10, 11, 26)),
    Compound("fearfully disgusted", ("fear", "disgust"), (1, 4, 10, 20, 25), (2, 5, 6, 9, 15)),
    Compound("angrily surprised", ("anger", "surprise"), (4, 25, 26), (5, 7, 10)),
    Compound("angrily disgusted", ("anger", "disgust"), (4, 10, 17), (7, 9, 24)),
    Compound("disgustedly surprised", ("disgust", "surprise"), (1, 2, 5, 10), (4, 9, 17, 24)),
    # Not two-emotion blends in Du et al.; the emotion pairs are our reading (FAITHFULNESS.md).
    Compound("appalled", ("disgust", "anger"), (4, 10), (6, 9, 17, 24)),
    Compound("hatred", ("anger", "disgust"), (4, 10), (7, 9, 17, 24)),
    Compound("awed", ("fear", "surprise"), (1, 2, 5, 25), (4, 20, 26)),
)
COMPOUND_NAMES: tuple[str, ...] = tuple(c.name for c in COMPOUNDS)
NUM_COMPOUNDS = len(COMPOUNDS)


def compound_index(name: str) -> int:
    """Index of a compound name in COMPOUND_NAMES."""
    try:
        return COMPOUND_NAMES.index(name)
    except ValueError:
        raise ValueError(f"Unknown compound expression {name!r}; expected one of {COMPOUND_NAMES}") from None


#: RAF-DB compound codes 1..11, in order, as indices into COMPOUNDS.
RAFDB_COMPOUND_SUBSET: tuple[int, ...] = tuple(compound_index(n) for n in (
    "happily surprised", "happily disgusted", "sadly fearful", "sadly angry", "sadly surprised",
    "sadly disgusted", "fearfully angry", "fearfully surprised", "angrily surprised",
    "angrily disgusted", "disgustedly surprised"))

#: EmotioNet challenge's 10 compound classes, as indices into COMPOUNDS (its 6
#: basic classes go to label/expr).
EMOTIONET_COMPOUND_SUBSET: tuple[int, ...] = tuple(compound_index(n) for n in (
    "happily surprised", "happily disgusted", "sadly angry", "sadly disgusted", "fearfully angry",
    "fearfully surprised", "angrily surprised", "angrily disgusted", "appalled", "awed"))


def compound_relation_matrix(aus: tuple[int, ...] = AUS) -> np.ndarray:
    """p(au | compound class): (15, len(aus)) float32, 1 for prototypical and observational AUs."""
    out = np.zeros((NUM_COMPOUNDS, len(aus)), np.float32)
    for i, c in enumerate(COMPOUNDS):
        for au in c.prototypical + c.observational:
            if au in aus:
                out[i, aus.index(au)] = 1.0
    return out


# === Databases (main paper Section 4) ===

@dataclasses.dataclass(frozen=True)
class Database:
    """What one database annotates, and how the paper scores it."""

    name: str
    tasks: tuple[str, ...]                       # subset of ("va", "expr", "au", "compound", "intensity")
    aus: tuple[int, ...] = ()                    # AUs it annotates (metrics run over these)
    expr_metric: str = ""                        # "f1", "abaw_f1", "accuracy", "clip_accuracy", "mean_diagonal"
    expr_classes: tuple[int, ...] = tuple(range(NUM_EXPRESSIONS))   # its expression classes (metrics run over these)
    au_metric: str = ""                          # "f1" or "afa"
    compound_subset: tuple[int, ...] = ()        # indices into COMPOUNDS
    compound_metric: str = ""                    # "mean_diagonal" or "f1_uar"


#: The six basic expressions without neutral: EmotioNet's emotion subset is "annotated with the 6 basic
#: emotion expressions and 10 compound emotions" (main paper Section 4).
BASIC_WITHOUT_NEUTRAL: tuple[int, ...] = tuple(i for i, e in enumerate(EXPRESSIONS) if e != "neutral")

DATABASES: dict[str, Database] = {d.name: d for d in (
    Database("affwild", ("va",)),
    Database("affwild2", ("va", "expr", "au"), aus=(1, 2, 4, 6, 7, 10, 12, 15, 23, 24, 25, 26),
             expr_metric="abaw_f1", au_metric="f1"),
    Database("affectnet", ("va", "expr"), expr_metric="f1"),
    Database("afew", ("expr",), expr_metric="clip_accuracy"),
    Database("rafdb", ("expr",), expr_metric="mean_diagonal"),
    Database("rafdb-compound", ("compound",), compound_subset=RAFDB_COMPOUND_SUBSET,
             compound_metric="mean_diagonal"),
    Database("emotionet", ("au",), aus=(1, 2, 4, 5, 6, 9, 12, 17, 20, 25, 26), au_metric="afa"),
    Database("emotionet-compound", ("expr", "compound"), compound_subset=EMOTIONET_COMPOUND_SUBSET,
             expr_metric="f1", compound_metric="f1_uar", expr_classes=BASIC_WITHOUT_NEUTRAL),
    Database("disfa", ("au",), aus=(1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26), au_metric="f1"),
    Database("bp4d", ("au",), aus=(1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23), au_metric="f1"),
    Database("bp4dplus", ("au",), aus=(1, 4, 6, 7, 10, 12, 14, 15, 17, 23), au_metric="f1"),
    # The journal's video databases (Table I): AFEW-VA per-frame VA; OMG-Emotion VA per utterance.
    Database("afew-va", ("va",)),
    Database("omg", ("va",)),
    # FaceRNET's database: one vector of 7 reaction intensities per video, on each of its frames.
    Database("hume-reaction", ("intensity",)),
)}

#: The 8 AUs the journal's Aff-Wild2 annotates (Section III) and its multi-task heads predict (Section VI-A).
AFFWILD2_PAPER_AUS: tuple[int, ...] = (1, 2, 4, 6, 12, 15, 20, 25)

#: The synthetic test-bed: each synthetic database mimics the partial labels
#: and the evaluation protocol of the real one it is named after.
SYNTHETIC_OF: dict[str, str] = {
    "synth-affwild": "affwild",
    "synth-affectnet": "affectnet",
    "synth-rafdb": "rafdb",
    "synth-rafdb-compound": "rafdb-compound",
    "synth-disfa": "disfa",
    "synth-bp4d": "bp4d",
    "synth-emotionet": "emotionet",
    "synth-affwild2": "affwild2",
    "synth-afew": "afew",
    "synth-bp4dplus": "bp4dplus",
    "synth-emotionet-compound": "emotionet-compound",
}


#: The synthetic video test-bed (`fbn_keras/synthetic/video.py`): per-frame records of whole videos.
#: Kept apart from SYNTHETIC_OF so the image test-bed is unchanged.
SYNTHETIC_VIDEO_OF: dict[str, str] = {
    "synthv-affwild": "affwild",
    "synthv-affwild-control": "affwild",
    "synthv-affwild2": "affwild2",
    "synthv-afew-va": "afew-va",
    "synthv-omg": "omg",
}
#: AU sets of synthetic video databases that differ from their namesake's entry (the journal's 8 AUs).
_SYNTHETIC_VIDEO_AUS: dict[str, tuple[int, ...]] = {"synthv-affwild2": AFFWILD2_PAPER_AUS}
#: The synthetic reaction-intensity videos (`fbn_keras/synthetic/intensity.py`).
SYNTHETIC_INTENSITY_OF: dict[str, str] = {"synthv-hume-reaction": "hume-reaction"}


def database(name: str) -> Database:
    """The Database entry for a real or synthetic (image or video) database name."""
    real = SYNTHETIC_OF.get(name) or SYNTHETIC_VIDEO_OF.get(name) or SYNTHETIC_INTENSITY_OF.get(name, name)
    try:
        entry = dataclasses.replace(DATABASES[real], name=name)
        return dataclasses.replace(entry, aus=_SYNTHETIC_VIDEO_AUS[name]) if name in _SYNTHETIC_VIDEO_AUS else entry
    except KeyError:
        known = sorted(DATABASES) + sorted(SYNTHETIC_OF) + sorted(SYNTHETIC_VIDEO_OF) + sorted(SYNTHETIC_INTENSITY_OF)
        raise ValueError(f"Unknown database {name!r}; expected one of {known}") from None


def au_mask_for(aus: tuple[int, ...]) -> np.ndarray:
    """(17,) float32 δ vector: 1 for the AUs a database annotates."""
    mask = np.zeros((NUM_AUS,), np.float32)
    for au in aus:
        mask[au_index(au)] = 1.0
    return mask
