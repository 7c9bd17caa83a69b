"""Data-set metadata for the data sets ViTPose and ViTPose++ cover."""

from vitpose.datasets.metadata import DATASET_NAMES, DATASETS, DatasetInfo, get_dataset_info
from vitpose.datasets.spec import parse_dataset  # after metadata: spec -> custom reads the names above

__all__ = ["DATASETS", "DATASET_NAMES", "DatasetInfo", "get_dataset_info", "parse_dataset"]
