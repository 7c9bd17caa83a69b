#!/usr/bin/env python
"""Benchmark of the WHOLE job (read, boxes, crop, network, decode, draw, encode, write), side by side in one run:
`vitpose predict` and `vitpose video` against the transformers documentation's loop, the network alone and the
one-thread sum of the job's stages.

    python benchmarks/job.py                                    # tiny and ViT-B: benchmarks/JOB_RESULTS.md (~15 min)
    python benchmarks/job.py --quick --out /tmp/job_quick.md    # tiny model, 24 images (< 60 s): keeps it working
    python benchmarks/job.py --models tiny --images 120         # one model, another folder size

Models (random weights, simple decoder, 256 x 192 input; speed does not depend on the weights): "tiny" (hidden 96,
2 layers, 4 heads: the tests' tiny model, as `serve_load.build_checkpoint(tiny=True)`) and "base" (ViT-B: hidden
768, 12 layers, 12 heads), made by `run.build_pair` (transformers' model, `save_pretrained`) with the COCO skeleton
as the config's `edges` (as the hub checkpoints have; the documentation draws them) and transformers'
`VitPoseImageProcessor` config beside it. Both sides load that folder.

Inputs: a folder of N copies of the shared COCO photos (../shared/data/coco/*.jpg; N = 240 for tiny, 96 for ViT-B
so that the whole run stays near 15 minutes on 2 cores; 24 with --quick) and the given boxes: a COCO detections file
(the person boxes of test_coco.json for every copy, score 1) and a COCO annotations file mapping its image ids to
the copies' file names, as `vitpose predict --boxes B --annotations A` takes them. A video for (e): the copies in
order, resized to 640 x 480, MJPG .avi (120 frames for tiny, 48 for ViT-B, 12 with --quick).

Lines, per model, each run once (in the order a, c, b, a with HOG, d, e: (c) right after (a), whose wall time the
ViT-B target compares with it), after a warm-up of (a), (e) and (b) on 2 images (Python imports and first-call
allocations are not timed; model loading is, on both sides):
  a. `vitpose predict FOLDER --boxes B --annotations A --out O --device cpu` (annotated images and predictions.json)
     in-process through `vitpose.cli.main`: images / wall time; and the same with `--detector hog` for the boxes;
  b. the transformers ViTPose documentation's loop on the same images and boxes: per image PIL open, transformers'
     `VitPoseImageProcessor` with the boxes, `VitPoseForPoseEstimation` under `torch.no_grad`,
     `post_process_pose_estimation`, the documentation's OpenCV drawing (`draw_points`, `draw_links` and its
     palette, exec'd from ../shared/docs/seed_vitpose_model_doc.txt, not copied here) and `cv2.imwrite`;
  c. the network alone: vitpose's forward over the job's crops, cut in advance, in batches of 32 (the job's
     --batch-size) over all crops in order, `torch.inference_mode`, default threads; images/s equivalent =
     images / the time (the job's crops per image);
  d. the job's stages, each run alone over all images on ONE thread (`torch.set_num_threads(1)`, which also keeps
     the processor's crop pool to one thread, and `cv2.setNumThreads(1)`), summed: model loading and the --boxes
     file, read + decode (`vitpose.media.load_image`, once per image), crop (box look-up, centre / scale,
     `crop_regions`), network, heatmap decoding (`codec.decode`) with rescoring, results (OKS-NMS, `PoseResult`,
     `to_coco`, the JSON text), drawing (`PoseResult.draw`), encoding (`vitpose.media.encode_image`) and writing
     (atomic writes of the images, the partial-results journal and predictions.json, as predict does);
  e. `vitpose video` over the video with `--detector hog`, `--det-every 1` and `--det-every 5`, writing an annotated
     video and its JSON Lines, in-process as (a): frames / wall time.

Ratios: the lines' column is (a with boxes)'s images/s over the line's. Targets (reported met or missed, never
asserted): tiny (a) >= 2x (b), and >= 1.6x the stage sum (d), i.e. (d)'s sum / (a)'s wall time >= 1.6 (the job
overlaps its stages on the cores); ViT-B (a)'s wall time <= 1.05x the network alone (c) (everything else hidden
behind the network).

Agreement, to show that the sides did the same work: (a)'s predictions.json against (b)'s keypoints and against
(d)'s results, matched by image and box. (d) is vitpose's own stages and must equal (a) up to float rounding. (b) is
transformers' pipeline, which crops with scipy rather than cv2 and decodes with another blur (sigma 0.8, reflect
border, instead of the original's sigma 2): with random weights the heatmaps have no clear peak, and DARK's
refinement turns these small differences into pixels, so besides the largest difference the report gives the
median and the share within 1 px, and the keypoint scores (heatmap maxima), which agree closely.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the other benchmarks' helpers, also when this file is loaded as a module

from machine import load_average, module_versions, quiet  # noqa: E402
from ray_engine import SHARED_COCO, make_folder  # noqa: E402
from run import FULL_SPECS, QUICK_SPECS, ModelSpec, _md_table, build_pair  # noqa: E402
from run import machine_description as run_machine  # noqa: E402
from serve_load import _met  # noqa: E402

DOC = HERE.parent.parent / "shared" / "docs" / "seed_vitpose_model_doc.txt"
BATCH = 32  # the job's --batch-size (predict's default)
KPT_THR = 0.3  # predict's --kpt-thr and the documentation's keypoint_score_threshold
DET_THR = 0.3  # predict's --det-thr
VIDEO_SIZE = (640, 480)
WARMUP_IMAGES = 2
TARGETS = {"transformers": 2.0, "stages": 1.6, "network": 1.05}
STAGES = (
    "model loading and --boxes file",
    "read + decode",
    "crop",
    "network",
    "heatmap decoding + rescoring",
    "results + COCO JSON",
    "drawing",
    "encoding",
    "writing",
)


@dataclass
class Job:
    key: str  # "tiny" or "base"
    spec: ModelSpec
    images: int
    frames: int


def _spec(name: str) -> ModelSpec:
    return next(spec for spec in (*QUICK_SPECS, *FULL_SPECS) if spec.name == name)


MODELS = {"tiny": "tiny simple", "base": "ViT-B simple"}
FULL_SIZES = {"tiny": (240, 120), "base": (96, 48)}  # images, video frames
QUICK_SIZES = {"tiny": (24, 12), "base": (8, 8)}


# --------------------------------------------------------------------------------------------- model and inputs
def build_model(spec: ModelSpec, directory: Path) -> Any:
    """The checkpoint both sides load (transformers' format, the COCO skeleton as `edges`, transformers' processor
    config); returns vitpose's model loaded from it, for the network-alone line."""
    from transformers import VitPoseImageProcessor

    from vitpose.datasets import get_dataset_info

    directory.mkdir(parents=True)
    hf, ours, _ = build_pair(spec, directory)
    del hf
    config_file = directory / "config.json"
    config = json.loads(config_file.read_text())
    config["edges"] = [list(edge) for edge in get_dataset_info("coco").skeleton]  # the documentation draws these
    config_file.write_text(json.dumps(config, indent=2))
    with quiet():
        VitPoseImageProcessor().save_pretrained(directory)
    return ours


