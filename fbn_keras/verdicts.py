"""The paper's claims about Tables 2–7 as data, and a verdict on each from our numbers over seeds.

A claim is "method A scores above method B" on the mean over some of a
table's (database, metric) columns. Its direction is not typed in by hand: it
is read from the paper's own numbers (`fbn_keras.paper_results`), so a claim
says exactly what the paper's table shows. A claim made of several such pairs
("soft+dm is best") holds when every pair does.

A pair's verdict from our numbers (`verdict`):

* columns where either method's mean over seeds lies within `CHANCE_FACTOR` × chance
  are left out (a number there says nothing about the method); none left: "not testable";
* per seed (seeds both methods have), the mean over the remaining columns; fewer than
  `MIN_SEEDS` seeds: "not testable";
* gap = mean_A − mean_B over seeds; |gap| < `SD_FACTOR` × the larger sample sd (ddof 1):
  "not testable"; otherwise "supported" when the gap has the paper's sign, else "contradicted".

Everything here is pure (numbers in, verdicts out), tested on numbers worked out by hand.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from typing import Mapping, Optional, Sequence

from fbn_keras import paper_results

Key = paper_results.Key
#: {method: {seed: {(database, metric): value}}}: our numbers as the runner's results give them.
Scores = Mapping[str, Mapping[int, Mapping[Key, float]]]

SUPPORTED, CONTRADICTED, NOT_TESTABLE = "supported", "contradicted", "not testable"
#: A gap smaller than this many sample sds over seeds is not evidence either way.
SD_FACTOR = 2.0
#: A number below this multiple of chance is treated as chance.
CHANCE_FACTOR = 1.5
MIN_SEEDS = 2

#: Chance level of each metric (a constant or uniformly random prediction), by metric name; a
#: (database, metric) key overrides it. CCC: 0 (uncorrelated). Expression F1, accuracy and mean
#: diagonal: 1/7 (seven classes, uniform guess). AU F1: 0.2 and mean accuracy 0.5 are coarse
#: defaults (both depend on each AU's base rate); the runner's results may carry measured levels.
#: Compound: RAF-DB's 11 classes, EmotioNet's 16 (Section 4).
CHANCE: dict[str | Key, float] = {
    "ccc_v": 0.0, "ccc_a": 0.0,
    "expr_f1": 1 / 7, "expr_acc": 1 / 7, "expr_mean_diag": 1 / 7,
    "au_f1": 0.2, "au_mean_acc": 0.5,
    "compound_mean_diag": 1 / 11, "compound_f1": 1 / 16, "compound_uar": 1 / 16,
    # The journal's video tables (fbn_keras/evaluate_sequences.py's names): CCC 0; Table IV's totals from
    # the parts' chance levels (0.67/7 + 0.33/7; 0.5·0.2 + 0.5·0.5); a difference of two methods ("gain")
    # has no chance level.
    "ccc_valence": 0.0, "ccc_arousal": 0.0, "ccc_mean": 0.0,
    "expr_total": 1 / 7, "au_total": 0.35, "au_acc": 0.5,
    # The generation paper's Tables X-XI: the support-weighted F1 of a uniform guess (1/7 per class).
    "expr_f1_weighted": 1 / 7,
    "gain": -math.inf,
    # The generation paper's Table IX (fbn_keras/gan_evaluate.py's names): AU F1s as au_f1, the total AU
    # accuracy as au_mean_acc (coarse: a constant "absent" scores 1 - base rate).
    "au_f1_weighted": 0.2, "au_f1_macro": 0.2, "au_total_acc": 0.5,
    # FaceRNET's Pearson rho (uncorrelated: 0).
    "pearson_mean": 0.0,
}


def chance_of(key: Key, chance: Optional[Mapping[str | Key, float]] = None) -> float:
    """Chance level of a (database, metric) column: `chance`'s key, else its metric, else `CHANCE`'s."""
    for table in (chance or {}, CHANCE):
        if key in table:
            return float(table[key])
        if key[1] in table:
            return float(table[key[1]])
    raise KeyError(f"No chance level for {key}; add it to verdicts.CHANCE")


def near_chance(value: float, level: float) -> bool:
    """True when `value` is within CHANCE_FACTOR × chance (for chance 0, CCC: at or below 0)."""
    return value <= CHANCE_FACTOR * level


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample sd (ddof 1; NaN for fewer than 2 values)."""
    values = [float(v) for v in values]
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else math.nan)


