"""--dtype, the network's precision, on every command that runs a model: the one rule (`vitpose.device.resolve_dtype`:
auto = float16 on CUDA, float32 on the CPU and MPS), the weights in the dtype asked for, the keypoints of float16 and
bfloat16 near float32's, and each command's use of it (predict, eval and its --resume settings, serve, export,
convert, the Ray stages; train refuses it: its precision is --amp)."""

from __future__ import annotations

import argparse
import contextlib
import json
import types

import numpy as np
import pytest
import torch

from conftest import coco_images_and_boxes, make_hf_model, save_hf
from vitpose.cli import build_parser
from vitpose.cli import main as cli_main
from vitpose.device import DTYPES, resolve_dtype
from vitpose.errors import VitPoseError
from vitpose.inference.estimator import PoseEstimator
from vitpose.models.pose import VitPoseForPoseEstimation

HALF = (torch.float16, torch.bfloat16)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_hf(make_hf_model(), tmp_path_factory.mktemp("ckpt") / "model")


@pytest.fixture(scope="module")
def classic_checkpoint(tmp_path_factory):
    """The classic decoder: BatchNorm buffers as well as parameters."""
    return save_hf(make_hf_model(simple=False), tmp_path_factory.mktemp("classic") / "model")


@pytest.fixture(scope="module")
def coco_results(checkpoint, coco_dir):
    """PoseEstimator results on the shared COCO images and their ground-truth boxes, per dtype."""
    data = coco_images_and_boxes()
    out = {}
    for dtype in ("float32", "float16", "bfloat16"):
        estimator = PoseEstimator.from_pretrained(checkpoint, device="cpu", dtype=dtype, detector="full-image")
        out[dtype] = estimator.predict([str(path) for path, _ in data], boxes=[boxes for _, boxes in data])
    return out


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _option(parser: argparse.ArgumentParser, flag: str):
    return next((a for a in parser._actions if flag in a.option_strings), None)


# ---------------------------------------------------------------------------------------------- the rule
def test_auto_is_float16_on_cuda_and_float32_elsewhere(monkeypatch):
    def no_cuda_here():
        raise AssertionError("resolve_dtype must not ask CUDA anything for a given device")

    monkeypatch.setattr(torch.cuda, "is_available", no_cuda_here)
    assert resolve_dtype("auto", torch.device("cuda")) is torch.float16
    assert resolve_dtype("auto", torch.device("cuda", 1)) is torch.float16
    assert resolve_dtype("auto", "cuda:0") is torch.float16
    assert resolve_dtype("auto", 0) is torch.float16  # a CUDA index
    assert resolve_dtype("auto", torch.device("cpu")) is torch.float32
    assert resolve_dtype("auto", "cpu") is torch.float32
    assert resolve_dtype("auto", torch.device("mps")) is torch.float32
    assert resolve_dtype("auto", None) is torch.float32  # no device: the CPU


def test_names_aliases_and_dtypes():
    assert DTYPES == ("auto", "float32", "float16", "bfloat16")
    for names, want in (
        (("float32", "fp32", "FP32", "torch.float32", torch.float32), torch.float32),
        (("float16", "fp16", " Fp16 ", "torch.float16", torch.float16), torch.float16),
        (("bfloat16", "bf16", "BF16", "torch.bfloat16", torch.bfloat16), torch.bfloat16),
    ):
        for name in names:
            for device in (torch.device("cpu"), torch.device("cuda")):  # a dtype named is the same everywhere
                assert resolve_dtype(name, device) is want, (name, device)
    assert resolve_dtype(None, torch.device("cuda")) is torch.float32  # None: the weights as they load
    assert resolve_dtype(torch.float64) is torch.float64  # a floating torch.dtype passes as it is (library use)


