"""The paper's own numbers (main paper Tables 2–7), for the "paper" column beside ours.

Keys are `(database, metric)` with the metric names the evaluator writes:
`ccc_v`, `ccc_a` (CCC of valence / arousal), `expr_f1`, `expr_acc` (AFEW total
accuracy), `expr_mean_diag` (RAF-DB), `au_f1`, `au_mean_acc` (EmotioNet),
`compound_f1`, `compound_uar` (EmotioNet), `compound_mean_diag` (RAF-DB).
A method that the paper does not report on a column simply has no key.
"""

from __future__ import annotations

Key = tuple[str, str]

# === Table 2: backbones in the multi-task framework ===
_T2_ROWS: list[tuple[Key, float, float, float]] = [
    (("affwild", "ccc_v"), 0.55, 0.53, 0.52),
    (("affwild", "ccc_a"), 0.36, 0.31, 0.33),
    (("affwild2", "ccc_v"), 0.45, 0.42, 0.42),
    (("affwild2", "ccc_a"), 0.40, 0.37, 0.38),
    (("affwild2", "expr_f1"), 0.48, 0.45, 0.44),
    (("affwild2", "au_f1"), 0.47, 0.44, 0.45),
    (("affectnet", "ccc_v"), 0.60, 0.56, 0.53),
    (("affectnet", "ccc_a"), 0.46, 0.36, 0.38),
    (("affectnet", "expr_f1"), 0.58, 0.52, 0.50),
    (("afew", "expr_acc"), 0.40, 0.37, 0.38),
    (("rafdb", "expr_mean_diag"), 0.67, 0.62, 0.64),
    (("emotionet", "au_f1"), 0.64, 0.40, 0.39),
    (("emotionet", "au_mean_acc"), 0.94, 0.85, 0.87),
    (("disfa", "au_f1"), 0.52, 0.47, 0.44),
    (("bp4d", "au_f1"), 0.63, 0.56, 0.57),
    (("bp4dplus", "au_f1"), 0.58, 0.53, 0.54),
]
#: backbone name (config.BACKBONES) → {(database, metric): value}
TABLE2: dict[str, dict[Key, float]] = {
    name: {key: row[i] for key, *row in _T2_ROWS}
    for i, name in enumerate(("vgg_face", "resnet50", "densenet121"))
}

# === Tables 3–5: single-task networks vs FaceBehaviorNet and other methods ===
#: method → {(database, metric): value}; "FaceBehaviorNet" and "VGG-FACE single task" are ours to rebuild.
TABLE3: dict[str, dict[Key, float]] = {
    "VGG-FACE single task": {("affwild", "ccc_v"): 0.54, ("affwild", "ccc_a"): 0.31,
                             ("affwild2", "ccc_v"): 0.36, ("affwild2", "ccc_a"): 0.28,
                             ("affectnet", "ccc_v"): 0.53, ("affectnet", "ccc_a"): 0.43},
    "vanilla VGG-FACE": {("affectnet", "ccc_v"): 0.50, ("affectnet", "ccc_a"): 0.37},
    "FaceBehaviorNet": {("affwild", "ccc_v"): 0.55, ("affwild", "ccc_a"): 0.36,
                        ("affwild2", "ccc_v"): 0.45, ("affwild2", "ccc_a"): 0.40,
                        ("affectnet", "ccc_v"): 0.60, ("affectnet", "ccc_a"): 0.46},
    "AlexNet [26]": {("affectnet", "ccc_v"): 0.60, ("affectnet", "ccc_a"): 0.34},
    "best performing CNN [18][19]": {("affwild", "ccc_v"): 0.51, ("affwild", "ccc_a"): 0.33,
                                     ("affwild2", "ccc_v"): 0.33, ("affwild2", "ccc_a"): 0.25},
    "FATAUVA-Net [5]": {("affwild", "ccc_v"): 0.40, ("affwild", "ccc_a"): 0.28},
}
TABLE4: dict[str, dict[Key, float]] = {
    "VGG-FACE single task": {("affectnet", "expr_f1"): 0.52, ("afew", "expr_acc"): 0.39,
                             ("rafdb", "expr_mean_diag"): 0.62, ("affwild2", "expr_f1"): 0.38},
    "vanilla VGG-FACE": {("affectnet", "expr_f1"): 0.51},
    "FaceBehaviorNet": {("affectnet", "expr_f1"): 0.58, ("afew", "expr_acc"): 0.40,
                        ("rafdb", "expr_mean_diag"): 0.67, ("affwild2", "expr_f1"): 0.48},
    "AlexNet [26]": {("affectnet", "expr_f1"): 0.58},
    "non-linear SVM [8]": {("afew", "expr_acc"): 0.38},
    "VGG-FACE-mSVM [23]": {("rafdb", "expr_mean_diag"): 0.58},
}
TABLE5: dict[str, dict[Key, float]] = {
    "VGG-FACE single task": {("emotionet", "au_f1"): 0.41, ("emotionet", "au_mean_acc"): 0.92,
                             ("disfa", "au_f1"): 0.48, ("bp4d", "au_f1"): 0.60,
                             ("bp4dplus", "au_f1"): 0.56, ("affwild2", "au_f1"): 0.40},
    "FaceBehaviorNet": {("emotionet", "au_f1"): 0.64, ("emotionet", "au_mean_acc"): 0.94,
                        ("disfa", "au_f1"): 0.52, ("bp4d", "au_f1"): 0.63,
                        ("bp4dplus", "au_f1"): 0.58, ("affwild2", "au_f1"): 0.47},
    "AlexNet [3]": {("emotionet", "au_f1"): 0.39, ("emotionet", "au_mean_acc"): 0.83},
    "I2R-CCNU-NTU-2 [3]": {("emotionet", "au_f1"): 0.64, ("emotionet", "au_mean_acc"): 0.82},
    "DLE extension [39]": {("bp4d", "au_f1"): 0.59},
    "[33]": {("bp4dplus", "au_f1"): 0.58},
}

