"""Sample-parallel CPU inference (`vitpose.parallel`): same outputs as the one-stream forward and as transformers,
only where it is safe (no gradients, no tracing), and no change to the thread counts the user sees."""

from __future__ import annotations

import threading

import pytest
import torch

from conftest import load_hf, make_hf_model, save_hf
from vitpose import VitPoseForPoseEstimation, parallel


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _thread_default() -> int:
    """The intra-op thread count a thread started now gets."""
    seen: list[int] = []
    thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    return seen[0]


def test_stream_count_rules(two_threads):
    cpu = torch.device("cpu")
    with torch.no_grad():
        assert parallel.cpu_streams(8, cpu) == 2
        assert parallel.cpu_streams(4, cpu) == 2
        assert parallel.cpu_streams(3, cpu) == 1  # fewer than MIN_PER_STREAM samples per stream
        assert parallel.cpu_streams(8, cpu, limit=1) == 1
        assert parallel.cpu_streams(8, torch.device("meta")) == 1
        torch.set_num_threads(1)
        assert parallel.cpu_streams(8, cpu) == 1
    torch.set_num_threads(2)
    assert parallel.cpu_streams(8, cpu) == 1  # gradients on: training and autograd keep the plain forward


def test_run_streams_order_remainder_and_threads(two_threads):
    def fn(samples: slice) -> torch.Tensor:
        return torch.stack(
            [
                torch.arange(samples.start, samples.stop),
                torch.full((samples.stop - samples.start,), torch.get_num_threads()),
            ],
            1,
        )

    with torch.inference_mode():
        out = parallel.run_streams(fn, 7, 2)
    assert out[:, 0].tolist() == list(range(7))
    # 3 + 3 samples in one-thread streams, the odd one out afterwards with both threads.
    assert out[:, 1].tolist() == [1] * 6 + [2]
    assert torch.get_num_threads() == 2
    assert _thread_default() == 2  # threads started later are not limited to one thread


@pytest.mark.filterwarnings("ignore:this checkpoint has no keypoint head")
@pytest.mark.parametrize("moe", [False, True])
def test_streams_equal_one_stream_and_transformers(tmp_path, two_threads, moe):
    hf = make_hf_model(num_experts=6 if moe else 1)
    ours = VitPoseForPoseEstimation.from_pretrained(save_hf(hf, tmp_path))
    hf = load_hf(tmp_path)
    pixel_values = torch.randn(7, 3, 256, 192)
    index = torch.tensor([0, 3, 3, 1, 0, 5, 2]) if moe else None
    with torch.inference_mode():
        ours.cpu_streams = 1
        plain = ours(pixel_values, dataset_index=index).heatmaps
        ours.cpu_streams = None
        streamed = ours(pixel_values, dataset_index=index).heatmaps
        reference = hf(pixel_values=pixel_values, dataset_index=index).heatmaps
    torch.testing.assert_close(streamed, plain, rtol=0, atol=1e-5)
    torch.testing.assert_close(streamed, reference, rtol=1e-4, atol=1e-4)
    assert streamed.is_inference()
    with torch.no_grad():
        out = ours(pixel_values, dataset_index=index).heatmaps
    assert not out.is_inference()  # no_grad callers get ordinary tensors, as from the plain forward
    torch.testing.assert_close(out, plain, rtol=0, atol=1e-5)


def test_streams_off_with_gradients_and_hidden_states(tmp_path, two_threads):
    ours = VitPoseForPoseEstimation.from_pretrained(save_hf(make_hf_model(), tmp_path))
    pixel_values = torch.randn(4, 3, 256, 192)
    calls: list[int] = []
    original = parallel.run_streams

    def spy(fn, batch, streams):
        calls.append(streams)
        return original(fn, batch, streams)

    import vitpose.models.pose as pose

    pose.run_streams, saved = spy, pose.run_streams
    try:
        ours(pixel_values).heatmaps.sum().backward()  # gradients on
        with torch.no_grad():
            ours(pixel_values, output_hidden_states=True)
        assert calls == []
        with torch.no_grad():
            ours(pixel_values)
        assert calls == [2]
    finally:
        pose.run_streams = saved
    assert ours.backbone.patch_embed.proj.weight.grad is not None
