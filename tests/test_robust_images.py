"""Robustness of image reading (`vitpose.media`): one pixel rule for files and arrays (16-bit, float, every PIL
mode), hostile files (decompression bombs, malformed EXIF, truncated, empty, random bytes, links, folders) that give
an `ImageReadError` naming the file and never another exception, globs through link loops, and every command
(predict, video image sequences, eval, training) keeping the good results around a bad input."""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import make_hf_model, save_hf
from vitpose.errors import ImageReadError
from vitpose.media import ImageReadWarning, expand_inputs, load_image, match_pattern, to_rgb_array

GOOD = ("000000000785.jpg", "000000040083.jpg", "000000196141.jpg", "000000197388.jpg")


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares `width` x `height` 8-bit grey pixels (its data is a few bytes)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))


def bad_exif_jpeg(orientation: int = 6, size: tuple[int, int] = (6, 8)) -> bytes:
    """A JPEG whose EXIF block holds an orientation and a resolution tag of the wrong type (ASCII): Pillow reads
    the orientation but its `exif_transpose` fails rewriting the block (TypeError)."""
    buf = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buf, "JPEG", quality=95)
    jpeg = buf.getvalue()
    ifd = struct.pack("<H", 2)
    ifd += struct.pack("<HHI4s", 0x0112, 3, 1, struct.pack("<HH", orientation, 0))
    ifd += struct.pack("<HHI4s", 0x011A, 2, 4, b"abc\0") + struct.pack("<I", 0)
    payload = b"Exif\0\0" + b"II*\0" + struct.pack("<I", 8) + ifd
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def _read_or_refuse(source) -> np.ndarray | None:
    """The contract: an (H, W, 3) uint8 array or an ImageReadError, nothing else."""
    try:
        rgb, _ = load_image(source)
    except ImageReadError as err:
        assert str(err)
        return None
    assert isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    assert rgb.shape[0] > 0 and rgb.shape[1] > 0
    return rgb


# ---------------------------------------------------------------------------------------------- the pixel rule
def test_16_bit_grey_png_file_and_array_read_the_same(tmp_path):
    values = (np.arange(40 * 30, dtype=np.uint32).reshape(30, 40) * 54).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "grey16.png")
    assert Image.open(tmp_path / "grey16.png").mode == "I;16"
    from_file, _ = load_image(tmp_path / "grey16.png")
    from_array, _ = load_image(values)
    want = np.repeat((values >> 8).astype(np.uint8)[:, :, None], 3, axis=2)
    np.testing.assert_array_equal(from_file, want)  # not clipped to white, as convert("RGB") did
    np.testing.assert_array_equal(from_array, want)
    np.testing.assert_array_equal(to_rgb_array(Image.open(tmp_path / "grey16.png")), want)  # the processor's path
    assert 100 < from_file.mean() < 155


def test_16_bit_colour_png_matches_its_array(tmp_path):
    # Pillow reduces 16-bit colour PNGs itself (to the high byte); the array rule is the same: v >> 8.
    values = np.random.default_rng(1).integers(0, 65536, (9, 11, 3), dtype=np.uint16)
    assert cv2.imwrite(str(tmp_path / "rgb16.png"), values[:, :, ::-1])
    np.testing.assert_array_equal(load_image(tmp_path / "rgb16.png")[0], (values >> 8).astype(np.uint8))
    np.testing.assert_array_equal(load_image(values)[0], (values >> 8).astype(np.uint8))


@pytest.mark.parametrize("top", [1.0, 255.0])
def test_float_tiff_file_and_array_read_the_same(tmp_path, top):
    values = np.linspace(0, top, 24 * 32, dtype=np.float32).reshape(24, 32)
    Image.fromarray(values).save(tmp_path / "float.tif")
    assert Image.open(tmp_path / "float.tif").mode == "F"
    want = np.repeat(np.rint(values * (255.0 / top)).astype(np.uint8)[:, :, None], 3, axis=2)
    np.testing.assert_array_equal(load_image(tmp_path / "float.tif")[0], want)  # 0-1 floats not nearly black
    np.testing.assert_array_equal(load_image(values)[0], want)
    np.testing.assert_array_equal(load_image(values[None].repeat(3, 0))[0], want)  # channels-first tensor layout


