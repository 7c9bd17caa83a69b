"""Keypoint metadata for every data set ViTPose++ is trained on.

One :class:`DatasetInfo` per data set, indexed the way ViTPose++ indexes its experts and heads
(``dataset_index``): 0 COCO, 1 AI Challenger, 2 MPII, 3 AP-10K, 4 APT-36K, 5 COCO-WholeBody.

The tables (keypoint names and order, skeleton links, flip pairs, OKS sigmas, joint weights, upper/lower body split
and drawing colours) are the values of the mmpose 0.x ``dataset_info`` files that the original ViTPose implementation
trains with (``configs/_base_/datasets/{coco,aic_info,mpii_info,ap10k_info,coco_wholebody_info}.py``). APT-36K has no
file of its own there: ViTPose++ trains and evaluates it with the AP-10K metadata, and so does this module. All indices
are 0-based. Colours are stored as the files give them and read as RGB (as mmpose 1.x draws them).
"""

from __future__ import annotations

import dataclasses
import itertools
import numbers
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from vitpose.errors import DatasetError

__all__ = ["DATASETS", "DATASET_NAMES", "DatasetInfo", "get_dataset_info"]

Color = tuple[int, int, int]


@dataclass(frozen=True, eq=True)
class DatasetInfo:
    """Keypoint metadata of one data set.

    Attributes:
        name: Canonical short name (``"coco"``, ``"aic"``, ``"mpii"``, ``"ap10k"``, ``"apt36k"``, ``"wholebody"``).
        dataset_index: ViTPose++ data-set index (selects the expert and the head).
        keypoint_names: Keypoint names in channel order.
        skeleton: Links between keypoints, as pairs of 0-based indices.
        flip_pairs: Keypoints that swap under a horizontal flip, as 0-based ``(left, right)`` pairs (for the
            WholeBody face landmarks, which carry no side in their names, the lower index comes first).
        sigmas: OKS sigmas, one per keypoint.
        joint_weights: Per-keypoint loss weights, one per keypoint.
        upper_body_ids: Keypoints of the upper body (used by the half-body augmentation).
        lower_body_ids: Keypoints of the lower body.
        keypoint_colors: RGB drawing colour per keypoint.
        link_colors: RGB drawing colour per skeleton link.
        parts: For multi-part layouts (WholeBody) the ``[start, stop)`` index range of each part, else ``None``.
        display_name: Human-readable name.
        is_animal: Whether the data set annotates animals rather than people.
    """

    name: str
    dataset_index: int
    keypoint_names: tuple[str, ...]
    skeleton: tuple[tuple[int, int], ...]
    flip_pairs: tuple[tuple[int, int], ...]
    sigmas: tuple[float, ...]
    joint_weights: tuple[float, ...]
    upper_body_ids: tuple[int, ...]
    lower_body_ids: tuple[int, ...]
    keypoint_colors: tuple[Color, ...]
    link_colors: tuple[Color, ...]
    parts: dict[str, tuple[int, int]] | None = field(default=None)
    display_name: str = ""
    is_animal: bool = False

    def __post_init__(self) -> None:
        """Normalise the containers to tuples and check that the tables are consistent.

        Raises:
            ValueError: If a table has the wrong length, an index is out of range or repeated, or a value is invalid.
        """
        # Normalise containers (lists in, tuples stored) so that equality and hashing behave.
        set_ = object.__setattr__
        set_(self, "keypoint_names", tuple(str(n) for n in self.keypoint_names))
        set_(self, "skeleton", tuple((int(a), int(b)) for a, b in self.skeleton))
        set_(self, "flip_pairs", tuple((int(a), int(b)) for a, b in self.flip_pairs))
        set_(self, "sigmas", tuple(float(s) for s in self.sigmas))
        set_(self, "joint_weights", tuple(float(w) for w in self.joint_weights))
        set_(self, "upper_body_ids", tuple(int(i) for i in self.upper_body_ids))
        set_(self, "lower_body_ids", tuple(int(i) for i in self.lower_body_ids))
        set_(self, "keypoint_colors", tuple(tuple(int(c) for c in col) for col in self.keypoint_colors))
        set_(self, "link_colors", tuple(tuple(int(c) for c in col) for col in self.link_colors))
        if self.parts is not None:
            set_(self, "parts", {str(k): (int(v[0]), int(v[1])) for k, v in self.parts.items()})
        if not self.display_name:
            set_(self, "display_name", self.name)
        self._validate()

    def _validate(self) -> None:
        where = f"DatasetInfo {self.name!r}"
        k = len(self.keypoint_names)
        if not self.name:
            raise DatasetError("DatasetInfo needs a non-empty name")
        if self.dataset_index < 0:
            raise DatasetError(f"{where}: dataset_index must be >= 0, got {self.dataset_index}")
        if k == 0:
            raise DatasetError(f"{where}: no keypoints")
        if len(set(self.keypoint_names)) != k:
            dup = sorted({n for n in self.keypoint_names if self.keypoint_names.count(n) > 1})
            raise DatasetError(f"{where}: duplicate keypoint names {dup}")
        for label, values in (
            ("sigmas", self.sigmas),
            ("joint_weights", self.joint_weights),
            ("keypoint_colors", self.keypoint_colors),
        ):
            if len(values) != k:
                raise DatasetError(f"{where}: {label} has {len(values)} entries, expected {k} (one per keypoint)")
        if len(self.link_colors) != len(self.skeleton):
            raise DatasetError(
                f"{where}: link_colors has {len(self.link_colors)} entries, expected {len(self.skeleton)} "
                "(one per skeleton link)"
            )
        if any(not s > 0 for s in self.sigmas):
            raise DatasetError(f"{where}: OKS sigmas must be positive")
        if any(not w >= 0 for w in self.joint_weights):
            raise DatasetError(f"{where}: joint weights must be non-negative")

        def check_index(label: str, i: int) -> None:
            if not 0 <= i < k:
                raise DatasetError(f"{where}: {label} index {i} out of range [0, {k})")

        for a, b in self.skeleton:
            check_index("skeleton", a)
            check_index("skeleton", b)
            if a == b:
                raise DatasetError(f"{where}: skeleton link ({a}, {b}) joins a keypoint to itself")
        seen: set[int] = set()
        for a, b in self.flip_pairs:
            check_index("flip_pairs", a)
            check_index("flip_pairs", b)
            if a == b:
                raise DatasetError(f"{where}: flip pair ({a}, {b}) pairs a keypoint with itself")
            if a in seen or b in seen:
                raise DatasetError(f"{where}: keypoint in flip pair ({a}, {b}) already appears in another pair")
            seen.update((a, b))
        for label, ids in (("upper_body_ids", self.upper_body_ids), ("lower_body_ids", self.lower_body_ids)):
            for i in ids:
                check_index(label, i)
            if len(set(ids)) != len(ids):
                raise DatasetError(f"{where}: {label} has repeated indices")
        overlap = set(self.upper_body_ids) & set(self.lower_body_ids)
        if overlap:
            raise DatasetError(f"{where}: keypoints {sorted(overlap)} are both upper and lower body")
        for label, colors in (("keypoint_colors", self.keypoint_colors), ("link_colors", self.link_colors)):
            for col in colors:
                if len(col) != 3 or any(not 0 <= c <= 255 for c in col):
                    raise DatasetError(f"{where}: {label} entry {col} is not an RGB triple in [0, 255]")
        if self.parts is not None:
            spans = sorted(self.parts.values())
            for start, stop in spans:
                if not 0 <= start < stop <= k:
                    raise DatasetError(f"{where}: part range [{start}, {stop}) is empty or outside [0, {k})")
            for (_, stop), (start, _) in itertools.pairwise(spans):
                if start < stop:
                    raise DatasetError(f"{where}: part ranges overlap")

    def __hash__(self) -> int:
        # The generated hash would fail on the ``parts`` dict; name and index identify a data set.
        return hash((self.name, self.dataset_index, self.keypoint_names))

    @property
    def num_keypoints(self) -> int:
        """Number of keypoints (heatmap channels)."""
        return len(self.keypoint_names)

    @cached_property
    def flip_indices(self) -> tuple[int, ...]:
        """Permutation for a horizontal flip: ``flip_indices[k]`` is the index keypoint ``k`` becomes.

        Keypoints without a mirror partner map to themselves. Applying it twice gives the identity, so the same
        permutation also flips heatmap channels back (``heatmaps[:, info.flip_indices]``).
        """
        perm = list(range(self.num_keypoints))
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return tuple(perm)

    def flip_pairs_array(self) -> np.ndarray:
        """Return the flip pairs as an ``int64`` array of shape ``(P, 2)``."""
        return np.asarray(self.flip_pairs, dtype=np.int64).reshape(-1, 2)