@dataclasses.dataclass(frozen=True)
class Pair:
    """Method `better` above method `worse` on the mean over `keys`, in table `table` (our method names)."""

    table: str
    better: str
    worse: str
    keys: tuple[Key, ...]


@dataclasses.dataclass(frozen=True)
class Claim:
    """One claim of the paper: its words, where it is, and the pairs it consists of (all must hold)."""

    id: str
    table: str
    text: str
    pairs: tuple[Pair, ...]
    tie: bool = False      # the claim is that the two methods tie: a gap under 2 sd supports it
    #: Chance levels this claim overrides, (metric or key, level): a claim against a baseline that sits at
    #: chance by construction (FaceRNET's mean predictor, rho = 0) sets that metric's level to -inf.
    chance: tuple[tuple[str | Key, float], ...] = ()


@dataclasses.dataclass(frozen=True)
class Verdict:
    verdict: str
    reason: str
    gap: float = math.nan          # our mean_A - mean_B over seeds
    sd: float = math.nan           # the larger of the two sample sds
    seeds: int = 0
    keys: tuple[Key, ...] = ()     # the columns it was decided on


def verdict(scores: Scores, pair: Pair, chance: Optional[Mapping[str | Key, float]] = None) -> Verdict:
    """The verdict on one pair from our per-seed numbers (see the module docstring)."""
    a, b = scores.get(pair.better, {}), scores.get(pair.worse, {})
    seeds = sorted(set(a) & set(b))
    keys, dropped = [], []
    for key in pair.keys:
        if not seeds or any(key not in s[seed] or math.isnan(s[seed][key]) for s in (a, b) for seed in seeds):
            continue
        means = [mean_sd([s[seed][key] for seed in seeds])[0] for s in (a, b)]
        (dropped if any(near_chance(m, chance_of(key, chance)) for m in means) else keys).append(key)
    if not keys:
        why = (f"near chance on {', '.join('/'.join(k) for k in dropped)}" if dropped
               else "no numbers of ours for both methods")
        return Verdict(NOT_TESTABLE, why, seeds=len(seeds))
    if len(seeds) < MIN_SEEDS:
        return Verdict(NOT_TESTABLE, f"{len(seeds)} seed(s); {MIN_SEEDS} needed", seeds=len(seeds), keys=tuple(keys))
    per_seed = [[statistics.fmean(s[seed][k] for k in keys) for seed in seeds] for s in (a, b)]
    (ma, sa), (mb, sb) = mean_sd(per_seed[0]), mean_sd(per_seed[1])
    gap, sd = ma - mb, max(sa, sb)
    common = dict(gap=gap, sd=sd, seeds=len(seeds), keys=tuple(keys))
    if abs(gap) < SD_FACTOR * sd or gap == 0:
        return Verdict(NOT_TESTABLE, f"gap {gap:+.3f} < {SD_FACTOR:g} sd ({sd:.3f})", **common)
    return Verdict(SUPPORTED if gap > 0 else CONTRADICTED, f"gap {gap:+.3f}, sd {sd:.3f}", **common)


def combine(verdicts: Sequence[Verdict]) -> str:
    """A claim of several pairs: contradicted if any pair is, supported if all are, else not testable."""
    found = [v.verdict for v in verdicts]
    if CONTRADICTED in found:
        return CONTRADICTED
    return SUPPORTED if found and all(v == SUPPORTED for v in found) else NOT_TESTABLE


# === The claims, read from the paper's tables ===

def paper_mean(numbers: Mapping[str, Mapping[Key, float]], method: str, keys: Sequence[Key]) -> float:
    return statistics.fmean(numbers[method][k] for k in keys)