def test_16_bit_pgm_opened_as_mode_i(tmp_path):
    values = (np.arange(16 * 16, dtype=np.uint32).reshape(16, 16) * 256).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "grey16.pgm")
    assert Image.open(tmp_path / "grey16.pgm").mode == "I"
    np.testing.assert_array_equal(load_image(tmp_path / "grey16.pgm")[0][:, :, 0], (values >> 8).astype(np.uint8))


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.full((4, 4), 2.0, np.float32) * np.float32(200), r"float values in \[400, 400\]"),
        (np.full((4, 4), -0.5, np.float32), r"float values in \[-0.5, -0.5\]"),
        (np.full((4, 4), np.nan, np.float32), "NaN"),
        (np.full((4, 4), 1000, np.int64), r"int64 values in \[1000, 1000\].*uint16"),
        (np.full((4, 4), -3, np.int16), "negative"),
        (np.zeros((5, 6, 5), np.uint8), "shape"),
        (np.zeros((0, 4, 3), np.uint8), "empty"),
        (np.zeros((4, 4), np.complex64), "dtype complex64"),
        ({"not": "an image"}, "PIL images, numpy arrays"),
    ],
)
def test_arrays_outside_the_rule_are_refused_clearly(array, match):
    with pytest.raises(ImageReadError, match=match):
        load_image(array)


def test_processor_keeps_transformers_float_contract():
    # The processor (transformers-compatible) takes float pixels as they are; load_image reads 0-1 floats.
    unit = np.full((3, 3, 3), 0.5, np.float32)
    assert to_rgb_array(unit).dtype == np.float32 and to_rgb_array(unit).max() == 0.5
    assert load_image(unit)[0].max() == 128
    assert to_rgb_array(np.ones((2, 2), bool)).max() == 255


# ---------------------------------------------------------------------------------------------- hostile files
def test_decompression_bomb_is_refused_naming_size_and_limit(tmp_path, monkeypatch):
    monkeypatch.delenv("VITPOSE_MAX_IMAGE_PIXELS", raising=False)
    huge = tmp_path / "bomb.png"
    huge.write_bytes(bomb_png(100_000, 100_000))  # 10^10 pixels declared, 100 bytes on disk
    with pytest.raises(ImageReadError, match=r"bomb.png: 10,000,000,000 pixels, over the decompression-bomb limit"):
        load_image(huge)
    # Between the limit and twice it, Pillow only warns: refused the same, with the width and height.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    (tmp_path / "big.png").write_bytes(bomb_png(40, 40))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning escapes either
        with pytest.raises(ImageReadError, match=r"40 x 40 = 1,600 pixels, over .* 1,000 pixels.*VITPOSE_MAX_IMAGE"):
            load_image(tmp_path / "big.png")


