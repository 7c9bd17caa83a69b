"""Memory bounded by the batch size, not by the inputs (issue 13, class 5), measured with a limit, not a timing.

- The estimator crops, runs and decodes `batch_size` boxes at a time: the same keypoints, bit for bit, as cropping
  every box first (the path before), for any batch size and boxes of several images sharing batches.
- A processor whose size disagrees with the model fails when the estimator is made, naming both sizes.
- In a subprocess under `RLIMIT_AS` (the address space after importing vitpose and running a tiny model once, plus
  a fixed budget): thousands of boxes on one image stay within the budget (cropping them all at once does not),
  and hostile configs are refused with a `ConfigError` within it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from conftest import ROOT
from vitpose import PoseEstimator, VitPoseForPoseEstimation, VitPoseImageProcessor
from vitpose.config import VitPoseConfig
from vitpose.errors import VitPoseError
from vitpose.ops.geometry import box_to_center_scale

# A fast tiny model (one block, 32 wide, one keypoint) at the published 256x192 input: 0.58 MB per crop.
FAST = {"num_hidden_layers": 1, "hidden_size": 32, "num_attention_heads": 2, "part_features": 8, "num_labels": 1}


@pytest.fixture(scope="module")
def model():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # a busy 2-core machine: one intra-op thread is the fastest
    torch.manual_seed(0)
    yield VitPoseForPoseEstimation(VitPoseConfig.from_preset("tiny", **{**FAST, "num_labels": 3})).eval()
    torch.set_num_threads(before)


def _boxes(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.uniform(-20, 400, (n, 2)), rng.uniform(5, 250, (n, 2))], axis=1)


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (480, 640, 3), dtype=np.uint8)


def _all_crops_first(estimator: PoseEstimator, images, boxes):
    """The estimator's path before the change: every crop of every image in one tensor, then network batches."""
    regions = [
        box_to_center_scale(b, input_size=estimator.processor.input_size, padding=estimator.processor.padding_factor)
        for b in boxes
    ]
    centers, scales = [r[0] for r in regions], [r[1] for r in regions]
    pixel_values = estimator.processor.crop_regions(images, centers, scales)
    all_c, all_s = np.concatenate(centers), np.concatenate(scales)
    keypoints, scores = [], []
    with torch.inference_mode():
        for start in range(0, len(all_c), estimator.batch_size):
            stop = start + estimator.batch_size
            heatmaps = estimator.model(pixel_values[start:stop]).heatmaps
            k, s = estimator.codec.decode(heatmaps, all_c[start:stop], all_s[start:stop])
            keypoints.append(k)
            scores.append(s)
    return np.concatenate(keypoints), np.concatenate(scores)


def test_300_boxes_in_batches_give_the_keypoints_of_cropping_all_first(model):
    image, boxes = _image(), _boxes(300)
    results = []
    for batch_size in (1, 7, 32):
        estimator = PoseEstimator(model, detector="full-image", batch_size=batch_size)
        result = estimator(image, boxes=boxes)
        keypoints, scores = _all_crops_first(estimator, [image], [boxes])
        assert np.array_equal(result.keypoints, keypoints), batch_size  # bit for bit
        assert np.array_equal(result.keypoint_scores, scores), batch_size
        results.append(result)
    for other in results[1:]:
        # across batch sizes the network's float sums may group differently; the crops and the decoding do not
        np.testing.assert_allclose(other.keypoints, results[0].keypoints, atol=1e-3)


def test_boxes_of_several_images_share_and_span_batches(model):
    images = [_image(1), _image(2), _image(3), _image(4)]
    boxes = [_boxes(5, 1), _boxes(0, 2).reshape(0, 4), _boxes(41, 3), _boxes(2, 4)]
    estimator = PoseEstimator(model, batch_size=16)
    results = estimator(images, boxes=[b.tolist() for b in boxes])
    keypoints, _ = _all_crops_first(estimator, images, boxes)
    got = np.concatenate([r.keypoints for r in results])
    assert [len(r.keypoints) for r in results] == [5, 0, 41, 2]
    assert np.array_equal(got, keypoints)


