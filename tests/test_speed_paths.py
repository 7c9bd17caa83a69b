"""The fast paths equal the plain computations: the rearranged simple head, the fused crop + normalisation, the PIL
region shortcut, the grid_sample (GPU) crops against cv2's, and the benchmark script keeps running (no timing
assertions anywhere)."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from conftest import DATA, ROOT, make_hf_model, require_shared, save_hf
from vitpose import VitPoseForPoseEstimation, VitPoseImageProcessor
from vitpose.models.heads import SimpleHead
from vitpose.ops.geometry import (
    box_to_center_scale,
    crop_and_normalize,
    crop_boxes,
    crop_boxes_torch,
    cv2_sampling_positions,
    sampled_region,
)

MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


def _plain_simple_head(head: SimpleHead, features: torch.Tensor) -> torch.Tensor:
    """The decoder as written in the original and transformers: ReLU, upsample every channel, 3x3 conv (pad 1)."""
    up = F.interpolate(F.relu(features), scale_factor=head.scale_factor, mode="bilinear", align_corners=False)
    return F.conv2d(up, head.final_layer.weight, head.final_layer.bias, padding=1)


# ------------------------------------------------------------------------------------------------ simple head
@pytest.mark.parametrize(
    ("channels", "keypoints", "size", "factor"),
    [(96, 17, (16, 12), 4), (384, 133, (16, 12), 4), (64, 14, (1, 1), 4), (32, 5, (5, 7), 2), (48, 3, (2, 9), 3)],
)
def test_rearranged_simple_head_equals_plain(channels, keypoints, size, factor):
    """Mixing channels commutes with per-channel bilinear upsampling, and the zero padding of the 3x3 conv is the
    zero padding of the shifted sum. In float64 the two orders agree to 1e-12 (the rearrangement is exact); in
    float32 to 1e-5 relative to the heatmaps' range (rounding of sums of 9 C products taken in another order), on
    every pixel, the border rows and columns included."""
    torch.manual_seed(0)
    head = SimpleHead(channels, keypoints, factor)
    with torch.no_grad():
        head.final_layer.weight.normal_(0, 1.0 / (3 * channels**0.5))
        head.final_layer.bias.normal_(0, 0.5)
    features = torch.randn(3, channels, *size)
    with torch.no_grad():
        got = head(features)
        want = _plain_simple_head(head, features)
        exact = head.double()(features.double()) - _plain_simple_head(head, features.double())
        head.float()
    assert got.shape == want.shape == (3, keypoints, size[0] * factor, size[1] * factor)
    scale = float(want.abs().max())
    assert scale > 0.5  # non-trivial values
    assert float(exact.abs().max()) <= 1e-12
    torch.testing.assert_close(got, want, atol=1e-5 * scale, rtol=0)
    for border in (got[..., 0, :] - want[..., 0, :], got[..., -1, :] - want[..., -1, :]):
        assert float(border.abs().max()) <= 1e-5 * scale
    for border in (got[..., :, 0] - want[..., :, 0], got[..., :, -1] - want[..., :, -1]):
        assert float(border.abs().max()) <= 1e-5 * scale
    torch.testing.assert_close(head.forward_reference(features), want, atol=1e-6, rtol=0)


def test_rearranged_simple_head_gradients_equal_plain():
    """Training goes through the same path: gradients with respect to input, weight and bias agree too."""
    torch.manual_seed(1)
    head = SimpleHead(48, 17)
    features = torch.randn(2, 48, 16, 12, requires_grad=True)
    target = torch.randn(2, 17, 64, 48)
    grads = []
    for fn in (head, lambda f: _plain_simple_head(head, f)):
        head.zero_grad()
        features.grad = None
        ((fn(features) - target) ** 2).mean().backward()
        grads.append((features.grad.clone(), head.final_layer.weight.grad.clone(), head.final_layer.bias.grad.clone()))
    for fast, plain in zip(*grads, strict=True):
        torch.testing.assert_close(fast, plain, atol=1e-6, rtol=1e-4)


def test_simple_head_trains_after_inference_mode_use():
    """The head's cached upsampling matrices, first built under inference mode (an evaluation before training, a
    service), are plain tensors: a backward pass through the head works afterwards (inference tensors would raise)."""
    head = SimpleHead(24, 5)
    features = torch.randn(2, 24, 7, 5)
    with torch.inference_mode():
        head(features)
    features.requires_grad_(True)
    head(features).square().mean().backward()
    assert features.grad is not None and float(features.grad.abs().sum()) > 0


def test_interpolation_matrix_is_bilinear_upsampling():
    """One row of `interpolation_matrix` per output sample, rows summing to 1, equal to F.interpolate on a ramp and
    on random data (align_corners=False, clamped at both ends)."""
    from vitpose.models.heads import interpolation_matrix

    for size, scale in ((16, 4), (12, 4), (1, 4), (5, 3)):
        matrix = interpolation_matrix(size, scale)
        assert matrix.shape == (size * scale, size)
        torch.testing.assert_close(matrix.sum(1), torch.ones(size * scale, dtype=torch.float64))
        data = torch.randn(2, size, dtype=torch.float64)
        want = F.interpolate(data[None], scale_factor=scale, mode="linear", align_corners=False)[0]
        torch.testing.assert_close(data @ matrix.T, want, atol=1e-12, rtol=0)


def test_fast_head_keeps_parameter_names_and_checkpoint_equality(tmp_path):
    """Same parameters as before (checkpoints unchanged), and the whole model equals transformers with it."""
    hf = make_hf_model(simple=True)
    ours = VitPoseForPoseEstimation.from_pretrained(save_hf(hf, tmp_path))
    assert {k for k in ours.state_dict() if k.startswith("keypoint_head.")} == {
        "keypoint_head.final_layer.weight",
        "keypoint_head.final_layer.bias",
    }
    pixel_values = torch.randn(2, 3, 256, 192)
    with torch.no_grad():
        fast = ours(pixel_values).heatmaps
        ours.keypoint_head.fast = False
        plain = ours(pixel_values).heatmaps
        want = hf(pixel_values=pixel_values).heatmaps
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=0)
    torch.testing.assert_close(fast, want, atol=1e-4, rtol=0)


def test_simple_head_rejects_wrong_features():
    with pytest.raises(ValueError, match=r"features must have shape \(batch, 32, height, width\)"):
        SimpleHead(32, 17)(torch.zeros(1, 16, 4, 4))


# ------------------------------------------------------------------------------------------------ CPU crops
def _coco_image() -> np.ndarray:
    """A real photo (the shared COCO image): a missing input skips on a developer's checkout and fails in CI."""
    path = require_shared(DATA / "coco" / "000000196141.jpg")
    return np.asarray(Image.open(path).convert("RGB"))