# === Table 6: the coupling configurations (seven rows; config.COUPLINGS' "coann+dm" has none) ===
TABLE6_COLUMNS: tuple[Key, ...] = (
    ("affwild", "ccc_v"), ("affwild", "ccc_a"),
    ("affwild2", "ccc_v"), ("affwild2", "ccc_a"), ("affwild2", "expr_f1"), ("affwild2", "au_f1"),
    ("affectnet", "ccc_v"), ("affectnet", "ccc_a"), ("affectnet", "expr_f1"),
    ("afew", "expr_acc"), ("rafdb", "expr_mean_diag"),
    ("emotionet", "au_f1"), ("emotionet", "au_mean_acc"),
    ("disfa", "au_f1"), ("bp4d", "au_f1"), ("bp4dplus", "au_f1"),
)
_T6_ROWS: dict[str, tuple[float, ...]] = {
    "none": (0.55, 0.36, 0.45, 0.40, 0.48, 0.47, 0.60, 0.46, 0.58, 0.40, 0.67, 0.64, 0.94, 0.52, 0.63, 0.58),
    "coann": (0.55, 0.37, 0.46, 0.42, 0.49, 0.49, 0.60, 0.46, 0.59, 0.41, 0.67, 0.64, 0.84, 0.54, 0.64, 0.58),
    "soft": (0.56, 0.39, 0.48, 0.42, 0.50, 0.50, 0.60, 0.47, 0.59, 0.42, 0.67, 0.66, 0.94, 0.54, 0.64, 0.60),
    "dm": (0.56, 0.38, 0.47, 0.42, 0.51, 0.50, 0.61, 0.48, 0.59, 0.42, 0.68, 0.66, 0.92, 0.56, 0.66, 0.58),
    "coann+soft": (0.57, 0.38, 0.48, 0.43, 0.50, 0.50, 0.60, 0.46, 0.59, 0.42, 0.67, 0.65, 0.87, 0.55, 0.64, 0.60),
    "coann+soft+dm": (0.58, 0.39, 0.49, 0.44, 0.51, 0.51, 0.61, 0.48, 0.59, 0.42, 0.68, 0.66, 0.84, 0.57, 0.64, 0.60),
    "soft+dm": (0.59, 0.41, 0.51, 0.46, 0.53, 0.52, 0.62, 0.50, 0.60, 0.43, 0.68, 0.67, 0.94, 0.59, 0.66, 0.61),
}
#: coupling name (config.COUPLINGS) → {(database, metric): value}. Section 7.4's text also lists
#: "co-annotation and distr-matching" (config's "coann+dm"), which the table has no row for.
TABLE6: dict[str, dict[Key, float]] = {
    name: dict(zip(TABLE6_COLUMNS, row, strict=True)) for name, row in _T6_ROWS.items()
}
#: Table 6's row names, in the paper's words.
TABLE6_ROW_NAMES: dict[str, str] = {
    "none": "no coupling loss", "coann": "co-annotation", "soft": "soft co-annotation",
    "dm": "distr-matching", "coann+soft": "co-annotation & soft co-annotation",
    "coann+soft+dm": "co-annotation & soft co-annotation & distr-matching",
    "soft+dm": "soft co-annotation & distr-matching",
}

