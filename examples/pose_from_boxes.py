"""Keypoints for given person boxes in one image, with the transformers-compatible API.

    python examples/pose_from_boxes.py IMAGE --boxes "x,y,w,h;x,y,w,h" [--model SOURCE] [--flip-test]
                                       [--dataset coco] [--out annotated.png]

SOURCE is a hub id (default usyd-community/vitpose-base-simple), a hub-format directory or an original ViTPose .pth.
Prints one JSON line per person: the box, and each keypoint's name, x, y and score.
"""

from __future__ import annotations

import argparse
import json
import sys

import cv2
import numpy as np
import torch
from PIL import Image

from vitpose import AutoProcessor, VitPoseForPoseEstimation
from vitpose.datasets import DatasetInfo, get_dataset_info
from vitpose.inference.estimator import dataset_info_for


def head_layout(model: VitPoseForPoseEstimation, dataset: str) -> tuple[int | None, DatasetInfo]:
    """The `dataset_index` to pass (None for a model with one data set) and the keypoint names and skeleton of the
    head that serves it: a ViTPose++ .pth has one head per data set (AI Challenger's 14 keypoints are not COCO's 17),
    a hub-format ViTPose++ only the COCO head."""
    if len(model.config.valid_dataset_indices) == 1:
        return None, dataset_info_for(model, 0)
    index = get_dataset_info(int(dataset) if dataset.isdigit() else dataset).dataset_index
    model.config.check_dataset_index(index, dataset=dataset)
    return index, dataset_info_for(model, index)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image")
    parser.add_argument("--boxes", required=True, help='COCO boxes "x,y,w,h;x,y,w,h"')
    parser.add_argument("--model", default="usyd-community/vitpose-base-simple")
    parser.add_argument(
        "--dataset", default="coco", help="ViTPose++ data set (coco, aic, mpii, ap10k, apt36k, wholebody, or 0..5)"
    )
    parser.add_argument("--flip-test", action="store_true")
    parser.add_argument("--out", help="write the image with the keypoints drawn")
    args = parser.parse_args()

    try:
        boxes = [[float(v) for v in box.split(",")] for box in args.boxes.split(";") if box.strip()]
        image = Image.open(args.image).convert("RGB")
        processor = AutoProcessor.from_pretrained(args.model)
        model = VitPoseForPoseEstimation.from_pretrained(args.model, device_map="auto")
        dataset_index, layout = head_layout(model, args.dataset)
        inputs = processor(image, boxes=[boxes], return_tensors="pt").to(model.device)
        with torch.inference_mode():
            outputs = model(**inputs, dataset_index=dataset_index, flip_test=args.flip_test)
        people = processor.post_process_pose_estimation(outputs, boxes=[boxes])[0]
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    names = dict(enumerate(layout.keypoint_names))
    for person in people:
        keypoints = [
            {
                "name": names.get(int(k), str(int(k))),
                "x": round(float(x), 2),
                "y": round(float(y), 2),
                "score": round(float(s), 4),
            }
            for k, (x, y), s in zip(
                person["labels"], person["keypoints"].tolist(), person["scores"].tolist(), strict=True
            )
        ]
        print(json.dumps({"bbox": [round(v, 2) for v in person["bbox"].tolist()], "keypoints": keypoints}))

    if args.out:
        canvas = np.ascontiguousarray(np.asarray(image)[:, :, ::-1])
        for person in people:
            xy, score = person["keypoints"].numpy(), person["scores"].numpy()
            for a, b in layout.skeleton:  # the skeleton of the head that made these keypoints
                if score[a] > 0.3 and score[b] > 0.3:
                    cv2.line(canvas, tuple(map(int, xy[a])), tuple(map(int, xy[b])), (0, 255, 0), 2)
            for (x, y), s in zip(xy, score, strict=True):
                if s > 0.3:
                    cv2.circle(canvas, (int(x), int(y)), 3, (0, 0, 255), -1)
        cv2.imwrite(args.out, canvas)
    return 0


if __name__ == "__main__":
    sys.exit(main())