def _boxes(width: int, height: int) -> np.ndarray:
    # inside, across every border, larger than the image, tiny, and entirely outside
    return np.array(
        [
            [50.3, 40.7, 120.2, 200.9],
            [-30.0, -20.0, 150.0, 180.0],
            [width - 100.0, height - 90.0, 150.0, 160.0],
            [10.0, 10.0, 5.5, 7.3],
            [-50.0, -40.0, width + 100.0, height + 80.0],
            [width + 50.0, 10.0, 40.0, 60.0],
        ]
    )


def test_crop_and_normalize_equals_crop_then_normalise():
    image = _coco_image()
    centers, scales = box_to_center_scale(_boxes(image.shape[1], image.shape[0]))
    scale = (1 / (255 * STD)).astype(np.float32)
    offset = (-MEAN / STD).astype(np.float32)
    got = crop_and_normalize(image, centers, scales, (192, 256), scale, offset)
    crops = crop_boxes(image, centers, scales).transpose(0, 3, 1, 2).astype(np.float32)
    want = crops * scale[:, None, None] + offset[:, None, None]
    assert got.shape == (6, 3, 256, 192) and got.dtype == np.float32
    np.testing.assert_array_equal(got, want)  # the same float32 operations, in the same order
    out = np.full((6, 3, 256, 192), np.nan, np.float32)
    assert crop_and_normalize(image, centers, scales, (192, 256), scale, offset, out=out) is out
    np.testing.assert_array_equal(out, want)
    with pytest.raises(ValueError, match="one value per output channel"):
        crop_and_normalize(image, centers, scales, (192, 256), scale[:2], offset)
    with pytest.raises(ValueError, match="out must be a float32 array"):
        crop_and_normalize(image, centers, scales, (192, 256), scale, offset, out=np.zeros((6, 3, 256, 192)))


def test_crop_boxes_out_argument():
    image = _coco_image()
    centers, scales = box_to_center_scale(_boxes(image.shape[1], image.shape[0]))
    out = np.empty((6, 256, 192, 3), np.uint8)
    assert crop_boxes(image, centers, scales, out=out) is out
    np.testing.assert_array_equal(out, crop_boxes(image, centers, scales))
    with pytest.raises(ValueError, match="out must be a uint8 array"):
        crop_boxes(image, centers, scales, out=np.empty((5, 256, 192, 3), np.uint8))


