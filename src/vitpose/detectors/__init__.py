"""Person (and animal) detectors for top-down pose estimation: each finds the boxes ViTPose estimates poses in.

Every detector is called as `detector(images, names)` on RGB uint8 (H, W, 3) arrays (and, where known, their file
names) and returns one `Detections` per image: (n, 4) float32 COCO [x, y, width, height] boxes in image pixels,
(n,) float32 scores and (n,) int64 labels.

- `RTDetrDetector`: RT-DETR through transformers (`pip install "vitpose[detector]"`), the detector of the
  transformers ViTPose documentation's example.
- `HOGDetector`: OpenCV's HOG people detector; no weights, works offline, weak.
- `BoxesDetector`: boxes you give, e.g. a COCO detections file (`BoxesDetector.from_json`).
- `FullImageDetector`: the whole image as one box, for images that are already crops.
- `build_detector(name)`: one of them by the CLI's name, "auto" choosing RT-DETR when it can be loaded.
"""

from vitpose.detectors.base import Detections, PersonDetector, check_detector, check_images
from vitpose.detectors.boxes import (
    BoxesDetector,
    BoxesFileError,
    FullImageDetector,
    SkippedBoxesWarning,
    UnknownImageError,
    skip_degenerate_boxes,
)
from vitpose.detectors.build import DETECTOR_NAMES, build_detector
from vitpose.detectors.hog import HOGDetector, nms_xywh
from vitpose.detectors.rtdetr import ANIMAL_LABEL_NAMES, ANIMAL_LABELS, PERSON_LABEL, RTDetrDetector
from vitpose.errors import DetectorError

__all__ = [
    "ANIMAL_LABELS",
    "ANIMAL_LABEL_NAMES",
    "DETECTOR_NAMES",
    "PERSON_LABEL",
    "BoxesDetector",
    "BoxesFileError",
    "Detections",
    "DetectorError",
    "FullImageDetector",
    "HOGDetector",
    "PersonDetector",
    "RTDetrDetector",
    "SkippedBoxesWarning",
    "UnknownImageError",
    "build_detector",
    "check_detector",
    "check_images",
    "nms_xywh",
    "skip_degenerate_boxes",
]
