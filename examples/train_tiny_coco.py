"""Train a tiny ViTPose from scratch on the four images of ../shared/data/coco and evaluate it on them.

The full-size version of the CI test `tests/test_training.py::test_tiny_model_from_scratch_learns_the_four_images`
(which trains at 128x96 with the simple decoder): a width-96, 3-block ViT with the CLASSIC decoder at the original
256x192 input and 64x48 heatmaps, the full batch of the 12 annotated people, AdamW lr 1e-3 (layer-wise decay, weight
decay 0.1, gradient clipping 1.0), no augmentation, no lr decay, 600 steps. It must memorise the 12 people, so its AP
on them checks that targets, loss, crops, decoding and evaluation agree at the real resolution.

    python examples/train_tiny_coco.py                       # writes runs/tiny_coco/{last,best,log.csv,training.png}
    python examples/train_tiny_coco.py --epochs 300 --threads 2

Measured on a 2-core CPU (one intra-op thread): see docs/training.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from vitpose.evaluation import evaluate
from vitpose.models.pose import VitPoseForPoseEstimation
from vitpose.training import train

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "coco"), help="the shared COCO folder")
    parser.add_argument("--out", default="runs/tiny_coco", help="output folder")
    parser.add_argument("--epochs", type=int, default=600, help="epochs = steps (one full batch per epoch)")
    parser.add_argument("--decoder", default="classic", choices=["classic", "simple"])
    parser.add_argument("--input-size", default="256x192", help="HxW")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1 is fastest on a busy CPU)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)

    data = Path(args.data)
    annotations = data / "test_coco.json"
    if not annotations.is_file():
        print(f"train_tiny_coco: {annotations} not found (pass --data)", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    height, width = (int(v) for v in args.input_size.lower().split("x"))
    start = time.time()
    result = train(
        model="tiny",
        decoder=args.decoder,
        input_size=[width, height],  # (width, height), as everywhere in the Python API
        train_annotations=str(annotations),
        train_images=str(data),
        val_annotations=str(annotations),
        val_images=str(data),
        epochs=args.epochs,
        batch_size=12,
        lr=1e-3,
        warmup_iters=0,
        lr_steps=[],
        augment=False,
        eval_interval=max(args.epochs // 6, 1),
        checkpoint_interval=max(args.epochs // 6, 1),
        num_workers=0,
        device=args.device,
        out=args.out,
    )
    minutes = (time.time() - start) / 60
    for row in result.history:
        if "AP" in row:
            print(f"epoch {row['epoch']:4d}  loss {row['loss']:.3e}  AP {row['AP']:.3f}  AR {row['AR']:.3f}")
    best = VitPoseForPoseEstimation.from_pretrained(Path(args.out) / "best")
    report = evaluate(best, annotations, data)
    print(f"best checkpoint {Path(args.out) / 'best'}: AP {report.metrics['AP']:.3f} ({minutes:.1f} min of training)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
