"""ONNX Runtime back-end: an exported ViTPose graph that quacks like `VitPoseForPoseEstimation`.

    from vitpose.inference.backends.onnx import OnnxPoseModel
    estimator = PoseEstimator(OnnxPoseModel("vitpose-b.onnx"), processor)

It takes what the estimator and the transformers ViTPose documentation's example pass (`pixel_values`,
`dataset_index`, `flip_pairs`, `flip_test`) and returns a `VitPoseEstimatorOutput` with torch heatmaps, so the
processor's post-processing and the codec work unchanged. Write the file with `vitpose export onnx` or
`vitpose.export.export_onnx`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from vitpose.config import VitPoseConfig
from vitpose.errors import MissingDependencyError, VitPoseError
from vitpose.export import INPUT_NAME, OUTPUT_NAME, read_metadata
from vitpose.models.pose import VitPoseEstimatorOutput
from vitpose.ops.codec import merge_flip_test


class OnnxPoseModel:
    """An exported ViTPose (`vitpose export onnx`) run by ONNX Runtime, with `VitPoseForPoseEstimation`'s call.

    Args:
        path: the `.onnx` file.
        config: the model's `VitPoseConfig`; default: the one stored in the file's metadata by the exporter.
        providers: ONNX Runtime execution providers (default: CPU).
        num_threads: intra-op threads (default: ONNX Runtime's choice, one per physical core).
        spin: let ONNX Runtime's threads spin-wait for work after each run (its default). Off by default here:
            in a pose pipeline the crops and the decoding run on the same cores right after the network, and
            spinning threads take a core from them (a torch matmul right after a spinning run measured 25% slower);
            ONNX Runtime itself loses 2-5% without spinning. Turn it on to serve the network alone.
        session_options: a full `onnxruntime.SessionOptions`, overriding `num_threads` and `spin`.

    The graph serves one data set (a ViTPose++ file has its expert folded in): `dataset_index`, when passed, must
    name that data set.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        config: VitPoseConfig | None = None,
        providers: Sequence[str] | None = None,
        num_threads: int | None = None,
        session_options: Any = None,
        spin: bool = False,
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise MissingDependencyError("the ONNX back-end needs onnxruntime: pip install onnxruntime") from err
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no such ONNX file: {path}; write one with `vitpose export onnx`")
        options = session_options
        if options is None:
            options = ort.SessionOptions()
            if num_threads is not None:
                options.intra_op_num_threads = int(num_threads)
            options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        self.path = str(path)
        self.session = ort.InferenceSession(
            self.path, sess_options=options, providers=list(providers or ["CPUExecutionProvider"])
        )
        stored, self.dataset_index = read_metadata(self.session)
        if config is None:
            if stored is None:
                raise VitPoseError(
                    f"{path} carries no vitpose config in its metadata (not written by `vitpose export onnx`?): "
                    "pass config=VitPoseConfig(...)"
                )
            config = VitPoseConfig.from_dict(stored)
        self.config = config
        inputs = {i.name: i for i in self.session.get_inputs()}
        if INPUT_NAME not in inputs or OUTPUT_NAME not in {o.name for o in self.session.get_outputs()}:
            raise VitPoseError(
                f"{path} is not a vitpose export: expected input {INPUT_NAME!r} and output {OUTPUT_NAME!r}"
            )
        self.training = False

    # ------------------------------------------------------------------ what the estimator reads
    @property
    def device(self) -> torch.device:
        """Inputs are taken from, and heatmaps returned on, the CPU."""
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    @property
    def is_moe(self) -> bool:
        """Always False: a ViTPose++ export has its data set's expert folded in."""
        return False

    def eval(self) -> OnnxPoseModel:
        return self

    def __repr__(self) -> str:
        return f"OnnxPoseModel({self.path!r}, dataset_index={self.dataset_index}, keypoints={self.config.num_labels})"

    # ------------------------------------------------------------------ inference
    def run(self, pixel_values: np.ndarray) -> np.ndarray:
        """The raw graph: (B, 3, H, W) float32 -> heatmaps (B, K, H/4, W/4) float32 (numpy in and out)."""
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(pixel_values, dtype=np.float32)})[0]

    def __call__(
        self,
        pixel_values: torch.Tensor | np.ndarray,
        dataset_index: Any = None,
        flip_pairs: torch.Tensor | Sequence[Sequence[int]] | None = None,
        flip_test: bool = False,
        **kwargs: Any,
    ) -> VitPoseEstimatorOutput:
        """Heatmaps for a batch of crops, as `VitPoseForPoseEstimation.forward`.

        Args:
            pixel_values: (B, 3, H, W) normalised crops.
            dataset_index: None, or the data set this graph serves (an int, a name, or a tensor of equal values).
            flip_pairs: (P, 2) left/right pairs; without `flip_test` the heatmaps are flipped back (transformers).
            flip_test: also run the mirrored crops (same batch), flip back and average.
        Returns:
            `VitPoseEstimatorOutput` with `heatmaps` (B, K, H/4, W/4) float32 on the CPU.
        """
        unsupported = {k for k, v in kwargs.items() if v} - {"return_dict"}
        if unsupported:
            raise VitPoseError(f"the ONNX back-end does not support {sorted(unsupported)}")
        self._check_dataset_index(dataset_index)
        x = self._check_pixel_values(pixel_values)
        if x.shape[0] == 0:
            width, height = self.config.heatmap_size
            k = self.config.num_keypoints_for(self.dataset_index)
            return VitPoseEstimatorOutput(heatmaps=torch.zeros((0, k, height, width)))
        if flip_test:
            pairs = flip_pairs if flip_pairs is not None else self.default_flip_pairs()
            both = torch.from_numpy(self.run(np.concatenate([x, x[..., ::-1]])))
            return VitPoseEstimatorOutput(heatmaps=merge_flip_test(both, pairs))
        heatmaps = torch.from_numpy(self.run(x))
        return VitPoseEstimatorOutput(heatmaps=merge_flip_test(heatmaps, flip_pairs, flip_test=False))

    forward = __call__

    def default_flip_pairs(self) -> list[list[int]]:
        """Left/right pairs for the flip test: those the PyTorch model uses for the served head
        (`VitPoseConfig.flip_pairs_for`; the exporter stores them in the file's config)."""
        return self.config.flip_pairs_for(self.dataset_index)

    def _check_pixel_values(self, pixel_values: Any) -> np.ndarray:
        bb = self.config.backbone_config
        expected = (bb.num_channels, *bb.image_size)
        if isinstance(pixel_values, torch.Tensor):
            pixel_values = pixel_values.detach().to("cpu", torch.float32).numpy()
        if not isinstance(pixel_values, np.ndarray):
            raise TypeError(
                f"pixel_values must be a tensor or array of shape (batch, {expected}), got {pixel_values!r}"
            )
        if pixel_values.ndim != 4 or tuple(pixel_values.shape[1:]) != expected:
            raise VitPoseError(
                f"pixel_values must have shape (batch, {', '.join(map(str, expected))}), got {pixel_values.shape}"
            )
        return pixel_values.astype(np.float32, copy=False)

    def _check_dataset_index(self, dataset_index: Any) -> None:
        if dataset_index is None:
            return
        if isinstance(dataset_index, str):
            from vitpose.datasets import get_dataset_info

            values = {get_dataset_info(dataset_index).dataset_index}
        else:
            values = set(torch.as_tensor(dataset_index).reshape(-1).tolist())
        if values - {self.dataset_index}:
            # One graph, one data set: the config's rule (`VitPoseConfig.valid_dataset_indices`) is for the
            # PyTorch model it came from; the graph has its expert and head folded in.
            raise VitPoseError(
                f"this ONNX graph serves dataset_index {self.dataset_index} only (its expert and head are folded in), "
                f"got {sorted(values)}; export one file per data set with `vitpose export onnx --dataset NAME`"
            )


