"""Safe outputs: a file the run writes never replaces one it reads, and a result file is never left half written.

    inputs = InputFiles([("the input image", p) for p in images])
    inputs.check_outputs([out / "predictions.json"], option="--out", hint="choose another --out folder")
    atomic_write_text(out / "predictions.json", json.dumps(predictions))

Paths are compared as the files they name: by real path (symlinks resolved, `./a` and `a` alike) and, for files that
exist, by device and inode (hard links). A result file is written to a temporary file in its own folder, flushed to
disk (`fsync`) and renamed over the target (`os.replace`, atomic on POSIX and Windows): a reader, or a run that is
killed mid-write, sees the old file or the new one, never a part. The commands use these before they open anything
for writing, so a refused run has written nothing.

Interruption (`stop_signals`, `protected`): the one place that handles Ctrl-C (SIGINT) and SIGTERM for the commands
that stream results (`vitpose predict`, `eval`, `video`; `vitpose train` has its own, which stops after a step).
Inside `stop_signals()` both signals raise `KeyboardInterrupt` in the main thread, as Ctrl-C does by default, so a
long computation stops at once; but a signal that arrives inside a `protected()` block (writing one result: an
annotated image and its line of the partial results) is held until the block ends, so a result is recorded whole
or not at all. Outside `stop_signals()`, `protected()` does nothing (the library changes no signal handling itself).

It sits at the bottom of the layers (it needs only `vitpose.errors`): the command line and the library writers
(`vitpose.video.process_video`) share it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from vitpose.errors import OutputError, VitPoseError

__all__ = [
    "InputFiles",
    "Journal",
    "OutputError",
    "atomic_open",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "files_of",
    "json_text",
    "progress_bar",
    "protected",
    "read_journal",
    "replace_durably",
    "settings_changes",
    "stop_signal",
    "stop_signals",
]

PathLike = str | os.PathLike[str]


def _umask() -> int:
    mask = os.umask(0o022)  # read once, at import (os.umask can only be read by setting it)
    os.umask(mask)
    return mask


_UMASK = _umask()


def _real(path: PathLike) -> str:
    return os.path.realpath(os.fspath(path))


def _identity(path: PathLike) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return (st.st_dev, st.st_ino)


def files_of(path: PathLike | None) -> list[Path]:
    """The files a path given as an input stands for: the file itself, or the files directly in a folder (a
    checkpoint folder: config.json, model.safetensors, ...); nothing for what does not exist (a hub id)."""
    if path is None:
        return []
    p = Path(path)
    try:
        if p.is_dir():
            return [child for child in p.iterdir() if child.is_file()]
        if p.exists():
            return [p]
    except OSError:
        pass
    return []


class InputFiles:
    """The files a run reads, to check the files it will write against.

    Args:
        inputs: (what, path) pairs: `what` names the input in the error ("the input image", "--boxes").
    """

    def __init__(self, inputs: Iterable[tuple[str, PathLike]] = ()) -> None:
        self._by_real: dict[str, tuple[str, str]] = {}
        self._by_id: dict[tuple[int, int], tuple[str, str]] = {}
        self._dirs: list[tuple[str, str, str]] = []  # (real path + sep, what, path) of folders no output may enter
        for what, path in inputs:
            self.add(what, path)

    def add(self, what: str, path: PathLike) -> None:
        """Add one input file."""
        entry = (what, os.fspath(path))
        self._by_real.setdefault(_real(path), entry)
        identity = _identity(path)
        if identity is not None:
            self._by_id.setdefault(identity, entry)

    def add_folder(self, what: str, path: PathLike) -> None:
        """An input folder whose whole tree no output may enter (a checkpoint folder that is replaced as a whole)."""
        self._dirs.append((_real(path).rstrip(os.sep) + os.sep, what, os.fspath(path)))

    def find(self, output: PathLike) -> tuple[str, str] | None:
        """(what, path) of the input that `output` would replace, or None."""
        real = _real(output)
        hit = self._by_real.get(real)
        if hit is None:
            identity = _identity(output)
            hit = self._by_id.get(identity) if identity is not None else None
        if hit is None:
            for prefix, what, path in self._dirs:
                if real == prefix[:-1] or real.startswith(prefix):
                    return (what, path)
        return hit

    def inside(self, folder: PathLike) -> tuple[str, str] | None:
        """(what, path) of an input in `folder`'s tree (a folder the run replaces as a whole), or None."""
        prefix = _real(folder).rstrip(os.sep) + os.sep
        for real, hit in self._by_real.items():
            if real.startswith(prefix):
                return hit
        return None

    def check_outputs(self, outputs: Iterable[PathLike], *, option: str, hint: str, command: str = "") -> None:
        """Raise `OutputError` if one of `outputs` is one of the inputs (nothing has been written yet).

        Args:
            outputs: the files the run will write.
            option: the option that named them ("--out DIR"), for the message.
            hint: what to do instead ("choose another --out folder").
        """
        for output in outputs:
            hit = self.find(output)
            if hit is not None:
                what, path = hit
                raise OutputError(
                    f"{option}: writing {output} would overwrite {what} {path}; nothing was written: {hint}"
                )


