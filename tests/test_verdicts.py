"""Verdicts on the paper's claims from made-up per-seed numbers, each worked out by hand in its comment."""

import math

import pytest

from fbn_keras import verdicts
from fbn_keras.verdicts import CONTRADICTED, NOT_TESTABLE, SUPPORTED, Pair

K1, K2 = ("disfa", "au_f1"), ("bp4d", "au_f1")
PAIR = Pair("t", "A", "B", (K1, K2))


def test_supported_when_the_gap_exceeds_two_sd():
    # A per seed, mean of the two columns: 0.65, 0.67, 0.69 -> mean 0.67, sd 0.02.
    # B: 0.55 every seed -> sd 0. Gap 0.12 > 2 x 0.02: supported.
    scores = {"A": {0: {K1: 0.60, K2: 0.70}, 1: {K1: 0.62, K2: 0.72}, 2: {K1: 0.64, K2: 0.74}},
              "B": {s: {K1: 0.50, K2: 0.60} for s in range(3)}}
    v = verdicts.verdict(scores, PAIR)
    assert v.verdict == SUPPORTED
    assert v.gap == pytest.approx(0.12) and v.sd == pytest.approx(0.02) and v.seeds == 3
    # The same numbers with the roles swapped: the paper's direction is wrong on ours.
    assert verdicts.verdict(scores, Pair("t", "B", "A", (K1, K2))).verdict == CONTRADICTED


def test_not_testable_when_the_gap_is_within_two_sd():
    # A: 0.5, 0.7 -> mean 0.6, sd 0.1414; B: 0.55, 0.55. Gap 0.05 < 0.283.
    scores = {"A": {0: {K1: 0.5}, 1: {K1: 0.7}}, "B": {0: {K1: 0.55}, 1: {K1: 0.55}}}
    v = verdicts.verdict(scores, Pair("t", "A", "B", (K1,)))
    assert v.verdict == NOT_TESTABLE and "< 2 sd" in v.reason
    assert v.sd == pytest.approx(math.sqrt(0.02))


def test_columns_near_chance_are_left_out():
    expr = ("rafdb", "expr_mean_diag")   # chance 1/7 = 0.143; 1.5x = 0.214
    # On expr A's mean 0.20 is within 1.5x chance: only K1 decides (A 0.6 vs B 0.4, sd 0): supported.
    scores = {"A": {s: {K1: 0.6, expr: 0.20} for s in range(2)}, "B": {s: {K1: 0.4, expr: 0.9} for s in range(2)}}
    v = verdicts.verdict(scores, Pair("t", "A", "B", (K1, expr)))
    assert v.verdict == SUPPORTED and v.keys == (K1,)
    # Only the near-chance column: not testable, and the reason names it.
    v = verdicts.verdict(scores, Pair("t", "A", "B", (expr,)))
    assert v.verdict == NOT_TESTABLE and "near chance on rafdb/expr_mean_diag" in v.reason
    # 0.22 is above 0.214: kept; B ahead by 0.68: contradicted.
    scores["A"] = {s: {expr: 0.22} for s in range(2)}
    assert verdicts.verdict(scores, Pair("t", "A", "B", (expr,))).verdict == CONTRADICTED


def test_ccc_at_or_below_zero_is_chance():
    assert verdicts.near_chance(0.0, verdicts.chance_of(("affwild", "ccc_v")))
    assert not verdicts.near_chance(0.01, verdicts.chance_of(("affwild", "ccc_v")))
    # A measured level for one column overrides the metric's default.
    assert verdicts.chance_of(("emotionet", "au_mean_acc"), {("emotionet", "au_mean_acc"): 0.9}) == 0.9


def test_one_seed_or_missing_numbers_are_not_testable():
    one = {"A": {0: {K1: 0.9}}, "B": {0: {K1: 0.4}}}
    v = verdicts.verdict(one, Pair("t", "A", "B", (K1,)))
    assert v.verdict == NOT_TESTABLE and "1 seed(s)" in v.reason
    v = verdicts.verdict({"A": {0: {K1: 0.9}, 1: {K1: 0.9}}}, Pair("t", "A", "B", (K1,)))
    assert v.verdict == NOT_TESTABLE and "no numbers" in v.reason


def test_a_claim_of_several_pairs():
    s, c, n = (verdicts.Verdict(x, "") for x in (SUPPORTED, CONTRADICTED, NOT_TESTABLE))
    assert verdicts.combine([s, s]) == SUPPORTED
    assert verdicts.combine([s, n]) == NOT_TESTABLE
    assert verdicts.combine([s, n, c]) == CONTRADICTED


def _claim(claim_id):
    return next(c for c in verdicts.CLAIMS if c.id == claim_id)


