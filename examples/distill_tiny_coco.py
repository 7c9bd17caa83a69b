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

Each student is trained from `--seeds` initialisations (and training seeds); the table gives the mean AP and the
range. Every AP is on the four images (the memorisation regime: it shows that what the teacher knows reaches the
student, not how well it generalises).

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


# The students of the table: (row, how it learns: "labels" = vitpose train, else distill's --method).
STUDENTS = [
    ("student, labels only (vitpose train)", "labels"),
    ("student, output distillation, no labels", "output"),
    ("student, knowledge token + labels", "token"),
    ("student, token + output + labels", "both"),
]


def _student(kind: str, student: str, seed: int, teacher: str, ann: str, out: Path, token_epochs: int,
             recipe: dict) -> VitPoseForPoseEstimation:  # fmt: skip
    """One student of the table, trained as its `kind` says (see STUDENTS)."""
    if kind == "labels":
        return train(model=student, train_annotations=ann, out=str(out / f"labels_{seed}"), seed=seed, **recipe).model
    if kind == "output":  # the teacher's heatmaps alone: the labels scrambled and weighted 0
        return distill(teacher=teacher, model=student, method="output", gt_weight=0.0, seed=seed,
                       train_annotations=str(out / "scrambled.json"), out=str(out / f"output_{seed}"),
                       **recipe).student.model  # fmt: skip
    return distill(teacher=teacher, model=student, method=kind, token_epochs=token_epochs, seed=seed,
                   train_annotations=ann, out=str(out / f"{kind}_{seed}"), **recipe).student.model  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "coco"), help="the shared COCO folder")
    parser.add_argument("--out", default="runs/distill_tiny", help="output folder (one sub-folder per run)")
    parser.add_argument("--epochs", type=int, default=180, help="epochs = steps (one full batch per epoch)")
    parser.add_argument("--token-epochs", type=int, default=30, help="stage 1's epochs")
    parser.add_argument("--seeds", type=int, default=3, help="students per method (initialisation and training seeds)")
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

    start = time.perf_counter()
    teacher = train(model="tiny", decoder="simple", input_size=[96, 128], train_annotations=ann,
                    out=str(out / "teacher"), **recipe)  # fmt: skip
    teacher_ap = evaluate(teacher.model, ann, data, progress=False).metrics["AP"]
    rows.append(("teacher (width 96, 3 blocks)", [teacher_ap], time.perf_counter() - start))

    teacher_ckpt = str(out / "teacher" / "last")
    scrambled = json.loads(Path(ann).read_text())
    rng = random.Random(0)
    for a in scrambled["annotations"]:
        a["keypoints"] = [rng.uniform(0, 400) if i % 3 < 2 else 2 for i in range(len(a["keypoints"]))]
    (out / "scrambled.json").write_text(json.dumps(scrambled))
    config = VitPoseConfig.from_preset("tiny", hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                                       use_simple_decoder=True, image_size=[128, 96])  # fmt: skip
    names = [name for name, _ in STUDENTS]
    scores: dict[str, list[float]] = {name: [] for name in names}
    times: dict[str, float] = dict.fromkeys(names, 0.0)
    for seed in range(args.seeds):  # the student's initialisation and its training's seed
        torch.manual_seed(seed)
        student = str(out / f"student_init_{seed}")
        VitPoseForPoseEstimation(config).save_pretrained(student)
        for name, kind in STUDENTS:
            start = time.perf_counter()
            model = _student(kind, student, seed, teacher_ckpt, ann, out, args.token_epochs, recipe)
            times[name] += time.perf_counter() - start
            scores[name].append(evaluate(model, ann, data, progress=False).metrics["AP"])
            print(f"seed {seed}, {name}: AP {scores[name][-1]:.3f}", file=sys.stderr)
    for name in names:
        rows.append((name, scores[name], times[name] / args.seeds))

    print(f"| run | AP on the 4 images (mean of {args.seeds} seeds; min-max) | time per run |")
    print("| --- | --- | --- |")
    for name, aps, seconds in rows:
        spread = f" ({min(aps):.3f}-{max(aps):.3f})" if len(aps) > 1 else ""
        print(f"| {name} | {sum(aps) / len(aps):.3f}{spread} | {seconds:.0f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
