"""VitPoseImageProcessor: crops as the original (compared with transformers' processor), every image form, boxes
in every form, post-processing structure, and clear errors."""

from __future__ import annotations

import json
import warnings

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import coco_images_and_boxes, make_hf_model, save_hf
from vitpose import AutoProcessor, VitPoseForPoseEstimation, VitPoseImageProcessor
from vitpose.ops.codec import UDPHeatmapCodec
from vitpose.ops.geometry import box_to_center_scale, get_udp_warp_matrices

STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def _hf_processor():
    pytest.importorskip("transformers")
    pytest.importorskip("scipy")
    from transformers.models.vitpose.image_processing_pil_vitpose import VitPoseImageProcessorPil

    return VitPoseImageProcessorPil()


def _source_inside(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """(N, 256, 192) mask of crop pixels whose bilinear source neighbourhood lies inside the image."""
    centers, scales = box_to_center_scale(boxes)
    mats = get_udp_warp_matrices(centers, scales, (192, 256)).astype(np.float64)
    yy, xx = np.mgrid[0:256, 0:192]
    pts = np.stack([xx.ravel(), yy.ravel(), np.ones(xx.size)])
    masks = []
    for m in mats:
        inv = np.linalg.inv(np.vstack([m, [0, 0, 1]]))
        sx, sy, _ = inv @ pts
        masks.append(((sx >= 1) & (sx <= width - 2) & (sy >= 1) & (sy <= height - 2)).reshape(256, 192))
    return np.stack(masks)


def test_pixel_values_match_transformers_on_real_images(coco_dir):
    """Tolerance: both warp the 8-bit image bilinearly with the same UDP matrix, transformers with scipy's
    affine_transform (floating point), we with cv2.warpAffine (the original's). OpenCV 4 rounds each sample position
    to 1/32 pixel (error <= 1/64 px per axis) and its weights to fixed point: at a maximal 8-bit edge (255 levels per
    pixel) that is at most 2 * 255 / 64 ~ 8 grey levels, plus 1 for rounding the result. Elsewhere the two agree to
    the rounding of the 8-bit result (1 grey level = 1/255/std <= 0.0175 after normalisation), so most pixels must
    agree that closely and the mean difference must stay small: a shifted, flipped or mis-normalised crop fails all
    three. At the image border the libraries sample the zero padding differently (scipy zeroes a sample as soon as
    it leaves the image, cv2 blends the edge pixel with 0), so only pixels whose source neighbourhood is inside the
    image are compared; they are the large majority of the crops."""
    hf = _hf_processor()
    ours = VitPoseImageProcessor()
    total_inside = 0
    for path, boxes in coco_images_and_boxes():
        image = Image.open(path).convert("RGB")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = hf(image, boxes=[boxes], return_tensors="pt").pixel_values
        got = ours(image, boxes=[boxes], return_tensors="pt").pixel_values
        assert got.shape == expected.shape == (len(boxes), 3, 256, 192) and got.dtype == torch.float32
        grey_levels = ((got - expected) * STD * 255).abs().amax(1).numpy()  # (N, 256, 192), in 0-255 units
        inside = _source_inside(boxes, image.width, image.height)
        assert grey_levels[inside].max() <= 1 + 2 * 255 / 64 + 1e-3
        assert np.mean(grey_levels[inside] <= 1 + 1e-3) > 0.95
        assert grey_levels[inside].mean() < 0.5
        total_inside += inside.sum()
    assert total_inside > 0.8 * 14 * 256 * 192


def test_crop_is_cv2_warp_affine_of_the_8bit_image(coco_dir):
    path, boxes = coco_images_and_boxes()[2]
    rgb = np.asarray(Image.open(path).convert("RGB"))
    centers, scales = box_to_center_scale(boxes)
    mats = get_udp_warp_matrices(centers, scales, (192, 256))
    got = VitPoseImageProcessor()(rgb, boxes=[boxes]).pixel_values
    for i, m in enumerate(mats):
        crop = cv2.warpAffine(rgb, m, (192, 256), flags=cv2.INTER_LINEAR).astype(np.float32) / 255.0
        expected = (torch.from_numpy(crop).permute(2, 0, 1) - torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)) / STD
        assert torch.allclose(got[i], expected, atol=1e-5)


def test_every_image_form_gives_the_same_pixels(coco_dir):
    path, boxes = coco_images_and_boxes()[1]
    pil = Image.open(path).convert("RGB")
    rgb = np.asarray(pil)
    proc = VitPoseImageProcessor()
    ref = proc(pil, boxes=[boxes]).pixel_values
    forms = [
        rgb,
        np.ascontiguousarray(rgb.transpose(2, 0, 1)),  # channels first
        torch.from_numpy(rgb.transpose(2, 0, 1).copy()),  # torch (3, H, W)
        np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]),  # RGBA
        pil.convert("RGBA"),
    ]
    for form in forms:
        assert torch.allclose(proc(form, boxes=[boxes]).pixel_values, ref, atol=1e-5)
    # Float pixels are warped in float, 8-bit ones rounded to 8 bits: at most one grey level apart (1/255/std).
    floats = proc(rgb.astype(np.float32), boxes=[boxes]).pixel_values
    assert ((floats - ref) * STD * 255).abs().max() <= 0.5 + 1e-3
    gray = pil.convert("L")
    gray_ref = proc(np.dstack([np.asarray(gray)] * 3), boxes=[boxes]).pixel_values
    for form in (gray, np.asarray(gray), np.asarray(gray)[:, :, None]):
        assert torch.allclose(proc(form, boxes=[boxes]).pixel_values, gray_ref, atol=1e-5)


