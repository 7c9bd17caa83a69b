"""Snapshot every output the restructure must keep bit-identical, or compare two snapshots.

    python scripts/snapshot_outputs.py write DIR      # run predict, eval, video and the transformers-compatible API
    python scripts/snapshot_outputs.py compare A B    # exact comparison of two snapshots (exit 1 on any difference)

The checkpoints are random-initialised (transformers' save_pretrained, fixed seeds), the inputs the shared data. The
commands run through `vitpose.cli.main`, so the script works on any layout of the package.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
COCO = DATA / "coco"


def _checkpoint(directory: Path, simple: bool, experts: int = 1, labels: int = 17) -> Path:
    """The tests' tiny random transformers checkpoint (tests/conftest.py make_hf_model: width 96, 2 blocks, seed 0,
    LayerNorm, biases and BatchNorm statistics perturbed), saved in the hub format."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import make_hf_model, save_hf

    return save_hf(make_hf_model(num_experts=experts, simple=simple, num_labels=labels), directory)


def _cli(*argv: str) -> int:
    from vitpose.cli import main

    code = main([str(a) for a in argv])
    print("  exit", code, " ".join(str(a) for a in argv[:2]), file=sys.stderr)
    return code


def write(out: Path) -> None:
    import torch
    from PIL import Image

    from vitpose import AutoProcessor, VitPoseForPoseEstimation

    out.mkdir(parents=True, exist_ok=True)
    ckpts = out / "checkpoints"
    simple = _checkpoint(ckpts / "simple", simple=True)
    classic = _checkpoint(ckpts / "classic", simple=False)
    moe = _checkpoint(ckpts / "moe", simple=True, experts=2)
    aic = _checkpoint(ckpts / "aic", simple=True, labels=14)
    mpii = _checkpoint(ckpts / "mpii", simple=False, labels=16)
    det = COCO / "test_coco_det_AP_H_56.json"
    ann = COCO / "test_coco.json"
    codes = {}
    for name, model in (("simple", simple), ("classic", classic)):
        codes[f"predict_boxes_{name}"] = _cli(
            "predict",
            COCO,
            "--model",
            model,
            "--boxes",
            det,
            "--annotations",
            ann,
            "--det-thr",
            "0",
            "--flip-test",
            "--out",
            out / f"predict_boxes_{name}",
        )
    codes["predict_hog"] = _cli("predict", COCO, "--model", simple, "--detector", "hog", "--out", out / "predict_hog")
    codes["predict_full"] = _cli(
        "predict",
        DATA / "ap10k",
        "--model",
        classic,
        "--detector",
        "full-image",
        "--no-nms",
        "--out",
        out / "predict_full",
    )
    for name, extra in (
        ("eval_gt", ["--annotations", ann, "--images", COCO]),
        ("eval_det_flip", ["--annotations", ann, "--images", COCO, "--detections", det, "--flip-test"]),
        ("eval_aic", ["--model", aic, "--annotations", DATA / "aic" / "test_aic.json", "--images", DATA / "aic"]),
        (
            "eval_mpii",
            [
                "--model",
                mpii,
                "--annotations",
                DATA / "mpii" / "test_mpii.json",
                "--images",
                DATA / "mpii",
                "--flip-test",
            ],
        ),
        ("eval_ap10k", ["--annotations", DATA / "ap10k" / "test_ap10k.json", "--images", DATA / "ap10k"]),
    ):
        if "--model" not in extra:
            extra = ["--model", simple, *extra]
        codes[name] = _cli("eval", *extra, "--out", out / f"{name}.json", "--json")
    codes["video"] = _cli(
        "video",
        COCO,
        "--model",
        simple,
        "--detector",
        "hog",
        "--det-every",
        "2",
        "--smooth",
        "--fps",
        "5",
        "--out",
        out / "video.avi",
        "--no-progress",
    )
    (out / "exit_codes.json").write_text(json.dumps(codes, indent=1))

    image = Image.open(COCO / "000000196141.jpg")
    boxes = [[247.76, 74.23, 169.67, 300.78], [555.57, 99.84, 48.32, 113.05]]
    arrays = {}
    for name, path in (("simple", simple), ("classic", classic), ("moe", moe)):
        processor = AutoProcessor.from_pretrained(path) if (path / "preprocessor_config.json").exists() else None
        if processor is None:
            from vitpose import VitPoseImageProcessor

            processor = VitPoseImageProcessor()
        model = VitPoseForPoseEstimation.from_pretrained(path)
        inputs = processor(image, boxes=[boxes], return_tensors="pt")
        with torch.no_grad():
            kw = {"dataset_index": torch.tensor([0, 1])} if name == "moe" else {}
            outputs = model(**inputs, **kw)
            flipped = model(**inputs, flip_test=True, **kw)
        arrays[f"{name}_pixels"] = inputs["pixel_values"].numpy()
        arrays[f"{name}_heatmaps"] = outputs.heatmaps.numpy()
        arrays[f"{name}_flip_heatmaps"] = flipped.heatmaps.numpy()
        for tag, o in (("plain", outputs), ("flip", flipped)):
            results = processor.post_process_pose_estimation(o, boxes=[boxes])
            for i, person in enumerate(results[0]):
                for key in ("keypoints", "scores", "labels", "bbox"):
                    arrays[f"{name}_{tag}_{i}_{key}"] = np.asarray(person[key])
    np.savez(out / "api.npz", **arrays)


def _load_outputs(root: Path) -> dict[str, bytes]:
    files = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and "checkpoints" not in path.parts:
            files[str(path.relative_to(root))] = path.read_bytes()
    return files


def compare(a: Path, b: Path) -> int:
    fa, fb = _load_outputs(a), _load_outputs(b)
    bad = 0
    for name in sorted(set(fa) | set(fb)):
        if name not in fa or name not in fb:
            print(f"only in one snapshot: {name}")
            bad += 1
        elif name.endswith(".npz"):
            za, zb = np.load(a / name), np.load(b / name)
            for key in sorted(set(za.files) | set(zb.files)):
                if key not in za.files or key not in zb.files or not np.array_equal(za[key], zb[key]):
                    print(f"differs: {name}:{key}")
                    bad += 1
        elif name.endswith(".avi"):
            continue  # container metadata may differ; the frames are checked through video.jsonl
        elif fa[name] != fb[name]:
            print(f"differs: {name}")
            bad += 1
    print(f"{len(set(fa) | set(fb))} files compared, {bad} differences")
    return 1 if bad else 0


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(Path(sys.argv[2]))
    else:
        sys.exit(compare(Path(sys.argv[2]), Path(sys.argv[3])))
