"""`vitpose convert` (a checkpoint to the transformers hub format) and `vitpose info` (describe a checkpoint)."""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from vitpose.cli.common import add_dtype_option, dataset_arg
from vitpose.outputs import InputFiles, files_of, replace_durably

__all__ = ["add_info_parser", "add_parser", "describe", "run", "run_info"]


def add_parser(subparsers: Any) -> None:
    """Register `convert` (its options and its handler, `run`) on the `vitpose` command's subparsers."""
    convert = subparsers.add_parser(
        "convert",
        help="convert a checkpoint (original ViTPose .pth, hub id or directory) to the transformers hub format",
        description="Write config.json, model.safetensors and preprocessor_config.json to OUT_DIR. The directory "
        "loads in vitpose and in transformers.VitPoseForPoseEstimation (ViTPose++ extra heads are kept under "
        "associate_heads.*, which transformers ignores).",
    )
    convert.add_argument("source", help="original ViTPose .pth file, hub id or hub-format directory")
    convert.add_argument("out_dir", help="output directory (never the source checkpoint's folder)")
    convert.add_argument(
        "--fold",
        metavar="DATASET",
        type=dataset_arg,
        help="ViTPose++ only: fold this data set's expert into fc2 and keep its head, giving a dense model "
        "(coco, aic, mpii, ap10k, apt36k, wholebody or 0-5)",
    )
    convert.add_argument("--bin", action="store_true", help="write pytorch_model.bin instead of model.safetensors")
    add_dtype_option(
        convert,
        note="; convert: the dtype of the weights written (auto is float32 here: half the file with float16 or "
        "bfloat16, which load in float32 unless asked otherwise)",
    )
    convert.set_defaults(func=run)


def add_info_parser(subparsers: Any) -> None:
    """Register `info` (its options and its handler, `run_info`) on the `vitpose` command's subparsers."""
    info = subparsers.add_parser("info", help="describe a checkpoint: size, decoder, experts, heads")
    info.add_argument("source", help="original .pth file, hub id or hub-format directory")
    info.add_argument("--json", action="store_true", help="print the full config as JSON")
    info.set_defaults(func=run_info)


def run(args: argparse.Namespace) -> int:
    """The handler of `vitpose convert`."""
    from vitpose.datasets import DatasetInfo
    from vitpose.device import dtype_name, resolve_dtype
    from vitpose.models.pose import VitPoseForPoseEstimation
    from vitpose.processor import VitPoseImageProcessor

    dtype = resolve_dtype(args.dtype, "cpu")  # a bad name fails before anything is read
    out_dir = Path(args.out_dir)
    inputs = InputFiles()
    for path in files_of(args.source):
        inputs.add("the source checkpoint", path)
    written = ["config.json", "pytorch_model.bin" if args.bin else "model.safetensors", "preprocessor_config.json"]
    inputs.check_outputs(
        [out_dir / name for name in written], option=f"OUT_DIR {out_dir}", hint="convert into another folder"
    )
    model = VitPoseForPoseEstimation.from_pretrained(args.source, dtype=dtype)
    if args.fold is not None:
        fold = args.fold.dataset_index if isinstance(args.fold, DatasetInfo) else args.fold  # a custom file's index
        model = model.fold_experts(fold)
    # Written in a folder beside OUT_DIR, then each file renamed into it: a stopped or failed conversion leaves no
    # half file in OUT_DIR (the files already there stay as they were).
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        model.save_pretrained(staging, safe_serialization=not args.bin)
        height, width = model.config.backbone_config.image_size
        VitPoseImageProcessor(size={"height": height, "width": width}).save_pretrained(staging)
        for path in sorted(staging.iterdir()):
            replace_durably(path, out_dir / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    weights = "" if dtype_name(dtype) == "float32" else f", {dtype_name(dtype)} weights"
    print(f"wrote {args.out_dir}: {describe(model)}{weights}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    """The handler of `vitpose info`."""
    from vitpose.models.pose import VitPoseForPoseEstimation

    model = VitPoseForPoseEstimation.from_pretrained(args.source)
    if args.json:
        print(json.dumps(model.config.to_dict(), indent=2, sort_keys=True))
    else:
        params = sum(p.numel() for p in model.parameters())
        print(f"{args.source}: {describe(model)}, {params / 1e6:.1f}M parameters")
    return 0


def describe(model: Any) -> str:
    """One line about a model: width, blocks, heads, input size, decoder, keypoints, experts, extra heads."""
    cfg = model.config
    bb = cfg.backbone_config
    parts = [
        f"ViT width {bb.hidden_size}, {bb.num_hidden_layers} blocks, {bb.num_attention_heads} heads",
        f"input {bb.image_size[0]}x{bb.image_size[1]}",
        f"{'simple' if cfg.use_simple_decoder else 'classic'} decoder",
        f"{cfg.num_labels} keypoints",
    ]
    if bb.is_moe:
        parts.append(f"{bb.num_experts} experts ({bb.part_features} part features)")
    if cfg.associate_num_labels:
        parts.append(f"extra heads {cfg.associate_num_labels} for dataset_index 1..{len(cfg.associate_num_labels)}")
    return ", ".join(parts)