@contextlib.contextmanager
def atomic_open(
    path: PathLike, mode: str = "w", *, encoding: str | None = "utf-8", sync_folder: bool = True
) -> Iterator[IO[Any]]:
    """Open a temporary file beside `path` for writing; on a clean exit it is flushed, `fsync`ed and renamed over
    `path`; on an exception (Ctrl-C included) it is removed and `path` is left as it was.

    `mode` is "w" (text, `encoding`) or "wb". `sync_folder`: make the rename durable at once (`fsync_folder`);
    False leaves that to the caller, who syncs the folder once for many files (before recording them as done)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, mode, encoding=None if mode == "wb" else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(OSError):  # mkstemp makes it 0600; give it the mode a plain open() would
            os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if sync_folder:
        fsync_folder(folder)


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """A temporary path beside `path` (same suffix) for a writer that takes a file name (ONNX, OpenCV); on a clean
    exit the file it wrote is `fsync`ed and renamed over `path`; on an exception it is removed."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=folder)
    os.close(fd)
    try:
        yield Path(tmp)
        replace_durably(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def replace_durably(source: PathLike, target: PathLike) -> None:
    """`fsync` the finished file `source`, give it a plain file's mode and rename it over `target` (atomic)."""
    fd = os.open(source, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    with contextlib.suppress(OSError):
        os.chmod(source, 0o666 & ~_UMASK)
    os.replace(source, target)
    fsync_folder(Path(target).parent if str(Path(target).parent) else Path("."))


def fsync_folder(folder: PathLike) -> None:
    """Make the renames into `folder` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def json_text(value: Any, **kwargs: Any) -> str:
    """`json.dumps(value, **kwargs)` that is always valid JSON: a NaN or infinite float (a diverged loss, a metric
    with nothing to measure) is written as null, never as the `NaN` / `Infinity` that strict JSON readers reject."""
    try:  # the common case, at json's speed: nothing to replace
        return json.dumps(value, allow_nan=False, **kwargs)
    except ValueError:
        return json.dumps(_finite(value), allow_nan=False, **kwargs)


def atomic_write_bytes(path: PathLike, data: bytes, *, sync_folder: bool = True) -> None:
    """Write `data` to `path` atomically (see `atomic_open`)."""
    with atomic_open(path, "wb", sync_folder=sync_folder) as handle:
        handle.write(data)


def atomic_write_text(path: PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write `text` to `path` atomically (see `atomic_open`)."""
    with atomic_open(path, "w", encoding=encoding) as handle:
        handle.write(text)


# ---------------------------------------------------------------------------------------------- interruption
SIGNAL_NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}


class Interruption:
    """What `stop_signals` saw: `signal` is "Ctrl-C" or "SIGTERM" once one arrived (None before)."""

    def __init__(self) -> None:
        self.signal: str | None = None
        self._held = 0  # depth of protected() blocks
        self._pending = False  # a signal arrived inside one
        self._ignore = False

    def _handler(self, signum: int, frame: Any) -> None:
        self.signal = self.signal or SIGNAL_NAMES.get(signum, f"signal {signum}")
        if self._ignore:
            return
        if self._held:
            self._pending = True
            return
        raise KeyboardInterrupt


_active: list[Interruption] = []


@contextlib.contextmanager
def stop_signals() -> Iterator[Interruption]:
    """SIGINT and SIGTERM raise `KeyboardInterrupt` (held inside `protected()`) until the block ends; the previous
    handlers are restored then. In a thread other than the main one (where Python cannot set handlers) it only
    yields the `Interruption`."""
    state = Interruption()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return
    previous = [(sig, signal.signal(sig, state._handler)) for sig in (signal.SIGINT, signal.SIGTERM)]
    _active.append(state)
    try:
        yield state
    finally:
        _active.remove(state)
        for sig, old in previous:
            signal.signal(sig, old)


@contextlib.contextmanager
def protected(*, raise_pending: bool = True) -> Iterator[None]:
    """Hold Ctrl-C / SIGTERM while the block runs (writing one result); a signal that came in is raised as
    `KeyboardInterrupt` when it ends (`raise_pending=False`: dropped, for the last writes of a run that is already
    stopping). Outside `stop_signals()` it does nothing."""
    if not _active:
        yield
        return
    state = _active[-1]
    state._held += 1
    ignore = state._ignore
    if not raise_pending:
        state._ignore = True
    try:
        yield
    except BaseException:
        state._held -= 1
        state._ignore = ignore
        if state._held == 0:
            state._pending = False  # an exception is on its way out already
        raise
    state._held -= 1
    state._ignore = ignore
    if state._held == 0 and state._pending:
        state._pending = False
        raise KeyboardInterrupt


def progress_bar(iterable: Any = None, **options: Any) -> Any:
    """A tqdm progress bar (`tqdm(iterable, **options)`), built with Ctrl-C / SIGTERM held (`protected`).

    A signal that lands inside tqdm's constructor leaves a half-built bar whose destructor prints a traceback
    ("Exception ignored in tqdm.__del__") under the command's own message; held, the signal is raised once the bar
    exists, and the bar closes cleanly with the run.
    """
    from tqdm import tqdm

    with protected():
        return tqdm(iterable, **options)


def stop_signal() -> str:
    """How the current run was interrupted, for messages: "Ctrl-C" (also the default) or "SIGTERM"."""
    return (_active[-1].signal if _active else None) or "Ctrl-C"


# --------------------------------------------------------------------------- partial results (--resume)
JOURNAL_VERSION = 1


def _journal_header(kind: str, settings: dict[str, Any]) -> dict[str, Any]:
    return {f"vitpose_{kind}": JOURNAL_VERSION, "settings": settings}


def read_journal(path: PathLike, kind: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(settings, entries) of the partial results `Journal` wrote for `vitpose KIND` (`kind`: "predict", "eval").

    A last line that a kill cut short is dropped (its image is simply redone); any other damage, or the file of
    another command, is a `VitPoseError` saying to remove the file.
    """
    path = Path(path)
    lines = path.read_text(encoding="utf-8").split("\n")
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number >= len(lines) - 1:  # the last line, cut short by a kill: that image is simply redone
                break
            raise VitPoseError(f"{path}: line {number} is not JSON; remove the file to start again") from None
    header = records[0] if records else {}
    if not isinstance(header, dict) or header.get(f"vitpose_{kind}") != JOURNAL_VERSION:
        raise VitPoseError(f"{path}: not the partial results of vitpose {kind}; remove it to start again")
    settings = header.get("settings")
    return (settings if isinstance(settings, dict) else {}), [r for r in records[1:] if isinstance(r, dict)]


def settings_changes(then: dict[str, Any], now: dict[str, Any]) -> str | None:
    """`key (old then, new now), ...` for the settings of `now` that differ from an interrupted run's, else None."""
    changed = [k for k in now if then.get(k) != now[k]]
    return ", ".join(f"{k} ({then.get(k)!r} then, {now[k]!r} now)" for k in changed) or None


class Journal:
    """The partial results of a run in progress: a header (the command and its settings), then one JSON line per
    finished image, each flushed and fsynced as it is written (`read_journal` reads it back for --resume).

    It is started atomically with the lines of the images already done (which drops a last line that a kill cut
    short); `lazy`: only at the first `write` (or at `close(remove=False)`), so a run that fails before any image
    leaves no file.
    """

    def __init__(
        self,
        path: PathLike,
        kind: str,
        settings: dict[str, Any],
        done: Iterable[dict[str, Any]] = (),
        *,
        lazy: bool = False,
    ) -> None:
        self.path = Path(path)
        self._lines = [_journal_header(kind, settings), *done]
        self._file: IO[str] | None = None
        if not lazy:
            self._start()

    def _start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, "".join(json_text(line) + "\n" for line in self._lines))
        self._file = self.path.open("a", encoding="utf-8")

    @property
    def started(self) -> bool:
        return self._file is not None

    def write(self, entry: dict[str, Any]) -> None:
        """Record one finished image (flushed and fsynced before this returns)."""
        self.write_many([entry])

    def write_many(self, entries: Sequence[dict[str, Any]]) -> None:
        """Record several finished images with one write and one fsync (a group commit)."""
        if not entries:
            return
        if self._file is None:
            self._start()
        self._file.write("".join(json_text(entry) + "\n" for entry in entries))
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self, remove: bool) -> None:
        """Close the file; remove it (a finished run), or keep it for --resume (started if nothing was written)."""
        if self._file is None and not remove:
            self._start()
        if self._file is not None:
            self._file.close()
            self._file = None
        if remove:
            self.path.unlink(missing_ok=True)