def test_processor_pixel_values_equal_the_plain_computation():
    """The fused path gives exactly what cropping with crop_boxes and normalising in float32 gave."""
    image = _coco_image()
    boxes = _boxes(image.shape[1], image.shape[0])
    got = VitPoseImageProcessor()(image, boxes=[boxes]).pixel_values
    centers, scales = box_to_center_scale(boxes)
    crops = torch.from_numpy(crop_boxes(image, centers, scales)).permute(0, 3, 1, 2).float()
    a = torch.tensor(1 / (255 * STD), dtype=torch.float32).view(1, 3, 1, 1)
    b = torch.tensor(-MEAN / STD, dtype=torch.float32).view(1, 3, 1, 1)
    torch.testing.assert_close(got, crops * a + b, atol=0, rtol=0)


@pytest.mark.parametrize("in_place", [True, False])
@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P", "LA", "1"])
def test_pil_region_shortcut_is_exact(mode, in_place, monkeypatch):
    """For a PIL image only the sampled region is converted to numpy; the crops must not change by one bit, for
    small boxes in a large image (the shortcut), boxes outside the image, and boxes covering it (the full path).
    RGB, RGBA and L images are read in place (`vitpose.pil_pixels`) unless that is switched off (`in_place`)."""
    import vitpose.processor as processor_module

    if not in_place:
        monkeypatch.setattr(processor_module, "pil_pixels", lambda image: None)
    rng = np.random.default_rng(3)
    big = cv2.resize(_coco_image(), (1600, 1000))
    pil = Image.fromarray(big).convert(mode)
    as_array = np.asarray(pil.convert("RGB"))
    proc = VitPoseImageProcessor()
    cases = [
        np.array([[700.0, 400.0, 60.0, 120.0], [730.0, 380.0, 40.0, 90.0]]),  # small region: shortcut
        np.array([[1590.0, 990.0, 30.0, 40.0]]),  # at the corner
        np.array([[-300.0, -300.0, 50.0, 50.0]]),  # nothing of the image is read
        _boxes(1600, 1000),  # most of the image: full conversion
        np.column_stack(
            [rng.uniform(0, 1500, 5), rng.uniform(0, 900, 5), rng.uniform(5, 90, 5), rng.uniform(5, 90, 5)]
        ),
    ]
    for boxes in cases:
        centers, scales = box_to_center_scale(boxes)
        region = sampled_region(centers, scales, (1600, 1000))
        assert region is None or (0 <= region[0] < region[2] <= 1600 and 0 <= region[1] < region[3] <= 1000)
        got = proc(pil, boxes=[boxes]).pixel_values
        want = proc(as_array, boxes=[boxes]).pixel_values
        torch.testing.assert_close(got, want, atol=0, rtol=0)


# ------------------------------------------------------------------------------------------------ GPU crops
def test_cv2_sampling_positions_reproduce_cv2():
    """Nearest-neighbour warping through our reproduction of cv2's 1/32-pixel positions picks the same source pixel
    as cv2's own INTER_LINEAR grid would: checked on a linear ramp where bilinear = the position itself."""
    h, w = 120, 160
    xx = np.mgrid[0:h, 0:w][1].astype(np.float32)
    ramp_x = np.ascontiguousarray(xx[..., None].repeat(3, axis=2))
    boxes = np.array([[20.3, 10.7, 50.2, 70.9], [5.0, 5.0, 100.0, 60.0]])
    centers, scales = box_to_center_scale(boxes)
    crops = crop_boxes(ramp_x, centers, scales)[..., 0]  # cv2's sampled x position (inside the image)
    row_x, row_y, col_x, col_y = cv2_sampling_positions(centers, scales, (192, 256))
    xq = ((row_x[:, :, None] + col_x[:, None, :]) >> 5) / 32.0
    yq = ((row_y[:, :, None] + col_y[:, None, :]) >> 5) / 32.0
    inside = (xq >= 0) & (xq <= w - 1) & (yq >= 0) & (yq <= h - 1)
    assert inside.mean() > 0.5
    np.testing.assert_allclose(crops[inside], xq[inside], atol=2e-3)  # float32 table weights only


