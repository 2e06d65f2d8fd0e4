"""neuronkit.data: datasets, the DataLoader, splits, transforms, and dataset loading by name.

Batches are NumPy arrays; the training loop wraps them in Tensors. Randomness (shuffles, splits, toy sets) is
passed in as a seed or a ``numpy.random.Generator``.
"""

from .dataset import ArrayDataset, Dataset, GeneratorDataset, SequenceDataset
from .datasets import (
    DATASETS,
    IDX_SOURCES,
    ChecksumError,
    CsvTable,
    DataFileError,
    DatasetInfo,
    DownloadError,
    IdxFormatError,
    Splits,
    load_csv,
    load_dataset,
    load_idx_dataset,
    load_npy,
    load_npz,
    make_blobs,
    make_circles,
    make_moons,
    make_spirals,
    make_xor,
    read_csv,
    read_csv_header,
    read_idx,
    write_idx,
)
from .loader import DataLoader, default_collate, shard_bounds
from .split import split_indices, train_test_split, train_val_test_split
from .transforms import Compose, MinMaxScale, OneHot, Standardize
