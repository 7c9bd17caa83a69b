"""Data-set metadata for the data sets ViTPose and ViTPose++ cover."""

from vitpose.datasets.metadata import DATASET_NAMES, DATASETS, DatasetInfo, get_dataset_info

__all__ = ["DATASETS", "DATASET_NAMES", "DatasetInfo", "get_dataset_info"]
