"""Embedding datasets: Parquet files of ``(lat, lon, embedding)`` rows, validated while streaming.

A dataset is one Parquet file or a folder searched recursively for ``*.parquet`` files (sorted
paths; names with a component starting with ``.`` or ``_`` are ignored, as pyarrow.dataset does,
so temporary files and ``_SUCCESS``-style markers are never read). Columns:

* ``lat``, ``lon``: degrees, any numeric type;
* ``embedding``: ``list<float>`` or ``fixed_size_list<float>``, ``D`` values in every row;
* ``id`` (optional): string or integer row identifiers;
* anything else is metadata (``country``, ``city``, ...), returned on request.

A row is invalid when a coordinate is null, NaN, inf or out of range (lat in [-90, 90], lon in
[-180, 180]), or its embedding is null, has a length other than ``D``, or holds NaN/inf/null
values. ``D`` is ``expected_dim`` when given, else the length of the first valid row in file order.
By default the first invalid row raises :class:`InvalidRowError`; with ``skip_invalid=True``
invalid rows are dropped and counted. Validation is vectorised per record batch; only the
message for a bad row is built row by row.
"""

from .reader import EmbeddingDataset
from .schema import (
                     EMBEDDING,
                     ID,
                     LAT,
                     LON,
                     MAX_SKIPPED_EXAMPLES,
                     REQUIRED_COLUMNS,
                     Batch,
                     DatasetError,
                     DatasetInfo,
                     InvalidRowError,
)
from .writer import write_embeddings

__all__ = [
    "LAT",
    "LON",
    "EMBEDDING",
    "ID",
    "REQUIRED_COLUMNS",
    "MAX_SKIPPED_EXAMPLES",
    "DatasetError",
    "InvalidRowError",
    "DatasetInfo",
    "Batch",
    "EmbeddingDataset",
    "write_embeddings",
]
