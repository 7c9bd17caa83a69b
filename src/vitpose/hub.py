"""The Hugging Face hub: what is a hub id, where a checkpoint's file is (local folder or hub cache), and which
`from_pretrained` keywords are hub options."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vitpose.errors import CheckpointError

ORIGINAL_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".safetensors")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# The keywords `huggingface_hub.hf_hub_download` takes from a `from_pretrained` call.
HUB_KEYS = frozenset({"revision", "cache_dir", "token", "local_files_only", "force_download", "proxies"})


def hub_options(kwargs: Mapping[str, Any], *, pop: bool = False) -> dict[str, Any]:
    """The hub options among `kwargs` (removed from it when `pop`, so that the rest can go elsewhere)."""
    found = {k: kwargs[k] for k in HUB_KEYS if k in kwargs}
    if pop:
        for key in found:
            del kwargs[key]  # type: ignore[attr-defined]
    return found


def how_to_pass_local() -> str:
    return (
        "Pass a local directory holding config.json and model.safetensors (as written by save_pretrained or "
        "`vitpose convert`), or an original ViTPose .pth file"
    )


def is_hub_id(source: str) -> bool:
    """True for 'owner/name' that is not an existing file's name pattern (a .pth, .bin, ... file)."""
    return bool(_HUB_ID.match(source)) and not source.endswith(ORIGINAL_SUFFIXES)


def resolve_file(source: str | os.PathLike[str], filename: str, *, required: bool = True, **hub_kwargs: Any):
    """Path of `filename` in a local directory or hub repository (downloaded and cached through huggingface_hub).

    Returns None when `required` is False and the file does not exist there.
    """
    path = Path(source)
    if path.is_dir():
        candidate = path / filename
        if candidate.is_file():
            return candidate
        if required:
            raise FileNotFoundError(f"{path} has no {filename}. {how_to_pass_local()}.")
        return None
    if path.exists():
        raise CheckpointError(f"{path} is a file; expected a directory or hub id holding {filename}")
    source = str(source)
    if not is_hub_id(source):
        raise FileNotFoundError(
            f"no such file or directory: {source!r}, and it is not a hub id such as "
            f"'usyd-community/vitpose-base-simple'. {how_to_pass_local()}."
        )
    return _hub_download(source, filename, required=required, **hub_kwargs)


def _hub_download(repo_id: str, filename: str, *, required: bool, **hub_kwargs: Any) -> Path | None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

    unknown = set(hub_kwargs) - HUB_KEYS
    if unknown:
        raise TypeError(f"unexpected arguments {sorted(unknown)}; hub options are {sorted(HUB_KEYS)}")
    try:
        return Path(hf_hub_download(repo_id, filename, **hub_kwargs))
    # LocalEntryNotFoundError subclasses EntryNotFoundError in recent huggingface_hub: test it first.
    except LocalEntryNotFoundError as err:
        if not required and hub_kwargs.get("local_files_only"):
            return None
        raise CheckpointError(
            f"could not download {filename} of {repo_id!r} from the Hugging Face hub (offline, or no connection) "
            f"and it is not in the local cache. {how_to_pass_local()}; download it where there is a connection, "
            f"e.g. `huggingface-cli download {repo_id} --local-dir DIR`, then pass DIR."
        ) from err
    except EntryNotFoundError:
        if required:
            raise FileNotFoundError(f"the hub repository {repo_id!r} has no {filename}") from None
        return None
    except RepositoryNotFoundError as err:
        raise FileNotFoundError(
            f"{repo_id!r} is neither a local path nor a hub repository that can be read (private or misspelt?). "
            f"{how_to_pass_local()}."
        ) from err
    except OSError as err:  # connection errors of requests/httpx surface as OSError subclasses
        raise CheckpointError(
            f"could not download {filename} of {repo_id!r} from the Hugging Face hub: {err}. {how_to_pass_local()}."
        ) from err


__all__ = ["HUB_KEYS", "ORIGINAL_SUFFIXES", "hub_options", "is_hub_id", "resolve_file"]