def test_claims_read_the_direction_from_the_papers_tables():
    # Table 6, EmotioNet AU mean accuracy: none 0.94, coann 0.84, soft 0.94, dm 0.92, coann+soft 0.87,
    # coann+soft+dm 0.84, soft+dm 0.94: none above the four lower rows; the two ties are no claim.
    claim = _claim("table6-emotionet-acc-none")
    assert {(p.better, p.worse) for p in claim.pairs} == {
        ("none", "coann"), ("none", "dm"), ("none", "coann+soft"), ("none", "coann+soft+dm")}
    # Table 7, EmotioNet: fine-tuned with all couplings (0.281, 0.318) below zero-shot with them (0.312, 0.329).
    (pair,) = _claim("table7-finetune-emotionet-all").pairs
    assert (pair.better, pair.worse) == ("zero-shot, all coupling losses", "fine-tuned, all coupling losses")
    # Table 2: VGG-FACE above both other trunks on the mean of its 16 columns.
    for other in ("resnet50", "densenet121"):
        (pair,) = _claim(f"table2-vgg-{other}").pairs
        assert (pair.better, pair.worse, len(pair.keys)) == ("vgg_face", other, 16)
    # soft+dm best: above each of the other six rows of Table 6 (coann+dm has no row).
    assert len(_claim("table6-soft+dm-best").pairs) == 6


def test_judge_and_line():
    claim = _claim("table6-emotionet-acc-none")
    acc = ("emotionet", "au_mean_acc")
    # none 0.95 every seed; coann 0.85, 0.87 (sd 0.0141): gap 0.09 > 0.028. Other three: no numbers.
    scores = {"table6": {"none": {0: {acc: 0.95}, 1: {acc: 0.95}}, "coann": {0: {acc: 0.85}, 1: {acc: 0.87}}}}
    overall, found = verdicts.judge(claim, scores)
    assert overall == NOT_TESTABLE and found[0].verdict == SUPPORTED
    assert verdicts.line(claim, overall, found).startswith("[NOT TESTABLE] Table 6: EmotioNet")


def test_a_tie_claim_is_supported_by_a_gap_within_two_sd_and_contradicted_by_a_clear_one():
    # Tie within noise: A 0.5, 0.7 (sd 0.1414), B 0.55, 0.55: gap 0.05 < 0.283 -> the tie is supported.
    K = ("affwild", "ccc_valence")
    pair = Pair("video2", "A", "B", (K,))
    close = {"A": {0: {K: 0.5}, 1: {K: 0.7}}, "B": {0: {K: 0.55}, 1: {K: 0.55}}}
    claim = verdicts.Claim("tie", "video2", "A ties B", (pair,), tie=True)
    assert verdicts.judge(claim, {"video2": close})[0] == SUPPORTED
    # A clear gap either way: A 0.80, 0.82 vs B 0.50, 0.52 (sd 0.0141, gap 0.30) -> no tie.
    apart = {"A": {0: {K: 0.80}, 1: {K: 0.82}}, "B": {0: {K: 0.50}, 1: {K: 0.52}}}
    overall, found = verdicts.judge(claim, {"video2": apart})
    assert overall == CONTRADICTED and found[0].reason.startswith("no tie")
    reverse = verdicts.Claim("tie", "video2", "B ties A", (Pair("video2", "B", "A", (K,)),), tie=True)
    assert verdicts.judge(reverse, {"video2": apart})[0] == CONTRADICTED
    # Both at chance (CCC <= 0): not testable, not a tie.
    flat = {"A": {0: {K: 0.0}, 1: {K: -0.01}}, "B": {0: {K: 0.0}, 1: {K: 0.0}}}
    assert verdicts.judge(claim, {"video2": flat})[0] == NOT_TESTABLE


def test_derived_gains_per_seed():
    """AffWildNet minus the CNN per seed and key (video2); the audio stream's gain per dimension (video4)."""
    from fbn_keras import experiments

    v, a = ("affwild", "ccc_valence"), ("affwild", "ccc_arousal")
    v2, a2 = ("affwild2", "ccc_valence"), ("affwild2", "ccc_arousal")
    scores = {"video2": {"affwildnet": {0: {v: 0.9, a: 0.8}, 1: {v: 0.8, a: 0.7}},
                         "cnn": {0: {v: 0.7, a: 0.6}, 1: {v: 0.7, a: 0.6}, 2: {v: 0.1, a: 0.1}}},
              "video4": {"av-mt-vgg-gru": {0: {v2: 0.50, a2: 0.60}},
                         "mt-vgg-gru": {0: {v2: 0.48, a2: 0.50}}}}
    experiments.derived_scores(scores)
    gain = scores["video2"]["gain, context"]
    assert sorted(gain) == [0, 1]                                   # seed 2 has no AffWildNet run
    assert gain[0][v] == pytest.approx(0.2) and gain[1][a] == pytest.approx(0.1)
    assert "gain, control" not in scores["video2"]                  # no control runs given
    assert scores["video4"]["audio gain, arousal"][0][("affwild2", "gain")] == pytest.approx(0.10)
    assert scores["video4"]["audio gain, valence"][0][("affwild2", "gain")] == pytest.approx(0.02)
