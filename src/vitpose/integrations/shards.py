"""The results of a job that runs elsewhere (the Ray engine), on disk as it goes: shards, their journal, the merge.

    OUT/shards/journal.jsonl        the settings, then one line per finished shard: its file and its images
    OUT/shards/part-00000.jsonl     one row per person: the entries of predictions.json, plus the image's "path"
      (or part-00000.parquet)       (columns image_id, category_id, keypoints, score, bbox, file_name, path)
    OUT/predictions.json            the merge: every person of every image done, in input order (as the local path)
    OUT/errors.jsonl                one line per input that gave no result: {"path": ..., "reason": ...}

A shard is written whole (to a temporary name, then renamed) before its journal line, which is flushed and fsynced:
an image counts as done once its shard's line is in the journal, so a killed job loses at most the shards it had
not finished, and a shard file without its line (cut off by the kill) is removed by the next run. A rerun with
`resume` skips the images done and tries the failed ones again; nothing is doubled, since the merge takes each
image's rows from the one shard that finished it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vitpose.errors import MissingDependencyError, VitPoseError
from vitpose.outputs import Journal, atomic_path, atomic_write_text, json_text, read_journal, settings_changes

__all__ = [
    "ERRORS_NAME",
    "JOURNAL_KIND",
    "PERSON_COLUMNS",
    "SHARDS_DIR",
    "SHARD_FORMATS",
    "ImageRecord",
    "ShardedResults",
    "read_shard",
]

SHARDS_DIR = "shards"
JOURNAL_NAME = "journal.jsonl"
JOURNAL_KIND = "predict_shards"
ERRORS_NAME = "errors.jsonl"
SHARD_FORMATS = ("jsonl", "parquet")
PERSON_COLUMNS = ("image_id", "category_id", "keypoints", "score", "bbox", "file_name", "path")
"""The columns of a shard's rows: a predictions.json entry (`PoseResult.to_coco`) and the image's path."""
_SHARD_NAME = re.compile(r"^part-(\d+)\.(jsonl|parquet)$")


@dataclass(frozen=True)
class ImageRecord:
    """One image of a finished shard: its position in the job's inputs, `path`, `image_id`, the number of `people`
    found, and `error`: None, or why it gave no result."""

    position: int
    path: str
    image_id: Any
    people: int
    error: str | None = None

    def line(self) -> list[Any]:
        return [self.position, self.path, self.image_id, self.people, self.error]

    @classmethod
    def from_line(cls, value: Any, where: str) -> ImageRecord:
        if not isinstance(value, list) or len(value) != 5 or not isinstance(value[0], int):
            raise VitPoseError(
                f"{where}: an image entry is damaged ({value!r}); remove the shards folder to start again"
            )
        return cls(*value)


def _parquet() -> Any:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingDependencyError('Parquet shards need pyarrow: pip install "vitpose[ray]"') from None
    return pa, pq


def _write_parquet(path: Path, rows: list[dict[str, Any]]) -> None:
    pa, pq = _parquet()
    string_ids = any(isinstance(row["image_id"], str) for row in rows)
    schema = pa.schema(
        [
            ("image_id", pa.string() if string_ids else pa.int64()),
            ("category_id", pa.int64()),
            ("keypoints", pa.list_(pa.float64())),
            ("score", pa.float64()),
            ("bbox", pa.list_(pa.float64())),
            ("file_name", pa.string()),
            ("path", pa.string()),
        ]
    )
    table = pa.Table.from_pylist([{k: row.get(k) for k in PERSON_COLUMNS} for row in rows], schema=schema)
    with atomic_path(path) as temporary:
        pq.write_table(table, temporary)


def read_shard(path: str | Path) -> list[dict[str, Any]]:
    """The person rows of a shard file (.jsonl or .parquet), as dicts with `PERSON_COLUMNS` (a row of a result
    without a file name has none)."""
    path = Path(path)
    if path.suffix == ".parquet":
        _, pq = _parquet()
        rows = pq.read_table(path).to_pylist()
        return [{k: v for k, v in row.items() if not (k == "file_name" and v is None)} for row in rows]
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class ShardedResults:
    """The shards of a job in `out` (see the module's docstring): started fresh, or continued with `resume`.

    Args:
        out: the output folder.
        settings: what decides the results (a resumed job must have the same; the shard format is one of them).
        resume: continue the job whose shards are in `out`. Without it, a folder that holds one is refused (its
            results would be mixed with another job's).
        shard_format: "jsonl" or "parquet".
    """

    def __init__(self, out: str | Path, settings: dict[str, Any], *, resume: bool, shard_format: str = "jsonl") -> None:
        if shard_format not in SHARD_FORMATS:
            raise VitPoseError(f"shard format must be one of {', '.join(SHARD_FORMATS)}, got {shard_format!r}")
        self.out = Path(out)
        self.folder = self.out / SHARDS_DIR
        self.format = shard_format
        self.settings = {**settings, "shard_format": shard_format}
        path = self.folder / JOURNAL_NAME
        entries: list[dict[str, Any]] = []
        if path.is_file():
            then, entries = read_journal(path, JOURNAL_KIND)
            count = sum(len(entry.get("images", [])) for entry in entries)
            if not resume:
                raise VitPoseError(
                    f"{self.out} holds the shards of an earlier Ray run ({count} images recorded, {path}): add "
                    "--resume to continue it (the images done are skipped), or choose another --out"
                )
            changed = settings_changes(then, self.settings)
            if changed:
                raise VitPoseError(
                    f"--resume: the run whose shards are in {self.out} had other settings: {changed}; resume with the "
                    "same options, or choose another --out"
                )
        self.entries = [self._checked(entry, path) for entry in entries]
        self._remove_unfinished()
        self.next_index = 1 + max((int(_SHARD_NAME.match(e["shard"]).group(1)) for e in self.entries), default=-1)
        self.journal: Journal | None = None

    def _checked(self, entry: dict[str, Any], path: Path) -> dict[str, Any]:
        name = entry.get("shard")
        if not isinstance(name, str) or not _SHARD_NAME.match(name) or not isinstance(entry.get("images"), list):
            raise VitPoseError(f"{path}: a damaged line ({str(entry)[:80]}); remove {self.folder} to start again")
        if not (self.folder / name).is_file():
            raise VitPoseError(
                f"{path} lists {name}, which is missing from {self.folder}: its images' results are lost; remove "
                f"{self.folder} (and rerun every image) or restore the file"
            )
        return {"shard": name, "images": [ImageRecord.from_line(v, str(path)) for v in entry["images"]]}

    def _remove_unfinished(self) -> None:
        """Shard files without their journal line (a kill between the two) and temporary files: never results."""
        if not self.folder.is_dir():
            return
        listed = {entry["shard"] for entry in self.entries}
        for file in self.folder.iterdir():
            if file.is_file() and ((_SHARD_NAME.match(file.name) and file.name not in listed) or ".tmp" in file.name):
                file.unlink()

    # ------------------------------------------------------------------ what is done
    def records(self) -> Iterable[tuple[str, ImageRecord]]:
        for entry in self.entries:
            for record in entry["images"]:
                yield entry["shard"], record

    def done(self) -> dict[int, ImageRecord]:
        """position -> the record of each image finished with a result."""
        return {r.position: r for _, r in self.records() if r.error is None}

    def failed(self) -> dict[int, ImageRecord]:
        """position -> the latest failure of each image that has no result."""
        done = self.done()
        return {r.position: r for _, r in self.records() if r.error is not None and r.position not in done}

    def check_inputs(self, paths: Sequence[str]) -> None:
        """Refuse to continue with other inputs: every recorded image must be the input at its position now."""
        for _, record in self.records():
            if not 0 <= record.position < len(paths) or paths[record.position] != record.path:
                raise VitPoseError(
                    f"--resume: the inputs differ from the run's in {self.out} (its image {record.path!r} is not "
                    f"input {record.position} now): give the same inputs, or choose another --out"
                )

    # ------------------------------------------------------------------ writing
    def start(self) -> None:
        """Open the journal (rewritten with the finished shards' lines: a line a kill cut short is dropped)."""
        lines = [{"shard": e["shard"], "images": [r.line() for r in e["images"]]} for e in self.entries]
        self.journal = Journal(self.folder / JOURNAL_NAME, JOURNAL_KIND, self.settings, lines)

    def write_shard(self, images: Sequence[ImageRecord], people: Sequence[dict[str, Any]]) -> str:
        """Write one shard (the person rows of `images`, each with its image's `path`), then its journal line."""
        if self.journal is None:
            self.start()
        name = f"part-{self.next_index:05d}.{self.format}"
        path = self.folder / name
        if self.format == "parquet":
            _write_parquet(path, list(people))
        else:
            atomic_write_text(path, "".join(json_text(row) + "\n" for row in people))
        self.journal.write({"shard": name, "images": [r.line() for r in images]})
        self.entries.append({"shard": name, "images": list(images)})
        self.next_index += 1
        return name

    def close(self) -> None:
        if self.journal is not None:
            self.journal.close(remove=False)  # kept: the index of the shards, and what --resume reads
            self.journal = None

    # ------------------------------------------------------------------ merging
    def merge(self, predictions_path: str | Path, errors_path: str | Path, extra_errors: Sequence[Any] = ()) -> int:
        """Write predictions.json (every person of every image done, in input order, the entries of the local path)
        and the errors file (the failures, in input order, after `extra_errors`: (source, reason) pairs for inputs
        that named nothing); returns the number of people."""
        done = self.done()
        owner = {record.position: shard for shard, record in self.records() if record.error is None}
        by_position: dict[int, list[dict[str, Any]]] = {position: [] for position in done}
        position_of = {record.path: record.position for record in done.values()}
        for shard in dict.fromkeys(owner.values()):
            for row in read_shard(self.folder / shard):
                position = position_of.get(row.get("path"))
                if position is None or owner[position] != shard:
                    continue  # an image a later shard finished again: its rows come from that one
                by_position[position].append({k: v for k, v in row.items() if k != "path"})
        people = [row for position in sorted(by_position) for row in by_position[position]]
        atomic_write_text(predictions_path, json_text(people))
        failures = [{"path": str(source), "reason": str(reason)} for source, reason in extra_errors]
        failures += [{"path": r.path, "reason": r.error} for _, r in sorted(self.failed().items())]
        atomic_write_text(errors_path, "".join(json_text(line) + "\n" for line in failures))
        return len(people)
