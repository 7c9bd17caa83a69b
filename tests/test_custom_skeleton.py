"""A custom skeleton end to end (bug 3 of the restructure): `vitpose train` on a data-set JSON, then `vitpose eval`
and `vitpose predict` on the checkpoint, with the data set's own OKS sigmas all the way (config.json keeps them).

The data: the shared COCO file reduced to five keypoints with new names, a new skeleton and sigmas that are not
0.05 (the default a lost description falls back to) and not COCO's."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import DATA, require_shared
from vitpose.cli import main

KEEP = [0, 5, 6, 11, 12]  # nose, shoulders, hips of COCO
NAMES = ["head", "left_arm", "right_arm", "left_leg", "right_leg"]
SIGMAS = [0.031, 0.067, 0.067, 0.093, 0.093]
DATASET = {
    "name": "torso5",
    "keypoints": NAMES,
    "skeleton": [["head", "left_arm"], ["head", "right_arm"], ["left_arm", "left_leg"], ["right_arm", "right_leg"]],
    "flip_pairs": [["left_arm", "right_arm"], ["left_leg", "right_leg"]],
    "sigmas": SIGMAS,
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def torso5(tmp_path_factory) -> dict[str, Path]:
    """The custom data set: annotations (categories carry the new names), its description, a trained checkpoint."""
    require_shared(DATA / "coco" / "test_coco.json")
    root = tmp_path_factory.mktemp("torso5")
    coco = json.loads((DATA / "coco" / "test_coco.json").read_text())
    for ann in coco["annotations"]:
        values = np.asarray(ann["keypoints"], np.float64).reshape(17, 3)[KEEP]
        ann["keypoints"] = [float(v) if i % 3 < 2 else int(v) for i, v in enumerate(values.reshape(-1))]
        ann["num_keypoints"] = int(np.count_nonzero(values[:, 2] > 0))
    for cat in coco["categories"]:
        cat["keypoints"] = list(NAMES)
        cat["skeleton"] = [[1, 2], [1, 3], [2, 4], [3, 5]]
    annotations = root / "torso5.json"
    annotations.write_text(json.dumps(coco))
    dataset = root / "torso5_dataset.json"
    dataset.write_text(json.dumps(DATASET))
    run = root / "run"
    code = main(
        [
            "train", "--model", "tiny", "--train-annotations", str(annotations), "--train-images",
            str(DATA / "coco"), "--dataset", str(dataset), "--epochs", "1", "--batch-size", "4",
            "--input-size", "64x48", "--decoder", "simple", "--workers", "0", "--warmup-iters", "0",
            "--device", "cpu", "--quiet", "--out", str(run),
        ]
    )  # fmt: skip
    assert code == 0
    return {"annotations": annotations, "dataset": dataset, "checkpoint": run / "last"}


def test_training_writes_the_custom_data_set_into_config_json(torso5):
    config = json.loads((torso5["checkpoint"] / "config.json").read_text())
    described = config["dataset_info"]
    assert described["name"] == "torso5"
    assert described["keypoints"] == NAMES
    assert described["sigmas"] == SIGMAS
    assert described["flip_pairs"] == [[1, 2], [3, 4]]
    assert described["skeleton"] == [[0, 1], [0, 2], [1, 3], [2, 4]]
    assert config["flip_pairs"] == [[1, 2], [3, 4]] and config["id2label"]["4"] == "right_leg"


def test_the_config_round_trips_the_description(torso5):
    from vitpose.config import VitPoseConfig

    config = VitPoseConfig.from_pretrained(torso5["checkpoint"])
    assert config.dataset_info["sigmas"] == SIGMAS
    again = VitPoseConfig.from_dict(config.to_dict())
    assert again.dataset_info == config.dataset_info and again == config


def test_predict_runs_oks_nms_with_the_custom_sigmas(torso5, tmp_path, monkeypatch):
    import vitpose.inference.estimator as estimator_module
    from vitpose.inference.estimator import PoseEstimator

    estimator = PoseEstimator.from_pretrained(torso5["checkpoint"], device="cpu", detector="full-image")
    assert estimator.dataset.name == "torso5"
    assert estimator.dataset.keypoint_names == tuple(NAMES)
    assert estimator.dataset.sigmas == tuple(SIGMAS)  # not the 0.05 of a lost description

    seen = []
    original = estimator_module.pose_nms

    def spy(keypoints, scores, sigmas, *args, **kwargs):
        seen.append(np.asarray(sigmas, np.float64).copy())
        return original(keypoints, scores, sigmas, *args, **kwargs)

    monkeypatch.setattr(estimator_module, "pose_nms", spy)
    image = DATA / "coco" / "000000196141.jpg"
    boxes = tmp_path / "boxes.json"
    boxes.write_text(
        json.dumps(
            [
                {"file_name": image.name, "bbox": [247.76, 74.23, 169.67, 300.78], "score": 0.9, "category_id": 1},
                {"file_name": image.name, "bbox": [250.0, 80.0, 160.0, 290.0], "score": 0.8, "category_id": 1},
            ]
        )
    )
    out = tmp_path / "predict"
    code = main(
        ["predict", str(image), "--model", str(torso5["checkpoint"]), "--boxes", str(boxes), "--device", "cpu",
         "--det-thr", "0", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    assert seen, "OKS-NMS did not run on two overlapping boxes"
    np.testing.assert_array_equal(seen[0], SIGMAS)
    predictions = json.loads((out / "predictions.json").read_text())
    assert predictions and all(len(p["keypoints"]) == 15 for p in predictions)


def test_eval_scores_the_checkpoint_with_the_custom_sigmas(torso5, capsys):
    from vitpose.evaluation import evaluate

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "custom skeleton ... 0.05 is used" warning: the model describes it
        report = evaluate(str(torso5["checkpoint"]), torso5["annotations"], DATA / "coco", device="cpu")
    assert report.dataset.name == "torso5"
    assert report.dataset.sigmas == tuple(SIGMAS)
    assert 0.0 <= report.metrics["AP"] <= 1.0

    code = main(
        ["eval", "--model", str(torso5["checkpoint"]), "--annotations", str(torso5["annotations"]), "--images",
         str(DATA / "coco"), "--device", "cpu", "--json"]
    )  # fmt: skip
    assert code == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["AP"] == pytest.approx(report.metrics["AP"], abs=1e-12)


def test_eval_without_a_description_guesses_and_warns(torso5):
    """The same annotations scored by a model that does not describe them: the guessed skeleton (sigma 0.05)."""
    from vitpose.datasets.custom import infer_dataset_info

    data = json.loads(torso5["annotations"].read_text())
    with pytest.warns(UserWarning, match="custom skeleton"):
        guessed = infer_dataset_info(data, "torso5.json")
    assert guessed.keypoint_names == tuple(NAMES) and guessed.sigmas == (0.05,) * 5
    assert guessed.flip_pairs == ((1, 2), (3, 4))  # left/right guessed from the names
