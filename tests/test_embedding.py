"""``globeflow embed``: parts, skipped images, resume after a kill, sharding, manifest checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from globeflow.data import EmbeddingDataset
from globeflow.data.embed import EmbedConfig, embed_to_dir, parse_shard, read_manifest
from globeflow.data.images import read_images


class TinyEncoder(torch.nn.Module):
    """A deterministic stand-in encoder: 4x4 thumbnail -> fixed random projection to ``dim``."""

    def __init__(self, dim: int = 6, name: str = "tiny", fail_after: int | None = None):
        super().__init__()
        self.name, self.dim, self.calls, self.fail_after = name, dim, 0, fail_after
        self.proj = torch.randn(48, dim, generator=torch.Generator().manual_seed(0))

    def preprocess(self, images):
        arr = [np.asarray(im.convert("RGB").resize((4, 4)), dtype=np.float32) / 255 for im in images]
        return torch.from_numpy(np.stack(arr)).permute(0, 3, 1, 2)

    def embed(self, pixels):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt  # a kill in the middle of a run
        return pixels.reshape(len(pixels), -1) @ self.proj


def _photos(folder: Path, n: int = 10, corrupt: tuple[int, ...] = (3,)) -> Path:
    folder.mkdir(parents=True)
    rows = ["id,lat,lon"]
    for i in range(n):
        path = folder / f"p{i:02d}.jpg"
        if i in corrupt:
            path.write_bytes(b"not a jpeg at all")
        else:
            Image.new("RGB", (16, 12), (20 * i, 255 - 20 * i, 7 * i)).save(path)
        rows.append(f"p{i:02d},{i * 5.0},{-100 + i * 7.0}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder


def _table(out: Path) -> list[list[dict]]:
    return [pq.read_table(p).to_pylist() for p in sorted(out.glob("part-*.parquet"))]


@pytest.fixture
def source(tmp_path):
    folder = _photos(tmp_path / "photos")
    return read_images(folder, labels=folder / "labels.csv")


def test_embed_writes_a_readable_dataset_and_lists_the_corrupt_image(source, tmp_path):
    out = tmp_path / "emb"
    summary = embed_to_dir(source, TinyEncoder(), out, config=EmbedConfig(shard_rows=4, batch_size=3, workers=2),
                           progress=False)
    assert summary["parts_written"] == 3 and summary["complete"]
    assert summary["rows_written"] == 9 and summary["images_skipped"] == 1
    assert "p03.jpg" in summary["skipped_list"][0][0]
    skipped = (out / "skipped.csv").read_text().splitlines()
    assert len(skipped) == 2 and "p03.jpg" in skipped[1]
    ds = EmbeddingDataset(out)
    assert ds.scan().num_valid == 9 and ds.scan().dim == 6
    batch = next(ds.iter_batches(100, metadata=True))
    assert sorted(batch.ids) == sorted(f"p{i:02d}" for i in range(10) if i != 3)
    # Rows keep their labels: p05 is at (25, -65).
    j = batch.ids.index("p05")
    assert batch.latlon[j].tolist() == [25.0, -65.0]
    # The embedding equals the encoder applied to that image alone.
    enc = TinyEncoder()
    alone = enc.embed(enc.preprocess([Image.open(tmp_path / "photos" / "p05.jpg")]))[0]
    torch.testing.assert_close(batch.embedding[j], alone, atol=1e-5, rtol=1e-5)
    assert read_manifest(out)["encoder"] == "tiny"


def test_embed_resumes_after_a_kill_without_redoing_finished_parts(source, tmp_path):
    config = EmbedConfig(shard_rows=2, batch_size=2, workers=0)
    full = tmp_path / "full"
    embed_to_dir(source, TinyEncoder(), full, config=config, progress=False)
    out = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        embed_to_dir(source, TinyEncoder(fail_after=3), out, config=config, progress=False)
    done = sorted(p.name for p in out.glob("part-*.parquet"))
    assert done == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert not list(out.glob(".*.tmp"))  # no half-written file left behind
    enc = TinyEncoder()
    summary = embed_to_dir(source, enc, out, config=config, progress=False)
    assert summary["parts_resumed"] == 3 and summary["parts_written"] == 2
    assert enc.calls == 2  # only the two missing parts were embedded
    assert _table(out) == _table(full)
    assert (out / "skipped.csv").read_text() == (full / "skipped.csv").read_text()


def test_shards_fill_one_folder_like_a_single_process(source, tmp_path):
    config = EmbedConfig(shard_rows=3, batch_size=3, workers=0)
    single = tmp_path / "single"
    embed_to_dir(source, TinyEncoder(), single, config=config, progress=False)
    out = tmp_path / "sharded"
    first = embed_to_dir(source, TinyEncoder(), out, config=config, shard=(0, 2), progress=False)
    assert first["parts"] == 2 and not first["complete"]
    second = embed_to_dir(source, TinyEncoder(), out, config=config, shard=(1, 2), progress=False)
    assert second["parts"] == 2 and second["complete"]
    assert _table(out) == _table(single)


def test_a_different_encoder_is_refused_in_a_used_folder(source, tmp_path):
    out = tmp_path / "emb"
    embed_to_dir(source, TinyEncoder(), out, config=EmbedConfig(shard_rows=4), progress=False)
    with pytest.raises(ValueError, match="encoder='tiny'.*encoder='other'"):
        embed_to_dir(source, TinyEncoder(name="other"), out, config=EmbedConfig(shard_rows=4), progress=False)


def test_parse_shard(monkeypatch):
    assert parse_shard("1/4") == (1, 4)
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert parse_shard(None) == (2, 3)
    for bad in ("4/4", "x/2", "1", "-1/2"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)


def test_training_records_the_encoder_of_its_embeddings(source, tmp_path):
    from globeflow.inference import Geolocator
    from globeflow.train import TrainConfig, train

    out = tmp_path / "emb"
    embed_to_dir(source, TinyEncoder(name="tiny-v1"), out, config=EmbedConfig(shard_rows=4), progress=False)
    run = tmp_path / "run"
    train(out, run, network={"dim": 16, "depth": 1}, config=TrainConfig(steps=2, batch_size=4, val_rows=4),
          progress=False)
    assert Geolocator.load(run).encoder == "tiny-v1"
    assert json.loads((out / "embed.json").read_text())["records"] == 10
