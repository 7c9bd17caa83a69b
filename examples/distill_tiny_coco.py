"""Distill a tiny ViTPose fitted to the four shared COCO images into a smaller student, with each method.

The measured version of the CI test `tests/test_distill.py::test_a_fitted_teacher_teaches_a_smaller_student_from_its_
heatmaps_alone`. The teacher: the tiny preset (width 96, 3 blocks, simple decoder, 128x96 input), 180 full-batch
steps on the 12 annotated people, no augmentation (it memorises them: AP 1.0). The student: width 64, 2 blocks (38%
of the teacher's parameters), random initialisation, the same 180 steps, trained

- on the labels alone (`vitpose train`: the baseline);
- on the teacher's heatmaps alone, its labels scrambled and weighted 0 (`--method output --gt-weight 0`);
- with the teacher's knowledge token (stage 1: 30 epochs; the token is carried from width 96 to 64 by least
  squares), on the labels (`--method token`);
- with the token and the output loss (`--method both`).

Every AP is on the four images (the memorisation regime: it shows that what the teacher knows reaches the student,
not how well it generalises).

    python examples/distill_tiny_coco.py                     # writes runs/distill_tiny/..., prints a table
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch

from vitpose import VitPoseConfig, VitPoseForPoseEstimation
from vitpose.evaluation import evaluate
from vitpose.training import distill, train

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "coco"), help="the shared COCO folder")
    parser.add_argument("--out", default="runs/distill_tiny", help="output folder (one sub-folder per run)")
    parser.add_argument("--epochs", type=int, default=180, help="epochs = steps (one full batch per epoch)")
    parser.add_argument("--token-epochs", type=int, default=30, help="stage 1's epochs")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1 is fastest on a busy CPU)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    data, out = Path(args.data), Path(args.out)
    ann = str(data / "test_coco.json")
    if not Path(ann).is_file():
        print(f"no {ann}: give --data, the folder of test_coco.json and its images", file=sys.stderr)
        return 2
    recipe = dict(
        train_images=str(data), epochs=args.epochs, batch_size=12, lr=1e-3, warmup_iters=0, lr_steps=[],
        augment=False, eval_interval=0, checkpoint_interval=args.epochs, num_workers=0, progress=False,
    )  # fmt: skip
    rows = []

    def row(name: str, model: VitPoseForPoseEstimation, seconds: float) -> None:
        ap = evaluate(model, ann, data, progress=False).metrics["AP"]
        rows.append((name, ap, seconds))
        print(f"{name}: AP {ap:.3f} ({seconds:.1f} s)", file=sys.stderr)

    start = time.perf_counter()
    teacher = train(model="tiny", decoder="simple", input_size=[96, 128], train_annotations=ann,
                    out=str(out / "teacher"), **recipe)  # fmt: skip
    row("teacher (width 96, 3 blocks)", teacher.model, time.perf_counter() - start)

    torch.manual_seed(0)
    config = VitPoseConfig.from_preset("tiny", hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                                       use_simple_decoder=True, image_size=[128, 96])  # fmt: skip
    VitPoseForPoseEstimation(config).save_pretrained(out / "student_init")
    student = str(out / "student_init")
    teacher_ckpt = str(out / "teacher" / "last")

    scrambled = json.loads(Path(ann).read_text())
    rng = random.Random(0)
    for a in scrambled["annotations"]:
        a["keypoints"] = [rng.uniform(0, 400) if i % 3 < 2 else 2 for i in range(len(a["keypoints"]))]
    (out / "scrambled.json").write_text(json.dumps(scrambled))

    runs = [
        ("student, labels only (vitpose train)", lambda: train(model=student, train_annotations=ann,
                                                                out=str(out / "labels"), **recipe)),
        ("student, output distillation, no labels", lambda: distill(
            teacher=teacher_ckpt, model=student, method="output", gt_weight=0.0,
            train_annotations=str(out / "scrambled.json"), out=str(out / "output"), **recipe).student),
        ("student, knowledge token + labels", lambda: distill(
            teacher=teacher_ckpt, model=student, method="token", token_epochs=args.token_epochs,
            train_annotations=ann, out=str(out / "token"), **recipe).student),
        ("student, token + output + labels", lambda: distill(
            teacher=teacher_ckpt, model=student, method="both", token_epochs=args.token_epochs,
            train_annotations=ann, out=str(out / "both"), **recipe).student),
    ]  # fmt: skip
    for name, run in runs:
        start = time.perf_counter()
        result = run()
        row(name, result.model, time.perf_counter() - start)

    print("| run | AP on the 4 images | time |")
    print("| --- | --- | --- |")
    for name, ap, seconds in rows:
        print(f"| {name} | {ap:.3f} | {seconds:.0f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