# === Table 7: compound expressions, zero-shot and fine-tuned ===
TABLE7: dict[str, dict[Key, float]] = {
    "zero-shot, no coupling loss": {("emotionet", "compound_f1"): 0.243, ("emotionet", "compound_uar"): 0.260,
                                    ("rafdb", "compound_mean_diag"): 0.342},
    "zero-shot, all coupling losses": {("emotionet", "compound_f1"): 0.312, ("emotionet", "compound_uar"): 0.329,
                                       ("rafdb", "compound_mean_diag"): 0.364},
    "fine-tuned, no coupling loss": {("emotionet", "compound_f1"): 0.257, ("emotionet", "compound_uar"): 0.304,
                                     ("rafdb", "compound_mean_diag"): 0.458},
    "fine-tuned, all coupling losses": {("emotionet", "compound_f1"): 0.281, ("emotionet", "compound_uar"): 0.318,
                                        ("rafdb", "compound_mean_diag"): 0.483},
    "NTechLab [3]": {("emotionet", "compound_f1"): 0.255, ("emotionet", "compound_uar"): 0.243},
    "VGG-FACE-mSVM [23]": {("rafdb", "compound_mean_diag"): 0.316},
    "DLP-CNN [23]": {("rafdb", "compound_mean_diag"): 0.446},
}
#: Table 7's zero-shot FaceBehaviorNet rows by the coupling configuration of the network. "All coupling
#: losses" is Section 7.4's item vii, "co-annotation, soft co-annotation, distr-matching".
TABLE7_ZERO_SHOT: dict[str, str] = {
    "none": "zero-shot, no coupling loss",
    "coann+soft+dm": "zero-shot, all coupling losses",
}


def fbn_numbers(coupling: str) -> dict[Key, float]:
    """The paper's numbers for FaceBehaviorNet trained with `coupling`.

    Table 6's row of that configuration (VA, expressions, AUs) and Table 7's
    zero-shot row when the paper has one for it ("none" and "coann+soft+dm").
    Empty for a configuration the paper reports nowhere ("coann+dm").
    """
    numbers = dict(TABLE6.get(coupling, {}))
    if coupling in TABLE7_ZERO_SHOT:
        numbers.update(TABLE7[TABLE7_ZERO_SHOT[coupling]])
    return numbers


def paper_value(database: str, metric: str) -> float | None:
    """FaceBehaviorNet's number for (database, metric) in the paper (Tables 3–5, no coupling), or None."""
    key = (database, metric)
    for table in (TABLE3, TABLE4, TABLE5):
        if key in table["FaceBehaviorNet"]:
            return table["FaceBehaviorNet"][key]
    return None


# === The journal's video networks (Kollias & Zafeiriou, "Affect Analysis in-the-wild", Tables II–IV) ===
# Keys use the sequence evaluator's metric names (fbn_keras/evaluate_sequences.py): ccc_valence,
# ccc_arousal, expr_total (0.67·F1 + 0.33·TAcc), au_total (0.5·AF + 0.5·TAcc).

#: Table II, Aff-Wild test set (CCC); our per-frame CNN is the paper's VGG-FACE row.
JOURNAL_TABLE2: dict[str, dict[Key, float]] = {
    "cnn": {("affwild", "ccc_valence"): 0.51, ("affwild", "ccc_arousal"): 0.33},
    "vgg-face-lstm": {("affwild", "ccc_valence"): 0.52, ("affwild", "ccc_arousal"): 0.38},
    "affwildnet": {("affwild", "ccc_valence"): 0.57, ("affwild", "ccc_arousal"): 0.43},
}
#: Table III, OMG-Emotion (CCC over utterances), the visual networks.
JOURNAL_TABLE3: dict[str, dict[Key, float]] = {
    "cnn1rnn": {("omg", "ccc_valence"): 0.449, ("omg", "ccc_arousal"): 0.303},
    "cnn3rnn": {("omg", "ccc_valence"): 0.472, ("omg", "ccc_arousal"): 0.329},
    "decision-level fusion": {("omg", "ccc_valence"): 0.501, ("omg", "ccc_arousal"): 0.332},
    "fusion-fc": {("omg", "ccc_valence"): 0.518, ("omg", "ccc_arousal"): 0.348},
    "fusion-rnn": {("omg", "ccc_valence"): 0.535, ("omg", "ccc_arousal"): 0.365},
}
#: Table IV's Aff-Wild2 column: VA CCC, expression and AU totals (the networks trained on Aff-Wild2).
JOURNAL_TABLE4: dict[str, dict[Key, float]] = {
    "mt-vgg": {("affwild2", "ccc_valence"): 0.43, ("affwild2", "ccc_arousal"): 0.42,
               ("affwild2", "expr_total"): 0.50, ("affwild2", "au_total"): 0.60},
    "mt-vgg-gru": {("affwild2", "ccc_valence"): 0.46, ("affwild2", "ccc_arousal"): 0.45,
                   ("affwild2", "expr_total"): 0.52, ("affwild2", "au_total"): 0.62},
    "av-mt-vgg-gru": {("affwild2", "ccc_valence"): 0.47, ("affwild2", "ccc_arousal"): 0.52,
                      ("affwild2", "expr_total"): 0.53, ("affwild2", "au_total"): 0.63},
}


