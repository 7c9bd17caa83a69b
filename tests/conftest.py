"""Shared builders: tiny random-init checkpoints made with transformers (the hub format byte for byte) and in the
original ViTPose key layout, and the small real data in ../shared/data."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("VITPOSE_TEST_DATA", ROOT.parent / "shared" / "data"))
COCO_DIR = DATA / "coco"

COCO_FLIP_PAIRS = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12], [13, 14], [15, 16]]


def coco_annotations() -> dict:
    return json.loads((COCO_DIR / "test_coco.json").read_text())


def coco_images_and_boxes() -> list[tuple[Path, np.ndarray]]:
    """(image path, (n, 4) ground-truth person boxes) for each of the shared COCO images."""
    ann = coco_annotations()
    out = []
    for image in ann["images"]:
        boxes = [a["bbox"] for a in ann["annotations"] if a["image_id"] == image["id"]]
        out.append((COCO_DIR / image["file_name"], np.array(boxes, dtype=np.float64).reshape(-1, 4)))
    return out


def make_hf_model(
    hidden_size: int = 96,
    num_layers: int = 2,
    num_heads: int = 4,
    num_experts: int = 1,
    part_features: int = 24,
    simple: bool = True,
    num_labels: int = 17,
    layer_norm_eps: float = 1e-12,
    out_index: int | None = None,
    seed: int = 0,
):
    """A random transformers VitPoseForPoseEstimation (eval mode) with non-trivial BatchNorm statistics."""
    from transformers import VitPoseBackboneConfig, VitPoseConfig, VitPoseForPoseEstimation

    torch.manual_seed(seed)
    backbone = VitPoseBackboneConfig(
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_experts=num_experts,
        part_features=part_features,
        layer_norm_eps=layer_norm_eps,
        out_indices=[out_index if out_index is not None else num_layers],
    )
    config = VitPoseConfig(backbone_config=backbone, num_labels=num_labels, use_simple_decoder=simple)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = VitPoseForPoseEstimation(config).eval()
    with torch.no_grad():
        # Random init leaves LayerNorm at identity and biases at zero; perturb so that mapping errors show.
        for name, param in model.named_parameters():
            if "layernorm" in name or name.endswith("bias") or "batchnorm" in name:
                param.add_(torch.randn_like(param) * 0.1)
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 2.0)
    return model


def save_hf(model, directory: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save_pretrained(directory)
    return directory


def load_hf(directory: Path):
    from transformers import VitPoseForPoseEstimation

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return VitPoseForPoseEstimation.from_pretrained(directory).eval()


def hf_to_original_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Written out independently of vitpose.checkpoints: the original ViTPose key layout (docs/reference.md)."""
    out = {}
    layers = {}
    for key, value in state.items():
        if key == "backbone.embeddings.position_embeddings":
            out["backbone.pos_embed"] = value
        elif key.startswith("backbone.embeddings.patch_embeddings.projection."):
            out["backbone.patch_embed.proj." + key.split(".")[-1]] = value
        elif key.startswith("backbone.layernorm."):
            out["backbone.last_norm." + key.split(".")[-1]] = value
        elif key.startswith("backbone.encoder.layer."):
            parts = key.split(".")
            i, rest = parts[3], ".".join(parts[4:])
            if rest.startswith("attention.attention."):
                layers.setdefault((i, parts[-1]), {})[parts[-2]] = value
                continue
            rest = (
                rest.replace("attention.output.dense", "attn.proj")
                .replace("layernorm_before", "norm1")
                .replace("layernorm_after", "norm2")
            )
            out[f"backbone.blocks.{i}.{rest}"] = value
        elif key.startswith("head."):
            rest = key[5:]
            for hf, orig in (
                ("conv", "final_layer"),
                ("deconv1", "deconv_layers.0"),
                ("batchnorm1", "deconv_layers.1"),
                ("deconv2", "deconv_layers.3"),
                ("batchnorm2", "deconv_layers.4"),
            ):
                if rest.startswith(hf + "."):
                    out["keypoint_head." + orig + rest[len(hf) :]] = value
        else:
            raise AssertionError(key)
    for (i, kind), qkv in layers.items():
        out[f"backbone.blocks.{i}.attn.qkv.{kind}"] = torch.cat([qkv["query"], qkv["key"], qkv["value"]])
    return out