@pytest.mark.parametrize("bad", ["nonsense", "float64", "half", "int8", "fp8", "", torch.int8])
def test_a_bad_dtype_is_a_vitpose_error_listing_the_choices(bad):
    with pytest.raises(VitPoseError) as err:
        resolve_dtype(bad, torch.device("cpu"))
    message = str(err.value)
    for choice in ("auto", "float32 (fp32)", "float16 (fp16)", "bfloat16 (bf16)"):
        assert choice in message, message


# ---------------------------------------------------------------------------------------------- the library
@pytest.mark.parametrize("dtype", ["float16", "bf16", torch.bfloat16, "auto", "float32", None])
def test_from_pretrained_loads_the_weights_in_the_dtype(classic_checkpoint, dtype):
    want = {"float16": torch.float16, "bf16": torch.bfloat16, torch.bfloat16: torch.bfloat16}.get(dtype, torch.float32)
    estimator = PoseEstimator.from_pretrained(classic_checkpoint, device="cpu", dtype=dtype, detector="full-image")
    floating = [t for t in [*estimator.model.parameters(), *estimator.model.buffers()] if t.is_floating_point()]
    assert any(True for _ in estimator.model.buffers())  # BatchNorm statistics are there, and cast too
    assert {t.dtype for t in floating} == {want}
    assert estimator.model.dtype == want


def test_a_bad_dtype_fails_before_the_checkpoint_is_read(tmp_path):
    with pytest.raises(VitPoseError, match="unknown dtype 'fp64'"):
        PoseEstimator.from_pretrained(tmp_path / "no such checkpoint", device="cpu", dtype="fp64")


@pytest.mark.parametrize(
    ("dtype", "median_px", "within_1px", "max_score_drift"),
    [("float16", 0.05, 0.95, 0.005), ("bfloat16", 0.25, 0.75, 0.03)],  # measured: 0.006, 0.99, 0.001; 0.05, 0.87, 0.007
)
def test_half_precision_keypoints_stay_near_float32(coco_results, dtype, median_px, within_1px, max_score_drift):
    """A random model's heatmaps are nearly flat, so a few of its argmax peaks jump between close rivals at another
    precision (more in bfloat16, with its 8-bit mantissa); the rest, and every score, stay close to float32's."""
    ref, got = coco_results["float32"], coco_results[dtype]
    assert [len(r.keypoints) for r in got] == [len(r.keypoints) for r in ref] and sum(len(r.keypoints) for r in ref)
    error = np.concatenate(
        [np.linalg.norm(g.keypoints - r.keypoints, axis=-1).ravel() for g, r in zip(got, ref, strict=True)]
    )
    assert np.median(error) < median_px, np.median(error)
    assert np.mean(error <= 1.0) >= within_1px, np.mean(error <= 1.0)
    assert error.max() > 0  # it did run in another precision
    for g, r in zip(got, ref, strict=True):
        assert g.keypoints.dtype == r.keypoints.dtype != np.float16  # decoded in float32, whatever the dtype
        np.testing.assert_allclose(g.keypoint_scores, r.keypoint_scores, atol=max_score_drift, rtol=0)
        np.testing.assert_allclose(g.scores, r.scores, atol=max_score_drift, rtol=0)


def test_half_precision_heatmaps_stay_near_float32(checkpoint):
    crops = torch.randn(2, 3, 256, 192)
    with torch.no_grad():
        ref = VitPoseForPoseEstimation.from_pretrained(checkpoint)(crops).heatmaps
        scale = float(ref.abs().max())
        for dtype, bound in ((torch.float16, 5e-3), (torch.bfloat16, 4e-2)):
            got = VitPoseForPoseEstimation.from_pretrained(checkpoint, dtype=dtype)(crops).heatmaps  # crops cast
            assert got.dtype == dtype
            drift = float((got.float() - ref).abs().max()) / scale
            assert 0 < drift < bound, (dtype, drift)