def test_the_limit_can_be_raised(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    Image.fromarray(np.full((40, 40), 7, np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setenv("VITPOSE_MAX_IMAGE_PIXELS", "2000")
    assert load_image(tmp_path / "big.png")[0].shape == (40, 40, 3)
    monkeypatch.setenv("VITPOSE_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(ValueError, match="VITPOSE_MAX_IMAGE_PIXELS='lots'"):
        load_image(tmp_path / "big.png")


def test_malformed_exif_warns_and_keeps_the_image(tmp_path):
    path = tmp_path / "exif.jpg"
    path.write_bytes(bad_exif_jpeg(orientation=6, size=(6, 8)))
    with pytest.warns(ImageReadWarning, match=r"exif.jpg: malformed EXIF block \(TypeError.*orientation \(6\)"):
        rgb, _ = load_image(path)
    stored = np.asarray(Image.open(path).convert("RGB"))
    np.testing.assert_array_equal(rgb, np.rot90(stored, k=-1))  # orientation 6: rotated 90 degrees clockwise


def test_unparseable_exif_is_read_as_stored(tmp_path):
    good = bad_exif_jpeg(orientation=1)
    start = good.index(b"Exif\0\0") + 6
    path = tmp_path / "garbage.jpg"
    path.write_bytes(good[:start] + b"\xff" * 26 + good[start + 26 :])
    assert _read_or_refuse(path) is not None


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_bytes(b"GIF89a not really"), "cannot decode|not an image"),
        (lambda p: p.write_text("hello"), "not an image file Pillow can read"),
        (lambda p: p.write_bytes(cv2.imencode(".png", np.zeros((64, 64, 3), np.uint8) + 9)[1].tobytes()[:80]), "trunc"),
        (lambda p: p.mkdir(), "is a folder"),
        (lambda p: os.symlink(p.with_name("elsewhere.jpg"), p), "broken symbolic link"),
        (lambda p: (os.symlink(p.with_name("b.jpg"), p), os.symlink(p, p.with_name("b.jpg"))), "symbolic link loop"),
        (lambda p: os.mkfifo(p), "not a regular file"),
        (lambda p: None, "no such file"),
    ],
    ids=["empty", "bad-gif", "text", "truncated", "folder", "broken-link", "link-loop", "fifo", "missing"],
)
def test_bad_files_are_named_and_explained(tmp_path, make, match):
    path = tmp_path / "x.jpg"
    make(path)
    with pytest.raises(ImageReadError, match=match) as caught:
        load_image(path)
    err = caught.value
    assert str(err).startswith(f"{path}: ") and str(err).count(str(path)) == 1
    assert err.path == str(path) and err.reason == str(err)[len(str(path)) + 2 :]


def test_permission_denied_says_so(tmp_path, monkeypatch):
    path = tmp_path / "locked.jpg"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path)
    if os.geteuid() == 0:  # root reads any file: make opening fail as it does for a user without the right

        def denied(*args, **kwargs):
            raise PermissionError(13, "Permission denied", str(path))

        monkeypatch.setattr(Image, "open", denied)
    else:
        path.chmod(0)
    with pytest.raises(ImageReadError, match=r"locked.jpg: permission denied; make the file readable"):
        load_image(path)


# ---------------------------------------------------------------------------------------------- property tests
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "YCbCr", "I", "I;16", "F"]
# A format that stores each mode as it is (so that the file and the PIL image hold the same pixels).
FORMAT = {"1": "png", "L": "png", "LA": "png", "P": "png", "RGB": "png", "RGBA": "png", "CMYK": "tiff",
          "YCbCr": "tiff", "I": "tiff", "I;16": "png", "F": "tiff"}  # fmt: skip


def _pil_image(mode: str, width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    if mode == "F":
        return Image.fromarray(rng.random((height, width), dtype=np.float32) * rng.choice([1.0, 255.0]))
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16))
    if mode == "I":
        return Image.fromarray(rng.integers(0, 65536, (height, width)).astype(np.int32))
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).convert(mode)


@pytest.mark.fuzz
@given(st.sampled_from(MODES), st.integers(1, 24), st.integers(1, 24), st.integers(0, 2**16))
def test_every_mode_reads_the_same_from_a_file_and_from_pil(mode, width, height, seed):
    image = _pil_image(mode, width, height, seed)
    assert image.mode == mode
    buf = io.BytesIO()
    image.save(buf, FORMAT[mode])
    folder = Path(os.environ.get("TMPDIR", "/tmp"))
    path = folder / f"vitpose_mode_{os.getpid()}.{FORMAT[mode]}"
    path.write_bytes(buf.getvalue())
    try:
        from_file = _read_or_refuse(path)
    finally:
        path.unlink()
    from_pil = _read_or_refuse(image)
    assert from_file is not None and from_pil is not None and from_file.shape == (height, width, 3)
    np.testing.assert_array_equal(from_file, from_pil)
    if mode in ("L", "RGB", "I;16", "F", "1", "LA"):  # their numpy arrays are the pixels themselves
        np.testing.assert_array_equal(_read_or_refuse(np.asarray(image)), from_pil)


DTYPES = st.sampled_from(
    [np.uint8, np.int8, np.uint16, np.int16, np.int32, np.int64, np.uint32, np.float16, np.float32, np.float64, bool]
)