@dataclass
class Inputs:
    folder: Path
    paths: list[str]
    boxes: list[list[list[float]]]  # per image, COCO [x, y, w, h] person boxes
    detections: Path
    annotations: Path

    @property
    def crops(self) -> int:
        return sum(len(b) for b in self.boxes)


def make_inputs(workdir: Path, count: int) -> Inputs:
    """`count` copies of the shared photos, and the COCO detections and annotations files of their person boxes."""
    folder = workdir / "images"
    paths = make_folder(folder, count)
    coco = json.loads((SHARED_COCO / "test_coco.json").read_text())
    photos = {image["file_name"]: image for image in coco["images"]}
    people: dict[int, list[list[float]]] = {image["id"]: [] for image in coco["images"]}
    for ann in coco["annotations"]:
        if ann.get("category_id", 1) == 1 and not ann.get("iscrowd", 0):
            people[ann["image_id"]].append([float(v) for v in ann["bbox"]])
    by_content = {(SHARED_COCO / name).read_bytes(): photo for name, photo in photos.items()}  # which photo a copy is
    boxes, images, detections = [], [], []
    for image_id, path in enumerate(paths, start=1):
        photo = by_content[Path(path).read_bytes()]
        images.append(
            {"id": image_id, "file_name": Path(path).name, "width": photo["width"], "height": photo["height"]}
        )
        boxes.append(people[photo["id"]])
        detections += [{"image_id": image_id, "category_id": 1, "bbox": box, "score": 1.0} for box in boxes[-1]]
    det_file, ann_file = workdir / "detections.json", workdir / "annotations.json"
    det_file.write_text(json.dumps(detections))
    ann_file.write_text(json.dumps({"images": images, "annotations": [], "categories": [{"id": 1, "name": "person"}]}))
    return Inputs(folder, paths, boxes, det_file, ann_file)


