"""OpenCV's HOG + linear SVM people detector (Dalal & Triggs): no weights to download, but weak."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from vitpose.deprecation import renamed_attribute, renamed_kwargs
from vitpose.detectors.base import Detections, check_images
from vitpose.errors import DetectorError, VitPoseError

WEAK_WARNING = (
    "the HOG person detector is weak: it misses small, occluded, sitting or non-upright people and gives rough boxes. "
    'RT-DETR finds far more people: pip install "vitpose[detector]" (and let it download its weights once), or give '
    "your own boxes (vitpose predict --boxes FILE)"
)
# The default people detector scores 64x128 windows; the INRIA training crops put an upright person about 96 px
# tall in them with a margin of 16 px on every side, so the person fills the central 75% of the window.
_WINDOW = (64, 128)
_MARGIN = 0.125
# `upscale_small`: images whose longer side is below this are enlarged towards it (at most 4x).
_UPSCALE_TO = 960
_MAX_UPSCALE = 4.0


def _cv2():
    import cv2

    if not hasattr(cv2, "HOGDescriptor") or not hasattr(cv2, "HOGDescriptor_getDefaultPeopleDetector"):
        raise DetectorError(
            f"this OpenCV ({cv2.__version__}) has no HOGDescriptor people detector (OpenCV 5 moved it out of the "
            'main package): pip install "opencv-python-headless<5", or use --detector rtdetr, full-image or --boxes'
        )
    return cv2


@renamed_kwargs(iou_threshold="iou_thr")
def nms_xywh(boxes: np.ndarray, scores: np.ndarray, iou_thr: float) -> np.ndarray:
    """Greedy non-maximum suppression.

    Args:
        boxes: (n, 4) [x, y, width, height].
        scores: (n,).
        iou_thr: a box overlapping a higher-scored kept box with IoU above this is dropped.

    Returns:
        (k,) int64 indices of the kept boxes, highest score first.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    x1, y1 = boxes[:, 0], boxes[:, 1]
    x2, y2 = x1 + boxes[:, 2], y1 + boxes[:, 3]
    area = boxes[:, 2] * boxes[:, 3]
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = w * h
        iou = inter / np.maximum(area[i] + area[rest] - inter, 1e-12)
        order = rest[iou <= iou_thr]
    return np.asarray(keep, dtype=np.int64)


