"""Images per second of ``globeflow embed`` with EfficientNet-Lite0 on this machine's CPU.

End to end, as a user runs it: JPEG files on disk (Blue Marble patches written first, 256 x 256
px, so decoding is real work) -> decode, crop, resize, normalise (``--workers`` threads) -> encoder
-> Parquet parts. Input sizes 224 (the encoder's native size, for photos) and 64 (the demo's patch
size). Prints a Markdown table and writes JSON.

    python benchmarks/embed.py --images 512 --out bench_out/embed.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from globeflow.apps.tasks.blue_marble import BlueMarbleConfig, land_locations, patches_for
from globeflow.data.embed import EmbedConfig, embed_to_dir
from globeflow.data.encoders import load_encoder
from globeflow.data.images import read_images
from globeflow.io import atomic_write_text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=512)
    p.add_argument("--sizes", type=int, nargs="+", default=[224, 64])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--out", default="bench_out/embed.json")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    work = Path(tempfile.mkdtemp(prefix="globeflow-embed-bench-"))
    try:
        cfg = BlueMarbleConfig(pixels=256)
        latlon = land_locations(a.images, seed=5)
        folder = work / "photos"
        folder.mkdir()
        for i, patch in enumerate(patches_for(latlon, cfg)):
            Image.fromarray(patch).save(folder / f"{i:05d}.jpg", quality=90)
        labels = folder / "labels.csv"
        labels.write_text("id,lat,lon\n" + "".join(f"{i:05d},{la},{lo}\n" for i, (la, lo) in enumerate(latlon)))
        source = read_images(folder, labels=labels, require_location=True)
        rows = []
        for size in a.sizes:
            encoder = load_encoder(f"efficientnet-lite0@{size}", device="cpu")
            config = EmbedConfig(shard_rows=1024, batch_size=a.batch_size, workers=a.workers)
            out = work / f"emb{size}"
            t0 = time.perf_counter()
            summary = embed_to_dir(source, encoder, out, config=config, progress=False)
            seconds = time.perf_counter() - t0
            assert summary["rows_written"] == a.images, summary
            rows.append({"input_px": size, "images": a.images, "seconds": seconds,
                         "images_per_second": a.images / seconds})
            print(rows[-1], file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = [f"`globeflow embed`, EfficientNet-Lite0, {a.images} JPEG files (256 px), {a.threads} CPU threads, "
             f"{a.workers} decoding threads, batch {a.batch_size}.", "",
             "| input size | images / s | seconds |", "|---|---|---|"]
    lines += [f"| {r['input_px']} px | {r['images_per_second']:.1f} | {r['seconds']:.1f} |" for r in rows]
    table = "\n".join(lines)
    print(table)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps({"rows": rows, "markdown": table}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
