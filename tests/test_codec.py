"""Tests for vitpose.ops.codec: UDP Gaussian targets, DARK-UDP decoding and the flip test helpers.

The decoder is checked against (a) Gaussians at known sub-pixel positions, (b) a plain per-map loop written here that
follows the original ViTPose decoder step by step (argmax, cv2.GaussianBlur, clip, log, edge pad, Newton step) and
(c) transformers' processor functions, which are the numerical oracle for the parts they share with the original.
"""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from vitpose.ops import codec as codec_mod
from vitpose.ops.codec import UDPHeatmapCodec, flip_back, flip_images, get_maxima, refine_dark_udp
from vitpose.ops.geometry import box_to_center_scale, get_udp_warp_matrices

tf_proc = pytest.importorskip("transformers.models.vitpose.image_processing_pil_vitpose")
tf_model = pytest.importorskip("transformers.models.vitpose.modeling_vitpose")

INPUT_SIZE = (192, 256)
HEATMAP_SIZE = (48, 64)
HM_W, HM_H = HEATMAP_SIZE
STRIDE = (np.array(INPUT_SIZE) - 1.0) / (np.array(HEATMAP_SIZE) - 1.0)
COCO_FLIP_PAIRS = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12], [13, 14], [15, 16]]

# Centres and scales that make the UDP back-transform the identity: x = x_hm * s / (W - 1) + c - s / 2.
IDENTITY_SCALE = np.array([HM_W - 1.0, HM_H - 1.0])
IDENTITY_CENTER = IDENTITY_SCALE / 2


def gaussian_formula(centers_xy: np.ndarray, sigma: float = 2.0, size=HEATMAP_SIZE) -> np.ndarray:
    """Independent renderer: untruncated exp(-d^2 / (2 sigma^2)) around (..., 2) sub-pixel centres -> (..., H, W)."""
    w, h = size
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    cx = centers_xy[..., 0, None, None]
    cy = centers_xy[..., 1, None, None]
    return np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2))