def test_many_images_any_number_of_boxes_including_zero(coco_dir):
    data = coco_images_and_boxes()
    images = [Image.open(p).convert("RGB") for p, _ in data]
    boxes = [b for _, b in data]
    boxes[1] = np.zeros((0, 4))  # an image with nobody in it
    proc = VitPoseImageProcessor()
    batch = proc(images, boxes=boxes).pixel_values
    assert batch.shape[0] == sum(len(b) for b in boxes)
    singles = torch.cat([proc(img, boxes=[b]).pixel_values for img, b in zip(images, boxes, strict=True)])
    assert torch.equal(batch, singles)
    assert proc(images[0], boxes=[[]]).pixel_values.shape == (0, 3, 256, 192)
    # Boxes as lists, a flat list for one image, numpy (num_images, n, 4), torch.
    b0 = boxes[0]
    for form in ([b0.tolist()], b0.tolist(), b0, [torch.from_numpy(b0)], b0[None]):
        assert torch.equal(proc(images[0], boxes=form).pixel_values, proc(images[0], boxes=[b0]).pixel_values)


def test_return_tensors_and_to(coco_dir):
    path, boxes = coco_images_and_boxes()[0]
    proc = VitPoseImageProcessor()
    image = Image.open(path)
    assert isinstance(proc(image, boxes=[boxes], return_tensors="np").pixel_values, np.ndarray)
    assert isinstance(proc(image, boxes=[boxes], return_tensors=None).pixel_values, list)
    inputs = proc(image, boxes=[boxes], return_tensors="pt").to("cpu")
    assert inputs.pixel_values is inputs["pixel_values"] and list(inputs) == ["pixel_values"]
    assert inputs.to(torch.float16).pixel_values.dtype == torch.float16
    # Every form holds the same pixels: the crops of the tensor form.
    want = inputs.pixel_values.numpy()
    np.testing.assert_array_equal(proc(image, boxes=[boxes], return_tensors="np").pixel_values, want)
    as_list = proc(image, boxes=[boxes], return_tensors=None).pixel_values
    assert len(as_list) == len(boxes) == len(want)
    np.testing.assert_array_equal(np.stack([np.asarray(crop) for crop in as_list]), want)
    half = inputs.to(torch.float16).pixel_values
    torch.testing.assert_close(half, inputs.pixel_values.half(), rtol=0, atol=0)


def test_post_process_structure_and_bbox_is_the_input_box(tmp_path, coco_dir):
    model = VitPoseForPoseEstimation.from_pretrained(save_hf(make_hf_model(), tmp_path / "m"))
    data = coco_images_and_boxes()[:2]
    images = [Image.open(p) for p, _ in data]
    boxes = [b for _, b in data]
    proc = VitPoseImageProcessor()
    inputs = proc(images, boxes=boxes)
    with torch.no_grad():
        outputs = model(**inputs)
    results = proc.post_process_pose_estimation(outputs, boxes=boxes)
    assert [len(r) for r in results] == [len(b) for b in boxes]
    flat_boxes = np.concatenate(boxes)
    centers, scales = box_to_center_scale(flat_boxes)
    keypoints, scores = UDPHeatmapCodec().decode(outputs.heatmaps, centers, scales)
    n = 0
    for image_results, image_boxes in zip(results, boxes, strict=True):
        for person, box in zip(image_results, image_boxes, strict=True):
            assert set(person) == {"keypoints", "scores", "labels", "bbox"}
            assert person["keypoints"].shape == (17, 2) and person["keypoints"].dtype == torch.float32
            assert person["scores"].shape == (17,) and person["labels"].tolist() == list(range(17))
            assert np.allclose(person["bbox"].numpy(), box, atol=1e-4)
            assert np.allclose(person["keypoints"].numpy(), keypoints[n]) and np.allclose(person["scores"], scores[n])
            n += 1
    thresholded = proc.post_process_pose_estimation(outputs, boxes=boxes, threshold=float(np.median(scores)))
    person = thresholded[0][0]
    keep = scores[0] > float(np.median(scores))
    assert person["labels"].tolist() == np.flatnonzero(keep).tolist() and len(person["keypoints"]) == keep.sum()