def oriented(table: str, paper: Mapping[str, Mapping[Key, float]], a: str, b: str, keys: Sequence[Key],
             names: Optional[Mapping[str, str]] = None) -> Optional[Pair]:
    """The pair (a, b) or (b, a) in the order the paper's numbers show on `keys` (paper methods `a`, `b`;
    `names` maps them to our method names); None when the paper's means tie."""
    keys = tuple(k for k in keys if k in paper[a] and k in paper[b])
    gap = paper_mean(paper, a, keys) - paper_mean(paper, b, keys)
    if abs(gap) < 1e-9:
        return None
    hi, lo = (a, b) if gap > 0 else (b, a)
    names = names or {}
    return Pair(table, names.get(hi, hi), names.get(lo, lo), keys)


def _t(pairs) -> tuple[Pair, ...]:
    return tuple(p for p in pairs if p is not None)


def _claims() -> tuple[Claim, ...]:
    t2, t6, t7 = paper_results.TABLE2, paper_results.TABLE6, paper_results.TABLE7
    t2_keys = tuple(t2["vgg_face"])
    t6_keys = paper_results.TABLE6_COLUMNS
    single, fbn = "VGG-FACE single task", "FaceBehaviorNet"
    claims = [
        Claim(f"table2-vgg-{other}", "table2",
              f"Table 2: VGG-FACE above {other} (mean over the table's columns: paper "
              f"{paper_mean(t2, 'vgg_face', t2_keys):.3f} vs {paper_mean(t2, other, t2_keys):.3f})",
              _t([oriented("table2", t2, "vgg_face", other, t2_keys)]))
        for other in ("resnet50", "densenet121")
    ]
    for n, table in ((3, paper_results.TABLE3), (4, paper_results.TABLE4), (5, paper_results.TABLE5)):
        keys = tuple(k for k in table[fbn] if k in table[single])
        claims.append(Claim(f"table{n}-multi-task", f"table{n}",
                            f"Table {n}: FaceBehaviorNet (multi-task) above the single-task network (paper "
                            f"{paper_mean(table, fbn, keys):.3f} vs {paper_mean(table, single, keys):.3f})",
                            _t([oriented(f"table{n}", table, fbn, single, keys)])))
    for c in t6:
        if c != "none":
            pair = oriented("table6", t6, c, "none", t6_keys)
            claims.append(Claim(f"table6-{c}-vs-none", "table6",
                                f"Table 6: '{pair.better}' above '{pair.worse}' (mean over the 16 columns: "
                                f"paper {paper_mean(t6, pair.better, t6_keys):.3f} vs "
                                f"{paper_mean(t6, pair.worse, t6_keys):.3f})", (pair,)))
    claims.append(Claim("table6-soft+dm-best", "table6",
                        f"Table 6: 'soft+dm' has the best mean over the columns (paper "
                        f"{paper_mean(t6, 'soft+dm', t6_keys):.3f})",
                        _t(oriented("table6", t6, "soft+dm", c, t6_keys) for c in t6 if c != "soft+dm")))
    acc = (("emotionet", "au_mean_acc"),)
    claims.append(Claim("table6-emotionet-acc-none", "table6",
                        "Table 6: EmotioNet's AU mean accuracy is highest without coupling (0.94; tied by "
                        "'soft' and 'soft+dm', above the other four)",
                        _t(oriented("table6", t6, "none", c, acc) for c in t6 if c != "none")))
    zs_none, zs_all = "zero-shot, no coupling loss", "zero-shot, all coupling losses"
    ft_none, ft_all = "fine-tuned, no coupling loss", "fine-tuned, all coupling losses"
    raf = (("rafdb", "compound_mean_diag"),)
    emo = (("emotionet", "compound_f1"), ("emotionet", "compound_uar"))
    claims += [
        Claim("table7-zero-shot-couplings", "table7",
              "Table 7: zero-shot with all coupling losses above zero-shot without (every column)",
              _t([oriented("table7", t7, zs_all, zs_none, raf + emo)])),
        Claim("table7-finetune-rafdb", "table7",
              "Table 7: fine-tuning above zero-shot on RAF-DB (0.458 vs 0.342 without coupling, "
              "0.483 vs 0.364 with)",
              _t([oriented("table7", t7, ft_none, zs_none, raf), oriented("table7", t7, ft_all, zs_all, raf)])),
        Claim("table7-finetune-emotionet-all", "table7",
              "Table 7: on EmotioNet, fine-tuning with all coupling losses is below zero-shot with them "
              "(F1 0.281 vs 0.312, UAR 0.318 vs 0.329)",
              _t([oriented("table7", t7, ft_all, zs_all, emo)])),
    ]
    return tuple(claims)


