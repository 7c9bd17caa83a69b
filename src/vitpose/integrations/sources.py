"""The inputs of a dataset-scale job (``vitpose predict INPUT... --engine ray``): what the user names, turned into the
images to read, and the reading of one image from a local path or a URI.

`expand_job_inputs(inputs, images=None)` takes, each in order (the results concatenated in that order, each path
once, at its first occurrence):

- a local image file, folder or glob pattern: what `vitpose.media.expand_inputs` gives for it (the local engine's
  rule: a folder's images directly inside it, in natural order; ``**`` recursive);
- a list file (``.txt``, ``.lst``): one path or URI a line (blank lines and ``#`` comments skipped), each a file, a
  folder or a glob pattern;
- a Parquet file (``.parquet``): a column ``path`` (else ``image``, ``file_name`` or ``file``) and optionally
  ``image_id``;
- a COCO annotation file (``.json``): its ``images`` (``file_name``, with ``id`` as the image id);
- a URI that pyarrow's file systems read (``file://``, ``s3://``, ``gs://``, ``hdfs://``, ...): a file of one of the
  kinds above (by suffix), a folder (its images directly inside) or a glob pattern.

Relative entries of list, Parquet and COCO files are relative to `images` when given, else to the folder of the file
naming them (for a URI: its parent URI). The entries of these files are not checked here (a list of a million
images must not be looked up one by one on the driver): an entry that does not exist, or is not an image, fails
when it is read (`read_image`), with its reason.

`read_image(path)` reads one image as RGB pixels: local paths through `vitpose.media.load_image`, URIs through
pyarrow's file systems and `vitpose.media.decode_image` (the same pixel rule and checks); every failure is an
`ImageReadError` naming the path.

pyarrow (part of the extra ``vitpose[ray]``) is imported only where it is needed: for URIs and Parquet files.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import numpy as np

from vitpose.datasets.coco import read_json
from vitpose.errors import AnnotationError, MissingDependencyError, VitPoseError
from vitpose.media import (
    IMAGE_SUFFIXES,
    FailedImage,
    decode_image,
    expand_inputs,
    image_read_error,
    is_image_file,
    is_pattern,
    load_image,
    natural_key,
)

__all__ = ["ImageRef", "expand_job_inputs", "is_uri", "read_image"]

LIST_SUFFIXES = (".txt", ".lst")
PARQUET_SUFFIXES = (".parquet",)
COCO_SUFFIXES = (".json",)
PATH_COLUMNS = ("path", "image", "file_name", "file")
"""The Parquet columns that can hold the image paths, in order of preference (the first present is used)."""

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")
# A URI's query (``?region=eu-west-1&anonymous=true``, options of pyarrow's file systems); a ``?`` not followed by
# ``name=value`` pairs up to the end is a glob character.
_QUERY = re.compile(r"^(.*)\?([A-Za-z_][A-Za-z0-9_.-]*=[^?/]*(?:&[A-Za-z_][A-Za-z0-9_.-]*=[^?/]*)*)$", re.DOTALL)
_KINDS = (
    f"image files ({', '.join(IMAGE_SUFFIXES)}), folders of images, glob patterns, list files"
    f" ({', '.join(LIST_SUFFIXES)}: one path or URI a line), Parquet files (.parquet, with a 'path' column) and"
    " COCO annotation files (.json, with 'images')"
)
_COCO_EXPECTED = "a COCO annotation file (a JSON object whose 'images' is a list of {'id', 'file_name'})"


@dataclass(frozen=True)
class ImageRef:
    """One image of a job: where it is, and its COCO image id when the input named one.

    Attributes:
        path: a local path, or a URI that pyarrow's file systems read (``file://``, ``s3://``, ``gs://``,
            ``hdfs://``, ...).
        image_id: the COCO image id when the input named it (a COCO file's ``id``, a Parquet ``image_id`` column),
            else None.
    """

    path: str
    image_id: int | str | None = None


def is_uri(text: str) -> bool:
    """Whether `text` is a URI, ``scheme://...`` with a scheme of two or more characters (a letter first, then
    letters, digits, ``+``, ``-`` or ``.``), so that a Windows path (``C:\\images``) is not one."""
    return isinstance(text, str) and _URI.match(text) is not None


def expand_job_inputs(inputs: Sequence[str], *, images: str | None = None) -> tuple[list[ImageRef], list[FailedImage]]:
    """The images that `inputs` name, each once (at its first occurrence), and the inputs that named nothing.

    Each input, in order (the results concatenated in that order):

    - a local image file, folder or glob pattern: exactly what `vitpose.media.expand_inputs` gives for it, with its
      failures (a missing path, a folder without images, a pattern matching nothing);
    - a list file (``.txt``, ``.lst``): one path or URI a line, surrounding white space stripped, blank lines and
      lines starting with ``#`` skipped; each line a file, a folder (its images) or a glob pattern (its matches);
    - a Parquet file (``.parquet``, local or a URI): the paths of its column ``path`` (else ``image``,
      ``file_name`` or ``file``, the first present), with the ``image_id`` column's values where it has one;
    - a COCO annotation file (``.json``): the ``file_name`` of each of its ``images``, with its ``id`` as image id;
    - a URI: a file of one of the kinds above (by its suffix), a folder (the images directly inside it, in natural
      order) or a glob pattern (``*``, ``?``, ``[...]``, ``**`` for any number of folders; hidden names are matched
      only by a pattern starting with ``.``), matched against the listing of the pattern's fixed prefix. A ``?``
      that starts ``name=value`` pairs at the end of a URI is its query (pyarrow's file system options), not a
      pattern, and is kept on every URI found.

    Relative entries of list, Parquet and COCO files are relative to `images` when given (a folder or a URI), else
    to the folder of the file naming them (for a URI, its parent URI); a relative entry joined to a URI is a path,
    percent-encoded into it (a space becomes ``%20``).

    The entries of list, Parquet and COCO files are not checked for existence here (a million-image list must not be
    looked up one by one): an entry that does not exist, or is not an image, is in the results and fails when it is
    read (`read_image`), with its reason. Only the lines of a list file that may be folders or patterns are looked
    at: a line with a glob character is expanded, a line without an image suffix is expanded when it is a folder.

    Args:
        inputs: paths, URIs, glob patterns, list, Parquet and COCO files.
        images: the folder (or URI) that relative entries of list, Parquet and COCO files are relative to.

    Returns:
        (the images, in order, each path once; a `FailedImage` for each input, or part of one, that named nothing,
        with the reason).

    Raises:
        MissingDependencyError: a URI or a Parquet file, and pyarrow is not installed.
    """
    out = _Collected()
    for item in inputs:
        item = os.fspath(item)
        if is_uri(item):
            _expand_uri(item, images, out, top=True)
        else:
            _expand_local(item, images, out)
    return out.refs, out.failed


def read_image(path: str) -> np.ndarray:
    """One image as (H, W, 3) RGB uint8: a local path through `vitpose.media.load_image`, a URI by its bytes through
    pyarrow's file systems and `vitpose.media.decode_image` (the same pixel rule and checks).

    Raises:
        ImageReadError: the image cannot be read (nothing at the path, permission denied, not an image, a file system
            that cannot be opened), naming the path, with a reason a user can act on.
        MissingDependencyError: a URI, and pyarrow is not installed.
    """
    path = os.fspath(path)
    if not is_uri(path):
        return load_image(path)[0]
    try:
        fs, where = _filesystem(path)
    except _SourceError as err:
        raise image_read_error(path, err.reason) from None
    try:
        data = _read_bytes(fs, where)
    except FileNotFoundError as err:
        raise image_read_error(path, f"no such file ({_arrow_message(err)})", "check the URI") from None
    except PermissionError as err:
        raise image_read_error(
            path, f"permission denied ({_arrow_message(err)})", "check the credentials and the object's permissions"
        ) from None
    except Exception as err:  # pyarrow's OSError / ArrowException for anything else
        message = _arrow_message(err)
        if "directory" in message.lower():
            raise image_read_error(path, "is a folder, not an image", "name the image files in it") from None
        raise image_read_error(
            path, f"cannot be read ({message})", "check the URI, the credentials and the network"
        ) from None
    return decode_image(data, path)


# ---------------------------------------------------------------------------------------------------------------------
# What is collected.


class _Collected:
    """The images found so far (each path once) and the failures."""

    def __init__(self) -> None:
        self.refs: list[ImageRef] = []
        self.failed: list[FailedImage] = []
        self._seen: set[str] = set()

    def add(self, path: str, image_id: int | str | None = None) -> None:
        key = path if is_uri(path) else os.path.normpath(path)
        if key not in self._seen:
            self._seen.add(key)
            self.refs.append(ImageRef(path, image_id))

    def fail(self, source: str, reason: str) -> None:
        self.failed.append(FailedImage(source, reason))

    def add_local(self, item: str) -> None:
        """A local file, folder or pattern, as `vitpose.media.expand_inputs` expands it."""
        paths, missing = expand_inputs([item])
        for path in paths:
            self.add(path)
        self.failed.extend(missing)


class _SourceError(VitPoseError):
    """A URI that cannot be opened or listed; `reason` says why and what to do."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _kind(suffix: str) -> str | None:
    suffix = suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in LIST_SUFFIXES:
        return "list"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    if suffix in COCO_SUFFIXES:
        return "coco"
    return None


def _other_kind(suffix: str) -> str:
    what = f"a {suffix} file" if suffix else "a file without a suffix"
    return f"{what} is not an input kind the Ray engine reads: it reads {_KINDS}"


# ---------------------------------------------------------------------------------------------------------------------
# Local inputs.


def _expand_local(item: str, images: str | None, out: _Collected) -> None:
    path = Path(item)
    if not path.is_file():
        out.add_local(item)  # a folder, a pattern, or nothing
        return
    kind = _kind(path.suffix)
    base = images if images is not None else os.path.dirname(item)
    if kind == "image":
        out.add_local(item)
    elif kind == "list":
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError:
            out.fail(item, "is not a UTF-8 text file: a list file holds one path or URI a line")
            return
        except OSError as err:
            out.fail(item, f"cannot read the list file ({err.strerror or err})")
            return
        _expand_list(item, text, base, out)
    elif kind == "parquet":
        _expand_parquet(item, base, out)
    elif kind == "coco":
        try:
            data = read_json(item, "COCO", expected=_COCO_EXPECTED)
        except AnnotationError as err:
            out.fail(item, str(err))
            return
        _expand_coco(item, data, base, out)
    else:
        out.fail(item, _other_kind(path.suffix))


def _resolve(entry: str, base: str) -> str:
    """`entry` of a list, Parquet or COCO file: as it is when a URI or absolute, else joined to `base`."""
    if is_uri(entry) or os.path.isabs(entry):
        return entry
    if is_uri(base):
        return _uri_join(base, entry)
    return os.path.join(base, entry)


def _expand_list(item: str, text: str, base: str, out: _Collected) -> None:
    count = 0
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        count += 1
        entry = _resolve(line, base)
        if is_uri(entry):
            body, _ = _split_query(entry)
            if _is_pattern_uri(body) or not is_image_file(body):
                _expand_uri(entry, None, out, top=False)  # a pattern or perhaps a folder: one listing or look-up
            else:
                out.add(entry)
        elif is_pattern(entry) or (not is_image_file(entry) and os.path.isdir(entry)):
            out.add_local(entry)
        else:
            out.add(entry)  # not checked: fails when read if it is not there
    if not count:
        out.fail(item, "the list file names no images (it holds only blank lines and # comments)")


def _is_pattern_uri(body: str) -> bool:
    """Whether a URI (without its query) is a glob pattern."""
    return is_pattern(body[body.index("://") + 3 :])


def _expand_coco(item: str, data: Any, base: str, out: _Collected) -> None:
    entries = _coco_images(data)
    if isinstance(entries, str):
        out.fail(item, entries)
        return
    for image_id, file_name in entries:
        out.add(_resolve(file_name, base), image_id)


def _coco_images(data: Any) -> list[tuple[int | str, str]] | str:
    """(id, file_name) of a COCO file's images, or the reason it is not a COCO annotation file."""
    if isinstance(data, list):
        return (
            f"holds a JSON list of {len(data)} items, not a COCO annotation file: expected {_COCO_EXPECTED} (a list "
            "is what COCO results and detections files hold)"
        )
    if not isinstance(data, dict):
        return f"holds a JSON {type(data).__name__}, not a COCO annotation file: expected {_COCO_EXPECTED}"
    if "images" not in data:
        keys = ", ".join(repr(k) for k in list(data)[:8]) + (", ..." if len(data) > 8 else "")
        found = f"a JSON object with the keys {keys}" if data else "an empty JSON object"
        return f"holds {found} but no 'images': expected {_COCO_EXPECTED}"
    images = data["images"]
    if not isinstance(images, list):
        return f"its 'images' is a JSON {type(images).__name__}: expected {_COCO_EXPECTED}"
    if not images:
        return "its 'images' list is empty: the COCO file names no images"
    entries: list[tuple[int | str, str]] = []
    for index, image in enumerate(images):
        if not isinstance(image, dict) or not isinstance(image.get("file_name"), str) or "id" not in image:
            text = repr(image)
            text = text if len(text) <= 60 else text[:57] + "..."
            return f"images[{index}] is {text}: each image of a COCO annotation file needs an 'id' and a 'file_name'"
        image_id = image["id"]
        if isinstance(image_id, bool) or not isinstance(image_id, (int, str)):
            return f"images[{index}] has the id {image_id!r}: an image id must be an integer or a string"
        entries.append((image_id, image["file_name"]))
    return entries


def _expand_parquet(item: str, base: str, out: _Collected, fs: Any = None, where: str | None = None) -> None:
    """A Parquet file's paths (a local file, or `where` on the pyarrow file system `fs`)."""
    pq = _pyarrow("pyarrow.parquet", "reading a Parquet file")
    handle = None
    try:
        handle = fs.open_input_file(where) if fs is not None else item
        table_file = pq.ParquetFile(handle)
        names = list(table_file.schema_arrow.names)
        column = next((name for name in PATH_COLUMNS if name in names), None)
        if column is None:
            found = ", ".join(repr(n) for n in names) if names else "none"
            accepted = ", ".join(repr(n) for n in PATH_COLUMNS)
            out.fail(
                item,
                f"has no column of image paths: its columns are {found}; expected one of {accepted} (the first "
                "present is used), holding paths or URIs, and optionally 'image_id'",
            )
            return
        wanted = [column] + (["image_id"] if "image_id" in names else [])
        table = table_file.read(columns=wanted)
    except Exception as err:  # pyarrow's ArrowInvalid / OSError for a file that is not Parquet or is damaged
        out.fail(
            item,
            f"cannot be read as a Parquet file ({_arrow_message(err)}); pass a Parquet file with a 'path' column",
        )
        return
    finally:
        if handle is not None and fs is not None:
            handle.close()
    paths = table.column(column).to_pylist()
    ids = table.column("image_id").to_pylist() if "image_id" in wanted else [None] * len(paths)
    if not paths:
        out.fail(item, "the Parquet file has no rows: it names no images")
        return
    bad = next((value for value in paths if value is not None and not isinstance(value, str)), None)
    if bad is not None:
        kind = table.schema.field(column).type
        out.fail(item, f"its column {column!r} holds {kind} values, not paths: expected strings (paths or URIs)")
        return
    image_ids: list[int | str | None] = []
    for value in ids:
        image_id = _image_id(value)
        if image_id is _BAD:
            kind = table.schema.field("image_id").type
            out.fail(item, f"its column 'image_id' holds {kind} values {value!r}: expected integers or strings")
            return
        image_ids.append(image_id)
    empty = [row for row, value in enumerate(paths) if not value or not value.strip()]
    for value, image_id in zip(paths, image_ids, strict=True):
        if value and value.strip():
            out.add(_resolve(value.strip(), base), image_id)
    if empty:
        rows = ", ".join(str(row) for row in empty[:5]) + (" ..." if len(empty) > 5 else "")
        out.fail(item, f"{len(empty)} of its rows have no path (null or empty): rows {rows}; they are left out")


_BAD = object()


def _image_id(value: Any) -> Any:
    """A Parquet `image_id` value as an int or str (None for null / NaN), or `_BAD`."""
    if value is None:
        return None
    if isinstance(value, bool):
        return _BAD
    if isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        if value != value:  # NaN: pandas' missing value
            return None
        return int(value) if value.is_integer() else _BAD
    return _BAD


# ---------------------------------------------------------------------------------------------------------------------
# URIs.


def _pyarrow(module: str, what: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(f'{what} needs pyarrow: pip install "vitpose[ray]"') from None


def _arrow_message(err: BaseException) -> str:
    """The first line of a pyarrow error (some run to pages, e.g. HDFS's search for a Java runtime), shortened."""
    lines = str(err).strip().splitlines()
    text = re.sub(r"^\[Errno \d+\]\s*", "", lines[0] if lines else type(err).__name__)
    return text if len(text) <= 300 else text[:297] + "..."


def _split_query(uri: str) -> tuple[str, str]:
    """(the URI without its query, the query without ``?``; "" for none)."""
    found = _QUERY.match(uri)
    return (found.group(1), found.group(2)) if found else (uri, "")


def _with_query(body: str, query: str) -> str:
    return f"{body}?{query}" if query else body


def _scheme(uri: str) -> str:
    return uri[: uri.index("://")]


def _filesystem(uri: str) -> tuple[Any, str]:
    """(pyarrow file system, path in it) of a URI, or a `_SourceError` saying why it cannot be opened."""
    pafs = _pyarrow("pyarrow.fs", f"reading {_scheme(uri)}:// URIs")
    try:
        return pafs.FileSystem.from_uri(uri)
    except Exception as err:  # ArrowInvalid (a ValueError), OSError (credentials, network, a missing library)
        raise _SourceError(_open_problem(uri, err)) from None


def _open_problem(uri: str, err: BaseException) -> str:
    message = _arrow_message(err)
    scheme = _scheme(uri)
    if "Unrecognized filesystem type" in message:
        return (
            f"pyarrow has no file system for {scheme}:// URIs ({message}); it reads file://, s3://, gs:// and hdfs:// "
            "(as its build allows): check the URI's scheme, or copy the images where pyarrow can read them"
        )
    if "Cannot parse URI" in message:
        return (
            f"not a valid URI ({message}): percent-encode spaces and special characters in it (%20 for a space, %25 "
            "for %)"
        )
    if "hostname in non-Windows local URI" in message or "cannot be relative" in message:
        return f"not a valid file URI ({message}): write file:// and an absolute path, as file:///data/images"
    return (
        f"cannot open the {scheme}:// file system ({message}): check the URI, the credentials (s3://: AWS_PROFILE, or "
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; gs://: GOOGLE_APPLICATION_CREDENTIALS), the network, and for "
        "hdfs:// a Java runtime and HADOOP_HOME"
    )


def _list_problem(err: BaseException) -> str:
    return f"cannot be listed ({_arrow_message(err)}): check the URI, the credentials, the permissions and the network"


def _uri_join(base: str, relative: str) -> str:
    """A relative path joined to a folder URI (percent-encoded; ``..`` resolved; the base's query kept)."""
    body, query = _split_query(base)
    start = body.index("://") + 3
    cut = body.find("/", start)
    root, folder = (body, "/") if cut < 0 else (body[:cut], body[cut:])
    folder = folder if folder.endswith("/") else folder + "/"
    joined = posixpath.normpath(posixpath.join(folder, quote(relative.replace(os.sep, "/"))))
    return _with_query(root + joined, query)


def _uri_parent(uri: str) -> str:
    """The folder URI of a file URI (with its query)."""
    body, query = _split_query(uri)
    return _with_query(body[: body.rfind("/") + 1], query)


def _child(folder_body: str, relative: str, query: str) -> str:
    """The URI of `relative` (a path, as pyarrow lists it) below a folder URI."""
    folder = folder_body if folder_body.endswith("/") else folder_body + "/"
    return _with_query(folder + quote(relative), query)


def _read_bytes(fs: Any, where: str) -> bytes:
    with fs.open_input_stream(where) as stream:
        return bytes(stream.read())


def _expand_uri(uri: str, images: str | None, out: _Collected, *, top: bool) -> None:
    """A URI input (`top`) or a URI line of a list file (not `top`: a file, or one that is not there, is kept as an
    entry and checked when read; a folder or pattern is expanded)."""
    body, query = _split_query(uri)
    if _is_pattern_uri(body):
        _expand_uri_pattern(uri, body, query, out)
        return
    try:
        fs, where = _filesystem(uri)
    except _SourceError as err:
        out.fail(uri, err.reason)
        return
    pafs = _pyarrow("pyarrow.fs", "reading URIs")
    try:
        info = fs.get_file_info(where)
    except Exception as err:
        out.fail(uri, _list_problem(err))
        return
    if info.type == pafs.FileType.Directory:
        _expand_uri_folder(uri, body, query, fs, where, out)
        return
    if not top:
        out.add(uri)
        return
    if info.type == pafs.FileType.NotFound:
        out.fail(uri, "no such file or folder (nothing at this URI): check the path; object names are case-sensitive")
        return
    suffix = posixpath.splitext(body)[1]
    kind = _kind(suffix)
    base = images if images is not None else _uri_parent(uri)
    if kind == "image":
        out.add(uri)
    elif kind == "parquet":
        _expand_parquet(uri, base, out, fs, where)
    elif kind in ("list", "coco"):
        try:
            data = _read_bytes(fs, where)
        except Exception as err:
            out.fail(uri, f"cannot be read ({_arrow_message(err)}): check the credentials and the permissions")
            return
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            what = "a list file holds one path or URI a line" if kind == "list" else f"pass {_COCO_EXPECTED}"
            out.fail(uri, f"is not a UTF-8 text file: {what}")
            return
        if kind == "list":
            _expand_list(uri, text, base, out)
            return
        try:
            content = json.loads(text)
        except json.JSONDecodeError as err:
            where = f"line {err.lineno} column {err.colno}"
            out.fail(uri, f"is not valid JSON ({err.msg} at {where}): pass {_COCO_EXPECTED}")
            return
        except RecursionError:
            out.fail(uri, f"its JSON is nested too deeply to be read: pass {_COCO_EXPECTED}")
            return
        _expand_coco(uri, content, base, out)
    else:
        out.fail(uri, _other_kind(suffix))


def _expand_uri_folder(uri: str, body: str, query: str, fs: Any, where: str, out: _Collected) -> None:
    """The images directly in a folder URI, in natural order (as `vitpose.media.images_in_folder`)."""
    pafs = _pyarrow("pyarrow.fs", "reading URIs")
    try:
        infos = fs.get_file_info(pafs.FileSelector(where, recursive=False))
    except Exception as err:
        out.fail(uri, _list_problem(err))
        return
    names = [info.base_name for info in infos if info.type == pafs.FileType.File and is_image_file(info.base_name)]
    if not names:
        out.fail(uri, f"folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return
    for name in sorted(names, key=natural_key):
        out.add(_child(body, name, query))


def _expand_uri_pattern(uri: str, body: str, query: str, out: _Collected) -> None:
    """The files a glob pattern URI matches, in natural order, from the listing of its fixed prefix."""
    start = body.index("://") + 3
    first = min(body.index(ch, start) for ch in "*?[" if ch in body[start:])
    cut = body.rfind("/", start, first)
    if cut < 0:
        out.fail(uri, "a pattern must come after the bucket or host name (as s3://bucket/images/*.jpg)")
        return
    prefix, pattern = body[: cut + 1], unquote(body[cut + 1 :])
    try:
        fs, root = _filesystem(_with_query(prefix, query))
    except _SourceError as err:
        out.fail(uri, err.reason)
        return
    pafs = _pyarrow("pyarrow.fs", "reading URIs")
    parts = pattern.split("/")
    try:
        infos = fs.get_file_info(
            pafs.FileSelector(root, recursive=len(parts) > 1 or "**" in parts, allow_not_found=True)
        )
    except Exception as err:
        out.fail(uri, _list_problem(err))
        return
    root = root.rstrip("/")
    found: list[str] = []
    for info in infos:
        if info.type != pafs.FileType.File or not info.path.startswith(root + "/"):
            continue
        relative = info.path[len(root) + 1 :]
        if _match(parts, relative.split("/")):
            found.append(relative)
    if not found:
        out.fail(uri, "the pattern matches no file")
        return
    for relative in sorted(found, key=natural_key):
        out.add(_child(prefix, relative, query))


def _match(parts: Sequence[str], names: Sequence[str]) -> bool:
    """Whether a file's path (its `names`, folder by folder) matches a pattern (its `parts`), as `glob` does:
    ``*``, ``?`` and ``[...]`` within one name, ``**`` for any number of folders (a trailing ``**``: any file below),
    and hidden names (``.x``) matched only by a part starting with ``.`` (``**`` enters no hidden folder)."""
    if not parts:
        return not names
    head, rest = parts[0], parts[1:]
    if head == "**":
        if not rest:
            return bool(names) and not any(name.startswith(".") for name in names)
        for skip in range(len(names)):
            if skip and names[skip - 1].startswith("."):
                return False
            if _match(rest, names[skip:]):
                return True
        return False
    if not names:
        return False
    name = names[0]
    if name.startswith(".") and not head.startswith("."):
        return False
    return fnmatchcase(name, head) and _match(rest, names[1:])