# ---------------------------------------------------------------------------------------------- the options
def test_every_command_that_runs_a_model_has_dtype_with_one_help():
    commands = _subcommands()
    helps = {}
    for name in ("predict", "eval", "video", "serve", "export", "convert"):
        action = _option(commands[name], "--dtype")
        assert action is not None, name
        assert action.default == "auto", name
        helps[name] = action.help
    shared = {help.split(" (auto)")[0] for name, help in helps.items() if name not in ("export", "convert")}
    assert len(shared) == 1, shared
    (text,) = shared
    assert "float16 on CUDA" in text and "float32 on the CPU" in text and "for GPUs" in text
    assert helps["export"].startswith(text.split(";")[0]) and "float32 only" in helps["export"]
    assert helps["convert"].startswith(text.split(";")[0]) and "weights written" in helps["convert"]
    parsed = commands["predict"].parse_args(["a.jpg", "--dtype", "bf16"])
    assert parsed.dtype == "bf16"  # checked when the model loads: one line, not argparse's usage


def test_train_has_no_dtype_its_precision_is_amp(capsys):
    train = _subcommands()["train"]
    assert "dtype" not in vars(train.parse_args([]))  # nothing reaches TrainConfig
    assert "--amp" in _option(train, "--dtype").help
    for argv in (["--dtype", "fp16"], ["--dtype"]):
        with pytest.raises(SystemExit) as stop:
            train.parse_args(argv)
        assert stop.value.code == 2
        err = capsys.readouterr().err
        assert "argument --dtype: training keeps float32 weights; its precision is --amp" in err, err