#: Every claim of the paper's Tables 2–7 that our runs can check.
CLAIMS: tuple[Claim, ...] = _claims()

#: The control (ours, not the paper's): soft+dm coupled through Table 1's relation, on data generated
#: from Table 1, against the same coupling through the journal's empirical Aff-Wild2 table. If only the
#: first beats no coupling, the benefit comes from the test-bed's construction.
CONTROL_CLAIMS: tuple[Claim, ...] = (
    Claim("control-cognitive", "control", "Control: soft+dm with Table 1's relation above no coupling",
          (Pair("control", "soft+dm, cognitive", "none", paper_results.TABLE6_COLUMNS),)),
    Claim("control-affwild2", "control",
          "Control: soft+dm with the empirical Aff-Wild2 relation above no coupling",
          (Pair("control", "soft+dm, affwild2", "none", paper_results.TABLE6_COLUMNS),)),
)


def judge(claim: Claim, scores_by_table: Mapping[str, Scores],
          chance: Optional[Mapping[str | Key, float]] = None) -> tuple[str, list[Verdict]]:
    """(overall verdict, one Verdict per pair) of `claim` on our numbers, per table."""
    levels = {**(chance or {}), **dict(claim.chance)}
    found = [verdict(scores_by_table.get(p.table, {}), p, levels) for p in claim.pairs]
    if claim.tie:
        found = [tie_verdict(v) for v in found]
    return combine(found), found


def tie_verdict(v: Verdict) -> Verdict:
    """A tie claim's verdict from the pair's: a gap under `SD_FACTOR` sd supports it, a clear gap either way
    contradicts it; near chance, too few seeds or no numbers stay not testable."""
    if v.verdict == NOT_TESTABLE and v.reason.startswith("gap"):
        return dataclasses.replace(v, verdict=SUPPORTED)
    if v.verdict in (SUPPORTED, CONTRADICTED):
        return dataclasses.replace(v, verdict=CONTRADICTED, reason=f"no tie: {v.reason}")
    return v


def line(claim: Claim, overall: str, found: Sequence[Verdict]) -> str:
    """One printable line: the verdict, the claim, and why."""
    why = "; ".join(f"{p.better} vs {p.worse}: {v.verdict} ({v.reason}, {v.seeds} seeds)"
                    for p, v in zip(claim.pairs, found))
    return f"[{overall.upper()}] {claim.text}. Ours: {why}"


# === The journal's video tables (Kollias & Zafeiriou, Tables II–IV) ===