# ---------------------------------------------------------------------------------------------------------------------
# Colours used by the mmpose files.
_ORANGE: Color = (255, 128, 0)
_GREEN: Color = (0, 255, 0)
_BLUE: Color = (51, 153, 255)
_WHITE: Color = (255, 255, 255)
_PINK: Color = (255, 153, 255)
_SKY: Color = (102, 178, 255)
_RED: Color = (255, 51, 51)
_PURE_BLUE: Color = (0, 0, 255)
_CYAN: Color = (0, 255, 255)
_AZURE: Color = (6, 156, 250)

# ---------------------------------------------------------------------------------------------------------------------
# COCO (17). Source: mmpose configs/_base_/datasets/coco.py (as in the ViTPose tree); values match docs/reference.md.
_COCO_NAMES = (
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
_COCO_SKELETON = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
    (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip
_COCO_LINK_COLORS = (_GREEN,) * 2 + (_ORANGE,) * 2 + (_BLUE,) * 4 + (_GREEN, _ORANGE, _GREEN, _ORANGE) + (_BLUE,) * 7
_COCO_FLIP_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
_COCO_SIGMAS = (
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062,
    0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
)  # fmt: skip
_COCO_JOINT_WEIGHTS = (1.0,) * 7 + (1.2, 1.2, 1.5, 1.5, 1.0, 1.0, 1.2, 1.2, 1.5, 1.5)
_COCO_KEYPOINT_COLORS = (_BLUE,) * 5 + (_GREEN, _ORANGE) * 6

COCO = DatasetInfo(
    name="coco",
    dataset_index=0,
    keypoint_names=_COCO_NAMES,
    skeleton=_COCO_SKELETON,
    flip_pairs=_COCO_FLIP_PAIRS,
    sigmas=_COCO_SIGMAS,
    joint_weights=_COCO_JOINT_WEIGHTS,
    upper_body_ids=tuple(range(11)),
    lower_body_ids=tuple(range(11, 17)),
    keypoint_colors=_COCO_KEYPOINT_COLORS,
    link_colors=_COCO_LINK_COLORS,
    display_name="COCO",
)

# ---------------------------------------------------------------------------------------------------------------------
# AI Challenger (14). Source: ViTPose configs/_base_/datasets/aic_info.py (= mmpose aic.py).
_AIC_NAMES = (
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "head_top",
    "neck",
)
_AIC_SKELETON = (
    (2, 1), (1, 0), (0, 13), (13, 3), (3, 4), (4, 5), (8, 7),
    (7, 6), (6, 9), (9, 10), (10, 11), (12, 13), (0, 6), (3, 9),
)  # fmt: skip
# From the AI Challenger evaluation script (delta = 2 x sigma).
_AIC_SIGMAS = (
    0.01388152, 0.01515228, 0.01057665, 0.01417709, 0.01497891, 0.01402144, 0.03909642,
    0.03686941, 0.01981803, 0.03843971, 0.03412318, 0.02415081, 0.01291456, 0.01236173,
)  # fmt: skip
_AIC_LINK_COLORS = (
    _ORANGE, _ORANGE, _BLUE, _BLUE, _GREEN, _GREEN, _ORANGE,
    _ORANGE, _BLUE, _GREEN, _GREEN, _BLUE, _BLUE, _BLUE,
)  # fmt: skip

AIC = DatasetInfo(
    name="aic",
    dataset_index=1,
    keypoint_names=_AIC_NAMES,
    skeleton=_AIC_SKELETON,
    flip_pairs=((3, 0), (4, 1), (5, 2), (9, 6), (10, 7), (11, 8)),
    sigmas=_AIC_SIGMAS,
    joint_weights=(1.0, 1.2, 1.5, 1.0, 1.2, 1.5, 1.0, 1.2, 1.5, 1.0, 1.2, 1.5, 1.0, 1.0),
    upper_body_ids=(0, 1, 2, 3, 4, 5, 12, 13),
    lower_body_ids=(6, 7, 8, 9, 10, 11),
    keypoint_colors=(*(_ORANGE,) * 3, *(_GREEN,) * 3, *(_ORANGE,) * 3, *(_GREEN,) * 3, *(_BLUE,) * 2),
    link_colors=_AIC_LINK_COLORS,
    display_name="AI Challenger",
)

# ---------------------------------------------------------------------------------------------------------------------
# MPII (16). Source: ViTPose configs/_base_/datasets/mpii_info.py (= mmpose mpii.py).
_MPII_NAMES = (
    "right_ankle",
    "right_knee",
    "right_hip",
    "left_hip",
    "left_knee",
    "left_ankle",
    "pelvis",
    "thorax",
    "upper_neck",
    "head_top",
    "right_wrist",
    "right_elbow",
    "right_shoulder",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
)
_MPII_SKELETON = (
    (0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8),
    (8, 9), (8, 12), (12, 11), (11, 10), (8, 13), (13, 14), (14, 15),
)  # fmt: skip
# Adapted from COCO by mmpose.
_MPII_SIGMAS = (
    0.089, 0.083, 0.107, 0.107, 0.083, 0.089, 0.026, 0.026,
    0.026, 0.026, 0.062, 0.072, 0.179, 0.179, 0.072, 0.062,
)  # fmt: skip

MPII = DatasetInfo(
    name="mpii",
    dataset_index=2,
    keypoint_names=_MPII_NAMES,
    skeleton=_MPII_SKELETON,
    flip_pairs=((5, 0), (4, 1), (3, 2), (15, 10), (14, 11), (13, 12)),
    sigmas=_MPII_SIGMAS,
    joint_weights=(1.5, 1.2, 1.0, 1.0, 1.2, 1.5, 1.0, 1.0, 1.0, 1.0, 1.5, 1.2, 1.0, 1.0, 1.2, 1.5),
    upper_body_ids=(7, 8, 9, 10, 11, 12, 13, 14, 15),
    lower_body_ids=(0, 1, 2, 3, 4, 5, 6),
    keypoint_colors=(*(_ORANGE,) * 3, *(_GREEN,) * 3, *(_BLUE,) * 4, *(_ORANGE,) * 3, *(_GREEN,) * 3),
    link_colors=(*(_ORANGE,) * 3, *(_GREEN,) * 3, *(_BLUE,) * 3, *(_ORANGE,) * 3, *(_GREEN,) * 3),
    display_name="MPII",
)

# ---------------------------------------------------------------------------------------------------------------------
# AP-10K (17 animal keypoints). Source: ViTPose configs/_base_/datasets/ap10k_info.py (identical to the AP-10K
# authors' file, AlexTheBad/AP-10K configs/_base_/datasets/ap10k.py). Some mmpose copies list the sigmas in COCO order,
# which does not match this keypoint order; the values here are the ones ViTPose++ was trained and evaluated with.
# The joint weights are COCO's, unchanged, as in the file. The upper/lower split follows the file's ``type`` field,
# which marks R_F_Paw (10) as lower body although L_F_Paw (7) is upper; it is kept as the original uses it.
_AP10K_NAMES = (
    "L_Eye",
    "R_Eye",
    "Nose",
    "Neck",
    "Root of tail",
    "L_Shoulder",
    "L_Elbow",
    "L_F_Paw",
    "R_Shoulder",
    "R_Elbow",
    "R_F_Paw",
    "L_Hip",
    "L_Knee",
    "L_B_Paw",
    "R_Hip",
    "R_Knee",
    "R_B_Paw",
)
_AP10K_SKELETON = (
    (0, 1), (0, 2), (1, 2), (2, 3), (3, 4), (3, 5), (5, 6), (6, 7), (3, 8),
    (8, 9), (9, 10), (4, 11), (11, 12), (12, 13), (4, 14), (14, 15), (15, 16),
)  # fmt: skip
_AP10K_SIGMAS = (
    0.025, 0.025, 0.026, 0.035, 0.035, 0.079, 0.072, 0.062, 0.079,
    0.072, 0.062, 0.107, 0.087, 0.089, 0.107, 0.087, 0.089,
)  # fmt: skip
_AP10K_KEYPOINT_COLORS = (
    _GREEN, _ORANGE, _BLUE, _BLUE, _BLUE, _BLUE, _BLUE, _GREEN, _GREEN,
    _ORANGE, _GREEN, _ORANGE, _ORANGE, _GREEN, _GREEN, _GREEN, _GREEN,
)  # fmt: skip
_AP10K_LINK_COLORS = (
    *(_PURE_BLUE,) * 3, *(_GREEN,) * 2, *(_CYAN,) * 3, *(_AZURE,) * 3, *(_CYAN,) * 3, *(_AZURE,) * 3,
)  # fmt: skip

AP10K = DatasetInfo(
    name="ap10k",
    dataset_index=3,
    keypoint_names=_AP10K_NAMES,
    skeleton=_AP10K_SKELETON,
    flip_pairs=((0, 1), (5, 8), (6, 9), (7, 10), (11, 14), (12, 15), (13, 16)),
    sigmas=_AP10K_SIGMAS,
    joint_weights=_COCO_JOINT_WEIGHTS,
    upper_body_ids=(0, 1, 2, 3, 5, 6, 7, 8, 9),
    lower_body_ids=(4, 10, 11, 12, 13, 14, 15, 16),
    keypoint_colors=_AP10K_KEYPOINT_COLORS,
    link_colors=_AP10K_LINK_COLORS,
    display_name="AP-10K",
    is_animal=True,
)

# ---------------------------------------------------------------------------------------------------------------------
# APT-36K (17). ViTPose++ trains it as an AP-10K data set with the AP-10K metadata (the ViTPose++ configs pass
# ``dataset_info={{_base_.ap10k_info}}`` for it), so only the name and index differ.
APT36K = dataclasses.replace(AP10K, name="apt36k", dataset_index=4, display_name="APT-36K")

# ---------------------------------------------------------------------------------------------------------------------
# COCO-WholeBody (133). Source: ViTPose configs/_base_/datasets/coco_wholebody_info.py (= mmpose coco_wholebody.py;
# the sigmas come from the COCO-WholeBody evaluation code). Layout: body 0-16 (COCO), feet 17-22, face 23-90 (68
# landmarks), left hand 91-111, right hand 112-132 (21 each: root, then 4 joints per finger, thumb to pinky).
_FEET_NAMES = ("left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel")
_FINGERS = ("thumb", "forefinger", "middle_finger", "ring_finger", "pinky_finger")
_FINGER_COLORS = (_ORANGE, _PINK, _SKY, _RED, _GREEN)


def _hand_names(side: str) -> tuple[str, ...]:
    return (f"{side}_hand_root", *(f"{side}_{finger}{j}" for finger in _FINGERS for j in range(1, 5)))


def _hand_links(root: int) -> tuple[tuple[int, int], ...]:
    links = []
    for f in range(len(_FINGERS)):
        first = root + 1 + 4 * f
        links += [(root, first), (first, first + 1), (first + 1, first + 2), (first + 2, first + 3)]
    return tuple(links)


_FACE_START, _LHAND_START, _RHAND_START = 23, 91, 112
# Mirror pairs among the 68 face landmarks, face-local indices (from the file's ``swap`` entries): jaw line, brows,
# nose, eyes, outer and inner lips. The ten landmarks on the midline (8, 27-30, 33, 51, 57, 62, 66) have no partner.
_FACE_PAIRS = (
    (0, 16), (1, 15), (2, 14), (3, 13), (4, 12), (5, 11), (6, 10), (7, 9),
    (17, 26), (18, 25), (19, 24), (20, 23), (21, 22),
    (31, 35), (32, 34),
    (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46),
    (48, 54), (49, 53), (50, 52), (55, 59), (56, 58), (60, 64), (61, 63), (65, 67),
)  # fmt: skip
_WHOLEBODY_SIGMAS = (
    # body
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062,
    0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
    # feet
    0.068, 0.066, 0.066, 0.092, 0.094, 0.094,
    # face
    0.042, 0.043, 0.044, 0.043, 0.040, 0.035, 0.031, 0.025, 0.020, 0.023,
    0.029, 0.032, 0.037, 0.038, 0.043, 0.041, 0.045, 0.013, 0.012, 0.011,
    0.011, 0.012, 0.012, 0.011, 0.011, 0.013, 0.015, 0.009, 0.007, 0.007,
    0.007, 0.012, 0.009, 0.008, 0.016, 0.010, 0.017, 0.011, 0.009, 0.011,
    0.009, 0.007, 0.013, 0.008, 0.011, 0.012, 0.010, 0.034, 0.008, 0.008,
    0.009, 0.008, 0.008, 0.007, 0.010, 0.008, 0.009, 0.009, 0.009, 0.007,
    0.007, 0.008, 0.011, 0.008, 0.008, 0.008, 0.010, 0.008,
    # left hand
    0.029, 0.022, 0.035, 0.037, 0.047, 0.026, 0.025, 0.024, 0.035, 0.018,
    0.024, 0.022, 0.026, 0.017, 0.021, 0.021, 0.032, 0.020, 0.019, 0.022,
    0.031,
    # right hand
    0.029, 0.022, 0.035, 0.037, 0.047, 0.026, 0.025, 0.024, 0.035, 0.018,
    0.024, 0.022, 0.026, 0.017, 0.021, 0.021, 0.032, 0.020, 0.019, 0.022,
    0.031,
)  # fmt: skip
_HAND_COLORS = (_WHITE, *(c for c in _FINGER_COLORS for _ in range(4)))
_HAND_LINK_COLORS = tuple(c for c in _FINGER_COLORS for _ in range(4))

WHOLEBODY = DatasetInfo(
    name="wholebody",
    dataset_index=5,
    keypoint_names=(
        *_COCO_NAMES,
        *_FEET_NAMES,
        *(f"face-{i}" for i in range(68)),
        *_hand_names("left"),
        *_hand_names("right"),
    ),
    skeleton=(
        *_COCO_SKELETON,
        *((15, 17), (15, 18), (15, 19), (16, 20), (16, 21), (16, 22)),
        *_hand_links(_LHAND_START),
        *_hand_links(_RHAND_START),
    ),
    flip_pairs=(
        *_COCO_FLIP_PAIRS,
        *((17, 20), (18, 21), (19, 22)),
        *((_FACE_START + a, _FACE_START + b) for a, b in _FACE_PAIRS),
        *((_LHAND_START + i, _RHAND_START + i) for i in range(21)),
    ),
    sigmas=_WHOLEBODY_SIGMAS,
    joint_weights=(1.0,) * 133,
    upper_body_ids=tuple(range(11)),
    lower_body_ids=tuple(range(11, 23)),
    keypoint_colors=(*_COCO_KEYPOINT_COLORS, *(_ORANGE,) * 6, *(_WHITE,) * 68, *_HAND_COLORS * 2),
    link_colors=(*_COCO_LINK_COLORS, *(_GREEN,) * 3, *(_ORANGE,) * 3, *_HAND_LINK_COLORS * 2),
    parts={"body": (0, 17), "foot": (17, 23), "face": (23, 91), "lefthand": (91, 112), "righthand": (112, 133)},
    display_name="COCO-WholeBody",
)

# ---------------------------------------------------------------------------------------------------------------------
# Registry.
DATASETS: dict[str, DatasetInfo] = {
    info.name: info for info in sorted((COCO, AIC, MPII, AP10K, APT36K, WHOLEBODY), key=lambda i: i.dataset_index)
}
DATASET_NAMES: tuple[str, ...] = tuple(DATASETS)

_BY_INDEX: dict[int, DatasetInfo] = {info.dataset_index: info for info in DATASETS.values()}
if sorted(_BY_INDEX) != list(range(len(DATASETS))):  # pragma: no cover - guards the tables above
    raise DatasetError("dataset indices must be 0..N-1 without gaps")

# Normalised alias -> canonical name (normalisation: lower case, '-', '_' and spaces removed).
_ALIASES: dict[str, str] = {
    "coco": "coco",
    "aic": "aic",
    "aichallenger": "aic",
    "mpii": "mpii",
    "ap10k": "ap10k",
    "apt36k": "apt36k",
    "ap36k": "apt36k",
    "wholebody": "wholebody",
    "cocowholebody": "wholebody",
}


def _normalise(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch not in "-_ \t")


def _unknown(value: object) -> DatasetError:
    indices = ", ".join(f"{info.dataset_index} ({info.name})" for info in DATASETS.values())
    aliases = ", ".join(sorted(a for a in _ALIASES if a not in DATASETS))
    return DatasetError(
        f"unknown data set {value!r}; valid names: {', '.join(DATASET_NAMES)} "
        f"(aliases, case-insensitive, '-' and '_' ignored: {aliases}); valid indices: {indices}"
    )


def get_dataset_info(name_or_index: str | int | DatasetInfo) -> DatasetInfo:
    """Look up a data set's keypoint metadata.

    Args:
        name_or_index: A canonical name or alias (case-insensitive; ``-`` and ``_`` are ignored, so ``"AP-10K"``,
            ``"coco_wholebody"`` and ``"AI_Challenger"`` all work), a ViTPose++ ``dataset_index`` (0 to 5), or a
            :class:`DatasetInfo`, which is returned unchanged.

    Returns:
        The matching :class:`DatasetInfo`.

    Raises:
        ValueError: If the name or index is unknown; the message lists the valid names and indices.
        TypeError: If the argument is of another type.
    """
    if isinstance(name_or_index, DatasetInfo):
        return name_or_index
    if isinstance(name_or_index, str):
        canonical = _ALIASES.get(_normalise(name_or_index))
        if canonical is None:
            raise _unknown(name_or_index)
        return DATASETS[canonical]
    if isinstance(name_or_index, numbers.Integral) and not isinstance(name_or_index, bool):
        info = _BY_INDEX.get(int(name_or_index))
        if info is None:
            raise _unknown(name_or_index)
        return info
    raise TypeError(f"get_dataset_info expects a name, an index or a DatasetInfo, got {type(name_or_index).__name__}")