def subset(inputs: Inputs, workdir: Path, count: int) -> Inputs:
    """The first `count` images of `inputs` in a folder of their own, with their own boxes files (warm-up)."""
    folder = workdir / "warmup_images"
    folder.mkdir(parents=True)
    paths = [shutil.copy(p, folder / Path(p).name) for p in inputs.paths[:count]]
    names = {Path(p).name for p in paths}
    annotations = json.loads(inputs.annotations.read_text())
    annotations["images"] = [image for image in annotations["images"] if image["file_name"] in names]
    ids = {image["id"] for image in annotations["images"]}
    detections = [d for d in json.loads(inputs.detections.read_text()) if d["image_id"] in ids]
    det_file, ann_file = workdir / "warmup_detections.json", workdir / "warmup_annotations.json"
    det_file.write_text(json.dumps(detections))
    ann_file.write_text(json.dumps(annotations))
    return Inputs(folder, [str(p) for p in paths], inputs.boxes[:count], det_file, ann_file)


def make_video(inputs: Inputs, path: Path, frames: int) -> Path:
    """An MJPG .avi of `frames` frames: the copies in order (cycling), each resized to VIDEO_SIZE."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, VIDEO_SIZE)
    for i in range(frames):
        writer.write(cv2.resize(cv2.imread(inputs.paths[i % len(inputs.paths)]), VIDEO_SIZE))
    writer.release()
    return path


# --------------------------------------------------------------------------------------------- (a) and (e): commands
def vitpose_command(args: list[str]) -> float:
    """Wall time of `vitpose ARGS` run in this process (`vitpose.cli.main`); its output is kept for an error."""
    from vitpose.cli import main as vitpose_main

    log = io.StringIO()
    start = time.perf_counter()
    with quiet(), contextlib.redirect_stderr(log), contextlib.redirect_stdout(log):
        code = vitpose_main(args)
    elapsed = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"vitpose {' '.join(args)} failed (exit {code}):\n{log.getvalue()[-3000:]}")
    return elapsed


def predict_args(model: Path, inputs: Inputs, out: Path, detector: str | None) -> list[str]:
    given = (
        ["--detector", detector]
        if detector
        else ["--boxes", str(inputs.detections), "--annotations", str(inputs.annotations)]
    )
    return ["predict", str(inputs.folder), "--model", str(model), *given, "--out", str(out), "--device", "cpu"]


def video_args(model: Path, video: Path, out: Path, det_every: int, max_frames: int | None = None) -> list[str]:
    args = [
        "video",
        str(video),
        "--model",
        str(model),
        "--detector",
        "hog",
        "--det-every",
        str(det_every),
        "--device",
        "cpu",
        "--out",
        str(out),
        "--no-progress",
    ]
    return args + (["--max-frames", str(max_frames)] if max_frames else [])


def predictions(out: Path) -> list[dict[str, Any]]:
    return json.loads((out / "predictions.json").read_text())


def video_people(out: Path) -> tuple[int, int]:
    """(frames, poses) in the JSON Lines beside the annotated video `out`."""
    lines = [json.loads(line) for line in out.with_suffix(".jsonl").read_text().splitlines() if line.strip()]
    return len(lines), sum(len(line["people"]) for line in lines)


# --------------------------------------------------------------------------------------------- (b) transformers
def documentation_drawing(model: Any) -> dict[str, Any]:
    """The documentation's OpenCV drawing code, exec'd from its text: `draw_points`, `draw_links` (the block between
    "import math" and "# Note: keypoint_edges"), then its `keypoint_edges` (model.config.edges) and palette (the
    block from there to the loop that draws)."""
    lines = DOC.read_text().splitlines()
    begin = lines.index("import math")
    note = next(i for i, line in enumerate(lines) if line.startswith("# Note: keypoint_edges"))
    loop = next(i for i, line in enumerate(lines) if i > note and line.startswith("numpy_image = "))
    namespace: dict[str, Any] = {"np": np, "model": model}
    exec(compile("\n".join(lines[begin:note]), str(DOC), "exec"), namespace)
    exec(compile("\n".join(lines[note:loop]), str(DOC), "exec"), namespace)
    return namespace


def transformers_job(model_dir: Path, inputs: Inputs, out: Path) -> dict[str, Any]:
    """The documentation's loop over every image with its boxes: seconds (model loading included), loading
    seconds, and per image the keypoints (n, 17, 2) and scores (n, 17)."""
    import cv2
    import torch
    from PIL import Image
    from transformers import VitPoseForPoseEstimation, VitPoseImageProcessor

    out.mkdir(parents=True)
    start = time.perf_counter()
    with quiet():
        image_processor = VitPoseImageProcessor.from_pretrained(model_dir)
        model = VitPoseForPoseEstimation.from_pretrained(model_dir)
    loaded = time.perf_counter() - start
    doc = documentation_drawing(model)
    draw_points, draw_links = doc["draw_points"], doc["draw_links"]
    keypoint_edges, link_colors, keypoint_colors = doc["keypoint_edges"], doc["link_colors"], doc["keypoint_colors"]
    found = []
    with quiet():  # numpy's DeprecationWarning about torch tensors' __array__ (np.array(pose_result[...]))
        for path, person_boxes in zip(inputs.paths, inputs.boxes, strict=True):
            image = Image.open(path)
            inputs_ = image_processor(image, boxes=[person_boxes], return_tensors="pt")
            with torch.no_grad():
                outputs = model(**inputs_)
            pose_results = image_processor.post_process_pose_estimation(outputs, boxes=[person_boxes])
            image_pose_result = pose_results[0]
            numpy_image = np.array(image)
            for pose_result in image_pose_result:
                scores = np.array(pose_result["scores"])
                keypoints = np.array(pose_result["keypoints"])
                draw_points(
                    numpy_image,
                    keypoints,
                    scores,
                    keypoint_colors,
                    keypoint_score_threshold=KPT_THR,
                    radius=4,
                    show_keypoint_weight=False,
                )
                draw_links(
                    numpy_image,
                    keypoints,
                    scores,
                    keypoint_edges,
                    link_colors,
                    keypoint_score_threshold=KPT_THR,
                    thickness=1,
                    show_keypoint_weight=False,
                )
            cv2.imwrite(str(out / Path(path).name), cv2.cvtColor(numpy_image, cv2.COLOR_RGB2BGR))
            found.append(
                (
                    np.stack([r["keypoints"].numpy() for r in image_pose_result]),
                    np.stack([r["scores"].numpy() for r in image_pose_result]),
                )
            )
    return {"seconds": time.perf_counter() - start, "load_s": loaded, "found": found}


# --------------------------------------------------------------------------------------------- (c) and (d): stages
def crop_batches(counts: list[int], size: int) -> list[list[tuple[int, slice]]]:
    """Network batches of `size` crops over images with `counts` boxes: per batch, (image index, slice of its boxes)
    parts; the boxes of consecutive images share a batch, one image's boxes may span two."""
    batches: list[list[tuple[int, slice]]] = [[]]
    room = size
    for image, count in enumerate(counts):
        start = 0
        while start < count:
            take = min(room, count - start)
            batches[-1].append((image, slice(start, start + take)))
            start, room = start + take, room - take
            if room == 0:
                batches.append([])
                room = size
    return [batch for batch in batches if batch]


