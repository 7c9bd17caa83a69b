"""draw_poses on blank images: pixel colours at keypoints and link midpoints, thresholds, sizes and validation."""

from __future__ import annotations

import numpy as np
import pytest

from vitpose.datasets import DATASET_NAMES, get_dataset_info
from vitpose.visualization import default_radius, default_thickness, draw_poses

COCO = get_dataset_info("coco")
BLACK = (0, 0, 0)


def blank(height=240, width=320):
    return np.zeros((height, width, 3), dtype=np.uint8)


def pixel(image, x, y):
    """RGB at the pixel whose centre is nearest to (x, y)."""
    return tuple(int(v) for v in image[round(float(y)), round(float(x))])


def lone_points(k, points):
    """(1, K, 2) NaN keypoints and (1, K) zero scores, with ``points`` = {index: (x, y, score)} filled in."""
    kpts = np.full((1, k, 2), np.nan)
    scores = np.zeros((1, k))
    for i, (x, y, s) in points.items():
        kpts[0, i] = (x, y)
        scores[0, i] = s
    return kpts, scores


def test_confident_keypoint_takes_its_colour():
    kpts, scores = lone_points(17, {0: (50.3, 60.6, 0.9), 9: (200.7, 100.2, 0.31)})
    out = draw_poses(blank(), kpts, scores, "coco", kpt_thr=0.3, radius=4)
    assert pixel(out, 50.3, 60.6) == COCO.keypoint_colors[0]
    assert pixel(out, 200.7, 100.2) == COCO.keypoint_colors[9]
    assert COCO.keypoint_colors[0] != COCO.keypoint_colors[9]  # the test tells the two palettes apart


def test_keypoint_at_or_below_threshold_is_not_drawn():
    kpts, scores = lone_points(17, {0: (50.0, 60.0, 0.29), 1: (150.0, 60.0, 0.3), 2: (250.0, 60.0, 0.9)})
    out = draw_poses(blank(), kpts, scores, "coco", kpt_thr=0.3, radius=4)
    assert not out[50:71, 40:61].any()  # score 0.29 < thr
    assert not out[50:71, 140:161].any()  # score == thr: the test is strict (> thr)
    assert pixel(out, 250, 60) == COCO.keypoint_colors[2]
    # Only the one confident point was drawn: every coloured pixel lies within its radius (+ the 1 px AA fringe).
    ys, xs = np.nonzero(out.any(axis=2))
    assert np.all((xs - 250) ** 2 + (ys - 60) ** 2 <= 6**2)


def test_link_midpoint_takes_link_colour():
    link = COCO.skeleton.index((5, 6))  # shoulders
    kpts, scores = lone_points(17, {5: (60.0, 100.0, 0.9), 6: (260.0, 140.0, 0.8)})
    out = draw_poses(blank(), kpts, scores, "coco", radius=3, thickness=3)
    assert pixel(out, 160.0, 120.0) == COCO.link_colors[link]
    assert COCO.link_colors[link] != COCO.keypoint_colors[5]


@pytest.mark.parametrize(
    "points",
    [
        {5: (60.0, 100.0, 0.9), 6: (260.0, 140.0, 0.1)},  # one end below threshold
        {5: (60.0, 100.0, 0.9), 6: (np.nan, 140.0, 0.9)},  # one end not finite
    ],
)
def test_link_absent_when_one_end_fails(points):
    kpts, scores = lone_points(17, points)
    out = draw_poses(blank(), kpts, scores, "coco", radius=3, thickness=3)
    assert pixel(out, 160.0, 120.0) == BLACK
    assert pixel(out, 60.0, 100.0) == COCO.keypoint_colors[5]  # the confident end is still drawn
    xs = np.nonzero(out.any(axis=2))[1]
    assert xs.max() <= 64  # nothing but that point


