"""The one reading of a data set as the user writes it (`--dataset` of every command, `convert --fold`).

    parse_dataset("AP-10K")       -> "ap10k"        a registry name or alias, as its canonical name
    parse_dataset("3")            -> 3              a ViTPose++ dataset_index (0-5), as an int
    parse_dataset("my_hand.json") -> DatasetInfo    a custom data set description (`vitpose.datasets.custom`)

Anything else is one `DatasetError` that lists the valid names and indices. Whether a model serves the data set
(its experts and heads) is the model's question, asked where the model is known.
"""

from __future__ import annotations

import os
from pathlib import Path

from vitpose.datasets.custom import load_dataset_info
from vitpose.datasets.metadata import DatasetInfo, get_dataset_info
from vitpose.errors import DatasetError

__all__ = ["parse_dataset"]


def parse_dataset(text: str | int | os.PathLike[str] | DatasetInfo) -> str | int | DatasetInfo:
    """A data set as given on a command line: a registry name, an index or the path of a custom data set JSON.

    Args:
        text: "coco", "aic", "mpii", "ap10k", "apt36k", "wholebody" (or an alias: case, "-" and "_" do not
            count), an index "0" to "5", or a path to a data set description (a `.json` file or any existing file).
            An int, a path object or a `DatasetInfo` are accepted too (a `DatasetInfo` is returned unchanged).

    Returns:
        The canonical registry name (str), the index (int), or the custom file's `DatasetInfo`.

    Raises:
        DatasetError: an unknown name or index, or a data set file that cannot be read (the message says which).
    """
    if isinstance(text, DatasetInfo):
        return text
    if isinstance(text, bool):
        raise DatasetError(f"unknown data set {text!r}")
    if isinstance(text, int):
        return get_dataset_info(text).dataset_index
    if isinstance(text, os.PathLike):
        return load_dataset_info(text)
    if not isinstance(text, str):
        raise DatasetError(f"a data set is a name, an index or a JSON file, got {type(text).__name__}")
    value = text.strip()
    if value.isdigit():
        return get_dataset_info(int(value)).dataset_index
    if value.lower().endswith(".json") or Path(value).is_file():
        return load_dataset_info(value)
    try:
        return get_dataset_info(value).name
    except DatasetError as err:
        raise DatasetError(f"{err}; or the path of a custom data set JSON file (none found at {value!r})") from None
