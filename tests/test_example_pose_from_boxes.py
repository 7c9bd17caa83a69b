"""Bug 6: examples/pose_from_boxes.py draws the skeleton of the head it ran (not COCO's on every head), and
`--dataset aic` on a ViTPose++ .pth with every data set's head works (it raised an IndexError)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import cv2
import pytest
import torch

from conftest import ROOT, hf_to_original_keys, make_hf_model, save_hf
from vitpose import VitPoseForPoseEstimation
from vitpose.datasets import get_dataset_info

ASSOCIATE = [14, 16, 17, 17, 133]  # AiC, MPII, AP-10K, APT-36K, WholeBody: dataset_index 1..5
VIT_S = {"hidden_size": 384, "num_heads": 12, "part_features": 96}  # original .pth widths are the published sizes


def _vitpose_plus_pth(tmp_path):
    """A ViTPose++ .pth in the original layout with all six heads (as tests/test_checkpoints.py builds it)."""
    hf = make_hf_model(num_experts=6, **VIT_S)
    state = hf_to_original_keys(hf.state_dict())
    state["backbone.cls_token"] = torch.zeros(1, 1, 384)
    for j, k in enumerate(ASSOCIATE):
        donor = make_hf_model(num_experts=6, num_labels=k, seed=100 + j, **VIT_S)
        for key, value in hf_to_original_keys(donor.state_dict()).items():
            if key.startswith("keypoint_head."):
                state[key.replace("keypoint_head.", f"associate_keypoint_heads.{j}.")] = value
    path = tmp_path / "vitpose_plus.pth"
    torch.save({"state_dict": state}, path)
    return path


def _example():
    spec = importlib.util.spec_from_file_location("pose_from_boxes", ROOT / "examples" / "pose_from_boxes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_head_layout_is_the_heads_data_set(tmp_path):
    example = _example()
    model = VitPoseForPoseEstimation.from_pretrained(_vitpose_plus_pth(tmp_path))
    for name, index in (("coco", 0), ("aic", 1), ("mpii", 2), ("5", 5)):
        got_index, layout = example.head_layout(model, name)
        info = get_dataset_info(index)
        assert got_index == index and layout.skeleton == info.skeleton and layout.keypoint_names == info.keypoint_names
    save_hf(make_hf_model(), tmp_path / "dense")
    dense = VitPoseForPoseEstimation.from_pretrained(tmp_path / "dense")
    assert example.head_layout(dense, "coco") == (None, get_dataset_info("coco"))


@pytest.mark.slow
def test_aic_on_a_vitpose_plus_pth_runs_and_draws(tmp_path, coco_dir):
    image = coco_dir / "000000196141.jpg"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "pose_from_boxes.py"), str(image),
         "--boxes", "247.76,74.23,169.67,300.78", "--model", str(_vitpose_plus_pth(tmp_path)),
         "--dataset", "aic", "--out", str(tmp_path / "out.png")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (person,) = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [k["name"] for k in person["keypoints"]] == list(get_dataset_info("aic").keypoint_names)
    assert cv2.imread(str(tmp_path / "out.png")).shape == cv2.imread(str(image)).shape