def make_tiny_rtdetr(
    directory: Path,
    person_bias: float | None = 10.0,
    id2label: dict[int, str] | None = None,
    label_biases: dict[int, float] | None = None,
) -> Path:
    """Save a tiny random RT-DETR (80 labels, 6 queries, 320x320 input) and its image processor in `directory`.

    The biases of the decoder's class heads decide the labels: `person_bias` on label 0 makes every query a
    confident person (as the transformers ViTPose documentation example filters on label 0), `label_biases`
    {label: bias} adds others; None leaves the random init. `id2label` sets the config's label names
    (e.g. COCO's 80)."""
    from transformers import RTDetrConfig, RTDetrForObjectDetection
    from transformers.models.rt_detr.image_processing_pil_rt_detr import RTDetrImageProcessorPil

    names = {} if id2label is None else {"id2label": dict(id2label), "label2id": {v: k for k, v in id2label.items()}}
    config = RTDetrConfig(
        backbone_config={
            "model_type": "rt_detr_resnet",
            "embedding_size": 16,
            "hidden_sizes": [16, 32, 64, 128],
            "depths": [1, 1, 1, 1],
            "layer_type": "basic",
            "out_features": ["stage2", "stage3", "stage4"],
        },
        encoder_hidden_dim=32,
        encoder_in_channels=[32, 64, 128],
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        decoder_n_points=2,
        decoder_in_channels=[32, 32, 32],
        num_queries=6,
        num_labels=80,
        use_pretrained_backbone=False,
        **names,
    )
    torch.manual_seed(0)
    biases = dict(label_biases or {})
    if person_bias is not None:
        biases[0] = person_bias
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = RTDetrForObjectDetection(config)
        with torch.no_grad():
            for layer in model.model.decoder.class_embed:
                for label, bias in biases.items():
                    layer.bias[label] = bias
        model.save_pretrained(directory)
        RTDetrImageProcessorPil(size={"height": 320, "width": 320}).save_pretrained(directory)
    return directory


def read_predictions(out: Path) -> list[dict]:
    """The predictions.json a `vitpose predict` run wrote into `out`."""
    return json.loads((out / "predictions.json").read_text())


def assert_same_results(got: list[dict], want: list[dict], *, allow_empty: bool = False) -> None:
    """Two lists of COCO keypoint results are the same: the same entries and keys, ids and file names equal,
    keypoints and boxes to 1e-5 px, scores to 1e-6 (another engine, another batching)."""
    assert len(got) == len(want) and (allow_empty or len(want) > 0)
    for a, b in zip(got, want, strict=True):
        assert set(a) == set(b)
        for key in ("image_id", "category_id", "file_name"):
            assert a.get(key) == b.get(key), key
        np.testing.assert_allclose(a["keypoints"], b["keypoints"], atol=1e-5, rtol=0)
        if "bbox" in b:
            np.testing.assert_allclose(a["bbox"], b["bbox"], atol=1e-5, rtol=0)
        assert a["score"] == pytest.approx(b["score"], abs=1e-6)


def require_shared(path: Path) -> Path:
    """Skip a test whose shared input is missing on a developer's checkout; in CI (CI set), where ../shared is
    always beside the clone, a missing input is a failure, so that tests cannot pass by being skipped."""
    if not path.exists():
        message = f"shared test input not found: {path} (set VITPOSE_TEST_DATA to the shared data folder)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def _hypothesis_profile() -> None:
    """The robustness tests' budget: a fixed, derandomised few examples per property in CI and by default (fast and
    reproducible), VITPOSE_FUZZ_EXAMPLES=N for a longer search on demand; no deadline (shared machines)."""
    try:
        from hypothesis import HealthCheck, settings
    except ImportError:  # hypothesis is a test extra; the tests that need it import it themselves
        return
    examples = int(os.environ.get("VITPOSE_FUZZ_EXAMPLES", "0") or 0)
    settings.register_profile(
        "vitpose",
        max_examples=examples or 25,
        derandomize=not examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    settings.load_profile("vitpose")


_hypothesis_profile()


def _missing_module_skip(report) -> bool:
    """A skip from `pytest.importorskip`: an optional dependency that could not be imported."""
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return "could not import" in str(reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """In CI (CI set) every test dependency is installed (`.[test]`): a module skipped by `importorskip` is a
    broken install, and fails instead of passing as skipped."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and _missing_module_skip(report):
        report.outcome = "failed"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """The same rule for a test (or fixture) calling `importorskip` when it runs."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and _missing_module_skip(report):
        report.outcome = "failed"


@pytest.fixture(scope="session")
def coco_dir() -> Path:
    return require_shared(COCO_DIR)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for a module of training tests: on a busy 2-core machine two OpenMP threads contend with
    the other processes and a training step of the tiny model takes 20x longer (measured: 2 s instead of 0.09 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def run_torchrun(module: str, args: list[str], processes: int = 2, timeout: float = 240) -> str:
    """`torchrun --standalone --nproc_per_node N -m MODULE ARGS` on the CPU (one OpenMP thread a process), in a
    session of its own so that a hang is cleaned up with its workers; fails the test unless it exits 0. Its stderr."""
    import signal
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
           "-m", module, *args]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"torchrun did not finish in {timeout:g} s")
    assert proc.returncode == 0, stderr[-3000:]
    return stderr


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(scope="session")
def local_ray():
    """One local Ray for the test session (2 CPUs, as this machine), on the loopback interface only: Ray's settings
    (`LOCAL_RAY_ENV`) before its first import, a short temp dir (Unix socket paths stay under 107 bytes), a capped
    object store. The SIGTERM / SIGINT handlers that `ray.init` replaces are given back to the rest of the session."""
    import os
    import signal

    from vitpose.integrations.ray import LOCAL_RAY_ENV

    os.environ.update(LOCAL_RAY_ENV)
    ray = pytest.importorskip("ray")
    data = pytest.importorskip("ray.data")
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=200 * 1024 * 1024,
        _temp_dir=f"/tmp/vr{os.getpid()}",
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
    )
    for sig, handler in handlers.items():
        signal.signal(sig, handler)
    try:
        data.DataContext.get_current().enable_progress_bars = False
        yield ray
    finally:
        ray.shutdown()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
