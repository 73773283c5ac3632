"""The paper's numbers are transcribed consistently: Table 6's first row is Tables 3–5's FaceBehaviorNet row."""

from fbn_keras import paper_results as pr
from fbn_keras.config import COUPLINGS, BACKBONES


def test_table6_has_the_seven_couplings():
    assert set(pr.TABLE6) == set(COUPLINGS)
    assert all(len(row) == 16 for row in pr.TABLE6.values())


def test_no_coupling_row_equals_tables_3_to_5_and_table2_vgg():
    # The paper reports the same network three times: Table 2's VGG column, Tables 3–5's FaceBehaviorNet
    # rows and Table 6's "no coupling loss" row. They agree column by column.
    for key, value in pr.TABLE6["none"].items():
        assert pr.TABLE2["vgg_face"][key] == value, key
        assert pr.paper_value(*key) == value, key


def test_table2_backbones_and_soft_dm_best():
    assert set(pr.TABLE2) == set(BACKBONES)
    # The paper's claim: soft co-annotation + DM is best (or tied) on every column of Table 6.
    best = pr.TABLE6["soft+dm"]
    for name, row in pr.TABLE6.items():
        for key, value in row.items():
            assert best[key] >= value, (name, key)