@dataclass
class Crops:
    """The job's crops: per image the regions (centres, scales) of its boxes, the network batches and their
    `pixel_values`."""

    centers: list[np.ndarray]
    scales: list[np.ndarray]
    batches: list[list[tuple[int, slice]]]
    pixel_values: list[Any]

    def batch_regions(self, batch: list[tuple[int, slice]]) -> tuple[np.ndarray, np.ndarray]:
        centers = np.concatenate([self.centers[i][s] for i, s in batch])
        return centers, np.concatenate([self.scales[i][s] for i, s in batch])


def cut_crops(processor: Any, rgbs: list[np.ndarray], boxes: list[np.ndarray]) -> Crops:
    """What the job does between the boxes and the network: centre / scale of every box
    (`box_to_center_scale`), then `processor.crop_regions` per batch of BATCH crops."""
    from vitpose.ops.geometry import box_to_center_scale

    regions = [box_to_center_scale(b, input_size=processor.input_size, padding=processor.padding_factor) for b in boxes]
    centers, scales = [r[0] for r in regions], [r[1] for r in regions]
    batches = crop_batches([len(b) for b in boxes], BATCH)
    pixel_values = [
        processor.crop_regions(
            [rgbs[i] for i, _ in batch], [centers[i][s] for i, s in batch], [scales[i][s] for i, s in batch]
        )
        for batch in batches
    ]
    return Crops(centers, scales, batches, pixel_values)


def network_alone(model: Any, pixel_values: list[Any]) -> float:
    """Seconds of vitpose's forward over the prepared batches (after one warm-up batch), inference mode."""
    import torch

    with torch.inference_mode():
        model(pixel_values[0])
        start = time.perf_counter()
        for batch in pixel_values:
            model(batch)
        return time.perf_counter() - start


@contextlib.contextmanager
def one_thread():
    """torch and OpenCV on one thread (the processor's crop pool follows torch's count); restored afterwards."""
    import cv2
    import torch

    torch_threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        torch.set_num_threads(torch_threads)
        cv2.setNumThreads(cv_threads)


class Stopwatch:
    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self._start = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.times[stage] = now - self._start
        self._start = now


