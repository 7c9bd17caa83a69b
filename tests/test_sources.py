"""The inputs of a dataset-scale job (`vitpose.integrations.sources`): files, folders, patterns, list, Parquet and
COCO files, and URIs (through pyarrow's file systems, tested with file:// URIs), and reading one image."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from vitpose.errors import ImageReadError, MissingDependencyError  # noqa: E402
from vitpose.integrations.sources import ImageRef, expand_job_inputs, is_uri, read_image  # noqa: E402
from vitpose.media import FailedImage, expand_inputs, load_image  # noqa: E402

COCO_IDS = [785, 40083, 196141, 197388]
COCO_FILES = ["000000000785.jpg", "000000040083.jpg", "000000196141.jpg", "000000197388.jpg"]
# The images directly in the tree's imgs/, in natural order: a hidden image file is one (as media's folders list it),
# though a pattern's * does not match it (as glob).
FOLDER = [".top.jpg", "frame_1.jpg", "frame_2.jpg", "frame_10.jpg"]


@pytest.fixture
def tree(tmp_path: Path, coco_dir: Path) -> Path:
    """tmp/imgs/{frame_1,frame_2,frame_10}.jpg, notes.csv, sub/deep.png, sub/.hid/h.jpg, .top.jpg."""
    jpg = coco_dir / COCO_FILES[0]
    imgs = tmp_path / "imgs"
    (imgs / "sub" / ".hid").mkdir(parents=True)
    for name in ("frame_10.jpg", "frame_2.jpg", "frame_1.jpg"):
        shutil.copy(jpg, imgs / name)
    shutil.copy(coco_dir / COCO_FILES[1], imgs / "sub" / "deep.png")
    shutil.copy(jpg, imgs / "sub" / ".hid" / "h.jpg")
    shutil.copy(jpg, imgs / ".top.jpg")
    (imgs / "notes.csv").write_text("a,b\n")
    return tmp_path


def refs(*paths: str | Path) -> list[ImageRef]:
    return [ImageRef(str(p)) for p in paths]


def uri(path: Path) -> str:
    return path.as_uri()


def write_parquet(target: Path, /, **columns: list) -> Path:
    pq.write_table(pa.table(columns), target)
    return target


# ---------------------------------------------------------------------------------------------------------------------
# is_uri


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("s3://bucket/key.jpg", True),
        ("file:///data/a.jpg", True),
        ("gs://b/x", True),
        ("hdfs://namenode:8020/x", True),
        ("nosuch://x", True),
        ("git+ssh://host/x", True),
        ("C:\\images\\a.jpg", False),
        ("C://images/a.jpg", False),  # a one-letter scheme is a drive
        ("/data/a.jpg", False),
        ("images/a.jpg", False),
        ("file:/data/a.jpg", False),
        ("1s://x", False),
        ("", False),
    ],
)
def test_is_uri(text: str, expected: bool) -> None:
    assert is_uri(text) is expected


# ---------------------------------------------------------------------------------------------------------------------
# Local files, folders and patterns: what media.expand_inputs gives.


def test_local_file_folder_pattern_and_missing_are_media_expand_inputs(tree: Path) -> None:
    imgs = tree / "imgs"
    inputs = [str(imgs / "sub" / "deep.png"), str(imgs), str(imgs / "**" / "*.png"), str(tree / "gone.jpg")]
    found, failed = expand_job_inputs(inputs)
    assert found == refs(imgs / "sub" / "deep.png", *[imgs / name for name in FOLDER])
    assert failed == [FailedImage(str(tree / "gone.jpg"), "no such file or folder")]
    for item in inputs:  # each input alone: exactly media's answer
        paths, missing = expand_inputs([item])
        assert expand_job_inputs([item]) == (refs(*paths), missing)


def test_local_empty_folder_and_pattern_matching_nothing_are_reported(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    found, failed = expand_job_inputs([str(tmp_path / "empty"), str(tmp_path / "*.jpg")])
    assert found == []
    assert [f.source for f in failed] == [str(tmp_path / "empty"), str(tmp_path / "*.jpg")]
    assert failed[0].reason.startswith("folder holds no images")
    assert failed[1].reason == "the pattern matches no file"


def test_local_file_of_another_kind_names_the_accepted_kinds(tree: Path) -> None:
    found, failed = expand_job_inputs([str(tree / "imgs" / "notes.csv")])
    assert found == []
    assert len(failed) == 1 and failed[0].source == str(tree / "imgs" / "notes.csv")
    reason = failed[0].reason
    assert "a .csv file is not an input kind" in reason
    for kind in ("image files (.jpg", "folders", "glob patterns", "list files (.txt, .lst", "Parquet", "COCO"):
        assert kind in reason


# ---------------------------------------------------------------------------------------------------------------------
# List files.


def test_list_file_relative_to_its_folder(tree: Path) -> None:
    imgs = tree / "imgs"
    listing = imgs / "list.txt"
    listing.write_text(
        "# the frames\n"
        "\n"
        "   frame_2.jpg   \n"
        "\t# indented comment\n"
        "sub\n"  # a folder: its images
        "missing.jpg\n"  # not checked: kept, fails when read
        f"{imgs / 'frame_1.jpg'}\r\n"  # absolute, CRLF
        "*.csv\n"  # a pattern: what media gives for it
    )
    found, failed = expand_job_inputs([str(listing)])
    assert found == refs(
        imgs / "frame_2.jpg", imgs / "sub" / "deep.png", imgs / "missing.jpg", imgs / "frame_1.jpg", imgs / "notes.csv"
    )
    assert failed == []


def test_list_file_relative_to_images(tree: Path) -> None:
    imgs = tree / "imgs"
    listing = tree / "lists" / "a.lst"
    listing.parent.mkdir()
    listing.write_text("frame_10.jpg\nsub/deep.png\nframe_*.jpg\n")
    found, failed = expand_job_inputs([str(listing)], images=str(imgs))
    assert found == refs(imgs / "frame_10.jpg", imgs / "sub" / "deep.png", imgs / "frame_1.jpg", imgs / "frame_2.jpg")
    assert failed == []
    found, _ = expand_job_inputs([str(listing)])  # without images: relative to lists/, not checked
    assert found == refs(tree / "lists" / "frame_10.jpg", tree / "lists" / "sub" / "deep.png")
    assert expand_job_inputs([str(listing)])[1] == [
        FailedImage(str(tree / "lists" / "frame_*.jpg"), "the pattern matches no file")
    ]


def test_list_file_image_entries_are_not_looked_up(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    listing = tree / "many.txt"
    listing.write_text("".join(f"img_{i}.jpg\n" for i in range(50)) + "imgs\n")
    looked: list[str] = []
    real_isdir, real_stat = os.path.isdir, os.stat

    def isdir(path):
        looked.append(str(path))
        return real_isdir(path)

    def stat(path, *args, **kwargs):
        looked.append(str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os.path, "isdir", isdir)
    monkeypatch.setattr(os, "stat", stat)
    found, failed = expand_job_inputs([str(listing)])
    monkeypatch.undo()
    imgs = tree / "imgs"
    assert found == refs(*[tree / f"img_{i}.jpg" for i in range(50)], *[imgs / name for name in FOLDER])
    assert failed == []
    assert not [p for p in looked if "img_" in p]  # the image lines were taken as they are; only "imgs" was looked at


def test_list_file_without_entries_and_not_utf8(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n   \n")
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00bad")
    found, failed = expand_job_inputs([str(empty), str(binary)])
    assert found == []
    assert failed == [
        FailedImage(str(empty), "the list file names no images (it holds only blank lines and # comments)"),
        FailedImage(str(binary), "is not a UTF-8 text file: a list file holds one path or URI a line"),
    ]


def test_list_file_with_uri_lines(tree: Path) -> None:
    imgs = tree / "imgs"
    listing = tree / "uris.txt"
    listing.write_text(
        f"{uri(imgs)}\n"  # a folder URI: its images
        f"{uri(tree)}/nowhere/x.jpg\n"  # an image URI: kept as it is, not checked
        f"{uri(imgs)}/sub/*.png\n"  # a pattern URI
    )
    found, failed = expand_job_inputs([str(listing)])
    base = uri(imgs)
    assert found == refs(
        *[f"{base}/{name}" for name in FOLDER], f"{uri(tree)}/nowhere/x.jpg",
        f"{base}/sub/deep.png",
    )  # fmt: skip
    assert failed == []


# ---------------------------------------------------------------------------------------------------------------------
# Parquet files.


def test_parquet_paths_and_image_ids(tree: Path) -> None:
    imgs = tree / "imgs"
    table = write_parquet(
        imgs / "rows.parquet",
        path=["frame_2.jpg", str(imgs / "frame_1.jpg"), "missing.jpg", "s3://bucket/a.jpg"],
        image_id=[7, 8, 9, 10],
    )
    found, failed = expand_job_inputs([str(table)])
    assert found == [
        ImageRef(str(imgs / "frame_2.jpg"), 7),
        ImageRef(str(imgs / "frame_1.jpg"), 8),
        ImageRef(str(imgs / "missing.jpg"), 9),  # not checked here
        ImageRef("s3://bucket/a.jpg", 10),
    ]
    assert failed == []
    found, _ = expand_job_inputs([str(table)], images="/data/coco")
    assert [r.path for r in found] == [
        "/data/coco/frame_2.jpg",
        str(imgs / "frame_1.jpg"),
        "/data/coco/missing.jpg",
        "s3://bucket/a.jpg",
    ]


def test_parquet_path_column_preference_and_ids(tmp_path: Path) -> None:
    both = write_parquet(tmp_path / "both.parquet", file=["f.jpg"], file_name=["n.jpg"], other=[1])
    image = write_parquet(tmp_path / "image.parquet", file_name=["n.jpg"], image=["i.jpg"], image_id=["abc"])
    nan_ids = write_parquet(tmp_path / "nan.parquet", path=["a.jpg", "b.jpg"], image_id=[float("nan"), 3.0])
    found, failed = expand_job_inputs([str(both), str(image), str(nan_ids)])
    assert found == [
        ImageRef(str(tmp_path / "n.jpg")),
        ImageRef(str(tmp_path / "i.jpg"), "abc"),
        ImageRef(str(tmp_path / "a.jpg")),
        ImageRef(str(tmp_path / "b.jpg"), 3),
    ]
    assert failed == []


def test_parquet_without_a_path_column(tmp_path: Path) -> None:
    table = write_parquet(tmp_path / "bad.parquet", url=["a.jpg"], image_id=[1])
    found, failed = expand_job_inputs([str(table)])
    assert found == []
    assert failed == [
        FailedImage(
            str(table),
            "has no column of image paths: its columns are 'url', 'image_id'; expected one of 'path', 'image', "
            "'file_name', 'file' (the first present is used), holding paths or URIs, and optionally 'image_id'",
        )
    ]


def test_parquet_bad_values_and_not_parquet(tmp_path: Path) -> None:
    numbers = write_parquet(tmp_path / "numbers.parquet", path=[1, 2])
    nulls = write_parquet(tmp_path / "nulls.parquet", path=["a.jpg", None, "", "b.jpg"])
    fake = tmp_path / "fake.parquet"
    fake.write_text("not parquet")
    found, failed = expand_job_inputs([str(numbers), str(nulls), str(fake)])
    assert found == refs(tmp_path / "a.jpg", tmp_path / "b.jpg")
    assert failed[:2] == [
        FailedImage(str(numbers), "its column 'path' holds int64 values, not paths: expected strings (paths or URIs)"),
        FailedImage(str(nulls), "2 of its rows have no path (null or empty): rows 1, 2; they are left out"),
    ]
    assert failed[2].source == str(fake) and failed[2].reason.startswith("cannot be read as a Parquet file (")


def test_parquet_by_uri_is_relative_to_its_parent_uri(tree: Path) -> None:
    imgs = tree / "imgs"
    table = write_parquet(imgs / "rows.parquet", path=["frame_10.jpg", "sub dir/x 1.jpg"], image_id=[1, 2])
    found, failed = expand_job_inputs([uri(table)])
    assert found == [ImageRef(f"{uri(imgs)}/frame_10.jpg", 1), ImageRef(f"{uri(imgs)}/sub%20dir/x%201.jpg", 2)]
    assert failed == []
    assert np.array_equal(read_image(found[0].path), load_image(imgs / "frame_10.jpg")[0])


# ---------------------------------------------------------------------------------------------------------------------
# COCO files.


def test_coco_file_ids_and_paths(coco_dir: Path, tmp_path: Path) -> None:
    annotations = coco_dir / "test_coco.json"
    found, failed = expand_job_inputs([str(annotations)])
    assert found == [ImageRef(str(coco_dir / name), i) for name, i in zip(COCO_FILES, COCO_IDS, strict=True)]
    assert failed == []
    found, _ = expand_job_inputs([str(annotations)], images=str(tmp_path / "elsewhere"))
    assert found == [ImageRef(str(tmp_path / "elsewhere" / n), i) for n, i in zip(COCO_FILES, COCO_IDS, strict=True)]
    found, failed = expand_job_inputs([uri(annotations)])
    assert found == [ImageRef(f"{uri(coco_dir)}/{n}", i) for n, i in zip(COCO_FILES, COCO_IDS, strict=True)]
    assert failed == []
    assert np.array_equal(read_image(found[1].path), load_image(coco_dir / COCO_FILES[1])[0])


def test_json_that_is_not_a_coco_file(coco_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"images": [')
    no_images = tmp_path / "no_images.json"
    no_images.write_text(json.dumps({"annotations": [], "categories": []}))
    bad_entry = tmp_path / "bad_entry.json"
    bad_entry.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2}]}))
    detections = coco_dir / "test_coco_det_AP_H_56.json"
    found, failed = expand_job_inputs([str(broken), str(no_images), str(bad_entry), str(detections)])
    assert found == []
    assert [f.source for f in failed] == [str(broken), str(no_images), str(bad_entry), str(detections)]
    expected = "expected a COCO annotation file (a JSON object whose 'images' is a list of {'id', 'file_name'})"
    assert f"{broken} is not valid JSON (" in failed[0].reason
    assert (
        failed[1].reason == f"holds a JSON object with the keys 'annotations', 'categories' but no 'images': {expected}"
    )
    assert failed[2].reason == (
        "images[1] is {'id': 2}: each image of a COCO annotation file needs an 'id' and a 'file_name'"
    )
    count = len(json.loads(detections.read_text()))
    assert failed[3].reason == (
        f"holds a JSON list of {count} items, not a COCO annotation file: {expected} (a list is what COCO results and "
        "detections files hold)"
    )


# ---------------------------------------------------------------------------------------------------------------------
# URIs.


def test_uri_folder_is_its_images_directly_inside_in_natural_order(tree: Path) -> None:
    base = uri(tree / "imgs")
    folder = refs(*[f"{base}/{name}" for name in FOLDER])
    assert expand_job_inputs([base]) == (folder, [])
    assert expand_job_inputs([base + "/"]) == (folder, [])
    local, _ = expand_inputs([str(tree / "imgs")])
    assert [r.path for r in folder] == [Path(p).as_uri() for p in local]  # as media's folder
    (tree / "empty").mkdir()
    assert expand_job_inputs([uri(tree / "empty")])[1][0].reason.startswith("folder holds no images (.jpg")


def test_uri_patterns(tree: Path) -> None:
    base = uri(tree / "imgs")
    frames = [f"{base}/frame_1.jpg", f"{base}/frame_2.jpg", f"{base}/frame_10.jpg"]
    assert expand_job_inputs([f"{base}/*.jpg"]) == (refs(*frames), [])
    assert expand_job_inputs([f"{base}/frame_?.jpg"])[0] == refs(*frames[:2])
    assert expand_job_inputs([f"{base}/frame_[12]*.jpg"])[0] == refs(*frames)
    everything = [*frames, f"{base}/notes.csv", f"{base}/sub/deep.png"]  # all files, as media's patterns; no hidden
    assert expand_job_inputs([f"{base}/**/*"])[0] == refs(*everything)
    assert expand_job_inputs([f"{base}/**"])[0] == refs(*everything)
    assert expand_job_inputs([f"{uri(tree)}/**/*.png"])[0] == refs(f"{base}/sub/deep.png")
    assert expand_job_inputs([f"{uri(tree)}/*/frame_1*"])[0] == refs(f"{base}/frame_1.jpg", f"{base}/frame_10.jpg")
    assert expand_job_inputs([f"{base}/**/.hid/*"])[0] == refs(f"{base}/sub/.hid/h.jpg")
    assert expand_job_inputs([f"{base}/*.gif"]) == ([], [FailedImage(f"{base}/*.gif", "the pattern matches no file")])


def test_uri_patterns_match_what_media_matches_locally(tree: Path) -> None:
    for pattern in (
        "imgs/*",
        "imgs/.*",
        "imgs/**/*",
        "imgs/**",
        "**/*.png",
        "*/frame_?.jpg",
        "imgs/**/.hid/*",
        "imgs/*/*",
        "**/**/*.png",
    ):
        local, _ = expand_inputs([str(tree / pattern)])
        found, _ = expand_job_inputs([f"{uri(tree)}/{pattern}"])
        assert [r.path for r in found] == [Path(p).as_uri() for p in local], pattern


def test_uri_single_files_missing_and_other_kinds(tree: Path) -> None:
    base = uri(tree / "imgs")
    assert expand_job_inputs([f"{base}/frame_2.jpg"]) == (refs(f"{base}/frame_2.jpg"), [])
    found, failed = expand_job_inputs([f"{base}/gone.jpg", f"{base}/notes.csv"])
    assert found == []
    assert failed[0] == FailedImage(
        f"{base}/gone.jpg",
        "no such file or folder (nothing at this URI): check the path; object names are case-sensitive",
    )
    assert failed[1].source == f"{base}/notes.csv" and "a .csv file is not an input kind" in failed[1].reason
    listing = tree / "imgs" / "l.txt"
    listing.write_text(f"frame_10.jpg\n../imgs/sub/deep.png\n{tree / 'abs.jpg'}\n")
    assert expand_job_inputs([uri(listing)]) == (
        refs(f"{base}/frame_10.jpg", f"{base}/sub/deep.png", tree / "abs.jpg"),
        [],
    )
    assert expand_job_inputs([uri(listing)], images="s3://bucket/x") == (
        refs("s3://bucket/x/frame_10.jpg", "s3://bucket/imgs/sub/deep.png", tree / "abs.jpg"),
        [],
    )


def test_uri_query_is_kept_and_not_a_pattern(tree: Path) -> None:
    base = uri(tree / "imgs")
    assert expand_job_inputs([f"{base}?region=x&anonymous=true"]) == (
        refs(*[f"{base}/{name}?region=x&anonymous=true" for name in FOLDER]),
        [],
    )
    assert expand_job_inputs([f"{base}/frame_?.jpg?region=x"])[0] == refs(
        f"{base}/frame_1.jpg?region=x", f"{base}/frame_2.jpg?region=x"
    )
    image = read_image(f"{base}/frame_2.jpg?region=x")
    assert np.array_equal(image, load_image(tree / "imgs" / "frame_2.jpg")[0])


def test_uri_of_an_unknown_file_system(tree: Path) -> None:
    found, failed = expand_job_inputs(["nosuch://x", "nosuch://bucket/*.jpg"])
    assert found == []
    assert [f.source for f in failed] == ["nosuch://x", "nosuch://bucket/*.jpg"]
    for failure in failed:
        assert failure.reason.startswith("pyarrow has no file system for nosuch:// URIs (Unrecognized filesystem type")
        assert "check the URI's scheme" in failure.reason


def test_uri_with_spaces_is_percent_encoded(tree: Path, coco_dir: Path) -> None:
    folder = tree / "a b"
    folder.mkdir()
    shutil.copy(coco_dir / COCO_FILES[2], folder / "50%.jpg")
    found, failed = expand_job_inputs([uri(folder)])
    assert found == refs(f"{uri(tree)}/a%20b/50%25.jpg") and failed == []
    assert np.array_equal(read_image(found[0].path), load_image(folder / "50%.jpg")[0])
    _, failed = expand_job_inputs([f"{uri(tree)}/a b/50%.jpg"])  # not encoded: pyarrow cannot parse it
    assert failed[0].reason.startswith("not a valid URI (") and "%20 for a space" in failed[0].reason


# ---------------------------------------------------------------------------------------------------------------------
# Order and duplicates.


def test_inputs_in_order_each_path_once(tree: Path, coco_dir: Path, tmp_path: Path) -> None:
    imgs = tree / "imgs"
    listing = imgs / "list.txt"
    listing.write_text("frame_10.jpg\n./frame_2.jpg\nframe_10.jpg\n")
    coco = tmp_path / "coco.json"
    coco.write_text(json.dumps({"images": [{"id": 5, "file_name": "frame_1.jpg"}, {"id": 6, "file_name": "x.jpg"}]}))
    inputs = [str(imgs / "frame_2.jpg"), str(listing), str(coco), str(imgs), str(imgs / "frame_2.jpg")]
    found, failed = expand_job_inputs(inputs, images=str(imgs))
    assert found == [
        ImageRef(str(imgs / "frame_2.jpg")),
        ImageRef(str(imgs / "frame_10.jpg")),
        ImageRef(str(imgs / "frame_1.jpg"), 5),  # the first occurrence, with its id; the folder's copy left out
        ImageRef(str(imgs / "x.jpg"), 6),
        ImageRef(str(imgs / ".top.jpg")),
    ]
    assert failed == []


# ---------------------------------------------------------------------------------------------------------------------
# read_image


def test_read_image_of_a_file_uri_equals_load_image(coco_dir: Path) -> None:
    for name in COCO_FILES:
        pixels = read_image(uri(coco_dir / name))
        assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3
        assert np.array_equal(pixels, load_image(coco_dir / name)[0])
    assert np.array_equal(read_image(str(coco_dir / COCO_FILES[0])), load_image(coco_dir / COCO_FILES[0])[0])


def test_read_image_errors(tmp_path: Path, coco_dir: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"this is not a jpeg")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes((coco_dir / COCO_FILES[0]).read_bytes()[:2000])
    cases = {
        uri(broken): "not an image file Pillow can read",
        str(broken): "not an image file Pillow can read",
        uri(truncated): "cannot decode the image",
        uri(tmp_path / "missing.jpg"): "no such file (",
        uri(tmp_path): "is a folder, not an image",
        "nosuch://bucket/a.jpg": "pyarrow has no file system for nosuch:// URIs",
    }
    for path, reason in cases.items():
        with pytest.raises(ImageReadError) as caught:
            read_image(path)
        assert caught.value.path == path
        assert caught.value.reason.startswith(reason), (path, caught.value.reason)
        assert str(caught.value) == f"{path}: {caught.value.reason}"


# ---------------------------------------------------------------------------------------------------------------------
# Without pyarrow


def test_without_pyarrow_local_inputs_work_and_uris_name_the_extra(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    imgs = tree / "imgs"
    table = write_parquet(tree / "rows.parquet", path=["a.jpg"])
    monkeypatch.setitem(sys.modules, "pyarrow.fs", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    assert expand_job_inputs([str(imgs / "frame_1.jpg")]) == (refs(imgs / "frame_1.jpg"), [])
    assert np.array_equal(read_image(str(imgs / "frame_1.jpg")), load_image(imgs / "frame_1.jpg")[0])
    for call in (
        lambda: expand_job_inputs([uri(imgs)]),
        lambda: expand_job_inputs([str(table)]),
        lambda: read_image(uri(imgs / "frame_1.jpg")),
    ):
        with pytest.raises(MissingDependencyError, match=r'pip install "vitpose\[ray\]"'):
            call()