def quantize_onnx_int8(path: str | os.PathLike[str], out: str | os.PathLike[str] | None = None) -> str:
    """int8 dynamic quantisation of an exported graph's MatMul weights with ONNX Runtime's quantiser.

    Args:
        path: an `.onnx` file written by `vitpose export onnx`.
        out: where to write (default: `path` with `.int8.onnx`).

    Returns:
        The path written; it keeps the vitpose metadata, so `OnnxPoseModel(out)` works as for the float file.
    """
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as err:
        raise MissingDependencyError(
            "int8 quantisation of ONNX files needs onnx and onnxruntime: pip install onnx onnxruntime"
        ) from err
    path = str(path)
    if out is None:
        out = path[: -len(".onnx")] + ".int8.onnx" if path.endswith(".onnx") else path + ".int8.onnx"
    out = str(out)
    import logging

    class _Quiet(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "pre-processing before quantization" not in record.getMessage()

    quiet = _Quiet()
    root = logging.getLogger()
    root.addFilter(quiet)  # the quantiser's advice to run its shape pre-processing, irrelevant to MatMul weights
    try:
        quantize_dynamic(path, out, weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul"])
    finally:
        root.removeFilter(quiet)
    source = onnx.load(path, load_external_data=False)
    target = onnx.load(out)
    present = {p.key for p in target.metadata_props}
    for prop in source.metadata_props:
        if prop.key not in present:
            target.metadata_props.add(key=prop.key, value=prop.value)
    onnx.save(target, out)
    return out
