"""Tests for the keypoint-metadata registry (vitpose.datasets.metadata)."""

from __future__ import annotations

import dataclasses
import itertools
import pickle

import numpy as np
import pytest

from vitpose.datasets import DATASET_NAMES, DATASETS, DatasetInfo, get_dataset_info

EXPECTED = {  # name: (dataset_index, num_keypoints, is_animal)
    "coco": (0, 17, False),
    "aic": (1, 14, False),
    "mpii": (2, 16, False),
    "ap10k": (3, 17, True),
    "apt36k": (4, 17, True),
    "wholebody": (5, 133, False),
}

# COCO constants, written out from docs/reference.md.
COCO_NAMES = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
COCO_SIGMAS = (
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
    0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
)  # fmt: skip
COCO_FLIP_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
COCO_SKELETON = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
    (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip
COCO_UPPER = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
COCO_LOWER = (11, 12, 13, 14, 15, 16)
COCO_JOINT_WEIGHTS = (1, 1, 1, 1, 1, 1, 1, 1.2, 1.2, 1.5, 1.5, 1, 1, 1.2, 1.2, 1.5, 1.5)

ALL = pytest.mark.parametrize("info", list(DATASETS.values()), ids=list(DATASETS))


def _mirror_name(name: str) -> str | None:
    """Name of the mirror keypoint for names carrying a side, else None."""
    for left, right in (("left_", "right_"), ("L_", "R_"), ("l_", "r_")):
        if name.startswith(left):
            return right + name[len(left) :]
        if name.startswith(right):
            return left + name[len(right) :]
    return None


def test_registry_order_and_names() -> None:
    assert DATASET_NAMES == ("coco", "aic", "mpii", "ap10k", "apt36k", "wholebody")
    assert tuple(DATASETS) == DATASET_NAMES
    for name, (index, k, animal) in EXPECTED.items():
        info = DATASETS[name]
        assert info.name == name
        assert info.dataset_index == index
        assert info.num_keypoints == k
        assert info.is_animal is animal
        assert info.display_name


@ALL
def test_table_lengths(info: DatasetInfo) -> None:
    k = info.num_keypoints
    assert len(info.keypoint_names) == k
    assert len(set(info.keypoint_names)) == k
    assert len(info.sigmas) == k
    assert len(info.joint_weights) == k
    assert len(info.keypoint_colors) == k
    assert len(info.link_colors) == len(info.skeleton)
    for col in info.keypoint_colors + info.link_colors:
        assert len(col) == 3 and all(0 <= c <= 255 for c in col)
    for a, b in info.skeleton + info.flip_pairs:
        assert 0 <= a < k and 0 <= b < k and a != b
    assert all(s > 0 for s in info.sigmas)
    assert not set(info.upper_body_ids) & set(info.lower_body_ids)
    assert all(0 <= i < k for i in info.upper_body_ids + info.lower_body_ids)


@ALL
def test_flip_indices_is_an_involution(info: DatasetInfo) -> None:
    perm = info.flip_indices
    assert sorted(perm) == list(range(info.num_keypoints))
    assert all(perm[perm[i]] == i for i in range(info.num_keypoints))
    for a, b in info.flip_pairs:
        assert perm[a] == b and perm[b] == a
    arr = info.flip_pairs_array()
    assert arr.dtype == np.int64 and arr.shape == (len(info.flip_pairs), 2)
    np.testing.assert_array_equal(arr, np.array(info.flip_pairs).reshape(-1, 2))


@ALL
def test_flip_maps_left_to_right_by_name(info: DatasetInfo) -> None:
    names = info.keypoint_names
    perm = info.flip_indices
    for i, name in enumerate(names):
        mirror = _mirror_name(name)
        if mirror is not None:
            assert mirror in names, f"{name} has no mirror keypoint"
            assert names[perm[i]] == mirror, f"{name} flips to {names[perm[i]]}, expected {mirror}"
        elif not name.startswith("face-"):
            assert perm[i] == i, f"{name} (no side) should map to itself"
    for left, right in info.flip_pairs:
        lname = names[left]
        if _mirror_name(lname) is not None:
            assert lname.startswith(("left_", "L_", "l_")), f"pair ({lname}, {names[right]}) is not (left, right)"


def test_coco_matches_reference() -> None:
    coco = get_dataset_info("coco")
    assert coco.keypoint_names == COCO_NAMES
    assert coco.sigmas == COCO_SIGMAS
    assert coco.flip_pairs == COCO_FLIP_PAIRS
    assert coco.skeleton == COCO_SKELETON
    assert coco.upper_body_ids == COCO_UPPER
    assert coco.lower_body_ids == COCO_LOWER
    assert coco.joint_weights == tuple(float(w) for w in COCO_JOINT_WEIGHTS)
    assert coco.flip_indices == (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)
    assert coco.parts is None


def test_coco_sigmas_match_pycocotools() -> None:
    cocoeval = pytest.importorskip("pycocotools.cocoeval")
    # pycocotools builds its sigmas as ``np.array([.26, .25, ...]) / 10.0``, which differs from the decimal literals
    # by one ulp for some entries, so compare to within rounding.
    reference = cocoeval.Params(iouType="keypoints").kpt_oks_sigmas
    np.testing.assert_allclose(get_dataset_info("coco").sigmas, reference, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(np.round(reference, 6), get_dataset_info("coco").sigmas)
    # WholeBody's body part uses the same sigmas.
    np.testing.assert_allclose(get_dataset_info("wholebody").sigmas[:17], reference, rtol=1e-12, atol=0)


def test_wholebody_parts() -> None:
    wb = get_dataset_info("wholebody")
    assert wb.parts is not None
    assert wb.parts["face"] == (23, 91)
    assert wb.parts == {
        "body": (0, 17),
        "foot": (17, 23),
        "face": (23, 91),
        "lefthand": (91, 112),
        "righthand": (112, 133),
    }
    spans = sorted(wb.parts.values())
    assert spans[0][0] == 0 and spans[-1][1] == wb.num_keypoints == 133
    assert all(prev[1] == nxt[0] for prev, nxt in itertools.pairwise(spans))
    coco = get_dataset_info("coco")
    assert wb.keypoint_names[:17] == coco.keypoint_names
    assert wb.skeleton[:19] == coco.skeleton
    assert wb.keypoint_names[17:23] == (
        "left_big_toe",
        "left_small_toe",
        "left_heel",
        "right_big_toe",
        "right_small_toe",
        "right_heel",
    )
    assert wb.keypoint_names[23:91] == tuple(f"face-{i}" for i in range(68))
    assert wb.keypoint_names[91] == "left_hand_root" and wb.keypoint_names[112] == "right_hand_root"
    perm = wb.flip_indices
    assert all(perm[91 + i] == 112 + i for i in range(21))
    # Face: jaw line mirrored, midline landmarks (chin, nose bridge, ...) fixed.
    assert perm[23 + 0] == 23 + 16 and perm[23 + 36] == 23 + 45
    assert [i for i in range(68) if perm[23 + i] == 23 + i] == [8, 27, 28, 29, 30, 33, 51, 57, 62, 66]
    # Hands share sigmas.
    assert wb.sigmas[91:112] == wb.sigmas[112:133]


def test_apt36k_shares_ap10k_layout() -> None:
    ap10k, apt36k = get_dataset_info("ap10k"), get_dataset_info("apt36k")
    for f in ("keypoint_names", "skeleton", "flip_pairs", "sigmas", "joint_weights", "upper_body_ids"):
        assert getattr(ap10k, f) == getattr(apt36k, f)
    assert ap10k.keypoint_names[:5] == ("L_Eye", "R_Eye", "Nose", "Neck", "Root of tail")
    assert ap10k != apt36k


def test_other_tables_spot_checks() -> None:
    aic = get_dataset_info("aic")
    assert aic.keypoint_names[12:] == ("head_top", "neck")
    assert aic.sigmas[:2] == (0.01388152, 0.01515228)
    mpii = get_dataset_info("mpii")
    assert mpii.keypoint_names[6:10] == ("pelvis", "thorax", "upper_neck", "head_top")
    assert mpii.sigmas[:3] == (0.089, 0.083, 0.107)
    assert 6 in mpii.lower_body_ids  # pelvis


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("coco", "coco"),
        ("COCO", "coco"),
        ("aic", "aic"),
        ("ai_challenger", "aic"),
        ("AIChallenger", "aic"),
        ("ai-challenger", "aic"),
        ("mpii", "mpii"),
        ("ap10k", "ap10k"),
        ("AP-10K", "ap10k"),
        ("ap_10k", "ap10k"),
        ("apt36k", "apt36k"),
        ("APT-36K", "apt36k"),
        ("wholebody", "wholebody"),
        ("coco_wholebody", "wholebody"),
        ("coco-wholebody", "wholebody"),
        ("COCO-WholeBody", "wholebody"),
        (0, "coco"),
        (1, "aic"),
        (2, "mpii"),
        (3, "ap10k"),
        (4, "apt36k"),
        (5, "wholebody"),
        (np.int64(5), "wholebody"),
    ],
)
def test_aliases_and_indices_resolve(query: str | int, expected: str) -> None:
    assert get_dataset_info(query) is DATASETS[expected]