# === MTANet (Zhang & Gu, ABAW 2020), Table I: Aff-Wild2 validation set ===
# Keys use the image evaluator's names: CCC of valence / arousal, and the AU and expression columns read as
# F1 (the abstract calls MTANet's 0.427 / 0.32 "F1-score"; the table does not define them). Methods are the
# backbones (config.MTANET_BACKBONES); the paper does not say which rows used eq. 5's fine-tuning.
_MTANET_ROWS: tuple[tuple[str, float, float, float, float], ...] = (
    ("baseline (ABAW 2020)", 0.14, 0.24, 0.31, 0.36),
    ("resnext50", 0.22, 0.31, 0.403, 0.30),
    ("resnext50_cbam", 0.27, 0.34, 0.397, 0.31),
    ("se_resnet50", 0.28, 0.34, 0.427, 0.32),
)
MTANET_TABLE1: dict[str, dict[Key, float]] = {
    name: {("affwild2", "ccc_v"): v, ("affwild2", "ccc_a"): a, ("affwild2", "au_f1"): au, ("affwild2", "expr_f1"): e}
    for name, v, a, au, e in _MTANET_ROWS
}

# === FaceRNET (Kollias et al., ABAW5), Tables 2-3: Hume-Reaction validation set, mean Pearson rho ===
_PEARSON: Key = ("hume-reaction", "pearson_mean")
#: Table 2: the REC representations fed to the RNN (facernet_features), best run each.
FACERNET_TABLE2: dict[str, dict[Key, float]] = {
    features: {_PEARSON: rho} for features, rho in (
        ("va", 0.461), ("expr", 0.476), ("au", 0.480), ("va+expr", 0.485), ("va+au", 0.491),
        ("expr+au", 0.491), ("va+expr+au", 0.494))
}
#: Table 3: the ablations, by the paper's row names.
FACERNET_TABLE3: dict[str, dict[Key, float]] = {
    row: {_PEARSON: rho} for row, rho in (
        ("REC + GRU + FC (64)", 0.480), ("REC + GRU + FC (16)", 0.485), ("REC + GRU + FC (8)", 0.478),
        ("REC + 2x GRU + FC (32)", 0.492), ("ResNet50 + GRU + FC (32)", 0.465), ("REC + LSTM + FC (32)", 0.482),
        ("REC + GRU (256) + FC (32)", 0.484), ("REC + GRU (64) + FC (32)", 0.488),
        ("FaceRNET w/o Mask & Routing", 0.469), ("FaceRNET with MSE", 0.481), ("FaceRNET", 0.494))
}

# === Semi-supervised GAN (multi-task learning and generation paper), Table IX: Aff-Wild's AU part, test set ===
# D's heads besides the fake class, and its loss, by the table's rows in words; the metric names are
# fbn_keras/gan_evaluate.py's (CCC of valence / arousal, weighted and macro AU F1, total AU accuracy).
# A dash in the table is no key.
_TABLE9_ROWS: tuple[tuple[str, dict[str, float]], ...] = (
    ("only VA, CCC", {"ccc_v": 0.440, "ccc_a": 0.370}),
    ("only VA, MSE", {"ccc_v": 0.484, "ccc_a": 0.384}),
    ("only AU", {"au_f1_weighted": 0.404, "au_f1_macro": 0.40, "au_total_acc": 0.824}),
    ("VA+AU, CCC+CE", {"ccc_v": 0.447, "ccc_a": 0.374, "au_f1_weighted": 0.328, "au_f1_macro": 0.330,
                       "au_total_acc": 0.661}),
    ("VA+AU, MSE+CE", {"ccc_v": 0.451, "ccc_a": 0.333, "au_f1_weighted": 0.332, "au_f1_macro": 0.347,
                       "au_total_acc": 0.667}),
)
GAN_TABLE9: dict[str, dict[Key, float]] = {
    row: {("affwild", metric): value for metric, value in numbers.items()} for row, numbers in _TABLE9_ROWS
}