def test_post_process_relative_boxes_with_target_sizes():
    proc = VitPoseImageProcessor()
    heat = torch.rand(1, 17, 64, 48)
    absolute = proc.post_process_pose_estimation(heat, boxes=[[[40.0, 30.0, 100.0, 200.0]]])
    relative = proc.post_process_pose_estimation(heat, boxes=[[[0.1, 0.1, 0.25, 2 / 3]]], target_sizes=[(300, 400)])
    assert torch.allclose(absolute[0][0]["keypoints"], relative[0][0]["keypoints"], atol=1e-3)
    # (height, width) = (300, 400): x by 400, y by 300, so [0.1, 0.1, 0.25, 2/3] is [40, 30, 100, 200] in pixels,
    # and both decode as the codec does for that box.
    centers, scales = box_to_center_scale(np.array([[40.0, 30.0, 100.0, 200.0]]))
    keypoints, scores = UDPHeatmapCodec().decode(heat.numpy(), centers, scales)
    np.testing.assert_allclose(absolute[0][0]["keypoints"].numpy(), keypoints[0], atol=1e-4)
    np.testing.assert_allclose(relative[0][0]["keypoints"].numpy(), keypoints[0], atol=1e-3)
    np.testing.assert_allclose(relative[0][0]["scores"].numpy(), scores[0], atol=1e-6)


def test_save_and_load_and_auto_processor(tmp_path):
    proc = VitPoseImageProcessor(size={"height": 256, "width": 192})
    proc.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert saved["image_processor_type"] == "VitPoseImageProcessor" and saved["size"] == {"height": 256, "width": 192}
    assert isinstance(AutoProcessor.from_pretrained(tmp_path), VitPoseImageProcessor)
    # transformers' own saved processor config loads in ours.
    hf = _hf_processor()
    hf.save_pretrained(tmp_path / "hf")
    loaded = AutoProcessor.from_pretrained(tmp_path / "hf")
    assert isinstance(loaded, VitPoseImageProcessor) and loaded.image_mean == list(hf.image_mean)


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "box,match",
    [
        ([10, 10, 0, 50], r"image 0: box 0 is \[10.0, 10.0, 0.0, 50.0\].*width > 0"),
        ([10, 10, 50, -1], r"box 0 is .*height > 0"),
        ([10, float("nan"), 50, 50], r"box 0 is"),
        ([10, 10, float("inf"), 50], r"box 0 is"),
    ],
)
def test_bad_boxes(box, match):
    image = np.zeros((100, 100, 3), np.uint8)
    with pytest.raises(ValueError, match=match):
        VitPoseImageProcessor()(image, boxes=[[box]])


def test_bad_box_shapes_and_counts():
    image = np.zeros((100, 100, 3), np.uint8)
    proc = VitPoseImageProcessor()
    with pytest.raises(ValueError, match=r"boxes of image 0 have shape \(1, 3\)"):
        proc(image, boxes=[[[1, 2, 3]]])
    with pytest.raises(ValueError, match="got boxes for 2 images but 1 images"):
        proc([image], boxes=[[[0, 0, 5, 5]], [[0, 0, 5, 5]]])
    with pytest.raises(ValueError, match="boxes are required"):
        proc(image)
    with pytest.raises(ValueError, match="5 heatmaps but 1 boxes"):
        proc.post_process_pose_estimation(torch.rand(5, 17, 64, 48), boxes=[[[0, 0, 5, 5]]])


@pytest.mark.parametrize(
    "image,error,match",
    [
        (np.zeros((100, 100, 5), np.uint8), ValueError, r"image 0 has shape \(100, 100, 5\)"),
        (np.zeros((2, 100, 100, 3, 1), np.uint8), ValueError, "shape"),
        (np.zeros((0, 100, 3), np.uint8), ValueError, "empty"),
        (np.zeros((100, 100, 3), np.int64) + 1000, ValueError, "8-bit"),  # uint16 is read (vitpose.media)
        (np.full((100, 100, 3), np.nan, np.float32), ValueError, "NaN"),
        (np.zeros((100, 100, 3), np.complex64), TypeError, "dtype complex64"),  # bool is read as 0 / 255
        ("not an image", TypeError, "PIL images, numpy arrays"),
    ],
)
def test_bad_images(image, error, match):
    with pytest.raises(error, match=match):
        VitPoseImageProcessor()(image, boxes=[[[0, 0, 10, 10]]])


def test_already_scaled_float_image_warns():
    with pytest.warns(UserWarning, match="already scaled"):
        VitPoseImageProcessor()(np.random.rand(50, 50, 3).astype(np.float32), boxes=[[[0, 0, 10, 10]]])


def test_without_affine_transform_images_must_be_crops():
    proc = VitPoseImageProcessor(do_affine_transform=False)
    crop = np.random.randint(0, 255, (256, 192, 3), np.uint8)
    out = proc([crop, crop]).pixel_values
    assert out.shape == (2, 3, 256, 192)
    # The crop itself, only rescaled and normalised (no warp, no resize).
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    want = (torch.from_numpy(crop).permute(2, 0, 1).float() / 255.0 - mean) / STD
    torch.testing.assert_close(out[0], want, rtol=0, atol=1e-5)
    assert torch.equal(out[0], out[1])
    with pytest.raises(ValueError, match="needs crops of 192x256"):
        proc(np.zeros((100, 100, 3), np.uint8))
