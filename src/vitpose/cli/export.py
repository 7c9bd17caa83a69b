"""`vitpose export onnx --model M --out model.onnx [--dataset NAME]`: thin argument parsing over `vitpose.export`."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from vitpose.cli.common import add_model_files, add_model_options
from vitpose.errors import VitPoseError
from vitpose.outputs import InputFiles, atomic_path

CHECK_TOLERANCE = 1e-3  # max |ONNX Runtime - PyTorch| on random crops; float32 reorderings stay near 1e-5


def _export(args: argparse.Namespace) -> int:
    from vitpose.datasets import DatasetInfo
    from vitpose.export import export_onnx
    from vitpose.models.pose import VitPoseForPoseEstimation

    if args.format != "onnx":  # argparse's choices already refuse others; kept for direct calls
        raise VitPoseError(f"unknown export format {args.format!r}; supported: onnx")
    _check_dtype(args.dtype)
    int8_out = _int8_path(args.out) if args.int8 else None
    inputs = InputFiles()
    add_model_files(inputs, args.model)
    inputs.check_outputs(
        [args.out, *([int8_out] if int8_out else [])], option="--out", hint="write the ONNX file to another path"
    )
    model = VitPoseForPoseEstimation.from_pretrained(args.model)
    dataset = args.dataset.dataset_index if isinstance(args.dataset, DatasetInfo) else args.dataset  # custom: its index
    with atomic_path(args.out) as tmp:  # a stopped or failed export leaves no half file (nor an older one changed)
        result = export_onnx(model, tmp, dataset=dataset, opset=args.opset, check=not args.no_check)
    result = dataclasses.replace(result, path=Path(args.out))
    print(f"wrote {result}")
    if result.max_abs_diff is not None and not result.max_abs_diff <= CHECK_TOLERANCE:
        print(
            f"vitpose export: error: ONNX Runtime's heatmaps differ from PyTorch's by {result.max_abs_diff:.3g} "
            f"(more than {CHECK_TOLERANCE}); the file is written but should not be trusted",
            file=sys.stderr,
        )
        return 1
    if args.int8:
        from vitpose.inference.backends.onnx import quantize_onnx_int8

        with atomic_path(int8_out) as tmp:
            quantize_onnx_int8(args.out, tmp)
        print(f"wrote {int8_out} (int8 dynamic quantisation of the MatMul weights)")
    return 0


def _check_dtype(dtype: str) -> None:
    """--dtype of an export: float32 only (auto is float32: the export runs on the CPU). torch.onnx writes a float16
    graph, but `vitpose.export` exports float32 and `OnnxPoseModel` feeds the graph float32 crops, and ONNX Runtime's
    CPU kernels have little bfloat16: refused before the model loads, naming what to do instead."""
    from vitpose.device import dtype_name, resolve_dtype

    name = dtype_name(resolve_dtype(dtype, "cpu"))
    if name != "float32":
        raise VitPoseError(
            f"--dtype {dtype}: vitpose export writes float32 ONNX graphs only (the ones OnnxPoseModel and ONNX "
            f"Runtime's CPU kernels run); drop --dtype (or pass float32), and for {name} on a GPU run the checkpoint "
            f"itself: vitpose predict --dtype {name}"
        )


def _int8_path(out: str) -> str:
    """Where --int8 writes: OUT with .int8.onnx (as `quantize_onnx_int8` names it)."""
    return out[: -len(".onnx")] + ".int8.onnx" if out.endswith(".onnx") else out + ".int8.onnx"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `export` on the `vitpose` command's subparsers (`subparsers = parser.add_subparsers(...)`)."""
    export = subparsers.add_parser(
        "export",
        help="export a checkpoint for other runtimes (ONNX)",
        description="Write the network as an ONNX graph: pixel_values (batch, 3, H, W) -> heatmaps (batch, K, H/4, "
        "W/4), with a dynamic batch axis. ViTPose++ checkpoints are exported for one data set (--dataset), its expert "
        "folded into the MLP. Run the file with vitpose.inference.backends.onnx.OnnxPoseModel (or any ONNX "
        "runtime; the model config is in the file's metadata). Needs: pip install onnx onnxruntime.",
    )
    export.add_argument("format", choices=["onnx"], help="export format (onnx)")
    add_model_options(
        export,
        model_required=True,
        device=None,
        dtype_note="; export: float32 only, the graph ONNX Runtime runs (auto is float32 here)",
        batch_size=None,
        flip_test=None,
        dataset_note=" (default coco)",
    )
    export.add_argument(
        "--out", required=True, help="the .onnx file to write (atomically; never the --model checkpoint)"
    )
    export.add_argument("--opset", type=int, default=17, help="ONNX opset version (default 17)")
    export.add_argument("--int8", action="store_true", help="also write OUT with .int8.onnx: int8 dynamic quantisation")
    export.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime vs PyTorch comparison")
    export.set_defaults(func=_export)
