"""The transformers ViTPose documentation's example runs on vitpose with only its import lines changed.

`examples/transformers_doc_example.py` is that code. The hub and the image URL cannot be reached here, so the test
runs it in a subprocess against an offline Hugging Face cache filled with tiny random checkpoints under the
repository names the example uses (saved by transformers, i.e. in the real hub format), and a stand-in `requests`
that serves a local COCO image.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch

from conftest import ROOT, make_hf_model, make_tiny_rtdetr, require_shared

pytest.importorskip("transformers")
pytest.importorskip("supervision")

# The transformers ViTPose documentation page, as text (the shared copy keeps its original file name).
TRANSFORMERS_DOC = ROOT.parent / "shared" / "docs" / "seed_vitpose_model_doc.txt"
EXAMPLE = ROOT / "examples" / "transformers_doc_example.py"
COMMIT = "0" * 40


def _is_import(line: str) -> bool:
    return line.startswith(("import ", "from "))


def test_only_import_lines_differ_from_the_documentation():
    doc = require_shared(TRANSFORMERS_DOC).read_text()
    doc_lines = [line.rstrip() for line in doc.splitlines()]
    position = 0
    for line in EXAMPLE.read_text().splitlines():
        if not line.strip() or _is_import(line):
            continue
        # Every other line appears in the document, in the same order.
        assert line.rstrip() in doc_lines[position:], line
        position = doc_lines.index(line.rstrip(), position) + 1
    assert "from transformers import AutoProcessor, RTDetrForObjectDetection, VitPoseForPoseEstimation" in doc


def _cache_repo(cache: Path, repo_id: str) -> Path:
    base = cache / ("models--" + repo_id.replace("/", "--"))
    (base / "refs").mkdir(parents=True, exist_ok=True)
    (base / "refs" / "main").write_text(COMMIT)
    snapshot = base / "snapshots" / COMMIT
    snapshot.mkdir(parents=True, exist_ok=True)
    return snapshot


@pytest.fixture(scope="module")
def offline_hub(tmp_path_factory) -> Path:
    from transformers.models.vitpose.image_processing_pil_vitpose import VitPoseImageProcessorPil

    cache = tmp_path_factory.mktemp("hf_cache")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        make_tiny_rtdetr(_cache_repo(cache, "PekingU/rtdetr_r50vd_coco_o365"))
        for repo, experts in (("usyd-community/vitpose-base-simple", 1), ("usyd-community/vitpose-plus-base", 6)):
            snapshot = _cache_repo(cache, repo)
            make_hf_model(num_experts=experts, simple=experts == 1).save_pretrained(snapshot)
            VitPoseImageProcessorPil().save_pretrained(snapshot)
    return cache


RUNNER = textwrap.dedent(
    """
    import runpy, sys, types, warnings
    warnings.simplefilter("ignore")
    # A stand-in for requests: the example's image URL is served from a local COCO image.
    requests = types.ModuleType("requests")
    class _Response:
        def __init__(self, path):
            self.raw = open(path, "rb")
    requests.get = lambda url, stream=False: _Response(sys.argv[2])
    sys.modules["requests"] = requests
    import torch
    g = runpy.run_path(sys.argv[1])
    torch.save(
        {
            "person_boxes": torch.as_tensor(g["person_boxes"]),
            "pose": g["pose_results"],
            "pixel_values": g["inputs"]["pixel_values"],
            "heatmaps": g["outputs"].heatmaps,
            "dataset_index": g["dataset_index"],
            "annotated": torch.as_tensor(g["numpy_image"]),
            "sv_annotated": torch.as_tensor(__import__("numpy").asarray(g["annotated_frame"])),
        },
        sys.argv[3],
    )
    print("documentation example ran")
    """
)


@pytest.mark.slow
def test_documentation_example_runs_on_vitpose(offline_hub, tmp_path, coco_dir):
    image = coco_dir / "000000196141.jpg"
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    out = tmp_path / "out.pt"
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(offline_hub), HF_HOME=str(tmp_path / "hf_home"))
    proc = subprocess.run(
        [sys.executable, str(runner), str(EXAMPLE), str(image), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "documentation example ran" in proc.stdout
    result = torch.load(out, weights_only=False)

    boxes = result["person_boxes"]
    people = result["pose"][0]
    assert len(boxes) > 0 and len(people) == len(boxes)
    for person, box in zip(people, boxes, strict=True):
        assert person["keypoints"].shape == (17, 2) and torch.isfinite(person["keypoints"]).all()
        assert torch.allclose(person["bbox"], box.float(), atol=1e-4)  # the input box, not transformers' wrong one

    # The ViTPose++ block: our heatmaps equal transformers' on the same crops and dataset_index.
    from transformers import VitPoseForPoseEstimation

    snapshot = offline_hub / "models--usyd-community--vitpose-plus-base" / "snapshots" / COMMIT
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hf = VitPoseForPoseEstimation.from_pretrained(snapshot).eval()
    pixel_values = result["pixel_values"]
    index = result["dataset_index"].expand(pixel_values.shape[0])
    with torch.no_grad():
        expected = hf(pixel_values, dataset_index=index).heatmaps
    assert result["heatmaps"].shape == expected.shape
    assert torch.allclose(result["heatmaps"], expected, atol=1e-4)
    assert result["annotated"].shape[-1] == 3 and result["sv_annotated"].shape == result["annotated"].shape

    # Stage 2's values: transformers' vitpose-base-simple on the same crops gives the heatmaps whose maxima are the
    # example's keypoint scores and whose decoding (our codec, checked against transformers' in test_codec) are its
    # keypoints.
    import numpy as np
    from PIL import Image

    from vitpose import VitPoseImageProcessor

    simple = offline_hub / "models--usyd-community--vitpose-base-simple" / "snapshots" / COMMIT
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hf_simple = VitPoseForPoseEstimation.from_pretrained(simple).eval()
    processor = VitPoseImageProcessor()
    person_boxes = boxes.numpy()
    crops = processor(Image.open(image), boxes=[person_boxes], return_tensors="pt").pixel_values
    with torch.no_grad():
        simple_heatmaps = hf_simple(crops).heatmaps
    maxima = simple_heatmaps.flatten(2).amax(-1)
    got_scores = torch.stack([person["scores"] for person in people])
    torch.testing.assert_close(got_scores, maxima, atol=1e-4, rtol=0)
    want = processor.post_process_pose_estimation(simple_heatmaps, boxes=[person_boxes])[0]
    for person, expected in zip(people, want, strict=True):
        torch.testing.assert_close(person["keypoints"], expected["keypoints"], atol=1e-2, rtol=0)
    # The example draws on the image it read: the annotated arrays are that image wherever nothing was drawn.
    original = np.asarray(Image.open(image).convert("RGB"))
    for annotated in (result["annotated"].numpy(), result["sv_annotated"].numpy()):
        assert annotated.shape == original.shape
        assert 0 < (annotated != original).any(axis=-1).mean() < 0.2