def test_a_processor_of_another_size_fails_when_the_estimator_is_made(model):
    with pytest.raises(VitPoseError, match=r"processor crops 96x128 .* model takes 192x256"):
        PoseEstimator(model, VitPoseImageProcessor(size={"height": 128, "width": 96}))
    with pytest.raises(VitPoseError, match=r"size\.height"):
        VitPoseImageProcessor(size={"height": 10**6, "width": 192})  # refused before any crop is allocated
    # crops of another size given to the model: a message naming both sizes, not "crop each box first"
    with pytest.raises(VitPoseError, match=r"96x128 crops .* this model takes 192x256"):
        model(torch.zeros(1, 3, 128, 96))


SCRIPT = textwrap.dedent(
    """
    import json, resource, sys
    import numpy as np, torch
    torch.set_num_threads(1)
    from vitpose import PoseEstimator, VitPoseForPoseEstimation, VitPoseImageProcessor
    from vitpose.config import VitPoseConfig
    from vitpose.errors import ConfigError, VitPoseError

    def address_space():
        for line in open("/proc/self/status"):
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024

    boxes_count, budget = int(sys.argv[1]), int(sys.argv[2]) << 20
    fast = json.loads(sys.argv[3])
    model = VitPoseForPoseEstimation(VitPoseConfig.from_preset("tiny", **fast)).eval()
    estimator = PoseEstimator(model, batch_size=32)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    estimator(image, boxes=[[10, 10, 100, 200]])  # warm: lazy imports, thread pools, allocator caches
    limit = address_space() + budget
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    report = {}

    boxes = np.concatenate([rng.uniform(0, 400, (boxes_count, 2)), rng.uniform(20, 200, (boxes_count, 2))], 1)
    result = estimator(image, boxes=boxes)
    report["poses"] = len(result.keypoints)

    hostile = [
        {"num_hidden_layers": 10**6}, {"hidden_size": 10**6, "num_attention_heads": 1}, {"image_size": 10**6},
        {"image_size": [10**6, 10**6], "patch_size": 10**3}, {"num_experts": 10**6},
    ]
    for values in hostile:
        data = VitPoseConfig.from_preset("tiny").to_dict()
        data["backbone_config"].update(values)
        try:
            VitPoseForPoseEstimation(VitPoseConfig.from_dict(data))
            report[str(values)] = "built"
        except ConfigError as err:
            report[str(values)] = "ConfigError"
    data = VitPoseConfig.from_preset("tiny").to_dict()
    data["num_labels"] = 10**7
    try:
        VitPoseConfig.from_dict(data)
    except ConfigError:
        report["num_labels"] = "ConfigError"
    try:
        PoseEstimator(model, VitPoseImageProcessor(size={"height": 2048, "width": 2048}))(image, boxes=boxes)
    except VitPoseError:
        report["processor"] = "VitPoseError"

    try:  # the control: every crop at once (the path before) does not fit in the budget
        estimator.processor.crop_regions([image], [boxes[:, :2] + 50], [boxes[:, 2:]])
        report["all_at_once"] = "fits"
    except (MemoryError, RuntimeError):
        report["all_at_once"] = "out of memory"
    print(json.dumps(report))
    """
)


def test_thousands_of_boxes_and_hostile_configs_stay_within_a_memory_budget(tmp_path):
    boxes, budget_mib = 2000, 384  # the crops of 2000 boxes at once: 1.16 GB
    env = {**os.environ, "MALLOC_ARENA_MAX": "2", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(boxes), str(budget_mib), json.dumps(FAST)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report.pop("poses") == boxes
    assert report.pop("all_at_once") == "out of memory"  # the budget is below what cropping all at once takes
    assert report.pop("processor") == "VitPoseError"
    assert set(report.values()) == {"ConfigError"}, report