@pytest.mark.fuzz
@given(
    hnp.arrays(
        DTYPES,
        st.one_of(
            hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=6),
            st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(1, 5)),
            st.tuples(st.integers(1, 5), st.integers(0, 5), st.integers(0, 5)),
            hnp.array_shapes(min_dims=0, max_dims=4, max_side=3),
        ),
    )
)
def test_any_array_is_read_or_refused(array):
    rgb = _read_or_refuse(array)
    if rgb is not None:
        import torch

        if array.dtype != np.float16:
            np.testing.assert_array_equal(_read_or_refuse(torch.from_numpy(np.ascontiguousarray(array))), rgb)


@pytest.mark.fuzz
@given(st.binary(max_size=2048), st.sampled_from([".jpg", ".png", ".tif", ".gif", ".bmp", ".webp", ".pgm"]))
def test_random_bytes_never_escape_as_another_error(data, suffix):
    """The fuzz target: any bytes with an image suffix are read or refused (VITPOSE_FUZZ_EXAMPLES=N runs longer)."""
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"vitpose_fuzz_{os.getpid()}{suffix}"
    path.write_bytes(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ImageReadWarning)
            _read_or_refuse(path)
    finally:
        path.unlink()


def _seed_images() -> list[bytes]:
    pixels = np.random.default_rng(3).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    out = [bad_exif_jpeg(), bomb_png(30, 20)]
    for fmt in ("JPEG", "PNG", "TIFF", "GIF", "BMP", "WEBP", "PPM"):
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, fmt)
        out.append(buf.getvalue())
    return out


@pytest.mark.fuzz
@given(st.sampled_from(_seed_images()), st.lists(st.tuples(st.integers(0, 4095), st.integers(0, 255)), max_size=6),
       st.integers(0, 4096))  # fmt: skip
def test_damaged_images_never_escape_as_another_error(seed, flips, cut):
    """Real images of every format with bytes changed and cut short: read or refused, never a traceback."""
    data = bytearray(seed[: max(1, cut)] if cut < len(seed) else seed)
    for where, value in flips:
        data[where % len(data)] = value
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"vitpose_damaged_{os.getpid()}.img"
    path.write_bytes(bytes(data))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ImageReadWarning)
            _read_or_refuse(path)
    finally:
        path.unlink()


# ---------------------------------------------------------------------------------------------- globs and links
def test_glob_through_link_loops_lists_each_image_once(tmp_path):
    root = tmp_path / "photos"
    (root / "day" / "a").mkdir(parents=True)
    for name in ("frame_10.jpg", "frame_2.jpg", "day/x.jpg", "day/a/y.jpg"):
        Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(root / name)
    os.symlink(root, root / "day" / "a" / "up")  # a loop: photos/day/a/up -> photos
    os.symlink(root / "day", root / "day" / "again")  # and another, two ways in: exponential for glob
    found = match_pattern(str(root / "**" / "*.jpg"))
    assert found == [str(root / n) for n in ("day/a/y.jpg", "day/x.jpg", "frame_2.jpg", "frame_10.jpg")]
    assert match_pattern(str(root / "**")) == found  # a trailing ** lists every file below
    paths, missing = expand_inputs([str(root / "**" / "frame_*.jpg")])
    assert paths == [str(root / "frame_2.jpg"), str(root / "frame_10.jpg")] and not missing
    cwd = os.getcwd()
    try:
        os.chdir(root)
        assert match_pattern("**/*.jpg") == ["day/a/y.jpg", "day/x.jpg", "frame_2.jpg", "frame_10.jpg"]
    finally:
        os.chdir(cwd)


# ---------------------------------------------------------------------------------------------- the commands
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_hf(make_hf_model(), tmp_path_factory.mktemp("ckpt") / "model")


def _copy_images(coco_dir: Path, folder: Path, bad_at: int | None = None) -> list[str]:
    folder.mkdir(parents=True)
    names = []
    for i, name in enumerate(GOOD[:3]):
        if i == bad_at:
            (folder / f"frame_{i}.jpg").write_bytes((coco_dir / name).read_bytes()[:2000])  # truncated
        else:
            shutil.copy(coco_dir / name, folder / f"frame_{i}.jpg")
        names.append(f"frame_{i}.jpg")
    return names