def test_predict_bfloat16_writes_predictions_in_bfloat16(checkpoint, coco_dir, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["predict", str(coco_dir), "--model", str(checkpoint), "--detector", "full-image", "--device", "cpu"]
    assert cli_main([*argv, "--dtype", "bfloat16", "--out", str(out)]) == 0
    written = json.loads((out / "predictions.json").read_text())
    assert written and "poses ->" in capsys.readouterr().out
    # The same as the library's bfloat16 estimator on the same whole-image crops, and not float32's.
    written.sort(key=lambda entry: entry["file_name"])
    got = np.array([entry["keypoints"] for entry in written]).reshape(len(written), -1, 3)[..., :2]
    gaps = {}
    for dtype in ("bfloat16", "float32"):
        estimator = PoseEstimator.from_pretrained(checkpoint, device="cpu", dtype=dtype, detector="full-image")
        results = estimator.predict([entry["file_name"] for entry in written])
        gaps[dtype] = np.abs(got - np.stack([r.keypoints[0] for r in results])).max()
    assert gaps["bfloat16"] < 1e-3 < gaps["float32"], gaps


def test_predict_resume_refuses_another_dtype(checkpoint, coco_dir, tmp_path, capsys):
    """An interrupted predict run in bfloat16 cannot be continued in float32: its results would mix the two."""
    from vitpose.cli.predict import STATE_NAME, _settings
    from vitpose.outputs import Journal

    out = tmp_path / "out"
    out.mkdir()
    argv = ["predict", str(coco_dir), "--model", str(checkpoint), "--detector", "full-image", "--device", "cpu"]
    then = _settings(_subcommands()["predict"].parse_args([*argv[1:], "--dtype", "bf16", "--out", str(out)]))
    Journal(out / STATE_NAME, "predict", then, []).close(remove=False)
    assert cli_main([*argv, "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "had other settings: dtype ('bfloat16' then, 'float32' now)" in err, err


def test_a_bad_dtype_is_one_line_and_exit_2(checkpoint, coco_dir, tmp_path, capsys):
    argv = ["predict", str(coco_dir), "--model", str(checkpoint), "--detector", "full-image", "--device", "cpu"]
    assert cli_main([*argv, "--dtype", "nonsense", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "vitpose predict: error: unknown dtype 'nonsense': use one of auto, float32 (fp32), float16 (fp16), "
        "bfloat16 (bf16)"
    ], err
    assert not (tmp_path / "out" / "predictions.json").exists()


# ---------------------------------------------------------------------------------------------- eval
def _eval_argv(checkpoint, coco_dir, *extra):
    return ["eval", "--model", str(checkpoint), "--annotations", str(coco_dir / "test_coco.json"), "--images",
            str(coco_dir), "--device", "cpu", *extra]  # fmt: skip


def test_eval_runs_in_the_dtype(checkpoint, coco_dir, tmp_path, capsys):
    keypoints = {}
    for dtype in ("bf16", "fp32"):
        out = tmp_path / f"{dtype}.json"
        assert cli_main(_eval_argv(checkpoint, coco_dir, "--dtype", dtype, "--json", "--out", str(out))) == 0
        metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert 0.0 <= metrics["AP"] <= 1.0
        keypoints[dtype] = np.array([entry["keypoints"] for entry in json.loads(out.read_text())])
    assert keypoints["bf16"].shape == keypoints["fp32"].shape
    assert not np.array_equal(keypoints["bf16"], keypoints["fp32"])  # bfloat16 did run


def test_eval_resume_settings_hold_the_dtype_where_the_network_runs(coco_dir):
    from vitpose.cli.eval import _settings

    ev = _subcommands()["eval"]
    base = ["--model", "m", "--annotations", "a.json", "--images", str(coco_dir)]
    assert _settings(ev.parse_args([*base, "--device", "cpu"]))["dtype"] == "float32"
    assert _settings(ev.parse_args([*base, "--device", "cpu", "--dtype", "bf16"]))["dtype"] == "bfloat16"
    # --engine ray: the actors' device decides auto (no GPU needed here to know it).
    assert _settings(ev.parse_args([*base, "--engine", "ray", "--num-gpus", "1"]))["dtype"] == "float16"
    assert _settings(ev.parse_args([*base, "--engine", "ray"]))["dtype"] == "float32"
    with pytest.raises(VitPoseError, match="unknown dtype"):
        _settings(ev.parse_args([*base, "--dtype", "double"]))
    # The same rule for predict's engines (`network_dtype`, for the settings its --resume checks).
    from vitpose.cli.common import network_dtype

    predict = _subcommands()["predict"]
    assert network_dtype(predict.parse_args(["a.jpg", "--engine", "ray", "--num-gpus", "0.5"])) is torch.float16
    assert network_dtype(predict.parse_args(["a.jpg", "--device", "cpu", "--dtype", "fp16"])) is torch.float16
    assert network_dtype(predict.parse_args(["a.jpg", "--device", "cpu"])) is torch.float32


def test_eval_resume_refuses_another_dtype(checkpoint, coco_dir, tmp_path, capsys):
    from vitpose.cli.eval import PARTIAL_SUFFIX, _settings
    from vitpose.outputs import Journal

    out = tmp_path / "p.json"
    argv = _eval_argv(checkpoint, coco_dir, "--out", str(out))
    then = _settings(_subcommands()["eval"].parse_args([*argv[1:], "--dtype", "bf16"]))
    journal = Journal(str(out) + PARTIAL_SUFFIX, "eval", then)
    journal.close(remove=False)
    assert cli_main([*argv, "--resume"]) == 2
    err = capsys.readouterr().err
    assert "had other settings: dtype ('bfloat16' then, 'float32' now)" in err, err


def test_eval_ray_engine_casts_on_the_actors(checkpoint, coco_dir, monkeypatch, capsys):
    """--engine ray: the driver loads the model for its checks and the runner's actors place it in --dtype."""
    import vitpose.integrations.ray as ray_engine

    runners = []

    class LocalRunner:  # what RayRunner's actors do, in this process
        def __init__(self, actors, *, num_cpus, num_gpus, dtype):
            self.dtype = dtype
            runners.append(self)

        def __call__(self, estimator, images, **given):
            self.placed = ray_engine._placed(estimator, "cpu", self.dtype)
            return self.placed.iter_predict(images, errors="report", **given)

    monkeypatch.setattr(ray_engine, "RayRunner", LocalRunner)
    monkeypatch.setattr(ray_engine, "ray_session", lambda address=None: contextlib.nullcontext())
    assert cli_main(_eval_argv(checkpoint, coco_dir, "--engine", "ray", "--dtype", "bf16", "--json")) == 0
    assert "AP" in json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (runner,) = runners
    assert runner.dtype == "bf16" and runner.placed.model.dtype == torch.bfloat16


# ---------------------------------------------------------------------------------------------- serve
def test_serve_loads_the_model_in_the_dtype(checkpoint, coco_dir):
    pytest.importorskip("httpx")
    test_client = pytest.importorskip("fastapi.testclient").TestClient
    from vitpose.cli.common import estimator_from_args
    from vitpose.cli.serve import _app_options
    from vitpose.serve import create_app

    args = build_parser().parse_args(
        ["serve", "--model", str(checkpoint), "--device", "cpu", "--detector", "full-image", "--dtype", "bf16"]
    )
    args.batch_size = args.max_batch  # as `_serve` does before it builds the estimator
    app = create_app(estimator_from_args(args), **_app_options(args, None))
    try:
        client = test_client(app)
        assert client.get("/v1/model").json()["dtype"] == "bfloat16"
        path, _ = coco_images_and_boxes()[0]
        answer = client.post("/v1/pose", files={"image": ("a.jpg", path.read_bytes(), "image/jpeg")})
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["people"]) == 1
    finally:
        app.state.batcher.close()


def test_serve_ray_replicas_resolve_dtype_on_their_device(checkpoint, monkeypatch):
    pytest.importorskip("ray")
    import vitpose.serve.replicas as replicas
    from vitpose.cli import serve

    made = []
    monkeypatch.setattr(replicas, "run_replicas", lambda make_estimator, **kwargs: made.append(make_estimator) or 0)
    base = ["serve", "--model", str(checkpoint), "--engine", "ray"]
    assert serve._serve_on_ray(build_parser().parse_args([*base, "--num-gpus", "1"])) == 0
    fields = made[-1].args[0]  # what each replica builds its estimator from, on its own device
    assert (fields.device, fields.dtype) == ("cuda", "auto")
    assert resolve_dtype(fields.dtype, fields.device) is torch.float16
    assert serve._serve_on_ray(build_parser().parse_args([*base, "--dtype", "bf16"])) == 0
    estimator = made[-1]()  # a CPU replica
    assert estimator.device.type == "cpu" and estimator.model.dtype == torch.bfloat16


# ---------------------------------------------------------------------------------------------- export, convert
@pytest.mark.parametrize("dtype", ["float16", "bf16"])
def test_export_refuses_half_precision_before_loading(tmp_path, capsys, dtype):
    out = tmp_path / "m.onnx"
    argv = ["export", "onnx", "--model", str(tmp_path / "missing"), "--out", str(out), "--dtype", dtype]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "float32 ONNX graphs only" in err and "drop --dtype" in err, err
    assert "missing" not in err  # refused before the checkpoint was looked for
    assert not out.exists()


def test_export_auto_and_float32_write_a_float32_graph(checkpoint, tmp_path, capsys):
    onnx = pytest.importorskip("onnx")
    for dtype in ("auto", "fp32"):
        out = tmp_path / f"{dtype}.onnx"
        assert cli_main(["export", "onnx", "--model", str(checkpoint), "--out", str(out), "--dtype", dtype]) == 0
        graph = onnx.load(str(out)).graph
        assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    capsys.readouterr()


def test_convert_writes_the_weights_in_the_dtype(checkpoint, tmp_path, capsys):
    from safetensors import safe_open

    out = tmp_path / "bf16"
    assert cli_main(["convert", str(checkpoint), str(out), "--dtype", "bf16"]) == 0
    assert "bfloat16 weights" in capsys.readouterr().out
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        dtypes = {f.get_tensor(k).dtype for k in f.keys() if f.get_tensor(k).is_floating_point()}
    assert dtypes == {torch.bfloat16}
    assert VitPoseForPoseEstimation.from_pretrained(out).dtype == torch.float32  # loads as ever, unless asked
    crops = torch.randn(1, 3, 256, 192)
    with torch.no_grad():
        want = VitPoseForPoseEstimation.from_pretrained(checkpoint, dtype=torch.bfloat16)(crops).heatmaps
        got = VitPoseForPoseEstimation.from_pretrained(out, dtype=torch.bfloat16)(crops).heatmaps
    torch.testing.assert_close(got, want, rtol=0, atol=0)  # the same weights: bf16 of float32 is exact once
    assert cli_main(["convert", str(checkpoint), str(tmp_path / "x"), "--dtype", "int4"]) == 2
    assert "unknown dtype 'int4'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------------------------------------- the Ray engine
class _Recorder:
    """A model that records where it is moved."""

    def __init__(self):
        self.moves = []

    def to(self, *args):
        self.moves.append(args)
        return self


def test_ray_placement_casts_where_the_actor_runs(checkpoint, monkeypatch):
    pytest.importorskip("ray")
    import vitpose.device
    from vitpose.integrations.ray import _placed

    estimator = PoseEstimator.from_pretrained(checkpoint, device="cpu", dtype="auto", detector="full-image")
    assert _placed(estimator, "cpu", None).model.dtype == torch.float32  # None: as it came
    assert _placed(estimator, "cpu", "bf16").model.dtype == torch.bfloat16
    assert _placed(estimator, "cpu", "auto").model.dtype == torch.float32  # auto on a CPU actor
    # On a GPU actor (the device faked: only the dtype it is asked to take is looked at) auto is float16.
    monkeypatch.setattr(vitpose.device, "resolve_device", lambda device: torch.device(device))
    fake = types.SimpleNamespace(model=_Recorder())
    _placed(fake, "cuda", "auto")
    _placed(fake, "cuda", "float32")
    _placed(fake, "cuda", None)
    assert fake.model.moves == [
        (torch.device("cuda"), torch.float16),
        (torch.device("cuda"), torch.float32),
        (torch.device("cuda"), None),
    ]


class _FakeData:
    """`ray.data` as far as `predict_dataset` and `RayRunner` use it: records each stage's constructor arguments."""

    def __init__(self):
        self.stages = {}

    def from_items(self, rows, override_num_blocks=None):
        return self

    def map_batches(self, stage, *, fn_constructor_kwargs, **kwargs):
        self.stages[stage.__name__] = fn_constructor_kwargs
        return self

    def ActorPoolStrategy(self, size):  # ray.data's name
        return size

    def iter_rows(self):
        return iter(())


def test_ray_stages_get_the_dtype(checkpoint, monkeypatch):
    pytest.importorskip("ray")
    import ray

    import vitpose.integrations.ray as ray_engine
    from vitpose.detectors.base import Detections

    data = _FakeData()
    monkeypatch.setattr(ray_engine, "require_ray", lambda address=None: data)
    boxes = Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
    ray_engine.predict_dataset(["a.jpg"], str(checkpoint), dtype="auto", pose_gpus=1, detections=[boxes])
    assert data.stages["PoseStage"]["dtype"] == "auto" and data.stages["PoseStage"]["device"] == "cuda"
    monkeypatch.setattr(ray, "put", lambda value: value)
    estimator = PoseEstimator.from_pretrained(checkpoint, device="cpu", detector="full-image")
    runner = ray_engine.RayRunner(2, num_gpus=1, dtype="bf16")
    assert list(runner(estimator, ["a.jpg"], boxes=[np.zeros((0, 4))])) == []
    assert data.stages["_GivenBoxesStage"]["dtype"] == "bf16" and data.stages["_GivenBoxesStage"]["device"] == "cuda"
    # A pose actor built from a checkpoint loads it in the dtype resolved on its device.
    stage = ray_engine.PoseStage(str(checkpoint), device="cpu", dtype="bfloat16")
    assert stage.estimator.model.dtype == torch.bfloat16