def reference_decode_loop(heatmaps: np.ndarray, kernel: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """The original decoder, one heatmap at a time: -> refined (N, K, 2) float64 heatmap coords, (N, K) scores.

    argmax (score = max, location -1 if max <= 0, then not refined); blur with cv2.GaussianBlur((k, k), 0)
    (BORDER_REFLECT_101); clip to [0.001, 50]; log; edge-pad by 1; central differences at the argmax; one Newton
    step with inv(H + eps * I). Values stay float32 up to the derivatives, as in the original.
    """
    n, k, _, w = heatmaps.shape
    coords = np.full((n, k, 2), -1.0)
    scores = np.zeros((n, k), np.float32)
    eps = np.finfo(np.float32).eps
    for i in range(n):
        for j in range(k):
            hm = heatmaps[i, j].astype(np.float32)
            flat_idx = int(np.argmax(hm))
            scores[i, j] = hm.reshape(-1)[flat_idx]
            if not scores[i, j] > 0:
                continue
            y, x = divmod(flat_idx, w)
            blurred = cv2.GaussianBlur(hm, (kernel, kernel), 0)
            logmap = np.pad(np.log(np.clip(blurred, 0.001, 50)), 1, mode="edge")
            py, px = y + 1, x + 1
            c = logmap[py, px]
            right, left = logmap[py, px + 1], logmap[py, px - 1]
            down, up = logmap[py + 1, px], logmap[py - 1, px]
            grad = np.array([0.5 * (right - left), 0.5 * (down - up)], dtype=np.float64)
            dxx = right - 2 * c + left
            dyy = down - 2 * c + up
            dxy = 0.5 * (logmap[py + 1, px + 1] - right - down + c + c - left - up + logmap[py - 1, px - 1])
            hess = np.array([[dxx, dxy], [dxy, dyy]], dtype=np.float64) + eps * np.eye(2)
            coords[i, j] = np.array([x, y], dtype=np.float64) - np.linalg.inv(hess) @ grad
    return coords, scores


def model_like_heatmaps(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """Peaks of varied width and height on a noisy, slightly negative background, some at the border."""
    centers = np.stack([rng.uniform(-2, HM_W + 1, (n, k)), rng.uniform(-2, HM_H + 1, (n, k))], axis=-1)
    sigmas = rng.uniform(1.5, 3.5, (n, k))[..., None, None]
    amps = rng.uniform(0.05, 1.0, (n, k))[..., None, None]
    ys, xs = np.mgrid[0:HM_H, 0:HM_W]
    d2 = (xs - centers[..., 0, None, None]) ** 2 + (ys - centers[..., 1, None, None]) ** 2
    hm = amps * np.exp(-d2 / (2 * sigmas**2)) + 0.01 * rng.standard_normal((n, k, HM_H, HM_W)) - 0.005
    hm[0, 0] = -np.abs(hm[0, 0]) - 1e-3  # an all-negative map: location -1, not refined
    hm[0, 1, 0, 0] = 5.0  # argmax in a corner
    hm[0, 2, HM_H - 1, 20] = 5.0  # argmax on the bottom edge
    return hm.astype(np.float32)


def image_from_hm_reference(hm_coords: np.ndarray, centers: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Float64 UDP back-transform (docs/reference.md, test-time pipeline step 6) for the reference loop's output."""
    per_px = scales / (np.array(HEATMAP_SIZE) - 1.0)
    return hm_coords * per_px[:, None] + (centers - scales / 2)[:, None]


# ------------------------------------------------------------------------------------------------------ encode


def test_encode_value_one_and_peak_at_integer_centre():
    codec = UDPHeatmapCodec()
    hm_xy = np.array([[[10.0, 20.0], [30.0, 5.0], [0.0, 0.0], [47.0, 63.0]]])
    kp = hm_xy * STRIDE  # crop pixels that land exactly on heatmap pixels
    heatmaps, weights = codec.encode(kp, np.ones((1, 4)))
    assert heatmaps.shape == (1, 4, 64, 48) and heatmaps.dtype == np.float32
    assert weights.shape == (1, 4) and weights.dtype == np.float32
    np.testing.assert_array_equal(weights, 1.0)
    for j, (x, y) in enumerate(hm_xy[0].astype(int)):
        assert heatmaps[0, j, y, x] == pytest.approx(1.0, abs=1e-6)
        assert np.unravel_index(np.argmax(heatmaps[0, j]), (64, 48)) == (y, x)


def test_encode_matches_formula_inside_3_sigma_window_and_is_zero_outside():
    rng = np.random.default_rng(0)
    hm_xy = np.stack([rng.uniform(-3, HM_W + 2, (4, 17)), rng.uniform(-3, HM_H + 2, (4, 17))], axis=-1)
    heatmaps, _ = UDPHeatmapCodec().encode(hm_xy * STRIDE, np.ones((4, 17)))
    expected = gaussian_formula(hm_xy)
    mu = np.trunc(hm_xy + 0.5)  # the original's int(x + 0.5)
    ys, xs = np.mgrid[0:HM_H, 0:HM_W]
    window = (np.abs(xs - mu[..., 0, None, None]) <= 6) & (np.abs(ys - mu[..., 1, None, None]) <= 6)
    np.testing.assert_allclose(heatmaps[window], expected[window], atol=1e-6)
    assert np.all(heatmaps[~window] == 0)
    # peak at the keypoint: the argmax is the nearest pixel whenever the keypoint is inside the map
    inside = (hm_xy[..., 0] > 0) & (hm_xy[..., 0] < HM_W - 1) & (hm_xy[..., 1] > 0) & (hm_xy[..., 1] < HM_H - 1)
    for i, j in zip(*np.nonzero(inside), strict=True):
        y, x = np.unravel_index(np.argmax(heatmaps[i, j]), (HM_H, HM_W))
        assert (x, y) == (round(hm_xy[i, j, 0]), round(hm_xy[i, j, 1]))


def test_encode_target_weights():
    codec = UDPHeatmapCodec()
    hm_xy = np.array(
        [
            [
                [20.0, 30.0],  # 0 visible, inside
                [20.0, 30.0],  # 1 not labelled
                [-30.0, 30.0],  # 2 far left: window outside
                [20.0, 90.0],  # 3 far below
                [53.4, 30.0],  # 4 mu = 53, window 47..59 touches the last column 47
                [53.6, 30.0],  # 5 mu = 54, window starts at 48 = W: outside
                [-7.3, 30.0],  # 6 int(-6.8) = -6, window -12..0 touches column 0
                [np.nan, 30.0],  # 7 non-finite
            ]
        ]
    )
    visible = np.array([[2, 0, 1, 1, 1, 1, 1, 1]])
    heatmaps, weights = codec.encode(hm_xy * STRIDE, visible)
    np.testing.assert_array_equal(weights[0], [1, 0, 0, 0, 1, 0, 1, 0])
    assert np.all(heatmaps[0, [1, 2, 3, 5, 7]] == 0)
    assert heatmaps[0, 4, 30, 47] > 0 and heatmaps[0, 6, 30, 0] > 0


def test_encode_keeps_the_originals_left_edge_quirk():
    # The original tests `br < 0` with br = mu + 3 sigma + 1 (exclusive): at br == 0 the window -13..-1 is fully
    # outside, yet the weight stays 1 with an all-zero heatmap. int() truncates toward zero: int(-7.6 + 0.5) = -7.
    heatmaps, weights = UDPHeatmapCodec().encode(np.array([[[-7.6, 30.0]]]) * STRIDE, np.ones((1, 1)))
    assert weights[0, 0] == 1.0
    assert np.all(heatmaps == 0)


def test_encode_image_coordinates_equal_crop_coordinates():
    rng = np.random.default_rng(1)
    boxes = np.array([[100.0, 50.0, 80.0, 200.0], [10.0, 300.0, 300.0, 90.0], [0.0, 0.0, 50.0, 50.0]])
    centers, scales = box_to_center_scale(boxes)
    img_kp = centers[:, None] + rng.uniform(-0.45, 0.45, (3, 17, 2)) * scales[:, None]
    visible = rng.integers(0, 3, (3, 17))
    codec = UDPHeatmapCodec()
    hm_img, w_img = codec.encode(img_kp, visible, centers, scales)
    mats = get_udp_warp_matrices(centers, scales, INPUT_SIZE).astype(np.float64)
    crop_kp = np.einsum("nij,nkj->nki", mats[:, :, :2], img_kp) + mats[:, None, :, 2]
    hm_crop, w_crop = codec.encode(crop_kp, visible)
    np.testing.assert_allclose(hm_img, hm_crop, atol=1e-6)
    np.testing.assert_array_equal(w_img, w_crop)
    np.testing.assert_array_equal(w_img, (visible > 0).astype(np.float32))
    with pytest.raises(ValueError, match="both centers and scales"):
        codec.encode(img_kp, visible, centers=centers)


# ------------------------------------------------------------------------------------------------------ decode


@pytest.mark.parametrize("renderer", ["encode", "formula"])
def test_decode_recovers_subpixel_centres(renderer):
    rng = np.random.default_rng(2)
    n, k = 6, 17
    hm_xy = np.stack([rng.uniform(8, HM_W - 9, (n, k)), rng.uniform(8, HM_H - 9, (n, k))], axis=-1)
    codec = UDPHeatmapCodec()
    if renderer == "encode":
        heatmaps, _ = codec.encode(hm_xy * STRIDE, np.ones((n, k)))
    else:
        heatmaps = gaussian_formula(hm_xy).astype(np.float32)
    centers = np.tile(IDENTITY_CENTER, (n, 1))
    scales = np.tile(IDENTITY_SCALE, (n, 1))
    keypoints, scores = codec.decode(heatmaps, centers, scales)
    assert keypoints.shape == (n, k, 2) and keypoints.dtype == np.float32
    assert scores.shape == (n, k) and scores.dtype == np.float32
    np.testing.assert_allclose(keypoints, hm_xy, atol=0.05)
    np.testing.assert_allclose(scores, heatmaps.reshape(n, k, -1).max(-1))


@pytest.mark.parametrize("renderer", ["encode", "formula"])
def test_whole_chain_image_point_to_heatmap_and_back(renderer):
    # image point -> UDP crop matrix -> crop pixel -> heatmap pixel -> Gaussian -> decode -> image point
    rng = np.random.default_rng(3)
    boxes = np.array(
        [
            [120.0, 40.0, 60.0, 240.0],  # very tall
            [10.0, 200.0, 400.0, 70.0],  # very wide
            [300.0, 300.0, 150.0, 150.0],  # square
            [50.0, 60.0, 75.0, 100.0],  # exactly the input aspect
            [5.0, 5.0, 12.0, 20.0],  # tiny
        ]
    )
    n, k = len(boxes), 17
    centers, scales = box_to_center_scale(boxes)
    xy, wh = boxes[:, None, :2], boxes[:, None, 2:]
    points = xy + rng.uniform(0.0, 1.0, (n, k, 2)) * wh  # inside the (unpadded) box
    mats = get_udp_warp_matrices(centers, scales, INPUT_SIZE).astype(np.float64)
    crop_xy = np.einsum("nij,nkj->nki", mats[:, :, :2], points) + mats[:, None, :, 2]
    hm_xy = crop_xy / STRIDE
    codec = UDPHeatmapCodec()
    if renderer == "encode":
        heatmaps, weights = codec.encode(crop_xy, np.ones((n, k)))
        assert np.all(weights == 1)
    else:
        heatmaps = gaussian_formula(hm_xy).astype(np.float32)
    keypoints, _ = codec.decode(heatmaps, centers, scales)
    np.testing.assert_allclose(keypoints, points, atol=0.5)
    # away from the heatmap border the error is far below that (about 0.01 heatmap px times the zoom)
    interior = np.all((hm_xy > 8) & (hm_xy < np.array(HEATMAP_SIZE) - 9), axis=-1)
    per_px = (scales / (np.array(HEATMAP_SIZE) - 1.0))[:, None, :]
    err_hm = np.abs(keypoints - points) / per_px
    assert err_hm[interior].max() < 0.05


@pytest.mark.parametrize("kind", ["uniform_noise", "model_like"])
def test_decode_equals_per_map_reference_loop(kind):
    # The decoder blurs only the patch around each argmax but with cv2 itself, so it reproduces the per-map loop to
    # float32 output rounding, even on white noise where the Newton step is ill-conditioned (and meaningless).
    rng = np.random.default_rng(4)
    n, k = 8, 17
    if kind == "uniform_noise":
        heatmaps = rng.random((n, k, HM_H, HM_W)).astype(np.float32)
    else:
        heatmaps = model_like_heatmaps(rng, n, k)
    ref_hm, ref_scores = reference_decode_loop(heatmaps)

    coords, scores = get_maxima(heatmaps)
    np.testing.assert_array_equal(scores, ref_scores)
    refined = refine_dark_udp(coords, heatmaps)
    np.testing.assert_allclose(refined, ref_hm, rtol=0, atol=1e-4)

    centers, scales = box_to_center_scale(np.c_[rng.uniform(0, 500, (n, 2)), rng.uniform(30, 300, (n, 2))])
    keypoints, dec_scores = UDPHeatmapCodec().decode(heatmaps, centers, scales)
    np.testing.assert_array_equal(dec_scores, ref_scores)
    per_px = scales / (np.array(HEATMAP_SIZE) - 1.0)
    # 1e-4 heatmap px, scaled to image px, plus float32 rounding of coordinates in the hundreds
    tol = 1e-4 * per_px.max() + 1e-4
    np.testing.assert_allclose(keypoints, image_from_hm_reference(ref_hm, centers, scales), rtol=0, atol=tol)
    if kind == "model_like":
        assert np.all(coords[0, 0] == -1) and np.all(refined[0, 0] == -1)  # max <= 0: kept at -1, not refined
        np.testing.assert_allclose(keypoints[0, 0], centers[0] - scales[0] / 2 - per_px[0], rtol=1e-6)


def test_maxima_and_back_transform_equal_transformers():
    rng = np.random.default_rng(5)
    n, k = 6, 17
    heatmaps = model_like_heatmaps(rng, n, k)
    coords, scores = get_maxima(heatmaps)
    tf_coords, tf_scores = tf_proc.get_keypoint_predictions(heatmaps)
    np.testing.assert_array_equal(coords, tf_coords)
    np.testing.assert_array_equal(scores, tf_scores[..., 0])

    boxes = np.c_[rng.uniform(0, 500, (n, 2)), rng.uniform(30, 300, (n, 2))]
    centers, scales = box_to_center_scale(boxes)
    keypoints, _ = UDPHeatmapCodec().decode(heatmaps, centers, scales)
    refined = refine_dark_udp(coords, heatmaps)
    for i in range(n):
        tf_c, tf_s = tf_proc.box_to_center_and_scale(boxes[i], 192, 256)
        ref = tf_proc.transform_preds(refined[i], tf_c, tf_s, output_size=[HM_H, HM_W])
        np.testing.assert_allclose(keypoints[i], ref, rtol=1e-5, atol=1e-3)


def test_blur_settings_reproduce_transformers_post_process():
    # transformers blurs with scipy gaussian_filter(sigma=0.8, radius=5), mode 'reflect' = cv2 BORDER_REFLECT (the
    # original uses cv2's default BORDER_REFLECT_101 and sigma 2.0). With those settings we match its keypoints; the
    # residual is scipy's float64 blur vs cv2's float32 blur, amplified by the Newton step (about 1e-4 px).
    rng = np.random.default_rng(6)
    n, k = 12, 17
    heatmaps = model_like_heatmaps(rng, n, k)
    heatmaps[0, 0] = np.abs(heatmaps[0, 0])  # transformers refines max <= 0 maps from garbage memory: avoid them
    boxes = np.c_[rng.uniform(0, 500, (n, 2)), rng.uniform(30, 300, (n, 2))]
    processor = tf_proc.VitPoseImageProcessorPil()
    outputs = SimpleNamespace(heatmaps=torch.from_numpy(heatmaps))
    results = processor.post_process_pose_estimation(outputs, [boxes[:5].tolist(), boxes[5:].tolist()])
    tf_kp = np.stack([r["keypoints"].numpy() for image in results for r in image])
    tf_scores = np.stack([r["scores"].numpy() for image in results for r in image])

    centers, scales = box_to_center_scale(boxes)
    mimic = UDPHeatmapCodec(blur_kernel=11, blur_sigma=0.8, blur_border="reflect")
    keypoints, scores = mimic.decode(heatmaps, centers, scales)
    np.testing.assert_allclose(keypoints, tf_kp, rtol=0, atol=1e-3)
    np.testing.assert_array_equal(scores, tf_scores)
    # the original's blur gives different refinements (that is why the setting exists)
    original, _ = UDPHeatmapCodec().decode(heatmaps, centers, scales)
    assert np.abs(original - tf_kp).max() > 1e-2


def test_decode_accepts_torch_any_float_dtype():
    rng = np.random.default_rng(7)
    heatmaps = model_like_heatmaps(rng, 3, 17)
    centers, scales = box_to_center_scale([[10, 20, 100, 150], [200, 50, 40, 90], [0, 0, 300, 200]])
    codec = UDPHeatmapCodec()
    ref_kp, ref_scores = codec.decode(heatmaps, centers, scales)
    t = torch.from_numpy(heatmaps).requires_grad_(True)
    kp, scores = codec.decode(t, torch.from_numpy(centers), torch.from_numpy(scales))
    np.testing.assert_array_equal(kp, ref_kp)
    np.testing.assert_array_equal(scores, ref_scores)
    for dtype in (torch.float16, torch.bfloat16, torch.float64):
        low = torch.from_numpy(heatmaps).to(dtype)
        expected = codec.decode(low.float().numpy(), centers, scales)
        got = codec.decode(low, centers, scales)
        atol = 1e-9 if dtype != torch.float64 else 1e-3  # float64 stays float64 (as the original would)
        np.testing.assert_allclose(got[0], expected[0], atol=atol)
        np.testing.assert_allclose(got[1], expected[1], atol=atol)


def test_device_code_path_equals_numpy():
    # Tensors off the CPU keep the argmax and the patch gather on their device; exercise that code with a CPU
    # tensor passed straight to the helpers (and on CUDA when there is one).
    rng = np.random.default_rng(8)
    heatmaps = model_like_heatmaps(rng, 2, 17)
    flat_np = heatmaps.reshape(34, -1)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    idx_np, val_np = codec_mod._argmax_flat(flat_np)
    x, y = idx_np % HM_W, idx_np // HM_W
    ref = codec_mod._refine_flat(flat_np, heatmaps.shape, x, y, 11, None, "reflect_101")
    for device in devices:
        flat_t = torch.from_numpy(flat_np).to(device)
        idx_t, val_t = codec_mod._argmax_flat(flat_t)
        np.testing.assert_array_equal(idx_t, idx_np)
        np.testing.assert_array_equal(val_t, val_np)
        out = codec_mod._refine_flat(flat_t, heatmaps.shape, x, y, 11, None, "reflect_101")
        np.testing.assert_array_equal(out, ref)
        if device != "cpu":
            centers, scales = np.tile(IDENTITY_CENTER, (2, 1)), np.tile(IDENTITY_SCALE, (2, 1))
            got, _ = UDPHeatmapCodec().decode(torch.from_numpy(heatmaps).to(device), centers, scales)
            want, _ = UDPHeatmapCodec().decode(heatmaps, centers, scales)
            np.testing.assert_array_equal(got, want)


def test_decode_edge_cases():
    codec = UDPHeatmapCodec()
    kp, scores = codec.decode(np.zeros((0, 17, 64, 48), np.float32), np.zeros((0, 2)), np.zeros((0, 2)))
    assert kp.shape == (0, 17, 2) and scores.shape == (0, 17)
    # all-zero maps: max <= 0 everywhere, every location stays at heatmap (-1, -1)
    kp, scores = codec.decode(np.zeros((2, 3, 64, 48), np.float32), [IDENTITY_CENTER] * 2, [IDENTITY_SCALE] * 2)
    np.testing.assert_array_equal(kp, -1.0)
    np.testing.assert_array_equal(scores, 0.0)
    coords, _ = get_maxima(np.zeros((1, 2, 64, 48), np.float32))
    np.testing.assert_array_equal(coords, -1.0)  # max == 0 counts as "no peak" (strictly > 0 required)
    # NaN heatmap: score NaN, location -1 (NaN > 0 is False), as the original
    hm = np.ones((1, 1, 64, 48), np.float32)
    hm[0, 0, 3, 3] = np.nan
    kp, scores = codec.decode(hm, [IDENTITY_CENTER], [IDENTITY_SCALE])
    assert np.isnan(scores[0, 0]) and np.all(kp == -1)
    with pytest.raises(ValueError, match=r"heatmaps must have shape \(N, K, H, W\)"):
        codec.decode(np.zeros((17, 64, 48)), [IDENTITY_CENTER], [IDENTITY_SCALE])
    with pytest.raises(ValueError, match="positive odd integer"):
        UDPHeatmapCodec(blur_kernel=4)
    with pytest.raises(ValueError, match="reflect_101"):
        UDPHeatmapCodec(blur_border="constant")


# -------------------------------------------------------------------------------------------------------- flip


def test_flip_back_restores_heatmaps_numpy_and_torch():
    rng = np.random.default_rng(10)
    heatmaps = rng.random((2, 17, 64, 48)).astype(np.float32)
    perm = np.arange(17)
    for a, b in COCO_FLIP_PAIRS:
        perm[a], perm[b] = b, a
    # what a perfect model predicts on the mirrored crop: mirrored maps with left/right swapped
    flipped_pred = flip_images(torch.from_numpy(heatmaps[:, perm]))
    restored = flip_back(flipped_pred, torch.tensor(COCO_FLIP_PAIRS))
    assert isinstance(restored, torch.Tensor)
    np.testing.assert_array_equal(restored.numpy(), heatmaps)
    restored_np = flip_back(flip_images(heatmaps[:, perm]), COCO_FLIP_PAIRS)
    assert isinstance(restored_np, np.ndarray)
    np.testing.assert_array_equal(restored_np, heatmaps)
    # numpy and torch agree, and both equal transformers' flip_back
    t = torch.from_numpy(heatmaps)
    ref = tf_model.flip_back(t, torch.tensor(COCO_FLIP_PAIRS))
    np.testing.assert_array_equal(flip_back(t, torch.tensor(COCO_FLIP_PAIRS)).numpy(), ref.numpy())
    np.testing.assert_array_equal(flip_back(heatmaps, np.array(COCO_FLIP_PAIRS)), ref.numpy())


def test_flip_is_exact_under_udp():
    # Mirroring a crop maps crop x to W_in - 1 - x and heatmap x to W_hm - 1 - x (stride (W_in - 1) / (W_hm - 1)),
    # so the targets of the mirrored keypoints, flipped back, equal the original targets: no half-pixel shift.
    rng = np.random.default_rng(11)
    kp = np.stack([rng.uniform(10, 180, (3, 17)), rng.uniform(10, 240, (3, 17))], axis=-1)
    perm = np.arange(17)
    for a, b in COCO_FLIP_PAIRS:
        perm[a], perm[b] = b, a
    codec = UDPHeatmapCodec()
    targets, _ = codec.encode(kp, np.ones((3, 17)))
    mirrored = kp[:, perm].copy()
    mirrored[..., 0] = INPUT_SIZE[0] - 1 - mirrored[..., 0]
    mirrored_targets, _ = codec.encode(mirrored, np.ones((3, 17)))
    np.testing.assert_allclose(flip_back(mirrored_targets, COCO_FLIP_PAIRS), targets, atol=1e-6)


def test_flip_images_and_pair_validation():
    x = torch.arange(24.0).reshape(1, 2, 3, 4)
    np.testing.assert_array_equal(flip_images(x).numpy(), x.numpy()[..., ::-1])
    np.testing.assert_array_equal(flip_images(x.numpy()), x.numpy()[..., ::-1])
    with pytest.raises(ValueError, match="out of range"):
        flip_back(np.zeros((1, 3, 4, 4)), [[1, 5]])
    with pytest.raises(ValueError, match=r"\(P, 2\)"):
        flip_back(np.zeros((1, 3, 4, 4)), [1, 2, 0])
