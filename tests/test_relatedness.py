"""The empirical relatedness estimator of journal Table V (Section VI-B), its JSON form and `--relation PATH`."""

import json
import math

import numpy as np
import pytest

from fbn_keras import config, relatedness, taxonomy
from fbn_keras.synthetic import story

HAPPY, SAD, NEUTRAL = (taxonomy.expression_index(e) for e in ("happiness", "sadness", "neutral"))
AU4, AU12, AU15, AU25 = (taxonomy.au_index(a) for a in (4, 12, 15, 25))


def _six_frames():
    expr = np.array([HAPPY, HAPPY, HAPPY, SAD, NEUTRAL, -1])
    au = np.zeros((6, 17), np.float32)
    mask = np.ones((6, 17), np.float32)
    au[0, [AU12, AU25]] = 1          # happy: AU12 on, AU25 on
    au[1, AU12] = 1                  # happy: AU12 on, AU25 off
    mask[2] = 0                      # happy: only AU12 annotated, and off
    mask[2, AU12] = 1
    au[2, AU25] = np.nan             # unannotated: never read
    au[3, [AU4, AU15]] = 1           # sad: AU4, AU15 on
    au[4, AU12] = 1                  # neutral: no row
    au[5, AU12] = 1                  # no expression label: counts nowhere
    return expr, au, mask


def test_six_frames_by_hand():
    table = relatedness.estimate_relation(*_six_frames())
    assert set(table) == set(taxonomy.EXPRESSIONS) - {"neutral"}
    # AU12: on in 2 of the 3 happy frames annotating it; AU25: on in 1 of 2; every other AU 0 of 2-3
    assert table["happiness"].weights() == pytest.approx({12: 2 / 3, 25: 1 / 2})
    assert table["sadness"].weights() == pytest.approx({4: 1.0, 15: 1.0})
    assert table["fear"].weights() == {}
    assert all(e.prototypical == () for e in table.values())
    # a higher cut-off drops AU25 from happiness
    assert relatedness.estimate_relation(*_six_frames(), cutoff=0.6)["happiness"].weights() == pytest.approx({12: 2 / 3})
    on, annotated = relatedness.relation_counts(*_six_frames())
    assert (on[HAPPY, AU12], annotated[HAPPY, AU12], on[HAPPY, AU25], annotated[HAPPY, AU25]) == (2, 3, 1, 2)
    assert on[NEUTRAL, AU12] == 1 and annotated.sum() == 17 + 17 + 1 + 17 + 17


def _p_scaled_on():
    """P(strength·u ≥ ½) for strength ~ U(0.55, 1), u ~ U(0.85, 1.2): an active related AU's label is 1
    (story._activation_intensities); worked out by integrating P(u < ½/s) over s."""
    (s0, s1), (u0, u1) = story.STRENGTH_RANGE, (0.85, 1.2)
    s_star = story.AU_THRESHOLD / u0                     # below it some u fall short of the threshold
    miss = (story.AU_THRESHOLD * math.log(s_star / s0) - u0 * (s_star - s0)) / ((u1 - u0) * (s1 - s0))
    return 1.0 - miss