def stage_sum(model_dir: Path, inputs: Inputs, out: Path) -> dict[str, Any]:
    """Each stage of the predict job alone over all images, on one thread: {stage: seconds}, and its COCO results
    (to check that they are the job's)."""
    import torch

    from vitpose.cli.predict import PREDICTIONS_NAME, STATE_NAME
    from vitpose.detectors import BoxesDetector
    from vitpose.detectors.boxes import read_image_names
    from vitpose.inference.estimator import PoseEstimator
    from vitpose.inference.results import PoseResult, instance_scores
    from vitpose.media import encode_image, load_image
    from vitpose.ops.oks import pose_nms
    from vitpose.outputs import Journal, atomic_write_bytes, atomic_write_text, json_text

    out.mkdir(parents=True)
    with one_thread(), quiet():
        clock = Stopwatch()
        estimator = PoseEstimator.from_pretrained(model_dir, device="cpu", batch_size=BATCH)
        detector = BoxesDetector.from_json(inputs.detections, annotations=inputs.annotations, det_thr=DET_THR)
        image_ids = {name: image_id for image_id, name in read_image_names(inputs.annotations).items()}
        processor, codec, dataset = estimator.processor, estimator.codec, estimator.dataset
        clock.lap(STAGES[0])

        loaded = [load_image(path) for path in inputs.paths]
        clock.lap(STAGES[1])

        found = [detector([rgb], [name])[0] for rgb, name in loaded]
        boxes = [np.asarray(d.boxes, np.float64).reshape(-1, 4) for d in found]
        box_scores = [np.asarray(d.scores, np.float64) for d in found]
        crops = cut_crops(processor, [rgb for rgb, _ in loaded], boxes)
        clock.lap(STAGES[2])

        with torch.inference_mode():
            heatmaps = [estimator.model(batch).heatmaps for batch in crops.pixel_values]
        clock.lap(STAGES[3])

        decoded = [codec.decode(h, *crops.batch_regions(b)) for h, b in zip(heatmaps, crops.batches, strict=True)]
        keypoints = np.concatenate([k for k, _ in decoded])
        kpt_scores = np.concatenate([s for _, s in decoded])
        offsets = np.cumsum([0, *(len(b) for b in boxes)])
        scores = [
            instance_scores(box_scores[i], kpt_scores[offsets[i] : offsets[i + 1]], estimator.rescore_thr)
            for i in range(len(boxes))
        ]
        clock.lap(STAGES[4])

        results, entries = [], []
        for i, (rgb, name) in enumerate(loaded):
            part = slice(offsets[i], offsets[i + 1])
            result = PoseResult(
                keypoints=keypoints[part],
                keypoint_scores=kpt_scores[part],
                boxes=boxes[i].astype(np.float32),
                box_scores=box_scores[i].astype(np.float32),
                scores=scores[i],
                dataset=dataset,
                image_size=(rgb.shape[1], rgb.shape[0]),
                file_name=name,
            )
            if estimator.nms_thr is not None and len(result) > 1:
                keep = pose_nms(
                    result.keypoints,
                    result.scores,
                    np.asarray(dataset.sigmas),
                    estimator.nms_thr,
                    scales=crops.scales[i],
                )
                result = result.select(keep)
            results.append(result)
            name_ = Path(name).name
            entries.append(
                {
                    "position": i,
                    "input": name,
                    "name": name_,
                    "people": len(result),
                    "predictions": result.to_coco(image_id=image_ids.get(name_, i + 1)),
                }
            )
        coco = [p for entry in entries for p in entry["predictions"]]
        text = json_text(coco)
        clock.lap(STAGES[5])

        drawn = [result.draw(rgb, kpt_thr=KPT_THR) for result, (rgb, _) in zip(results, loaded, strict=True)]
        clock.lap(STAGES[6])

        encoded = [encode_image(image, Path(name).suffix) for image, (_, name) in zip(drawn, loaded, strict=True)]
        clock.lap(STAGES[7])

        journal = Journal(out / STATE_NAME, "predict", {"benchmark": "job"})
        for entry, data in zip(entries, encoded, strict=True):
            atomic_write_bytes(out / entry["name"], data)
            journal.write(entry)
        atomic_write_text(out / PREDICTIONS_NAME, text)
        journal.close(remove=True)
        clock.lap(STAGES[8])
    return {"stages": clock.times, "coco": coco}


# --------------------------------------------------------------------------------------------- agreement
Found = dict[tuple[int, tuple[float, ...]], tuple[np.ndarray, np.ndarray]]  # (image id, box) -> (keypoints, scores)


def _key(image_id: int, box: Any) -> tuple[int, tuple[float, ...]]:
    return int(image_id), tuple(round(float(v), 2) for v in box)


