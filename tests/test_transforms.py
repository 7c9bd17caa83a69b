"""Tests for vitpose.ops.geometry: box -> centre/scale, UDP warp matrices, crops and the heatmap -> image transform.

transformers' ViTPose processor functions are the numerical oracle (they follow the original ViTPose code, with the
scale in units of 200 px where ours is in pixels).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from vitpose.ops.geometry import (
    box_to_center_scale,
    crop_boxes,
    get_udp_warp_matrices,
    get_udp_warp_matrix,
    heatmap_to_image_coords,
)

tf_proc = pytest.importorskip("transformers.models.vitpose.image_processing_pil_vitpose")

INPUT_SIZE = (192, 256)  # (width, height)


def random_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    """COCO xywh boxes with aspect ratios from very wide to very tall."""
    xy = rng.uniform(-50, 600, (n, 2))
    wh = np.exp(rng.uniform(np.log(5), np.log(500), (n, 2)))
    return np.concatenate([xy, wh], axis=1)


def inverse_affine(mat: np.ndarray) -> np.ndarray:
    """(2, 3) image -> crop matrix to its (2, 3) crop -> image inverse, float64."""
    full = np.vstack([mat.astype(np.float64), [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def apply_affine(mat: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ mat[:, :2].T + mat[:, 2]


# --------------------------------------------------------------------------------------------- box_to_center_scale


def test_box_to_center_scale_matches_transformers():
    rng = np.random.default_rng(0)
    boxes = random_boxes(rng, 200)
    # include exact-aspect boxes (neither side grows) and integer boxes
    boxes[:3] = [[10, 20, 75, 100], [0, 0, 192, 256], [5, 5, 3, 4]]
    centers, scales = box_to_center_scale(boxes)
    assert centers.shape == (200, 2) and scales.shape == (200, 2)
    assert centers.dtype == np.float32 and scales.dtype == np.float32
    for i, box in enumerate(boxes):
        c_ref, s_ref = tf_proc.box_to_center_and_scale(box, image_width=192, image_height=256)
        np.testing.assert_allclose(centers[i], c_ref, rtol=1e-5, atol=1e-4)
        # ours is in pixels: transformers' (and the original's) scale is in units of 200 px
        np.testing.assert_allclose(scales[i], s_ref * 200.0, rtol=1e-5)


def test_box_to_center_scale_other_input_size_and_padding():
    rng = np.random.default_rng(1)
    boxes = random_boxes(rng, 50)
    centers, scales = box_to_center_scale(boxes, input_size=(288, 384), padding=1.0)
    for i, box in enumerate(boxes):
        c_ref, s_ref = tf_proc.box_to_center_and_scale(box, 288, 384, padding_factor=1.0)
        np.testing.assert_allclose(centers[i], c_ref, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(scales[i], s_ref * 200.0, rtol=1e-5)


def _original_xywh2cs(boxes: np.ndarray, aspect_ratio: float, padding: float) -> tuple[np.ndarray, np.ndarray]:
    """mmpose 0.x `_xywh2cs` (the ViTPose repository's top-down data sets), vectorised, with its float32 roundings,
    then the `scale * 200.0` (float32) of its crop (`TopDownAffine`) and decoder (`transform_preds`)."""
    x, y, w, h = (boxes[:, i].astype(np.float64) for i in range(4))
    center = np.stack([x + w * 0.5, y + h * 0.5], axis=1).astype(np.float32)
    wider = w > aspect_ratio * h
    taller = w < aspect_ratio * h
    h = np.where(wider, w * 1.0 / aspect_ratio, h)  # `if w > aspect_ratio * h: h = w * 1.0 / aspect_ratio`
    w = np.where(taller & ~wider, h * aspect_ratio, w)  # `elif w < aspect_ratio * h: w = h * aspect_ratio`
    scale = np.stack([w / 200.0, h / 200.0], axis=1).astype(np.float32)  # np.array([...], dtype=np.float32)
    scale = scale * padding  # float32 array times a Python float: float32
    return center, scale * 200.0  # float32 again


@pytest.mark.parametrize("input_size,padding", [((192, 256), 1.25), ((288, 384), 1.25), ((256, 256), 1.0)])
def test_box_to_center_scale_is_bit_identical_to_the_original(input_size, padding):
    """Bug 8: the scale is rounded as the original rounds it (w / 200, x padding, x 200, each in float32)."""
    rng = np.random.default_rng(8)
    boxes = np.concatenate([random_boxes(rng, 10_000), rng.integers(1, 640, (2_000, 4)).astype(np.float64)])
    boxes[:2] = [[10, 20, 75, 100], [0.5, 0.25, 192, 256]]  # exact aspect: neither side grows
    centers, scales = box_to_center_scale(boxes, input_size=input_size, padding=padding)
    c_ref, s_ref = _original_xywh2cs(boxes, input_size[0] / input_size[1], padding)
    assert scales.dtype == c_ref.dtype == np.float32
    np.testing.assert_array_equal(centers, c_ref)
    np.testing.assert_array_equal(scales, s_ref)
    # Rounded once (the code before the fix), a large share of the scales differ in the last bit.
    size = boxes[:, 2:].copy()
    aspect = input_size[0] / input_size[1]
    w, h = size[:, 0].copy(), size[:, 1].copy()
    size[:, 0] = np.where(w < aspect * h, h * aspect, w)
    size[:, 1] = np.where(w > aspect * h, w / aspect, h)
    once = (size * padding).astype(np.float32)
    differ = np.any(once != s_ref, axis=1).mean()
    assert differ > 0.2 and np.abs(once - s_ref).max() <= 2 * np.spacing(s_ref.max())


def test_box_to_center_scale_geometry():
    boxes = np.array([[0.0, 0.0, 30.0, 100.0], [10.0, 10.0, 300.0, 100.0]])
    centers, scales = box_to_center_scale(boxes)
    np.testing.assert_allclose(centers, [[15.0, 50.0], [160.0, 60.0]])
    # tall box: width grows to 0.75 * height; wide box: height grows to width / 0.75; then x1.25
    np.testing.assert_allclose(scales, [[75.0 * 1.25, 100.0 * 1.25], [300.0 * 1.25, 400.0 * 1.25]], rtol=1e-6)
    np.testing.assert_allclose(scales[:, 0] / scales[:, 1], 0.75, rtol=1e-6)


def test_box_to_center_scale_single_box_and_torch():
    c1, s1 = box_to_center_scale([1.0, 2.0, 30.0, 40.0])
    assert c1.shape == (1, 2) and s1.shape == (1, 2)
    c2, s2 = box_to_center_scale(torch.tensor([[1.0, 2.0, 30.0, 40.0]]))
    np.testing.assert_array_equal(c1, c2)
    np.testing.assert_array_equal(s1, s2)
    c0, s0 = box_to_center_scale(np.zeros((0, 4)))
    assert c0.shape == (0, 2) and s0.shape == (0, 2)


@pytest.mark.parametrize(
    ("boxes", "pattern"),
    [
        ([[0, 0, 10, 10], [5, 5, 0, 10]], r"box 1 is \[5\.0, 5\.0, 0\.0, 10\.0\]"),
        ([[5, 5, 10, -3]], r"box 0 is \[5\.0, 5\.0, 10\.0, -3\.0\]"),
        ([[0, 0, 10, 10], [0, 0, 10, 10], [np.nan, 0, 10, 10]], r"box 2 is \[nan, 0\.0, 10\.0, 10\.0\]"),
        ([[0, 0, np.inf, 10]], r"box 0 is \[0\.0, 0\.0, inf, 10\.0\]"),
    ],
)
def test_bad_boxes_name_index_and_value(boxes, pattern):
    with pytest.raises(ValueError, match=pattern) as info:
        box_to_center_scale(np.array(boxes, dtype=np.float64))
    assert "boxes must be COCO [x, y, width, height] with width > 0 and height > 0" in str(info.value)


@pytest.mark.parametrize("boxes", [np.zeros(3), np.zeros((2, 5)), np.zeros((2, 2, 4)), [[1, 2, 3]]])
def test_bad_box_shapes(boxes):
    with pytest.raises(ValueError, match=r"boxes must have shape \(N, 4\) or \(4,\), got shape") as info:
        box_to_center_scale(boxes)
    assert "width > 0 and height > 0" in str(info.value)


# ------------------------------------------------------------------------------------------------- warp matrices


@pytest.mark.parametrize("rotation", [0.0, 30.0, -45.0, 90.0])
def test_udp_warp_matrix_matches_transformers(rotation):
    rng = np.random.default_rng(2)
    centers, scales = box_to_center_scale(random_boxes(rng, 50))
    for c, s in zip(centers, scales, strict=True):
        ours = get_udp_warp_matrix(c, s, INPUT_SIZE, rotation=rotation)
        ref = tf_proc.get_warp_matrix(rotation, c * 2.0, np.array(INPUT_SIZE) - 1.0, s)
        assert ours.shape == (2, 3) and ours.dtype == np.float32
        # 1e-5 relative to the matrix's scale (entries such as sin(0) are exactly 0 on one side only)
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def test_udp_warp_matrices_vectorised_equals_single():
    rng = np.random.default_rng(3)
    centers, scales = box_to_center_scale(random_boxes(rng, 20))
    rotations = rng.uniform(-40, 40, 20)
    mats = get_udp_warp_matrices(centers, scales, INPUT_SIZE, rotations)
    assert mats.shape == (20, 2, 3) and mats.dtype == np.float32
    for i in range(20):
        np.testing.assert_array_equal(mats[i], get_udp_warp_matrix(centers[i], scales[i], INPUT_SIZE, rotations[i]))


def test_udp_warp_matrix_maps_box_corners_to_crop_corners():
    c = np.array([100.0, 80.0])
    s = np.array([120.0, 160.0])
    mat = get_udp_warp_matrix(c, s, INPUT_SIZE).astype(np.float64)
    pts = np.array([c - s / 2, c, c + s / 2])
    # UDP: the box extent maps onto W - 1 (H - 1) pixel intervals, corner pixel centres to corner pixel centres
    np.testing.assert_allclose(apply_affine(mat, pts), [[0, 0], [95.5, 127.5], [191, 255]], atol=1e-4)


# ---------------------------------------------------------------------------------------------------- crop_boxes


def test_crop_integer_translation_is_exact():
    # zoom 1 (scale = crop size - 1) and a centre chosen so that the translation is an integer: the crop is then a
    # plain sub-array of the image and a single bright pixel lands exactly where the matrix sends it
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (400, 500, 3), dtype=np.uint8)
    image[210, 321] = 255
    s = np.array([[191.0, 255.0]])
    c = np.array([[300.5, 200.5]])
    crop = crop_boxes(image, c, s)
    mat = get_udp_warp_matrix(c[0], s[0], INPUT_SIZE)
    u, v = apply_affine(mat.astype(np.float64), np.array([321.0, 210.0]))
    assert (u, v) == (pytest.approx(116.0, abs=1e-4), pytest.approx(137.0, abs=1e-4))
    x0, y0 = 205, 73  # top-left of the box: centre - scale / 2
    np.testing.assert_array_equal(crop[0], image[y0 : y0 + 256, x0 : x0 + 192])
    np.testing.assert_array_equal(crop[0, int(v), int(u)], 255)


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_crop_linear_ramp_matches_matrix(dtype):
    # Bilinear interpolation reproduces a linear function exactly, so every crop pixel whose source point lies in
    # the image must equal ramp(M^-1 (u, v)). Tolerances: cv2 may quantise the sub-pixel position to 1/32 pixel
    # (OpenCV 4's INTER_TAB_SIZE; OpenCV 5 is exact for float), i.e. <= 1/64 px per axis -> (|a| + |b|) / 64 in
    # value, plus float32 rounding; for uint8 add 0.5 for rounding the source image and 0.5 for rounding the output.
    h, w = 300, 400
    a, b, c0 = 0.4, 0.25, 7.0  # stays below 255 for uint8
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    ramp = a * xx + b * yy + c0
    image = np.repeat(np.round(ramp)[..., None] if dtype == np.uint8 else ramp[..., None], 3, axis=2).astype(dtype)
    boxes = np.array([[50.0, 40.0, 100.0, 200.0], [-30.0, 100.0, 250.0, 80.0], [300.0, 250.0, 60.0, 60.0]])
    centers, scales = box_to_center_scale(boxes)
    crops = crop_boxes(image, centers, scales)
    assert crops.shape == (3, 256, 192, 3) and crops.dtype == dtype
    tol = (abs(a) + abs(b)) / 64 + 1e-4 * ramp.max() + (1.0 if dtype == np.uint8 else 0.0)
    v, u = np.mgrid[0:256, 0:192].astype(np.float64)
    for i in range(3):
        inv = inverse_affine(get_udp_warp_matrix(centers[i], scales[i], INPUT_SIZE))
        xs = inv[0, 0] * u + inv[0, 1] * v + inv[0, 2]
        ys = inv[1, 0] * u + inv[1, 1] * v + inv[1, 2]
        inside = (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)
        assert inside.sum() > 1000
        expected = a * xs + b * ys + c0
        for ch in range(3):
            err = np.abs(crops[i, ..., ch].astype(np.float64) - expected)[inside]
            assert err.max() <= tol, (i, err.max(), tol)
        # outside the image the border is the constant 0 (further than one pixel, where no interpolation reaches)
        far = (xs < -1) | (xs > w) | (ys < -1) | (ys > h)
        assert np.all(crops[i][far] == 0)


def test_crop_matches_transformers_scipy_warp_on_interior():
    # scipy's affine_transform (order=1, mode='constant') treats the image border differently from cv2's
    # BORDER_CONSTANT (scipy returns cval as soon as a sample leaves [0, n - 1]; cv2 blends the border pixel with 0),
    # so compare only crop pixels whose source lies at least 1 px inside the image. There, both are bilinear
    # interpolation; the tolerance covers cv2's possible 1/32-px position quantisation (max gradient / 64) and
    # float32 rounding.
    h, w = 240, 320
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    smooth = 100 + 60 * np.sin(xx / 13.0) * np.cos(yy / 17.0) + 0.2 * xx
    image = np.stack([smooth, smooth[::-1].copy(), smooth * 0.5], axis=2).astype(np.float32)
    max_grad = 60 / 13.0 + 60 / 17.0 + 0.2
    tol = max_grad / 64 + 1e-3
    boxes = np.array([[40.0, 30.0, 120.0, 150.0], [100.0, 120.0, 200.0, 90.0]])
    centers, scales = box_to_center_scale(boxes)
    crops = crop_boxes(image, centers, scales)
    v, u = np.mgrid[0:256, 0:192].astype(np.float64)
    for i in range(len(boxes)):
        mat = get_udp_warp_matrix(centers[i], scales[i], INPUT_SIZE)
        ref = tf_proc.scipy_warp_affine(image, mat, (256, 192))
        inv = inverse_affine(mat)
        xs = inv[0, 0] * u + inv[0, 1] * v + inv[0, 2]
        ys = inv[1, 0] * u + inv[1, 1] * v + inv[1, 2]
        interior = (xs >= 1) & (xs <= w - 2) & (ys >= 1) & (ys <= h - 2)
        assert interior.sum() > 1000
        np.testing.assert_allclose(crops[i][interior], ref[interior], atol=tol)


def test_crop_edge_cases():
    image = np.arange(60 * 80, dtype=np.float32).reshape(60, 80, 1)
    empty = crop_boxes(image, np.zeros((0, 2)), np.zeros((0, 2)))
    assert empty.shape == (0, 256, 192, 1) and empty.dtype == np.float32
    c, s = box_to_center_scale([10, 10, 30, 40])
    one = crop_boxes(image, c, s, output_size=(48, 64))
    assert one.shape == (1, 64, 48, 1)
    # a negative-stride view (e.g. BGR -> RGB) is accepted and equals its contiguous copy
    rgb = np.random.default_rng(5).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    np.testing.assert_array_equal(crop_boxes(rgb[..., ::-1], c, s), crop_boxes(rgb[..., ::-1].copy(), c, s))
    with pytest.raises(ValueError, match=r"image must have shape \(H, W, C\)"):
        crop_boxes(image[..., 0], c, s)


# ------------------------------------------------------------------------------------------ heatmap -> image


def test_heatmap_to_image_coords_matches_transformers_transform_preds():
    rng = np.random.default_rng(6)
    n, k = 8, 17
    centers, scales = box_to_center_scale(random_boxes(rng, n))
    coords = rng.uniform(-1, 50, (n, k, 2)).astype(np.float32)
    ours = heatmap_to_image_coords(coords, centers, scales, (48, 64))
    assert ours.shape == (n, k, 2) and ours.dtype == np.float32
    for i in range(n):
        ref = tf_proc.transform_preds(coords[i], centers[i], scales[i] / 200.0, output_size=[64, 48])
        np.testing.assert_allclose(ours[i], ref, rtol=1e-5, atol=1e-3)
    torch_in = heatmap_to_image_coords(torch.from_numpy(coords), torch.from_numpy(centers), scales, (48, 64))
    np.testing.assert_array_equal(torch_in, ours)


def test_heatmap_to_image_coords_inverts_the_crop_matrix():
    # image point -> UDP crop matrix -> crop pixel -> heatmap pixel (stride (in - 1) / (hm - 1)) -> back
    rng = np.random.default_rng(7)
    centers, scales = box_to_center_scale(random_boxes(rng, 10))
    pts = centers[:, None, :] + rng.uniform(-0.5, 0.5, (10, 5, 2)) * scales[:, None, :]
    stride = (np.array(INPUT_SIZE) - 1.0) / (np.array([48, 64]) - 1.0)
    mats = get_udp_warp_matrices(centers, scales, INPUT_SIZE).astype(np.float64)
    hm = np.stack([apply_affine(mats[i], pts[i]) for i in range(10)]) / stride
    back = heatmap_to_image_coords(hm, centers, scales, (48, 64))
    np.testing.assert_allclose(back, pts, atol=1e-3)


def test_cv2_warp_uses_the_same_convention():
    # cv2.transform with our matrix equals our own application of it (guards the (x, y) / (row, col) convention)
    mat = get_udp_warp_matrix([50.0, 60.0], [80.0, 100.0], INPUT_SIZE)
    pts = np.array([[[10.0, 20.0]], [[55.0, 70.0]]], dtype=np.float32)
    np.testing.assert_allclose(cv2.transform(pts, mat)[:, 0], apply_affine(mat, pts[:, 0]), atol=1e-4)