class HOGDetector:
    """OpenCV's default HOG people detector (`cv2.HOGDescriptor_getDefaultPeopleDetector`).

    Needs no weights, so it works offline, but it only finds upright, unoccluded people of at least about 128 px
    (64 px after upscaling); constructing the first one warns so (once per process). Per image:
    `detectMultiScale` (OpenCV groups its overlapping windows), each window's SVM margin `w` squashed to a score in
    (0, 1) with the logistic `1 / (1 + exp(-w))` (so 0.5 at the SVM's decision boundary), boxes shrunk to the
    person inside the window (see `tighten`), clipped to the image, then non-maximum suppression at `nms_thr`.
    Labels are 0 (person).

    Args:
        hit_thr: SVM margin threshold (OpenCV's hitThreshold) of `detectMultiScale` (higher: fewer, surer boxes).
        win_stride: window step (x, y) in pixels, multiples of 8.
        padding: padding (x, y) around the image in pixels.
        scale: image pyramid factor (> 1).
        det_thr: boxes with a score below this are dropped, in [0, 1).
        upscale_small: enlarge images whose longer side is below 960 px towards it (bilinear, at most 4x) before
            detecting, so smaller people are found; boxes are mapped back to the original pixels.
        nms_thr: IoU above which the lower-scored of two boxes is suppressed, in (0, 1].
        tighten: shrink each 64x128 window box to the central 75% of its width and height, where the detector's
            training crops put the person, so boxes bound the person as COCO boxes do.
    """

    # Old names of the thresholds (0.1), kept for one release.
    hit_threshold = renamed_attribute("hit_thr")
    min_score = renamed_attribute("det_thr")
    nms_iou = renamed_attribute("nms_thr")

    @renamed_kwargs(hit_threshold="hit_thr", min_score="det_thr", nms_iou="nms_thr")
    def __init__(
        self,
        hit_thr: float = 0.0,
        win_stride: tuple[int, int] = (8, 8),
        padding: tuple[int, int] = (8, 8),
        scale: float = 1.05,
        det_thr: float = 0.0,
        upscale_small: bool = True,
        nms_thr: float = 0.5,
        tighten: bool = True,
    ) -> None:
        cv2 = _cv2()
        self.win_stride = _pair(win_stride, "win_stride", minimum=8)
        if self.win_stride[0] % 8 or self.win_stride[1] % 8:
            raise VitPoseError(f"win_stride must be multiples of 8 (the HOG block stride), got {win_stride!r}")
        self.padding = _pair(padding, "padding", minimum=0)
        if not isinstance(scale, int | float) or not float(scale) > 1.0:
            raise VitPoseError(f"scale must be a number > 1 (the pyramid step), got {scale!r}")
        if not isinstance(det_thr, int | float) or not 0.0 <= float(det_thr) < 1.0:
            raise VitPoseError(f"det_thr must be a number in [0, 1), got {det_thr!r}")
        if not isinstance(nms_thr, int | float) or not 0.0 < float(nms_thr) <= 1.0:
            raise VitPoseError(f"nms_thr must be a number in (0, 1], got {nms_thr!r}")
        if not isinstance(hit_thr, int | float):
            raise VitPoseError(f"hit_thr must be a number, got {hit_thr!r}")
        self.hit_thr = float(hit_thr)
        self.scale = float(scale)
        self.det_thr = float(det_thr)
        self.upscale_small = bool(upscale_small)
        self.nms_thr = float(nms_thr)
        self.tighten = bool(tighten)
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        # Python's warning filters show it once per calling place, as usual; no global "warned" flag, so that a
        # new run in the same process (the CLI called twice, a notebook) is told again.
        warnings.warn(WEAK_WARNING, UserWarning, stacklevel=3)  # past the renamed_kwargs wrapper

    def upscale_factor(self, height: int, width: int) -> float:
        """The factor an image of this size is enlarged by before detection (1 without `upscale_small`)."""
        if not self.upscale_small:
            return 1.0
        return float(min(_MAX_UPSCALE, max(1.0, _UPSCALE_TO / max(height, width))))

    def __call__(self, images: Sequence[np.ndarray], names: Sequence[str | None] | None = None) -> list[Detections]:
        """Detect people in RGB uint8 (H, W, 3) images; `names` is ignored. Returns one `Detections` per image."""
        images, _ = check_images(images, names)
        return [self._detect(image) for image in images]

    def _detect(self, image: np.ndarray) -> Detections:
        import cv2

        height, width = image.shape[:2]
        factor = self.upscale_factor(height, width)
        scaled = image
        if factor != 1.0:
            size = (round(width * factor), round(height * factor))
            scaled = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
        if scaled.shape[0] < _WINDOW[1] or scaled.shape[1] < _WINDOW[0]:
            return Detections.empty()  # smaller than one detection window: nobody can be found
        rects, weights = self._hog.detectMultiScale(
            np.ascontiguousarray(scaled),
            hitThreshold=self.hit_thr,
            winStride=self.win_stride,
            padding=self.padding,
            scale=self.scale,
        )
        boxes = np.asarray(rects, dtype=np.float64).reshape(-1, 4)
        if not len(boxes):
            return Detections.empty()
        boxes[:, 0::2] *= width / scaled.shape[1]  # back to the original pixels
        boxes[:, 1::2] *= height / scaled.shape[0]
        scores = 1.0 / (1.0 + np.exp(-np.asarray(weights, dtype=np.float64).reshape(-1)))
        if self.tighten:
            boxes[:, :2] += boxes[:, 2:] * _MARGIN
            boxes[:, 2:] *= 1.0 - 2.0 * _MARGIN
        x1 = np.clip(boxes[:, 0], 0, width)
        y1 = np.clip(boxes[:, 1], 0, height)
        x2 = np.clip(boxes[:, 0] + boxes[:, 2], 0, width)
        y2 = np.clip(boxes[:, 1] + boxes[:, 3], 0, height)
        boxes = np.stack([x1, y1, x2 - x1, y2 - y1], axis=1)
        keep = (scores >= self.det_thr) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
        boxes, scores = boxes[keep], scores[keep]
        order = nms_xywh(boxes, scores, self.nms_thr)
        return Detections.from_detector(boxes[order], scores[order], np.zeros(len(order), np.int64))

    def __repr__(self) -> str:
        return (
            f"HOGDetector(hit_thr={self.hit_thr}, win_stride={self.win_stride}, padding={self.padding}, "
            f"scale={self.scale}, det_thr={self.det_thr}, upscale_small={self.upscale_small}, "
            f"nms_thr={self.nms_thr}, tighten={self.tighten})"
        )


def _pair(value: Sequence[int], name: str, minimum: int) -> tuple[int, int]:
    if (
        isinstance(value, str)
        or not isinstance(value, Sequence)
        or len(value) != 2
        or not all(isinstance(v, int | np.integer) and not isinstance(v, bool) and v >= minimum for v in value)
    ):
        raise VitPoseError(f"{name} must be a pair of integers >= {minimum} (x, y), got {value!r}")
    return int(value[0]), int(value[1])
