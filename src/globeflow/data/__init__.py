"""Data loading: embedding datasets stored as Parquet (see :mod:`globeflow.data.embeddings`)."""

from globeflow.data.embeddings import (
    EMBEDDING,
    ID,
    LAT,
    LON,
    MAX_SKIPPED_EXAMPLES,
    REQUIRED_COLUMNS,
    Batch,
    DatasetError,
    DatasetInfo,
    EmbeddingDataset,
    InvalidRowError,
    write_embeddings,
)

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