def test_input_unchanged_and_output_is_new_rgb_uint8():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(120, 160, 3), dtype=np.uint8)
    before = image.copy()
    kpts = rng.uniform(0, 120, size=(2, 17, 2))
    out = draw_poses(image, kpts, np.ones((2, 17)), boxes=[[10, 10, 50, 80], [60, 20, 40, 60]])
    np.testing.assert_array_equal(image, before)
    assert out.shape == (120, 160, 3) and out.dtype == np.uint8
    assert not np.shares_memory(out, image)
    assert (out != image).any()
    # RGB, drawn on a copy of this image: the last person's last keypoint is on top, in its palette colour (not
    # BGR), and pixels far from every box, keypoint and link keep the input's values.
    assert pixel(out, *kpts[1, -1]) == COCO.keypoint_colors[-1]
    far = np.ones((120, 160), bool)
    for x, y in kpts.reshape(-1, 2):
        far[max(int(y) - 8, 0) : int(y) + 9, max(int(x) - 8, 0) : int(x) + 9] = False
    for x, y, w, h in ([10, 10, 50, 80], [60, 20, 40, 60]):
        far[max(y - 4, 0) : y + h + 5, max(x - 4, 0) : x + w + 5] = False
    far &= ~skeleton_mask(kpts, (120, 160))
    assert far.sum() > 1000
    np.testing.assert_array_equal(out[far], image[far])