def test_predict_keeps_the_good_results_around_a_bad_image(checkpoint, coco_dir, tmp_path, capsys):
    from vitpose.cli import main as cli_main

    def run(folder: Path, out: Path) -> tuple[int, dict, str]:
        code = cli_main(["predict", str(folder), "--model", str(checkpoint), "--detector", "full-image",
                         "--device", "cpu", "--out", str(out)])  # fmt: skip
        results = json.loads((out / "predictions.json").read_text())
        return code, {Path(r["file_name"]).name: r["keypoints"] for r in results}, capsys.readouterr().err

    _copy_images(coco_dir, tmp_path / "bad", bad_at=1)
    _copy_images(coco_dir, tmp_path / "good")
    (tmp_path / "good" / "frame_1.jpg").unlink()
    code, with_bad, err = run(tmp_path / "bad", tmp_path / "out_bad")
    assert code == 1 and set(with_bad) == {"frame_0.jpg", "frame_2.jpg"}
    bad = str(tmp_path / "bad" / "frame_1.jpg")
    lines = [line for line in err.splitlines() if bad in line]
    assert lines and all(line.count(bad) == 1 for line in lines), lines  # the path once per line
    assert any("truncated or corrupt" in line for line in lines) and "Traceback" not in err
    code, alone, _ = run(tmp_path / "good", tmp_path / "out_good")
    assert code == 0 and alone == with_bad


def test_video_image_sequence_skips_a_bad_frame(coco_dir, tmp_path):
    from vitpose.video.io import VideoReadWarning, open_video

    names = _copy_images(coco_dir, tmp_path / "seq", bad_at=1)
    source = open_video(tmp_path / "seq")
    with pytest.warns(VideoReadWarning, match="frame 1 skipped: .*frame_1.jpg: cannot decode"):
        frames = list(source)
    assert [f.index for f in frames] == [0, 2] and source.skipped == [str(tmp_path / "seq" / names[1])]
    for frame in frames:
        np.testing.assert_array_equal(frame.image, load_image(coco_dir / GOOD[frame.index])[0])


def test_eval_scores_the_readable_images_and_names_the_bad_one(checkpoint, coco_dir, tmp_path):
    from vitpose.evaluation import evaluate

    annotations = json.loads((coco_dir / "test_coco.json").read_text())
    images = tmp_path / "images"
    images.mkdir()
    for entry in annotations["images"]:
        shutil.copy(coco_dir / entry["file_name"], images / entry["file_name"])
    bad = annotations["images"][1]
    (images / bad["file_name"]).write_bytes(b"")
    with pytest.warns(ImageReadWarning, match=f"{bad['file_name']}: empty file.*left out of the score"):
        report = evaluate(str(checkpoint), annotations, images, device="cpu")
    assert [f.source for f in report.unreadable] == [str(images / bad["file_name"])]
    assert report.num_images == 3 and any("scored on 3 of 4 images" in n for n in report.notes)
    without = {
        **annotations,
        "images": [i for i in annotations["images"] if i["id"] != bad["id"]],
        "annotations": [a for a in annotations["annotations"] if a["image_id"] != bad["id"]],
    }
    expected = evaluate(str(checkpoint), without, coco_dir, device="cpu")
    assert report.predictions == expected.predictions and report.metrics == expected.metrics


def test_training_skips_the_samples_of_a_bad_image(coco_dir, tmp_path):
    from vitpose.training import KeypointDataset

    images = tmp_path / "images"
    images.mkdir()
    for name in GOOD:
        shutil.copy(coco_dir / name, images / name)
    (images / GOOD[1]).write_bytes((coco_dir / GOOD[1]).read_bytes()[:1500])
    broken = KeypointDataset(coco_dir / "test_coco.json", images, augment=True, seed=3)
    plain = KeypointDataset(coco_dir / "test_coco.json", coco_dir, augment=True, seed=3)
    bad_index = broken.instances.image_paths.index(images / GOOD[1])
    for i in range(len(broken)):
        if int(broken.instances.image_index[i]) == bad_index:
            with pytest.warns(ImageReadWarning, match=f"{GOOD[1]}: cannot decode.*skipped \\(zero weight\\)"):
                sample = broken[i]
            assert float(sample["label_weights"].abs().sum()) == 0 and sample["pixel_values"].shape == (3, 256, 192)
        else:
            got, want = broken[i], plain[i]
            assert all(torch_equal(got[k], want[k]) for k in ("pixel_values", "labels", "label_weights"))


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))