def found_by_box(inputs: Inputs, per_image: list[tuple[np.ndarray, np.ndarray]]) -> Found:
    """Per-image results in the order of the input boxes (image ids are 1-based positions) by (image id, box)."""
    return {
        _key(image + 1, box): (keypoints[person], scores[person])
        for image, (keypoints, scores) in enumerate(per_image)
        for person, box in enumerate(inputs.boxes[image])
    }


def coco_by_box(coco: list[dict[str, Any]]) -> Found:
    """COCO keypoint results by (image id, box)."""
    out = {}
    for entry in coco:
        values = np.asarray(entry["keypoints"], np.float64).reshape(-1, 3)
        out[_key(entry["image_id"], entry["bbox"])] = (values[:, :2], values[:, 2])
    return out


def agreement(ours: Found, other: Found, given: int) -> dict[str, Any]:
    """`ours` against `other`: people in each (and given), and the position (largest coordinate) and score
    differences of every keypoint of the people in both."""
    both = [key for key in ours if key in other]
    if not both:
        raise SystemExit("no person in common: the two runs did not see the same images and boxes")
    position = np.concatenate([np.abs(ours[k][0] - other[k][0]).max(axis=1) for k in both])
    score = np.concatenate([np.abs(ours[k][1] - other[k][1]) for k in both])
    return {
        "people": len(ours),
        "other_people": len(other),
        "common": len(both),
        "given": given,
        "max_px": float(position.max()),
        "median_px": float(np.median(position)),
        "within_1px": float((position < 1).mean()),
        "score_max": float(score.max()),
        "score_median": float(np.median(score)),
    }


# --------------------------------------------------------------------------------------------- one model
@dataclass
class Line:
    key: str
    what: str
    images: int
    people: int
    seconds: float
    note: str = ""
    unit: str = "images/s"

    @property
    def rate(self) -> float:
        return self.images / self.seconds


@dataclass
class ModelResult:
    name: str
    crops: int
    lines: list[Line] = field(default_factory=list)
    stages: dict[str, float] = field(default_factory=dict)
    vs_transformers: dict[str, float] = field(default_factory=dict)
    vs_stages: dict[str, float] = field(default_factory=dict)
    load_s: float = 0.0  # loading the model alone (PoseEstimator.from_pretrained), part of (a)'s wall time

    def line(self, key: str) -> Line:
        return next(line for line in self.lines if line.key == key)


def bench_model(job: Job, workdir: Path) -> ModelResult:
    from vitpose import VitPoseImageProcessor
    from vitpose.media import load_image

    ours = build_model(job.spec, workdir / "model")
    model = workdir / "model"
    inputs = make_inputs(workdir, job.images)
    video = make_video(inputs, workdir / "frames.avi", job.frames)
    result = ModelResult(job.spec.name, inputs.crops)
    n = len(inputs.paths)
    print(f"{job.spec.name}: {n} images, {inputs.crops} boxes, {job.frames} video frames", file=sys.stderr)

    warm = subset(inputs, workdir, WARMUP_IMAGES)
    vitpose_command(predict_args(model, warm, workdir / "warmup_a", None))
    vitpose_command(video_args(model, video, workdir / "warmup_e.avi", 1, max_frames=2))
    transformers_job(model, warm, workdir / "warmup_b")

    processor = VitPoseImageProcessor.from_pretrained(model)
    rgbs = [load_image(path)[0] for path in inputs.paths]
    crops = cut_crops(processor, rgbs, [np.asarray(b, np.float64).reshape(-1, 4) for b in inputs.boxes])
    del rgbs

    from vitpose import PoseEstimator

    start = time.perf_counter()
    PoseEstimator.from_pretrained(model, device="cpu")
    result.load_s = time.perf_counter() - start
    # (c) right after (a): the ViT-B target compares the two, and a shared machine's load drifts.
    seconds = vitpose_command(predict_args(model, inputs, workdir / "a_boxes", None))
    got = predictions(workdir / "a_boxes")
    result.lines.append(Line("a", "`vitpose predict --boxes B --annotations A`", n, len(got), seconds))
    print(f"  a (boxes): {n / seconds:.2f} img/s", file=sys.stderr)

    seconds = network_alone(ours.eval(), crops.pixel_values)
    del crops
    result.lines.append(
        Line(
            "c",
            f"network alone ({inputs.crops} crops, batches of {BATCH})",
            n,
            inputs.crops,
            seconds,
            f"{inputs.crops / seconds:.1f} crops/s",
        )
    )
    print(f"  c (network): {n / seconds:.2f} img/s", file=sys.stderr)

    hf = transformers_job(model, inputs, workdir / "b")
    result.lines.append(
        Line(
            "b",
            "transformers documentation loop (same boxes)",
            n,
            inputs.crops,
            hf["seconds"],
            f"model loading {hf['load_s']:.2f} s",
        )
    )
    result.vs_transformers = agreement(coco_by_box(got), found_by_box(inputs, hf["found"]), inputs.crops)
    print(f"  b (transformers): {n / hf['seconds']:.2f} img/s", file=sys.stderr)

    seconds = vitpose_command(predict_args(model, inputs, workdir / "a_hog", "hog"))
    people = len(predictions(workdir / "a_hog"))
    result.lines.append(Line("a-hog", "`vitpose predict --detector hog`", n, people, seconds))
    print(f"  a (hog): {n / seconds:.2f} img/s", file=sys.stderr)

    stages = stage_sum(model, inputs, workdir / "d")
    result.stages = stages["stages"]
    result.lines.append(
        Line("d", "one-thread sum of the job's stages", n, len(stages["coco"]), sum(result.stages.values()))
    )
    result.vs_stages = agreement(coco_by_box(got), coco_by_box(stages["coco"]), inputs.crops)
    print(f"  d (stage sum): {n / sum(result.stages.values()):.2f} img/s", file=sys.stderr)

    for every in (1, 5):
        out = workdir / f"e_every{every}.avi"
        seconds = vitpose_command(video_args(model, video, out, every))
        frames, people = video_people(out)
        result.lines.append(
            Line(
                f"e-{every}",
                f"`vitpose video --detector hog --det-every {every}`",
                frames,
                people,
                seconds,
                unit="frames/s",
            )
        )
        print(f"  e (video, det-every {every}): {frames / seconds:.2f} frames/s", file=sys.stderr)
    return result