def test_estimator_recovers_the_generators_probabilities():
    """Frames drawn from the image test-bed's story: w(e, au) = w_cog·P(on | active) for the cognitive
    table's AUs, the spontaneous rate for the others; the estimate is within 0.04 of it (≥ 3.5 standard
    errors for the rarest expression, fear, at ~1,400 frames), and the cut-off keeps the same AUs."""
    rng = np.random.default_rng(0)
    n = 20000
    states = [story.draw_state(rng) for _ in range(n)]
    expr = np.array([s.expr for s in states])
    au = np.stack([story.au_labels(s.intensities) for s in states])
    mask = np.ones_like(au)
    mask[: n // 4, AU12] = 0                                           # partial annotation changes nothing
    on, annotated = relatedness.relation_counts(expr, au, mask)
    w = relatedness.relation_weights(on, annotated)
    cognitive = taxonomy.relation_weights("cognitive")
    want = np.where(cognitive > 0, cognitive * _p_scaled_on(), story.SPONTANEOUS_RATES[None, :])
    assert 0.99 < _p_scaled_on() < 0.995
    np.testing.assert_allclose(w, want, atol=0.04)
    table = relatedness.table_from_weights(w)
    for e, name in enumerate(taxonomy.EXPRESSIONS[1:], start=1):
        kept = {taxonomy.AUS[k] for k in range(17) if want[e, k] >= 0.1}
        assert set(table[name].weights()) == kept, name
    assert 14 in table["happiness"].weights()                          # AU14's spontaneous 0.15 passes 0.1


def test_json_round_trip_and_relation_matrix_from_a_path(tmp_path):
    path = tmp_path / "table.json"
    relatedness.save_relation(taxonomy.AFFWILD2_TABLE, path)
    loaded = relatedness.load_relation(path)
    assert {k: v.weights() for k, v in loaded.items()} == {k: v.weights() for k, v in taxonomy.AFFWILD2_TABLE.items()}
    np.testing.assert_array_equal(taxonomy.relation_matrix(str(path), weighted=True),
                                  taxonomy.relation_matrix("affwild2", weighted=True))
    # prototypical AUs and an AU outside the 17 (cognitive AU11) survive the trip too
    relatedness.save_relation(taxonomy.COGNITIVE_TABLE, path)
    np.testing.assert_array_equal(taxonomy.relation_weights(str(path)), taxonomy.relation_weights("cognitive"))
    assert relatedness.load_relation(path)["sadness"].observational[11] == 0.26


def test_config_takes_a_json_relation(tmp_path):
    from fbn_keras.losses import MultiTaskLoss

    path = tmp_path / "estimated.json"
    relatedness.save_relation(relatedness.estimate_relation(*_six_frames()), path)
    cfg = config.preset("tiny", relation=str(path))
    loss = MultiTaskLoss(cfg)
    assert loss.relation_dm[HAPPY, AU12] == 1 and loss.relation_dm.sum() == 4
    with pytest.raises(ValueError, match="relation must be one of .* or an existing .json table"):
        config.preset("tiny", relation=str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match="relation='nonesuch'"):
        config.preset("tiny", relation="nonesuch")


@pytest.mark.parametrize("content, message", [
    ("{not json", "is not JSON"),
    (json.dumps({"emotions": {}}), "is not a relation table"),
    (json.dumps({"format": relatedness.FORMAT, "emotions": {"joy": {}}}), "unknown emotion 'joy'"),
    (json.dumps({"format": relatedness.FORMAT, "emotions": {"fear": {"observational": {"5": 1.5}}}}),
     r"must be in \(0, 1\]"),
])
def test_load_relation_refuses_bad_files(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        relatedness.load_relation(path)


def test_bad_cutoff_is_refused():
    with pytest.raises(ValueError, match="cutoff must be in"):
        relatedness.table_from_weights(np.zeros((7, 17)), cutoff=0.0)


def test_cli_reads_a_built_folder(tmp_path, capsys):
    from fbn_keras.records.items import Item
    from fbn_keras.records.writer import write_shards

    expr, au, mask = _six_frames()
    au = np.nan_to_num(au)
    image = np.zeros((32, 32, 3), np.uint8)
    items = [Item("affwild2", "train", f"v/{i}", lambda: image, group="v", frame=i, aligned=True,
                  expr=int(expr[i]), au=au[i], au_mask=mask[i]) for i in range(6)]
    write_shards(items, tmp_path / "data", "affwild2", aligner="none", image_size=32)
    out = tmp_path / "table.json"
    assert relatedness.main(["--data", str(tmp_path / "data"), "--out", str(out)]) == 0
    table = relatedness.load_relation(out)
    assert table["happiness"].weights() == pytest.approx({12: 2 / 3, 25: 1 / 2}, abs=1e-6)
    printed = capsys.readouterr().out
    assert "12 (0.67), 25 (0.50) | 12 (0.82), 25 (0.70), 6 (0.57), 7 (0.83), 10 (0.63)" in printed
    with pytest.raises(SystemExit):
        relatedness.main(["--data", str(tmp_path / "data"), "--databases", "disfa", "--out", str(out)])
