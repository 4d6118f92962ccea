"""Data: embedding datasets stored as Parquet (:mod:`~globeflow.data.embeddings`: reader, training
sampler, writer), image datasets (:mod:`~globeflow.data.images`), image encoders
(:mod:`~globeflow.data.encoders`) and ``globeflow embed`` (:mod:`~globeflow.data.embed`).

A leaf below every model layer: it imports only :mod:`globeflow.io`.
"""

from .embeddings import (
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
