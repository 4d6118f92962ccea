"""Tests for globeflow.data.embeddings: reading, validation, shuffled training streams, writing."""

from __future__ import annotations

import itertools
import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from globeflow.data import Batch, DatasetError, DatasetInfo, EmbeddingDataset, InvalidRowError, write_embeddings

DIM = 8


def make_rows(n: int, start: int = 0, dim: int = DIM, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Valid rows whose embedding[:, 0] is the global row number, so rows can be identified."""
    rng = np.random.default_rng(seed + start)
    latlon = np.stack([rng.uniform(-90, 90, n), rng.uniform(-180, 180, n)], axis=1)
    embedding = rng.standard_normal((n, dim)).astype(np.float32)
    embedding[:, 0] = np.arange(start, start + n)
    return latlon, embedding


def write_rows(path: Path, n: int, start: int = 0, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    latlon, embedding = make_rows(n, start)
    write_embeddings(path, latlon, embedding, **kwargs)
    return latlon, embedding


def write_list_table(path: Path, lat: list, lon: list, embedding: list, **extra) -> None:
    """Write with list<float32> embeddings, which allows rows of any length and nulls."""
    table = pa.table(
        {
            "lat": pa.array(lat, pa.float64()),
            "lon": pa.array(lon, pa.float64()),
            "embedding": pa.array(embedding, pa.list_(pa.float32())),
            **extra,
        }
    )
    pq.write_table(table, path)


def collect(batches) -> tuple[np.ndarray, np.ndarray, list]:
    batches = list(batches)
    return (
        torch.cat([b.embedding for b in batches]).numpy(),
        torch.cat([b.latlon for b in batches]).numpy(),
        [i for b in batches for i in b.ids],
    )


def row_keys(stream, count: int) -> np.ndarray:
    """Row numbers (embedding[:, 0]) of the first `count` batches of a training stream."""
    out = [e[:, 0].numpy().astype(np.int64) for e, _ in itertools.islice(stream, count)]
    return np.concatenate(out)


def stream_equal(a, b, count: int) -> bool:
    for (ea, la), (eb, lb) in zip(itertools.islice(a, count), itertools.islice(b, count)):
        if not (torch.equal(ea, eb) and torch.equal(la, lb)):
            return False
    return True


# ------------------------------------------------------------------------------------- reading


def test_round_trip_values_ids_metadata_and_order(tmp_path: Path) -> None:
    latlon, embedding = make_rows(23)
    ids = [f"img{i:03d}" for i in range(23)]
    country = [["FR", "DE", "JP"][i % 3] for i in range(23)]
    city = [None if i % 5 == 0 else f"c{i}" for i in range(23)]
    path = write_embeddings(
        tmp_path / "set.parquet",
        torch.from_numpy(latlon),
        torch.from_numpy(embedding),
        ids=ids,
        metadata={"country": country, "city": city},
        row_group_size=7,
    )
    ds = EmbeddingDataset(path)
    batches = list(ds.iter_batches(5, metadata=True))
    assert [len(b) for b in batches] == [5, 5, 5, 5, 3]
    assert batches[0].embedding.dtype == torch.float32 and batches[0].latlon.dtype == torch.float64
    got_emb, got_ll, got_ids = collect(batches)
    np.testing.assert_array_equal(got_emb, embedding)
    np.testing.assert_array_equal(got_ll, latlon)
    assert got_ids == ids
    assert [c for b in batches for c in b.metadata["country"]] == country
    assert [c for b in batches for c in b.metadata["city"]] == city
    # Without metadata=True no metadata columns come back.
    assert all(b.metadata == {} for b in ds.iter_batches(5))
    assert not list(tmp_path.glob(".*")), "temporary file left behind"


def test_list_embeddings_and_int_ids_read_back(tmp_path: Path) -> None:
    latlon, embedding = make_rows(4)
    table = pa.table(
        {
            "id": pa.array([10, 11, 12, 13], pa.int64()),
            "lat": latlon[:, 0],
            "lon": latlon[:, 1],
            "embedding": pa.array(embedding.tolist(), pa.list_(pa.float32())),
        }
    )
    pq.write_table(table, tmp_path / "x.parquet")
    got_emb, got_ll, got_ids = collect(EmbeddingDataset(tmp_path / "x.parquet").iter_batches(3))
    np.testing.assert_array_equal(got_emb, embedding)
    np.testing.assert_array_equal(got_ll, latlon)
    assert got_ids == ["10", "11", "12", "13"]


def test_folder_streams_all_rows_in_order_and_scan_counts(tmp_path: Path) -> None:
    write_rows(tmp_path / "b.parquet", 6, start=10)
    write_rows(tmp_path / "a.parquet", 10, start=0, row_group_size=3)
    write_rows(tmp_path / "c" / "d.parquet", 5, start=16)
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / ".hidden.parquet").write_text("ignored: hidden")
    ds = EmbeddingDataset(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in ds.files] == ["a.parquet", "b.parquet", "c/d.parquet"]
    got_emb, _, got_ids = collect(ds.iter_batches(4))
    np.testing.assert_array_equal(got_emb[:, 0], np.arange(21))
    # Without an id column, ids are "<file stem relative to the root>:<row in file>".
    assert got_ids[:2] == ["a:0", "a:1"]
    assert got_ids[10] == "b:0"
    assert got_ids[-1] == "c/d:4"
    info = ds.scan()
    assert (info.num_rows, info.num_valid, info.num_skipped, info.dim) == (21, 21, 0, DIM)
    assert info.files == tuple(str(p) for p in ds.files)
    assert ds.scan() is info  # cached
    assert info.to_dict()["files"] == list(info.files)


def test_ids_fall_back_to_file_row_for_null_ids(tmp_path: Path) -> None:
    latlon, embedding = make_rows(3)
    write_embeddings(tmp_path / "p.parquet", latlon, embedding, ids=["x", None, "z"])
    _, _, ids = collect(EmbeddingDataset(tmp_path / "p.parquet").iter_batches(8))
    assert ids == ["x", "p:1", "z"]


# ----------------------------------------------------------------------------------- validation

BAD_ROW = 17


def _valid_columns(n: int) -> tuple[list, list, list]:
    latlon, embedding = make_rows(n)
    return latlon[:, 0].tolist(), latlon[:, 1].tolist(), embedding.tolist()


def _break_lat_nan(lat, lon, emb):
    lat[BAD_ROW] = float("nan")


def _break_lat_91(lat, lon, emb):
    lat[BAD_ROW] = 91.0


def _break_lon_minus_181(lat, lon, emb):
    lon[BAD_ROW] = -181.0


def _break_lon_null(lat, lon, emb):
    lon[BAD_ROW] = None


def _break_length(lat, lon, emb):
    emb[BAD_ROW] = emb[BAD_ROW][:-1]


def _break_embedding_nan(lat, lon, emb):
    emb[BAD_ROW][3] = float("nan")


def _break_embedding_inf(lat, lon, emb):
    emb[BAD_ROW][0] = float("inf")


def _break_embedding_null(lat, lon, emb):
    emb[BAD_ROW] = None


INVALID_KINDS = [
    (_break_lat_nan, "lat is NaN"),
    (_break_lat_91, "lat 91.0 is outside [-90, 90]"),
    (_break_lon_minus_181, "lon -181.0 is outside [-180, 180]"),
    (_break_lon_null, "lon is null"),
    (_break_length, f"embedding has length {DIM - 1}, expected {DIM}"),
    (_break_embedding_nan, "embedding contains NaN"),
    (_break_embedding_inf, "embedding contains inf"),
    (_break_embedding_null, "embedding is null"),
]


def _dataset_with_bad_row(root: Path, breaker) -> Path:
    write_rows(root / "part-0.parquet", 30)
    lat, lon, emb = _valid_columns(40)
    breaker(lat, lon, emb)
    write_list_table(root / "part-1.parquet", lat, lon, emb)
    return root / "part-1.parquet"


@pytest.mark.parametrize("breaker, reason", INVALID_KINDS, ids=[r for _, r in INVALID_KINDS])
def test_invalid_row_raises_with_file_and_row(tmp_path: Path, breaker, reason: str) -> None:
    bad_file = _dataset_with_bad_row(tmp_path, breaker)
    expected = f"{bad_file} row {BAD_ROW}: {reason}"
    with pytest.raises(InvalidRowError) as excinfo:
        EmbeddingDataset(tmp_path).scan()
    assert str(excinfo.value).startswith(expected)
    assert excinfo.value.row == BAD_ROW and excinfo.value.path == str(bad_file)
    with pytest.raises(InvalidRowError, match=r"part-1\.parquet row 17: "):
        list(EmbeddingDataset(tmp_path).iter_batches(7))
    assert isinstance(excinfo.value, DatasetError) and isinstance(excinfo.value, ValueError)
    assert str(pickle.loads(pickle.dumps(excinfo.value))) == str(excinfo.value)


@pytest.mark.parametrize("breaker, reason", INVALID_KINDS, ids=[r for _, r in INVALID_KINDS])
def test_skip_invalid_drops_and_counts(tmp_path: Path, breaker, reason: str) -> None:
    bad_file = _dataset_with_bad_row(tmp_path, breaker)
    ds = EmbeddingDataset(tmp_path, skip_invalid=True)
    info = ds.scan()
    assert (info.num_rows, info.num_valid, info.num_skipped) == (70, 69, 1)
    assert info.skipped_examples[0].startswith(f"{bad_file} row {BAD_ROW}: {reason}")
    _, _, ids = collect(ds.iter_batches(16))
    assert len(ids) == 69
    assert "part-1:17" not in ids and "part-1:16" in ids and "part-1:18" in ids


def test_skip_invalid_counts_many_and_keeps_first_twenty_examples(tmp_path: Path) -> None:
    lat, lon, emb = _valid_columns(100)
    for i in range(0, 100, 3):  # 34 bad rows
        lat[i] = 95.0
    write_list_table(tmp_path / "x.parquet", lat, lon, emb)
    info = EmbeddingDataset(tmp_path / "x.parquet", skip_invalid=True).scan()
    assert (info.num_valid, info.num_skipped) == (66, 34)
    assert len(info.skipped_examples) == 20
    assert info.skipped_examples[1].endswith("row 3: lat 95.0 is outside [-90, 90]")
    # The dimension comes from the first valid row (row 1), not from the invalid row 0.
    assert info.dim == DIM


def test_expected_dim_mismatch(tmp_path: Path) -> None:
    write_rows(tmp_path / "x.parquet", 5)
    with pytest.raises(InvalidRowError, match=rf"x\.parquet row 0: embedding has length {DIM}, expected 16"):
        EmbeddingDataset(tmp_path / "x.parquet", expected_dim=16).scan()


def test_dim_taken_from_first_valid_row(tmp_path: Path) -> None:
    lat, lon, emb = _valid_columns(5)
    emb[0] = [float("nan")] * 3  # invalid row of another length must not set the dimension
    emb[2] = emb[2][:4]
    write_list_table(tmp_path / "x.parquet", lat, lon, emb)
    info = EmbeddingDataset(tmp_path / "x.parquet", skip_invalid=True).scan()
    assert (info.dim, info.num_valid, info.num_skipped) == (DIM, 3, 2)
    assert info.skipped_examples == (
        f"{tmp_path / 'x.parquet'} row 0: embedding has length 3, expected {DIM}",
        f"{tmp_path / 'x.parquet'} row 2: embedding has length 4, expected {DIM}",
    )


# -------------------------------------------------------------------------------- dataset errors


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such file or folder") as excinfo:
        EmbeddingDataset(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(excinfo.value)


def test_folder_without_parquet_files(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(DatasetError, match="contains no .parquet files"):
        EmbeddingDataset(tmp_path)


def test_not_parquet(tmp_path: Path) -> None:
    (tmp_path / "fake.parquet").write_text("this is not parquet at all, just some text")
    with pytest.raises(DatasetError, match=r"fake\.parquet: not a readable Parquet file"):
        EmbeddingDataset(tmp_path)


def test_missing_columns_names_missing_and_present(tmp_path: Path) -> None:
    pq.write_table(pa.table({"lat": [1.0], "vec": [[1.0, 2.0]], "city": ["x"]}), tmp_path / "m.parquet")
    with pytest.raises(DatasetError) as excinfo:
        EmbeddingDataset(tmp_path / "m.parquet")
    message = str(excinfo.value)
    assert "m.parquet" in message
    assert "missing required column(s) lon, embedding" in message
    assert "columns present: lat, vec, city" in message


def test_wrong_embedding_type(tmp_path: Path) -> None:
    pq.write_table(pa.table({"lat": [1.0], "lon": [2.0], "embedding": ["abc"]}), tmp_path / "t.parquet")
    with pytest.raises(DatasetError, match="column 'embedding' has type string"):
        EmbeddingDataset(tmp_path / "t.parquet")


def test_empty_dataset(tmp_path: Path) -> None:
    write_embeddings(tmp_path / "e.parquet", np.zeros((0, 2)), np.zeros((0, DIM)))
    with pytest.raises(DatasetError, match="has no valid rows"):
        EmbeddingDataset(tmp_path / "e.parquet").scan()


def test_all_rows_invalid(tmp_path: Path) -> None:
    lat, lon, emb = _valid_columns(4)
    lat = [200.0] * 4
    write_list_table(tmp_path / "x.parquet", lat, lon, emb)
    with pytest.raises(DatasetError, match="has no valid rows"):
        EmbeddingDataset(tmp_path / "x.parquet", skip_invalid=True).scan()
    with pytest.raises(InvalidRowError, match=r"row 0: lat 200.0 is outside"):
        EmbeddingDataset(tmp_path / "x.parquet").scan()


def test_fingerprint_changes_when_a_file_changes(tmp_path: Path) -> None:
    write_rows(tmp_path / "a.parquet", 10)
    write_rows(tmp_path / "b.parquet", 10, start=10)
    first = EmbeddingDataset(tmp_path).scan().fingerprint
    assert len(first) == 64
    assert EmbeddingDataset(tmp_path).fingerprint() == first
    # The fingerprint hashes names relative to the root, so a copied folder keeps it.
    copy = tmp_path.parent / (tmp_path.name + "-copy")
    copy.mkdir()
    for name in ("a.parquet", "b.parquet"):
        (copy / name).write_bytes((tmp_path / name).read_bytes())
    assert EmbeddingDataset(copy).fingerprint() == first
    # Regenerated with the same shape but other values: the footer statistics differ.
    latlon, embedding = make_rows(10, start=10, seed=99)
    write_embeddings(tmp_path / "b.parquet", latlon, embedding)
    assert EmbeddingDataset(tmp_path).fingerprint() != first
    # Renamed file, same bytes.
    (copy / "b.parquet").rename(copy / "c.parquet")
    assert EmbeddingDataset(copy).fingerprint() != first
    # More rows.
    write_rows(copy / "c.parquet", 11, start=10)
    assert EmbeddingDataset(copy).fingerprint() != first


def test_write_embeddings_rejects_bad_shapes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"latlon must have shape \(N, 2\)"):
        write_embeddings(tmp_path / "x.parquet", np.zeros((3, 3)), np.zeros((3, DIM)))
    with pytest.raises(ValueError, match="3 rows but embedding has 4"):
        write_embeddings(tmp_path / "x.parquet", np.zeros((3, 2)), np.zeros((4, DIM)))
    with pytest.raises(ValueError, match="'id' has 2 values, expected 3"):
        write_embeddings(tmp_path / "x.parquet", np.zeros((3, 2)), np.zeros((3, DIM)), ids=["a", "b"])
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------- training batches


@pytest.fixture
def small_set(tmp_path: Path) -> Path:
    write_rows(tmp_path / "a.parquet", 23, row_group_size=5)
    write_rows(tmp_path / "b.parquet", 14, start=23, row_group_size=5)
    return tmp_path


STREAMED = dict(cache_bytes=0, shuffle_buffer=7)


@pytest.mark.parametrize("mode", [{}, STREAMED], ids=["cached", "streamed"])
def test_train_batches_deterministic_and_seed_dependent(small_set: Path, mode: dict) -> None:
    ds = EmbeddingDataset(small_set)
    a = ds.train_batches(8, seed=1, **mode)
    b = EmbeddingDataset(small_set).train_batches(8, seed=1, **mode)
    assert stream_equal(a, b, 20)
    first = next(ds.train_batches(8, seed=1, **mode))
    other = next(ds.train_batches(8, seed=2, **mode))
    assert not torch.equal(first[0], other[0])
    emb, latlon = first
    assert emb.shape == (8, DIM) and emb.dtype == torch.float32
    assert latlon.shape == (8, 2) and latlon.dtype == torch.float64


@pytest.mark.parametrize("mode", [{}, STREAMED], ids=["cached", "streamed"])
@pytest.mark.parametrize("world_size, rank", [(1, 0), (2, 1), (3, 2), (9, 4)])
def test_train_batches_resume_equals_dropping_batches(small_set: Path, mode: dict, world_size: int, rank: int) -> None:
    ds = EmbeddingDataset(small_set)
    kwargs = dict(seed=5, rank=rank, world_size=world_size, **mode)
    full = list(itertools.islice(ds.train_batches(6, **kwargs), 40))  # several epochs
    for k in (1, 3, 7, 19, 33):
        resumed = list(itertools.islice(ds.train_batches(6, start_batch=k, **kwargs), 40 - k))
        assert len(resumed) == 40 - k
        for (ea, la), (eb, lb) in zip(full[k:], resumed):
            assert torch.equal(ea, eb) and torch.equal(la, lb)


@pytest.mark.parametrize("mode", [{}, STREAMED], ids=["cached", "streamed"])
def test_each_epoch_is_a_permutation_single_rank(small_set: Path, mode: dict) -> None:
    ds = EmbeddingDataset(small_set)
    keys = row_keys(ds.train_batches(37, seed=3, **mode), 3)  # 37 rows = one epoch per batch
    for epoch in range(3):
        assert sorted(keys[37 * epoch : 37 * (epoch + 1)]) == list(range(37))
    assert not np.array_equal(keys[:37], keys[37:74])  # reshuffled every epoch
    assert not np.array_equal(keys[:37], np.arange(37))  # and actually shuffled


def test_cached_epoch_over_two_ranks_covers_each_row_once(small_set: Path) -> None:
    ds = EmbeddingDataset(small_set)
    # 37 rows: rank 0 gets 19 per epoch, rank 1 gets 18.
    rank0 = row_keys(ds.train_batches(19, seed=11, rank=0, world_size=2), 1)
    rank1 = row_keys(ds.train_batches(18, seed=11, rank=1, world_size=2), 1)
    assert not set(rank0) & set(rank1)
    assert sorted(np.concatenate([rank0, rank1])) == list(range(37))


def test_streamed_sharding_by_fragment_and_by_row(tmp_path: Path) -> None:
    # Six fragments of five rows: with two ranks each rank reads three fragments per epoch.
    write_rows(tmp_path / "f" / "a.parquet", 30, row_group_size=5)
    ds = EmbeddingDataset(tmp_path / "f")
    rank0 = row_keys(ds.train_batches(15, seed=2, rank=0, world_size=2, cache_bytes=0, shuffle_buffer=4), 1)
    rank1 = row_keys(ds.train_batches(15, seed=2, rank=1, world_size=2, cache_bytes=0, shuffle_buffer=4), 1)
    assert sorted(np.concatenate([rank0, rank1])) == list(range(30))
    # One fragment and two ranks: rows r::2 of the fragment.
    write_rows(tmp_path / "g" / "a.parquet", 10)
    ds = EmbeddingDataset(tmp_path / "g")
    rank0 = row_keys(ds.train_batches(5, seed=2, rank=0, world_size=2, cache_bytes=0), 1)
    rank1 = row_keys(ds.train_batches(5, seed=2, rank=1, world_size=2, cache_bytes=0), 1)
    assert sorted(rank0) == [0, 2, 4, 6, 8] and sorted(rank1) == [1, 3, 5, 7, 9]


def test_streaming_larger_than_cache_gives_valid_batches(tmp_path: Path) -> None:
    for i in range(3):
        write_rows(tmp_path / f"p{i}.parquet", 400, start=400 * i, row_group_size=64)
    ds = EmbeddingDataset(tmp_path)
    info = ds.scan()
    data_bytes = info.num_valid * (4 * info.dim + 16)
    stream = ds.train_batches(32, seed=0, cache_bytes=data_bytes // 4, shuffle_buffer=100)
    seen = []
    for emb, latlon in itertools.islice(stream, 60):  # 1920 rows: more than one epoch
        assert emb.shape == (32, DIM) and latlon.shape == (32, 2)
        assert torch.isfinite(emb).all()
        assert (latlon[:, 0].abs() <= 90).all() and (latlon[:, 1].abs() <= 180).all()
        seen.append(emb[:, 0].long())
    first_epoch = torch.cat(seen)[:1200]
    assert sorted(first_epoch.tolist()) == list(range(1200))


def test_train_skips_invalid_rows(tmp_path: Path) -> None:
    lat, lon, emb = _valid_columns(12)
    lat[4] = float("nan")
    write_list_table(tmp_path / "x.parquet", lat, lon, emb)
    ds = EmbeddingDataset(tmp_path / "x.parquet", skip_invalid=True)
    for mode in ({}, STREAMED):
        keys = row_keys(ds.train_batches(11, seed=0, **mode), 2)
        assert sorted(keys[:11]) == [i for i in range(12) if i != 4]


def test_train_rejects_bad_arguments(small_set: Path) -> None:
    ds = EmbeddingDataset(small_set)
    with pytest.raises(ValueError, match="rank must be < world_size"):
        ds.train_batches(4, seed=0, rank=2, world_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        ds.train_batches(0, seed=0)
    with pytest.raises(DatasetError, match="37 valid rows cannot give each of 64 ranks"):
        ds.train_batches(4, seed=0, rank=40, world_size=64)


def test_public_types() -> None:
    info = DatasetInfo(("a",), 3, 2, 1, 4, "f" * 64, ("x row 1: lat is NaN",))
    assert info.to_dict()["skipped_examples"] == ["x row 1: lat is NaN"]
    batch = Batch(torch.zeros(2, 3), torch.zeros(2, 2, dtype=torch.float64), ["a", "b"])
    assert len(batch) == 2 and batch.metadata == {}