# --------------------------------------------------------------------------------------------- the report
def targets(results: dict[str, ModelResult]) -> list[list[str]]:
    rows = []
    if "tiny" in results:
        r = results["tiny"]
        a, b, d = r.line("a"), r.line("b"), r.line("d")
        over_b, over_d = a.rate / b.rate, d.seconds / a.seconds
        rows.append(
            [
                f"{r.name}: (a) with boxes over (b) transformers",
                f">= {TARGETS['transformers']:.1f}x",
                f"{over_b:.2f}x",
                _met(over_b >= TARGETS["transformers"]),
            ]
        )
        rows.append(
            [
                f"{r.name}: (a) with boxes over (d) the one-thread stage sum (sum / (a)'s wall)",
                f">= {TARGETS['stages']:.1f}x",
                f"{over_d:.2f}x",
                _met(over_d >= TARGETS["stages"]),
            ]
        )
    if "base" in results:
        r = results["base"]
        ratio = r.line("a").seconds / r.line("c").seconds
        rows.append(
            [
                f"{r.name}: (a) with boxes, wall time over (c) the network alone",
                f"<= {TARGETS['network']:.2f}x",
                f"{ratio:.2f}x",
                _met(ratio <= TARGETS["network"]),
            ]
        )
        ratio = (r.line("a").seconds - r.load_s) / r.line("c").seconds
        rows.append(
            [
                f"{r.name}: (a) with boxes less its model loading ({r.load_s:.2f} s), over (c) the network alone",
                f"<= {TARGETS['network']:.2f}x",
                f"{ratio:.2f}x",
                _met(ratio <= TARGETS["network"]),
            ]
        )
    return rows


def model_sections(r: ModelResult) -> list[str]:
    a = r.line("a")
    rows = []
    for line in r.lines:
        rows.append(
            [
                line.key,
                line.what,
                str(line.images),
                str(line.people),
                f"{line.seconds:.2f}",
                f"{line.rate:.2f} {line.unit}",
                f"{a.rate / line.rate:.2f}x",
                line.note,
            ]
        )
    out = ["", f"## {r.name}: the lines", ""]
    out += _md_table(["line", "what", "images", "people", "wall s", "rate", "(a) / line", "note"], rows)
    total = sum(r.stages.values())
    stage_rows = [
        [stage, f"{seconds:.3f}", f"{seconds / a.images * 1e3:.1f}", f"{seconds / total:.0%}"]
        for stage, seconds in r.stages.items()
    ]
    stage_rows.append(["**sum**", f"{total:.3f}", f"{total / a.images * 1e3:.1f}", "100%"])
    out += ["", f"## {r.name}: (d) the job's stages, each alone on one thread", ""]
    out += _md_table(["stage", "seconds", "ms per image", "share"], stage_rows)
    out += ["", f"Sum / (a)'s wall time: {total / a.seconds:.2f} ({total:.2f} s / {a.seconds:.2f} s).", ""]
    t, s = r.vs_transformers, r.vs_stages
    out += [f"## {r.name}: agreement of (a)'s predictions.json", ""]
    out += _md_table(
        ["against", "people: (a) / it / given", "keypoint px: max", "median", "within 1 px", "score: max", "median"],
        [
            [
                name,
                f"{v['people']} / {v['other_people']} / {v['given']}",
                f"{v['max_px']:.3g}",
                f"{v['median_px']:.3g}",
                f"{v['within_1px']:.0%}",
                f"{v['score_max']:.3g}",
                f"{v['score_median']:.3g}",
            ]
            for name, v in (("(b) transformers", t), ("(d) the stages", s))
        ],
    )
    return out