def _video_claims() -> tuple[Claim, ...]:
    t2, t3, t4 = paper_results.JOURNAL_TABLE2, paper_results.JOURNAL_TABLE3, paper_results.JOURNAL_TABLE4
    va2 = (("affwild", "ccc_valence"), ("affwild", "ccc_arousal"))
    va3 = (("omg", "ccc_valence"), ("omg", "ccc_arousal"))
    va4 = (("affwild2", "ccc_valence"), ("affwild2", "ccc_arousal"))

    def paper_claim(cid, table, paper, a, b, keys, words):
        pair = oriented(table, paper, a, b, keys)
        return Claim(cid, table, f"{words} (paper mean {paper_mean(paper, pair.better, pair.keys):.3f} vs "
                                 f"{paper_mean(paper, pair.worse, pair.keys):.3f})", (pair,))

    gain = (("affwild", "ccc_valence"), ("affwild", "ccc_arousal"))
    return (
        paper_claim("video2-affwildnet-cnn", "video2", t2, "affwildnet", "cnn", va2,
                    "Journal Table II: AffWildNet (CNN-RNN) above the per-frame CNN, with context"),
        paper_claim("video2-lstm-cnn", "video2", t2, "vgg-face-lstm", "cnn", va2,
                    "Journal Table II: VGG-FACE-LSTM above the per-frame CNN"),
        paper_claim("video2-affwildnet-lstm", "video2", t2, "affwildnet", "vgg-face-lstm", va2,
                    "Journal Table II: AffWildNet above VGG-FACE-LSTM"),
        Claim("video2-context-gain", "video2", "Ours: AffWildNet's gain over the CNN is larger on video with the "
              "context knobs (lag, bursts, motion) than on the control without them",
              (Pair("video2", "gain, context", "gain, control", gain),)),
        Claim("video2-control-tie", "video2", "Ours: on the control video (no context knobs) AffWildNet and the "
              "CNN tie", (Pair("video2", "affwildnet, control", "cnn, control", gain),), tie=True),
        paper_claim("video3-3rnn-1rnn", "video3", t3, "cnn3rnn", "cnn1rnn", va3,
                    "Journal Table III: CNN-3RNN above CNN-1RNN"),
        paper_claim("video3-decision-members", "video3", t3, "decision-level fusion", "cnn3rnn", va3,
                    "Journal Table III: decision-level fusion (eq. 3) above its better member, CNN-3RNN"),
        paper_claim("video3-model-decision", "video3", t3, "fusion-rnn", "decision-level fusion", va3,
                    "Journal Table III: model-level fusion (+ RNN) above decision-level fusion"),
        paper_claim("video3-rnn-fc", "video3", t3, "fusion-rnn", "fusion-fc", va3,
                    "Journal Table III: model-level fusion + RNN above model-level fusion + FC"),
        Claim("video4-gru-vgg", "video4", "Journal Table IV: MT-VGG-GRU above MT-VGG on every task of Aff-Wild2 "
              "(VA, expressions, AUs)",
              _t([oriented("video4", t4, "mt-vgg-gru", "mt-vgg", keys)
                  for keys in (va4, (("affwild2", "expr_total"),), (("affwild2", "au_total"),))])),
        paper_claim("video4-av-visual", "video4", t4, "av-mt-vgg-gru", "mt-vgg-gru",
                    va4 + (("affwild2", "expr_total"), ("affwild2", "au_total")),
                    "Journal Table IV: A/V-MT-VGG-GRU above the visual MT-VGG-GRU"),
        Claim("video4-audio-arousal", "video4", "Journal Table IV: audio helps arousal more than valence "
              "(A/V minus visual: paper +0.07 arousal, +0.01 valence)",
              (Pair("video4", "audio gain, arousal", "audio gain, valence", (("affwild2", "gain"),)),)),
    )


#: Every claim of the journal's Tables II–IV our video runs can check (and two of ours on the context knobs).
VIDEO_CLAIMS: tuple[Claim, ...] = _video_claims()


# === MTANet's Table I (Zhang & Gu, ABAW 2020) and FaceRNET's Tables 2-3 (Kollias et al., ABAW5) ===

