"""The synthetic AFEW (clips of one expression), BP4D+ and EmotioNet compound sets: their labels mimic the
real databases' (main paper Section 4)."""

import numpy as np

from fbn_keras import taxonomy
from fbn_keras.synthetic import databases


def test_afew_clips_hold_one_expression_and_are_the_groups():
    samples = list(databases.generate("synth-afew", "train", n=120))
    clips: dict[str, list] = {}
    for s in samples:
        clips.setdefault(s.group, []).append(s)
    for frames in list(clips.values())[:-1]:          # the last clip may be cut by n
        assert 8 <= len(frames) <= 16
        assert len({s.expr for s in frames}) == 1 and frames[0].expr >= 0
        assert [s.frame for s in frames] == list(range(1, len(frames) + 1))
    assert all(s.va is None and s.au is None and s.compound == -1 for s in samples)   # expressions only
    # Onset to apex: the last frame of a non-neutral clip moves further from neutral than the first.
    first, *_, last = next(f for f in clips.values() if f[0].expr != 0)
    assert np.abs(last.intensities).sum() > np.abs(first.intensities).sum()


def test_bp4dplus_annotates_its_ten_aus():
    s = next(databases.generate("synth-bp4dplus", "test", n=1))
    assert s.au_mask.sum() == 10
    assert [taxonomy.AUS[i] for i in np.flatnonzero(s.au_mask)] == sorted(taxonomy.database("bp4dplus").aus)
    assert s.expr == -1 and s.va is None


def test_emotionet_compound_mixes_six_basic_and_its_compound_classes():
    samples = list(databases.generate("synth-emotionet-compound", "train", n=300))
    basic = [s for s in samples if s.expr >= 0]
    compound = [s for s in samples if s.compound >= 0]
    assert len(basic) + len(compound) == 300                       # exactly one of the two labels
    assert {s.expr for s in basic} == set(taxonomy.BASIC_WITHOUT_NEUTRAL)   # no neutral
    assert {s.compound for s in compound} <= set(taxonomy.EMOTIONET_COMPOUND_SUBSET)
    # Uniform over the 6 + 10 classes: 6/16 of 300 = 112.5 basic faces expected (sd 8.4).
    assert 80 < len(basic) < 145