def skeleton_mask(kpts: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Pixels within 6 px of any COCO skeleton link of these people (where lines may be drawn)."""
    import cv2

    mask = np.zeros(shape, np.uint8)
    for person in kpts:
        for a, b in COCO.skeleton:
            cv2.line(mask, tuple(map(int, person[a])), tuple(map(int, person[b])), 1, 13)
    return mask.astype(bool)


def test_pil_and_grey_inputs():
    from PIL import Image

    rng = np.random.default_rng(1)
    array = rng.integers(0, 256, size=(90, 100, 3), dtype=np.uint8)
    kpts = rng.uniform(10, 80, size=(1, 17, 2))
    scores = np.ones((1, 17))
    np.testing.assert_array_equal(draw_poses(Image.fromarray(array), kpts, scores), draw_poses(array, kpts, scores))
    grey = array[..., 0]
    np.testing.assert_array_equal(
        draw_poses(Image.fromarray(grey), kpts, scores), draw_poses(np.repeat(grey[..., None], 3, 2), kpts, scores)
    )
    with pytest.raises(ValueError, match="uint8"):
        draw_poses(array.astype(np.float32), kpts, scores)


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_every_dataset_draws_its_palette(name):
    info = get_dataset_info(name)
    k = info.num_keypoints
    # Keypoints on a grid 24 px apart, radius 3: each centre pixel keeps its own colour (points cover links).
    cols = 12
    grid = np.array([[12 + 24 * (i % cols), 12 + 24 * (i // cols)] for i in range(k)], dtype=np.float64)
    image = blank(24 * ((k + cols - 1) // cols), 24 * cols)
    out = draw_poses(image, grid[None], np.ones((1, k)), name, radius=3, thickness=1)
    for i in range(k):
        assert pixel(out, *grid[i]) == info.keypoint_colors[i], (name, i)
    # The first link alone, between two far-apart points: its midpoint has the link colour.
    a, b = info.skeleton[0]
    kpts, scores = lone_points(k, {a: (20.0, 20.0, 1.0), b: (220.0, 120.0, 1.0)})
    out = draw_poses(blank(), kpts, scores, info, radius=2, thickness=3)
    assert pixel(out, 120.0, 70.0) == info.link_colors[0]


def test_wholebody_face_and_hand_points_are_smaller():
    info = get_dataset_info("wholebody")
    face, hand = info.parts["face"][0], info.parts["lefthand"][0]

    def area(index):
        kpts, scores = lone_points(133, {index: (100.0, 100.0, 1.0)})
        out = draw_poses(blank(200, 200), kpts, scores, "wholebody", radius=8)
        return int(out.any(axis=2).sum())

    body = area(0)
    assert body > 150  # ~pi * 8^2
    assert area(face) < body / 2.5 and area(hand) < body / 2.5  # radius 4: about a quarter of the area


def test_default_sizes_scale_with_the_image():
    assert default_radius(480, 640) == 4 and default_thickness(480, 640) == 2
    assert default_radius(100, 100) == 1 and default_thickness(100, 100) == 1
    widths = {}
    for size in (200, 1600):
        kpts, scores = lone_points(17, {0: (size / 2, size / 2, 1.0)})
        out = draw_poses(blank(size, size), kpts, scores)
        # Fully coloured pixels across the centre row: 2r + 1 (the anti-aliased fringe is partial).
        widths[size] = int(np.all(out[size // 2] == COCO.keypoint_colors[0], axis=1).sum())
        assert widths[size] == 2 * default_radius(size, size) + 1
    assert default_radius(1600, 1600) == 10
    assert widths[1600] >= 5 * widths[200]


def test_boxes_are_drawn():
    kpts, scores = lone_points(17, {})
    out = draw_poses(blank(), kpts, scores, boxes=[[40.0, 30.0, 100.0, 80.0]], thickness=2, box_color=(255, 0, 0))
    assert pixel(out, 40, 70) == (255, 0, 0)  # left edge
    assert pixel(out, 90, 110) == (255, 0, 0)  # bottom edge (y + h = 110)
    assert pixel(out, 90, 70) == BLACK  # inside
    with pytest.raises(ValueError, match="boxes"):
        draw_poses(blank(), kpts, scores, boxes=[[1, 2, 3]])


def test_far_off_image_link_is_clipped_not_dropped():
    kpts, scores = lone_points(17, {5: (50.0, 100.0, 1.0), 6: (1e12, 100.0, 1.0)})
    out = draw_poses(blank(), kpts, scores, radius=2, thickness=3)
    link = COCO.skeleton.index((5, 6))
    assert pixel(out, 319, 100) == COCO.link_colors[link]
    assert pixel(out, 200, 100) == COCO.link_colors[link]


def test_custom_skeleton_and_colours():
    kpts = np.array([[[20.0, 20.0], [200.0, 20.0], [200.0, 200.0], [20.0, 200.0], [110.0, 110.0]]])
    out = draw_poses(
        blank(),
        kpts,
        np.ones((1, 5)),
        skeleton=[(0, 1), (1, 2)],
        keypoint_colors=(10, 20, 30),
        link_colors=[(200, 0, 0), (0, 0, 200)],
        radius=3,
        thickness=3,
    )
    assert pixel(out, 110, 20) == (200, 0, 0)
    assert pixel(out, 200, 110) == (0, 0, 200)
    assert pixel(out, 20, 110) == BLACK  # (2, 3) is not a link here
    assert pixel(out, 110, 110) == (10, 20, 30)
    # Without colours, links take their first keypoint's colour.
    plain = draw_poses(blank(), kpts, np.ones((1, 5)), skeleton=[(0, 1)], keypoint_colors=[(1, 2, 3)] * 4 + [(9, 9, 9)])
    assert pixel(plain, 110, 20) == (1, 2, 3)


def test_scores_none_draws_every_finite_point():
    kpts, _ = lone_points(17, {0: (50.0, 50.0, 0.0)})
    out = draw_poses(blank(), kpts, None, radius=3)
    assert pixel(out, 50, 50) == COCO.keypoint_colors[0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"keypoints": np.zeros((1, 16, 2)), "keypoint_scores": np.ones((1, 16))}, "K = 16"),
        ({"keypoints": np.zeros((1, 133, 2)), "keypoint_scores": np.ones((1, 133)), "dataset": "coco"}, "133"),
        ({"keypoint_scores": np.ones((1, 16))}, "keypoint_scores"),
        ({"keypoints": np.zeros((1, 17, 3))}, "keypoints must have shape"),
        ({"skeleton": [(0, 17)]}, "skeleton indices"),
        ({"skeleton": [(0, 1, 2)]}, "skeleton must have shape"),
        ({"keypoint_colors": [(1, 2, 3)] * 5}, "keypoint_colors"),
        ({"link_colors": [(1, 2, 3)] * 3}, "link_colors"),
        ({"keypoint_colors": (0, 0, 300)}, r"\[0, 255\]"),
        ({"radius": 0}, "radius"),
    ],
)
def test_validation(kwargs, message):
    args = {"image": blank(), "keypoints": np.zeros((1, 17, 2)), "keypoint_scores": np.ones((1, 17))}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        draw_poses(**args)


def test_unknown_dataset_raises():
    with pytest.raises(ValueError, match="unknown data set"):
        draw_poses(blank(), np.zeros((1, 17, 2)), np.ones((1, 17)), dataset="horses")
