"""``globeflow serve`` throughput: requests per second and p50 / p95 latency of ``POST /api/predict``.

The server runs in this process (``background_server``, uvicorn, one worker thread for the model) with
the Blue Marble demo model (``runs/demo/rfm``; ``globeflow demo`` trains it) and its encoder; clients
send the demo's test patches (real 256 x 256 PNG photos of the Earth) from ``--concurrency`` threads,
for each concurrency level in turn. Latency is per request, as the client sees it, queueing included;
"server s" is the answer time the server reports (decode, embed, sample, map). One warm-up request first.

    python benchmarks/serve.py --out bench_out/serve.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import torch

from globeflow.apps.demos.blue_marble import DEFAULT_MODEL
from globeflow.apps.server.run import background_server, load_predictor
from globeflow.io import atomic_write_text


def _photos(folder: Path, count: int) -> list[bytes]:
    files = sorted(folder.glob("*-patch.png"))[:count]
    if not files:
        sys.exit(f"no *-patch.png photos in {folder}: run `globeflow demo` first (it writes the maps folder)")
    return [f.read_bytes() for f in files]


def _post(url: str, data: bytes) -> tuple[float, int, float]:
    t0 = time.perf_counter()
    r = httpx.post(f"{url}/api/predict", files={"image": ("patch.png", data, "image/png")}, timeout=600)
    latency = time.perf_counter() - t0
    return latency, r.status_code, r.json().get("seconds", float("nan")) if r.status_code == 200 else float("nan")


def _level(url: str, photos: list[bytes], requests: int, concurrency: int) -> dict:
    work = [photos[i % len(photos)] for i in range(requests)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(lambda d: _post(url, d), work))
    wall = time.perf_counter() - t0
    latency = np.array([r[0] for r in results])
    ok = sum(r[1] == 200 for r in results)
    return {"concurrency": concurrency, "requests": requests, "ok": ok, "seconds": wall,
            "requests_per_s": requests / wall, "p50_s": float(np.percentile(latency, 50)),
            "p95_s": float(np.percentile(latency, 95)), "server_s_mean": float(np.nanmean([r[2] for r in results]))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=str(DEFAULT_MODEL))
    p.add_argument("--photos", default="runs/demo/maps", help="folder of the demo's *-patch.png test photos")
    p.add_argument("--requests", type=int, default=24, help="requests per concurrency level (default 24)")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    p.add_argument("--out", default="bench_out/serve.json")
    a = p.parse_args(argv)
    predictor = load_predictor(a.model)  # warmed up: one answer already made
    photos = _photos(Path(a.photos), 16)
    rows = []
    with background_server(predictor) as url:
        _post(url, photos[0])  # warm-up: first-call costs (place index, allocator)
        for c in a.concurrency:
            rows.append(_level(url, photos, a.requests, c))
            r = rows[-1]
            print(f"concurrency {c}: {r['requests_per_s']:.2f} req/s, p50 {r['p50_s']:.2f} s, p95 {r['p95_s']:.2f} s")
    print("\n| concurrency | requests | ok | req/s | p50 s | p95 s | server s (mean) |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['concurrency']} | {r['requests']} | {r['ok']} | {r['requests_per_s']:.2f} | {r['p50_s']:.2f} | "
              f"{r['p95_s']:.2f} | {r['server_s_mean']:.2f} |")
    result = {"model": predictor.describe(), "config": {"answers": str(predictor.config.answers),
                                                        "grid_width": predictor.config.grid_width},
              "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
              "rows": rows}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(a.out, json.dumps(result, indent=2))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