def _other_claims() -> tuple[Claim, ...]:
    t1 = paper_results.MTANET_TABLE1
    keys1 = tuple(t1["se_resnet50"])

    def mtanet_claim(cid, a, b, words):
        pair = oriented("mtanet", t1, a, b, keys1)
        return Claim(cid, "mtanet", f"{words} (paper mean over V, A, AU, Expr {paper_mean(t1, pair.better, keys1):.3f} "
                                    f"vs {paper_mean(t1, pair.worse, keys1):.3f})", (pair,))

    t2, t3 = paper_results.FACERNET_TABLE2, paper_results.FACERNET_TABLE3
    rho = (("hume-reaction", "pearson_mean"),)
    features = {"va+expr+au": "FaceRNET", "va": "features va", "expr": "features expr", "au": "features au"}
    return (
        mtanet_claim("mtanet-senet-resnext", "se_resnet50", "resnext50", "MTANet Table I: SENet-50 above ResNeXt-50"),
        mtanet_claim("mtanet-senet-cbam", "se_resnet50", "resnext50_cbam",
                     "MTANet Table I: SENet-50 above ResNeXt-50 + CBAM (\"SENet-50 achieve the best performance\")"),
        mtanet_claim("mtanet-cbam-resnext", "resnext50_cbam", "resnext50",
                     "MTANet Table I: CBAM's attention helps ResNeXt-50"),
        Claim("mtanet-uncertainty-sum", "mtanet",
              "Not in the paper (it reports no ablation; its stage 2 fine-tunes with eq. 5, implying a gain): "
              "SENet-50 with eq. 5's uncertainty weighting above the plain sum",
              (Pair("mtanet", "se_resnet50, uncertainty", "se_resnet50", keys1),)),
        Claim("facernet-all-features", "facernet2",
              "FaceRNET Table 2: all three REC representations (VA, expressions, AUs) above each alone (paper "
              f"{t2['va+expr+au'][rho[0]]:.3f} vs VA {t2['va'][rho[0]]:.3f}, expressions {t2['expr'][rho[0]]:.3f}, "
              f"AUs {t2['au'][rho[0]]:.3f})",
              _t(oriented("facernet2", t2, "va+expr+au", f, rho, features) for f in ("va", "expr", "au"))),
        Claim("facernet-mask", "facernet3",
              "FaceRNET Table 3: FaceRNET above FaceRNET w/o Mask & Routing (paper "
              f"{t3['FaceRNET'][rho[0]]:.3f} vs {t3['FaceRNET w/o Mask & Routing'][rho[0]]:.3f})",
              _t([oriented("facernet3", t3, "FaceRNET", "FaceRNET w/o Mask & Routing", rho,
                           {"FaceRNET w/o Mask & Routing": "no mask"})])),
        Claim("facernet-mean-predictor", "facernet3",
              "Ours: FaceRNET above the training-set mean predictor (rho 0 by construction: the claim is that "
              "FaceRNET's mean rho is clearly above 0)", (Pair("facernet3", "FaceRNET", "mean predictor", rho),),
              chance=(("pearson_mean", -math.inf),)),
        Claim("facernet-no-gru", "facernet3",
              "Ours: FaceRNET above the same network without its GRU (the per-frame representations straight to "
              "the Mask layer and dense layer): the synthetic reactions are read from AU trajectories over time",
              (Pair("facernet3", "FaceRNET", "no GRU", rho),)),
    )


# === The generation paper's semi-supervised GAN (Section V-A1, Table IX) ===

def _gan_claims() -> tuple[Claim, ...]:
    """Table IX's claims in the direction of its numbers (on our stand-in database), and ours on scarce labels."""
    t9 = paper_results.gan_table9_on()
    db = paper_results.GAN_TESTBED_DATABASE
    va = tuple((db, m) for m in ("ccc_v", "ccc_a"))
    au = tuple((db, m) for m in ("au_f1_weighted", "au_f1_macro", "au_total_acc"))

    def claim(cid, a, b, keys, words):
        pair = oriented("gan", t9, a, b, keys)
        return Claim(cid, "gan", f"{words} (paper mean {paper_mean(t9, pair.better, pair.keys):.3f} vs "
                                 f"{paper_mean(t9, pair.worse, pair.keys):.3f})", (pair,))

    return (
        claim("gan-au-only-vs-joint-ccc", "only AU", "VA+AU, CCC+CE", au,
              "Generation paper Table IX: D classifying only the AUs above D that also predicts VA (CCC loss), "
              "on F1 weighted, macro and total accuracy"),
        claim("gan-au-only-vs-joint-mse", "only AU", "VA+AU, MSE+CE", au,
              "Generation paper Table IX: D classifying only the AUs above D that also predicts VA (MSE loss)"),
        claim("gan-va-only-vs-joint-mse", "only VA, MSE", "VA+AU, MSE+CE", va,
              "Generation paper Table IX: with the MSE loss, D predicting only VA above D that also classifies "
              "the AUs, on CCC-V and CCC-A"),
        claim("gan-va-joint-vs-only-ccc", "only VA, CCC", "VA+AU, CCC+CE", va,
              "Generation paper Table IX: with the CCC loss, D that also classifies the AUs slightly above D "
              "predicting only VA (the table's numbers; its text reads the two VA-only rows together the other way)"),
        claim("gan-va-mse-vs-ccc", "only VA, MSE", "only VA, CCC", va,
              "Generation paper Table IX: D predicting only VA does better with the MSE loss than with the CCC loss"),
        Claim("gan-fake-class-scarce", "gan",
              "Ours (the semi-supervised point of Section IV-A): with few labelled images, D with the fake class "
              "(trained against G) above the same D without it, on CCC-V, CCC-A and the AU F1s",
              (Pair("gan", "VA+AU, scarce labels", "VA+AU, no fake class, scarce labels", va + au[:2]),)),
    )