def markdown(command: str, machine: dict[str, str], results: dict[str, ModelResult]) -> str:
    out = ["# vitpose whole-job benchmark", "", f"Command: `{command}`", ""]
    out += ["| machine | |", "| --- | --- |"] + [f"| {k} | {v} |" for k, v in machine.items()]
    out += ["", "## Targets", ""]
    out += _md_table(["target", "", "measured", ""], targets(results))
    out += [
        "",
        "Rates include model loading (a, b, e). (a) / line: (a) with boxes' images/s over the line's (for "
        "(d): the stage sum over (a)'s wall time).",
    ]
    for r in results.values():
        out += model_sections(r)
    out += [
        "",
        "Agreement: keypoint px is the largest coordinate difference of a keypoint; (b) crops with scipy and "
        "decodes with transformers' blur (sigma 0.8, reflect border) instead of the original's (sigma 2), which "
        "random weights' peakless heatmaps turn into pixel differences, while the scores (heatmap maxima) "
        "agree; (d) is vitpose's own stages and equals (a) up to float rounding.",
        "",
    ]
    return "\n".join(out)


def machine_description() -> dict[str, str]:
    """run.py's machine table (CPU, cores, threads, versions) with the versions of the imaging libraries."""
    info = run_machine()
    info["torch threads"] += " (the default; (d): 1)"
    info.update(module_versions(("PIL", "scipy")))
    return info


def as_json(results: dict[str, ModelResult]) -> dict[str, Any]:
    return {
        key: {
            "name": r.name,
            "crops": r.crops,
            "stages": r.stages,
            "vs_transformers": r.vs_transformers,
            "vs_stages": r.vs_stages,
            "lines": {
                line.key: {
                    "images": line.images,
                    "people": line.people,
                    "seconds": line.seconds,
                    "rate": line.rate,
                    "unit": line.unit,
                }
                for line in r.lines
            },
        }
        for key, r in results.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny model only, 24 images, 12 frames (< 60 s)")
    parser.add_argument("--models", help="comma-separated: tiny,base (default both; --quick: tiny)")
    parser.add_argument("--images", type=int, help="images in the folder (default 240 tiny, 24 ViT-B; --quick 24)")
    parser.add_argument("--frames", type=int, help="video frames (default 120 tiny, 24 ViT-B; --quick 12)")
    parser.add_argument("--out", help="markdown report (default benchmarks/JOB_RESULTS.md; --quick: a temp file)")
    parser.add_argument("--json", help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    keys = (args.models or ("tiny" if args.quick else "tiny,base")).split(",")
    unknown = [key for key in keys if key not in MODELS]
    if unknown:
        parser.error(f"--models: unknown {unknown}; choose from {','.join(MODELS)}")
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    jobs = [Job(key, _spec(MODELS[key]), args.images or sizes[key][0], args.frames or sizes[key][1]) for key in keys]
    out = Path(args.out) if args.out else None
    out = out or (Path(tempfile.gettempdir(), "vitpose_job_quick.md") if args.quick else HERE / "JOB_RESULTS.md")
    command = "python benchmarks/job.py " + " ".join(argv if argv is not None else sys.argv[1:])

    with quiet():  # the imports' chatter (transformers' processor back-end notes)
        import transformers  # noqa: F401

        import vitpose.cli  # noqa: F401
    machine = machine_description()
    load_start = load_average()
    started = time.perf_counter()
    results: dict[str, ModelResult] = {}
    with tempfile.TemporaryDirectory(prefix="vitpose-jobbench-") as tmp:
        for job in jobs:
            results[job.key] = bench_model(job, Path(tmp, job.key))
    machine["load average (start -> end)"] = f"{load_start} -> {load_average()}"
    machine["run time"] = f"{time.perf_counter() - started:.0f} s"
    machine["inputs"] = (
        "copies of the shared COCO photos (500-640 px wide) with their test_coco.json person boxes (score 1); the "
        f"video: the copies resized to {VIDEO_SIZE[0]} x {VIDEO_SIZE[1]}, MJPG .avi"
    )
    text = markdown(command.strip(), machine, results)
    out.write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps(as_json(results), indent=2))
    print(text)
    print(f"written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
