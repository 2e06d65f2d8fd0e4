"""Datasets by name (toy, embedded, MNIST-family IDX), the user's own files, and the IDX reader."""

from .csvfile import CsvTable, load_csv, read_csv
from .csvtext import read_csv_header
from .download import ChecksumError, DownloadError, cache_dir, download
from .embedded import load_sklearn
from .errors import DataFileError
from .files import load_npy, load_npz
from .idx import IdxFormatError, parse_idx, read_idx, write_idx
from .mnist import IDX_SOURCES, IdxFile, IdxSource, load_idx_dataset
from .registry import DATASETS, DatasetInfo, Splits, load_dataset
from .toy import make_blobs, make_circles, make_moons, make_spirals, make_xor