def test_dataset_info_passes_through() -> None:
    info = DATASETS["mpii"]
    assert get_dataset_info(info) is info


@pytest.mark.parametrize("bad", ["cocoa", "", "crowdpose", 6, -1, 99])
def test_unknown_raises_value_error_listing_valid_names(bad: str | int) -> None:
    with pytest.raises(ValueError) as excinfo:
        get_dataset_info(bad)
    message = str(excinfo.value)
    for name in DATASET_NAMES:
        assert name in message
    for index in range(6):
        assert str(index) in message


def test_wrong_type_raises_type_error() -> None:
    with pytest.raises(TypeError):
        get_dataset_info(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        get_dataset_info(True)  # type: ignore[arg-type]


def test_frozen_hashable_picklable() -> None:
    for info in DATASETS.values():
        assert hash(info) == hash(pickle.loads(pickle.dumps(info)))
        assert pickle.loads(pickle.dumps(info)) == info
    assert len(set(DATASETS.values())) == len(DATASETS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        DATASETS["coco"].name = "x"  # type: ignore[misc]


def _small(**overrides: object) -> DatasetInfo:
    kwargs: dict[str, object] = dict(
        name="toy",
        dataset_index=0,
        keypoint_names=("a", "left_b", "right_b"),
        skeleton=((0, 1), (0, 2)),
        flip_pairs=((1, 2),),
        sigmas=(0.1, 0.1, 0.1),
        joint_weights=(1.0, 1.0, 1.0),
        upper_body_ids=(0,),
        lower_body_ids=(1, 2),
        keypoint_colors=((0, 0, 0),) * 3,
        link_colors=((0, 0, 0),) * 2,
    )
    kwargs.update(overrides)
    return DatasetInfo(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "overrides",
    [
        {"sigmas": (0.1, 0.1)},
        {"joint_weights": (1.0,) * 4},
        {"keypoint_colors": ((0, 0, 0),) * 2},
        {"link_colors": ((0, 0, 0),)},
        {"skeleton": ((0, 3), (0, 2))},
        {"flip_pairs": ((1, 5),)},
        {"flip_pairs": ((1, 2), (2, 0))},
        {"upper_body_ids": (0, 3)},
        {"lower_body_ids": (0, 1)},
        {"keypoint_names": ("a", "a", "b")},
        {"keypoint_colors": ((0, 0, 300),) * 3},
        {"parts": {"x": (0, 4)}},
        {"parts": {"x": (0, 2), "y": (1, 3)}},
    ],
)
def test_validation_catches_bad_tables(overrides: dict[str, object]) -> None:
    _small()  # the baseline is valid
    with pytest.raises(ValueError):
        _small(**overrides)
