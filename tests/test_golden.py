"""Real weights against the golden values of docs/reference.md. Needs the Hugging Face hub and images.cocodataset.org:
skipped where they cannot be reached (as on the development machines, which have no internet)."""

from __future__ import annotations

import io
import os
import socket
import urllib.request

import numpy as np
import pytest
import torch

from vitpose import VitPoseForPoseEstimation, VitPoseImageProcessor
from vitpose.ops.codec import UDPHeatmapCodec
from vitpose.ops.geometry import box_to_center_scale

pytestmark = pytest.mark.network

IMAGE_URL = "http://images.cocodataset.org/val2017/000000000139.jpg"
BOXES = [[[412.8, 157.61, 53.05, 138.01], [384.43, 172.21, 15.12, 35.74]]]


def _reachable(host: str) -> bool:
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return False
    try:
        socket.create_connection((host, 443), timeout=3).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def image():
    if not (_reachable("huggingface.co") and _reachable("images.cocodataset.org")):
        pytest.skip("needs the Hugging Face hub and images.cocodataset.org (no network here)")
    from PIL import Image

    with urllib.request.urlopen(IMAGE_URL, timeout=30) as response:
        return Image.open(io.BytesIO(response.read())).convert("RGB")


def test_vitpose_base_simple_golden_values(image):
    processor = VitPoseImageProcessor.from_pretrained("usyd-community/vitpose-base-simple")
    model = VitPoseForPoseEstimation.from_pretrained("usyd-community/vitpose-base-simple")
    inputs = processor(image, boxes=BOXES, return_tensors="pt")
    with torch.no_grad():
        heatmaps = model(**inputs).heatmaps
    assert heatmaps.shape == (2, 17, 64, 48)
    assert torch.allclose(heatmaps[0, 0, :3, :3], torch.full((3, 3), 9.933e-06), atol=5e-7)

    # The golden keypoints were taken through transformers' processor, whose DARK blur is sigma 0.8 with scipy's
    # border: decode that way to compare at 1e-2.
    centers, scales = box_to_center_scale(np.array(BOXES[0]))
    keypoints, scores = UDPHeatmapCodec(blur_sigma=0.8, blur_border="reflect").decode(heatmaps, centers, scales)
    expected = np.array([[398.13, 181.84], [398.28, 179.81], [395.96, 179.48]])
    assert np.allclose(keypoints[1, :3], expected, atol=1e-2)
    assert np.allclose(scores[1, :3], [0.87529, 0.84315, 0.92678], atol=1e-2)
    # The original's decoding (sigma 2) moves sub-pixel positions only slightly.
    ours = processor.post_process_pose_estimation(heatmaps, boxes=BOXES)[1][0]
    assert np.allclose(ours["keypoints"][:3].numpy(), expected, atol=0.5)


FLIP_GOLDEN = {
    "vitpose-base-simple": ((398.1805, 181.8084), 0.8666),
    "vitpose-base": ((398.0791, 181.8281), 0.8824),
    "vitpose-base-coco-aic-mpii": ((398.3055, 181.7416), 0.8700),
    "vitpose-plus-small": ((398.1597, 181.6902), 0.9051),
    "vitpose-plus-base": ((398.2013, 181.7283), 0.8750),
    "vitpose-plus-large": ((398.1409, 181.7412), 0.8746),
    "vitpose-plus-huge": ((398.2079, 181.8026), 0.8693),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FLIP_GOLDEN))
def test_flip_test_golden_nose(image, name):
    source = f"usyd-community/{name}"
    processor = VitPoseImageProcessor.from_pretrained(source)
    model = VitPoseForPoseEstimation.from_pretrained(source)
    inputs = processor(image, boxes=BOXES, return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs, dataset_index=torch.tensor([0]), flip_test=True)
    nose = processor.post_process_pose_estimation(outputs, boxes=BOXES)[0][1]
    (x, y), score = FLIP_GOLDEN[name]
    assert np.allclose(nose["keypoints"][0].numpy(), [x, y], atol=5e-2)
    assert abs(float(nose["scores"][0]) - score) < 5e-2
