"""`vitpose` command line: thin argument parsing over the library; no logic of its own."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from vitpose import __version__


def _convert(args: argparse.Namespace) -> int:
    from vitpose.models.pose import VitPoseForPoseEstimation
    from vitpose.processor import VitPoseImageProcessor

    model = VitPoseForPoseEstimation.from_pretrained(args.source)
    if args.fold is not None:
        model = model.fold_experts(args.fold)
    model.save_pretrained(args.out_dir, safe_serialization=not args.bin)
    VitPoseImageProcessor(
        size={"height": model.config.backbone_config.image_size[0], "width": model.config.backbone_config.image_size[1]}
    ).save_pretrained(args.out_dir)
    print(f"wrote {args.out_dir}: {_describe(model)}")
    return 0


def _describe(model) -> str:
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


def _info(args: argparse.Namespace) -> int:
    from vitpose.models.pose import VitPoseForPoseEstimation

    model = VitPoseForPoseEstimation.from_pretrained(args.source)
    if args.json:
        print(json.dumps(model.config.to_dict(), indent=2, sort_keys=True))
    else:
        params = sum(p.numel() for p in model.parameters())
        print(f"{args.source}: {_describe(model)}, {params / 1e6:.1f}M parameters")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vitpose", description="ViTPose and ViTPose++ pose estimation.")
    parser.add_argument("--version", action="version", version=f"vitpose {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    convert = sub.add_parser(
        "convert",
        help="convert a checkpoint (original ViTPose .pth, hub id or directory) to the transformers hub format",
        description="Write config.json, model.safetensors and preprocessor_config.json to OUT_DIR. The directory "
        "loads in vitpose and in transformers.VitPoseForPoseEstimation (ViTPose++ extra heads are kept under "
        "associate_heads.*, which transformers ignores).",
    )
    convert.add_argument("source", help="original ViTPose .pth file, hub id or hub-format directory")
    convert.add_argument("out_dir", help="output directory")
    convert.add_argument(
        "--fold",
        metavar="DATASET",
        help="ViTPose++ only: fold this data set's expert into fc2 and keep its head, giving a dense model "
        "(coco, aic, mpii, ap10k, apt36k, wholebody or 0-5)",
    )
    convert.add_argument("--bin", action="store_true", help="write pytorch_model.bin instead of model.safetensors")
    convert.set_defaults(func=_convert)

    info = sub.add_parser("info", help="describe a checkpoint: size, decoder, experts, heads")
    info.add_argument("source", help="original .pth file, hub id or hub-format directory")
    info.add_argument("--json", action="store_true", help="print the full config as JSON")
    info.set_defaults(func=_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "fold", None) is not None and args.fold.isdigit():
        args.fold = int(args.fold)
    try:
        return args.func(args)
    except (ValueError, OSError) as err:  # CheckpointError is a ValueError, FileNotFoundError an OSError
        print(f"vitpose {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