# === VGGFACE-GRU-attention (multi-task learning and generation paper, Section V-B), Tables X-XI ===
# The paper's test set is its own expression-annotated part of Aff-Wild; the keys name our stand-in's database,
# "affwild2" (the Aff-Wild2-like synthetic video: VA on every frame, expressions on most videos;
# docs/FAITHFULNESS.md, "Tables X-XI on synthetic video"), with the sequence evaluator's metric names:
# ccc_valence, ccc_arousal, expr_acc (total accuracy), expr_f1_weighted and expr_f1 (unweighted, macro).
# Table XI's header reads "Unweighted, Weighted", but its best row prints 0.643, 0.514, which Table X prints
# as "Weighted - Unweighted": the first F1 column is read as weighted (it tracks the accuracy).
ATTENTION_KEYS: tuple[Key, ...] = tuple(("affwild2", m) for m in ("ccc_valence", "ccc_arousal", "expr_acc",
                                                                   "expr_f1_weighted", "expr_f1"))


def _attention_row(*values: float | None) -> dict[Key, float]:
    return {k: v for k, v in zip(ATTENTION_KEYS, values) if v is not None}


#: Table X: the best network of Table XI with (alpha, beta) of eq. 6; "-" where a single-task network has no head.
ATTENTION_TABLE10: dict[str, dict[Key, float]] = {
    "(0, 1)": _attention_row(None, None, 0.494, 0.488, 0.415),         # only expressions
    "(1, 0)": _attention_row(0.579, 0.409),                            # only VA
    "(0.25, 0.75)": _attention_row(0.556, 0.419, 0.547, 0.542, 0.452),
    "(0.75, 0.25)": _attention_row(0.589, 0.424, 0.527, 0.514, 0.422),
    "(0.5, 0.5)": _attention_row(0.616, 0.510, 0.645, 0.643, 0.514),
    "(0.75, 0.75)": _attention_row(0.585, 0.453, 0.561, 0.555, 0.476),
    "(1, 1)": _attention_row(0.521, 0.356, 0.513, 0.501, 0.411),
}
#: Table XI: VA loss, expression loss and learning rate, alpha = beta = 0.5; rows "<VA loss>, <expression loss>,
#: <learning rate>".
ATTENTION_TABLE11: dict[str, dict[Key, float]] = {
    f"{va}, {expr}, {lr}": _attention_row(*numbers) for va, expr, lr, *numbers in (
        ("CCC", "CE", "1e-4", 0.510, 0.445, 0.644, 0.619, 0.481),
        ("CCC", "CE", "1e-3", 0.616, 0.510, 0.645, 0.643, 0.514),
        ("CCC", "MSE before softmax", "1e-4", 0.491, 0.433, 0.588, 0.581, 0.497),
        ("CCC", "MSE before softmax", "1e-3", 0.507, 0.441, 0.517, 0.501, 0.469),
        ("CCC", "MSE after softmax", "1e-4", 0.462, 0.406, 0.575, 0.562, 0.488),
        ("CCC", "MSE after softmax", "1e-3", 0.486, 0.422, 0.569, 0.511, 0.447),
        ("MSE", "CE", "1e-4", 0.502, 0.350, 0.641, 0.620, 0.492),
        ("MSE", "CE", "1e-3", 0.532, 0.362, 0.601, 0.606, 0.480),
        ("MSE", "MSE before softmax", "1e-4", 0.537, 0.482, 0.600, 0.598, 0.476),
        ("MSE", "MSE before softmax", "1e-3", 0.561, 0.487, 0.556, 0.541, 0.448),
        ("MSE", "MSE after softmax", "1e-4", 0.495, 0.465, 0.602, 0.577, 0.471),
        ("MSE", "MSE after softmax", "1e-3", 0.515, 0.468, 0.581, 0.527, 0.423))
}
#: Our stand-in for Aff-Wild's AU part on the synthetic test-bed: the AU set's one database with valence and
#: arousal too (synth-affwild2); our Table IX rows are its test split.
GAN_TESTBED_DATABASE = "affwild2"


def gan_table9_on(database: str = GAN_TESTBED_DATABASE) -> dict[str, dict[Key, float]]:
    """Table IX's numbers keyed by `database` in place of Aff-Wild, to sit beside ours on that database."""
    return {row: {(database, metric): v for (_, metric), v in numbers.items()} for row, numbers in GAN_TABLE9.items()}