#: MTANet's and FaceRNET's claims our runs can check (and three of ours: eq. 5 vs the sum, the mean predictor,
#: the GRU), then Table IX's (and ours on the fake class with scarce labels).
OTHER_CLAIMS: tuple[Claim, ...] = _other_claims() + _gan_claims()


# === The generation paper's VGGFACE-GRU-attention (Section V-B, Tables X-XI) ===

def _attention_claims() -> tuple[Claim, ...]:
    t10, t11 = paper_results.ATTENTION_TABLE10, paper_results.ATTENTION_TABLE11
    va = tuple(k for k in paper_results.ATTENTION_KEYS if k[1].startswith("ccc"))
    expr = tuple(k for k in paper_results.ATTENTION_KEYS if k[1].startswith("expr"))
    # Our runs' names for the paper's rows (experiments.ATTENTION10_METHODS / ATTENTION11_METHODS).
    ten = {"(0.5, 0.5)": "attention", "(0, 1)": "only expressions (0, 1)", "(1, 0)": "only VA (1, 0)"}
    best = "CCC, CE, 1e-3"
    eleven = {best: "attention", "CCC, MSE after softmax, 1e-3": "MSE after softmax",
              "CCC, MSE before softmax, 1e-3": "MSE before softmax", "MSE, CE, 1e-3": "MSE + CE"}

    def numbers(table, row, keys):
        return "/".join(f"{table[row][k]:.3f}" for k in keys)

    return (
        Claim("attention10-multi-task-expr", "attention10",
              "Generation paper Table X: eq. 6 with alpha = beta = 0.5 above the expression-only network (0, 1) on "
              f"accuracy and weighted / unweighted F1 (paper {numbers(t10, '(0.5, 0.5)', expr)} vs "
              f"{numbers(t10, '(0, 1)', expr)})",
              _t([oriented("attention10", t10, "(0.5, 0.5)", "(0, 1)", expr, ten)])),
        Claim("attention10-multi-task-va", "attention10",
              "Generation paper Table X: eq. 6 with alpha = beta = 0.5 above the VA-only network (1, 0) on CCC V, A "
              f"(paper {numbers(t10, '(0.5, 0.5)', va)} vs {numbers(t10, '(1, 0)', va)})",
              _t([oriented("attention10", t10, "(0.5, 0.5)", "(1, 0)", va, ten)])),
        Claim("attention11-ce-mse", "attention11",
              "Generation paper Table XI: cross entropy above both MSE expression losses at learning rate 1e-3, on "
              f"accuracy and weighted / unweighted F1 (paper {numbers(t11, best, expr)} vs after softmax "
              f"{numbers(t11, 'CCC, MSE after softmax, 1e-3', expr)}, before softmax "
              f"{numbers(t11, 'CCC, MSE before softmax, 1e-3', expr)})",
              _t([oriented("attention11", t11, best, f"CCC, MSE {where} softmax, 1e-3", expr, eleven)
                  for where in ("after", "before")])),
        Claim("attention11-ccc-mse", "attention11",
              "Generation paper Table XI: the CCC loss (eq. 4) above the MSE VA loss at learning rate 1e-3, on CCC "
              f"V, A (paper {numbers(t11, best, va)} vs {numbers(t11, 'MSE, CE, 1e-3', va)})",
              _t([oriented("attention11", t11, best, "MSE, CE, 1e-3", va, eleven)])),
        Claim("attention-vs-none", "attention10",
              "Ours: the attention network above the same network with a plain second GRU (no attention), on the "
              "mean over the five columns, on synthetic video whose labels need context (label lag, degraded bursts, motion)",
              (Pair("attention10", "attention", "no attention", paper_results.ATTENTION_KEYS),)),
    )


#: The generation paper's claims about Tables X-XI our runs can check (and ours: attention vs none).
ATTENTION_CLAIMS: tuple[Claim, ...] = _attention_claims()