def test_grid_sample_crops_match_cv2_within_one_grey_level():
    """Tolerance: both sample at the same positions (cv2's 1/32-pixel grid, reproduced exactly) with bilinear
    weights and zeros outside the image; cv2 uses 15-bit fixed-point weights and rounds to uint8, grid_sample float
    weights. Before rounding they differ by at most half a grey level (fixed-point weights: <= 4 * 2^-15 * 255),
    so after rounding by at most one, and only where a value sits near a half level: at least 99% of pixels must
    be identical. Checked on a real photo with boxes inside, across every border, larger than the image, tiny and
    entirely outside."""
    image = _coco_image()
    centers, scales = box_to_center_scale(_boxes(image.shape[1], image.shape[0]))
    want = crop_boxes(image, centers, scales).astype(np.float32)
    got = crop_boxes_torch(torch.from_numpy(image.copy()), centers, scales).permute(0, 2, 3, 1).numpy()
    diff = np.abs(got - want)
    assert diff.max() <= 1.0
    assert (diff == 0).mean() >= 0.99
    raw = crop_boxes_torch(torch.from_numpy(image.copy()), centers, scales, round_to_integers=False)
    assert float((raw.permute(0, 2, 3, 1) - torch.from_numpy(want)).abs().max()) <= 0.5 + 1e-3
    # float images: cv2 interpolates in float32 with the same grid; left is grid_sample's float32 coordinate
    # normalisation (position error <= width * 2^-23 px, times at most 255 per pixel) -> 0.05
    fimage = image.astype(np.float32)
    fgot = crop_boxes_torch(torch.from_numpy(fimage), centers, scales).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(fgot, crop_boxes(fimage, centers, scales), atol=0.05, rtol=0)
    assert crop_boxes_torch(image, centers[:0], scales[:0]).shape == (0, 3, 256, 192)


def test_processor_torch_backend_matches_cv2_backend():
    """The processor's grid_sample path (what runs on a GPU) against its cv2 path: one grey level is 1 / (255 std)
    after normalisation; half precision on request."""
    image = _coco_image()
    boxes = [_boxes(image.shape[1], image.shape[0])]
    proc = VitPoseImageProcessor()
    cv = proc(image, boxes=boxes).pixel_values
    tg = proc(image, boxes=boxes, crop_backend="torch").pixel_values
    grey = float(1 / (255 * STD.min()))
    assert float((tg - cv).abs().max()) <= grey + 1e-5
    assert float(((tg - cv).abs() > 1e-5).float().mean()) <= 0.01
    half = proc(Image.fromarray(image), boxes=boxes, crop_backend="torch", dtype=torch.float16).pixel_values
    assert half.dtype == torch.float16 and half.shape == cv.shape
    assert float((half.float() - cv).abs().max()) <= grey + 0.02  # + float16 rounding of values up to ~2.6
    empty = proc(image, boxes=[[]], crop_backend="torch").pixel_values
    assert empty.shape == (0, 3, 256, 192)
    with pytest.raises(ValueError, match="crop_backend must be"):
        proc(image, boxes=boxes, crop_backend="opencl")
    with pytest.raises(ValueError, match="dtype must be a floating-point"):
        proc(image, boxes=boxes, dtype=torch.int32)


# ------------------------------------------------------------------------------------------------ benchmark
@pytest.mark.slow
def test_benchmark_quick_runs(tmp_path):
    """The benchmark script keeps working (no timing is asserted: the machine is shared). It runs in this process
    (its `main`), not as a subprocess, so the test costs the benchmark's own time and no interpreter start-up."""
    pytest.importorskip("transformers")
    import importlib.util
    import warnings

    out = tmp_path / "bench.md"
    spec = importlib.util.spec_from_file_location("vitpose_benchmark", Path(ROOT, "benchmarks", "run.py"))
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench  # its dataclasses look their module up there
    spec.loader.exec_module(bench)
    threads = torch.get_num_threads()
    try:
        with warnings.catch_warnings():
            code = bench.main(["--quick", "--out", str(out)])
    finally:
        torch.set_num_threads(threads)  # --quick runs on one thread; later tests get the machine's threads back
    assert code == 0
    text = out.read_text()
    for section in ("## Targets", "## Pre-processing", "## Network", "## Decoding", "## Whole pose stage"):
        assert section in text
    assert "fp32 matmul rate" in text and "| CPU |" in text
    # What bounds each line is reported next to it: the bare warps, the GEMMs alone, the fp32 ceiling.
    assert "bare cv2 warps ms" in text and "block GEMMs alone" in text and "| ceiling |" in text
