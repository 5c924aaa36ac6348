from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from talkinghead_nb import pose as P


def test_the_45_parameters_in_network_order():
    assert P.NUM_PARAMETERS == 45 and len(set(P.KEYS)) == 45
    assert P.KEYS[0] == "eyebrow_troubled_left_index" and P.KEYS[-1] == "breathing_index"
    assert "mouth_delta" in P.KEYS and "mouth_smirk" in P.KEYS
    assert [k for k in P.KEYS if not k.endswith("_index")] == ["mouth_delta", "mouth_smirk"]
    assert P.BY_KEY["mouth_aaa_index"].index == 26 and P.BY_KEY["iris_rotation_x_index"].index == 37
    assert P.KEYS[P.ROTATION_SLICE] == ("head_x_index", "head_y_index", "neck_z_index", "body_y_index",
                                        "body_z_index", "breathing_index")


def test_categories_ranges_and_pairs():
    kinds = {p.category.kind for p in P.PARAMETERS}
    assert kinds == {"morph", "iris_rotation", "head_body_rotation", "breathing"}
    assert (P.BY_KEY["head_y_index"].low, P.BY_KEY["head_y_index"].high) == (-1, 1)
    assert (P.BY_KEY["breathing_index"].low, P.BY_KEY["breathing_index"].high) == (0, 1)
    left = P.BY_KEY["eye_wink_left_index"]
    assert left.side == "left" and P.BY_KEY[left.partner].partner == left.key
    assert sum(p.side is not None for p in P.PARAMETERS) == 2 * 15


def test_dict_vector_round_trip():
    pose = {"eye_wink_left_index": 0.5, "head_y_index": -0.25}
    vector = P.to_vector(pose)
    assert vector[P.BY_KEY["eye_wink_left_index"].index] == 0.5
    back = P.to_dict(vector)
    assert list(back) == list(P.KEYS) and back["head_y_index"] == -0.25
    assert np.array_equal(P.to_vector(back), vector)
    assert P.to_vector({"mouth_aaa_index": 1.0}, base=vector)[P.BY_KEY["head_y_index"].index] == -0.25


def test_batched_tensor():
    batch = P.to_tensor([{"mouth_aaa_index": 1.0}, np.zeros(45)], dtype=torch.float64)
    assert batch.shape == (2, 45) and batch.dtype == torch.float64 and batch[0, 26] == 1.0
    assert P.to_tensor({"neck_z_index": 0.1}).shape == (1, 45)
    assert P.to_tensor(np.zeros((3, 45))).shape == (3, 45)
    assert P.to_tensor(torch.zeros(45)).shape == (1, 45)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_rejected(bad):
    with pytest.raises(P.PoseError, match="head_x_index.*finite"):
        P.to_vector({"head_x_index": bad})
    vector = np.zeros(45, np.float32)
    vector[3] = bad
    with pytest.raises(P.PoseError, match="eyebrow_angry_right_index"):
        P.to_tensor(vector)


def test_unknown_keys_are_named():
    with pytest.raises(P.PoseError, match="'eye_winky_left_index', 'mouth_delta_index'"):
        P.to_vector({"eye_winky_left_index": 1, "mouth_delta_index": 0.2})


def test_ranges_and_types():
    with pytest.raises(P.PoseError, match=r"mouth_aaa_index.*1\.5.*\[0, 1\].*clip=True"):
        P.to_vector({"mouth_aaa_index": 1.5})
    assert P.to_vector({"mouth_aaa_index": 1.5}, clip=True)[26] == 1.0
    with pytest.raises(P.PoseError, match="not a number"):
        P.to_vector({"mouth_aaa_index": "wide"})
    with pytest.raises(P.PoseError, match="45 values"):
        P.to_vector([0.0] * 44)
