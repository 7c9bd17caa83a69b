"""Reading PIL pixels in place through Pillow's Arrow export: the same bytes as `np.asarray`, only for the modes
whose stored bytes are the pixels, alive as long as the view, and crops from the 4- and 1-channel buffers equal to
crops from the converted RGB array bit for bit."""

from __future__ import annotations

import gc

import numpy as np
import pytest
from PIL import Image

from vitpose.ops.geometry import box_to_center_scale, crop_and_normalize
from vitpose.pil_pixels import pil_pixels


def _image(mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (61, 83, 3), dtype=np.uint8)).convert(mode)


@pytest.mark.parametrize(("mode", "channels"), [("RGB", 4), ("RGBA", 4), ("L", 1)])
def test_view_holds_the_pixels(mode, channels):
    image = _image(mode)
    view = pil_pixels(image)
    assert view is not None and view.shape == (61, 83, channels) and view.dtype == np.uint8
    assert not view.flags.writeable
    want = np.asarray(image)
    np.testing.assert_array_equal(
        view[:, :, :3] if channels == 4 else view[:, :, 0], want[:, :, :3] if want.ndim == 3 else want
    )


@pytest.mark.parametrize("mode", ["P", "1", "LA", "CMYK", "YCbCr", "I", "F", "I;16"])
def test_other_modes_are_not_read_in_place(mode):
    image = Image.new(mode, (7, 5)) if mode == "I;16" else _image("RGB").convert(mode)
    assert pil_pixels(image) is None


def test_not_a_pil_image_and_empty_image():
    assert pil_pixels(np.zeros((4, 4, 3), np.uint8)) is None
    assert pil_pixels(Image.new("RGB", (0, 0))) is None


def test_view_outlives_the_image():
    image = _image()
    want = np.asarray(image).copy()
    view = pil_pixels(image)
    del image
    gc.collect()
    garbage = [np.random.default_rng(i).random(50_000) for i in range(20)]  # reuse freed memory if it was freed
    np.testing.assert_array_equal(view[:, :, :3], want)
    assert len(garbage) == 20


def test_crops_from_4_and_1_channel_buffers_equal_rgb_crops():
    rgb_image = _image()
    boxes = np.array([[10.0, 5.0, 30.0, 50.0], [-5.0, 20.0, 60.0, 45.0], [70.0, 50.0, 20.0, 20.0]])
    centers, scales = box_to_center_scale(boxes)
    scale = np.array([0.017, 0.018, 0.019], np.float32)
    offset = np.array([-2.1, -2.0, -1.8], np.float32)
    want = crop_and_normalize(np.asarray(rgb_image), centers, scales, (48, 64), scale, offset)
    got = crop_and_normalize(pil_pixels(rgb_image), centers, scales, (48, 64), scale, offset)
    np.testing.assert_array_equal(got, want)

    grey = rgb_image.convert("L")
    want = crop_and_normalize(np.asarray(grey.convert("RGB")), centers, scales, (48, 64), scale, offset)
    got = crop_and_normalize(pil_pixels(grey), centers, scales, (48, 64), scale, offset)
    np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="one value per output channel"):
        crop_and_normalize(pil_pixels(rgb_image), centers, scales, (48, 64), scale[:2], offset[:2])
