"""Sampling speed and accuracy against the published PLONK sampler, at the published network size.

Builds the published network with the published package (``diff-plonk`` 0.4, imported as ``plonk``)
at the size of the released checkpoints (dim 512, depth 12, expansion 4, cond 1024; random weights),
saves it in the hub layout and loads that folder into globeflow, then draws the same workload with
both samplers from identical starting points: ``--images`` random embeddings x ``--samples`` starts
each. Per sampler row it reports

- seconds (best of up to ``--repeats`` rounds that interleave the rows) and samples per second,
  network evaluations per sample (NFE; x2 with guidance, where both samplers evaluate the
  conditional and unconditional halves in one batch), and the speed ratio to the published default,
  Euler with 250 steps;
- accuracy against a reference solution of the same ODE from the same starts (globeflow RK4 with
  ``--ref-steps`` exponential-map steps, checked against half as many): the mean and 95th percentile
  great-circle distance in km from each sample to its reference sample (pathwise error), and the
  energy distance in km between the row's samples and the reference samples of each image (a
  distribution distance, V-statistic with the geodesic metric, averaged over images). The noise
  floor printed with it is the energy distance between the reference and samples from *other*
  starts: differences below it are not resolvable from independent draws of this size;
- the speed-up at equal steps (published Euler vs globeflow's published-step Euler: the same
  algorithm, so the gap is the implementation, chiefly that globeflow computes each image's
  conditioning once instead of once per sample) and at equal quality (the cheapest globeflow row at
  least as accurate as the published row, pathwise and in energy distance).

globeflow's published-step rows must reproduce the published samples; their largest coordinate
deviation is reported (``tests/test_plonk_fixture.py`` holds the tiny fixture to 1e-4).

The weights are random, so the velocity field is not a trained one. The published initialisation
zeroes each block's last layer (every block the identity), which would leave the blocks out of the
field entirely; those layers get PyTorch's default ``nn.Linear`` initialisation scaled by
``--reinit-scale`` (0.5): the blocks then contribute about a quarter of the output, whose norm stays
O(1) (about 0.55 at random inputs; samples travel about 2,650 km between noise and data). The
random time embedding (cos and sin of gamma at 0.1 to 1,000 radians per unit gamma, all mixed with
equal weight) makes this field oscillate in gamma far faster than a trained one need: no 16-step
solver resolves it, and higher-order steps buy little. ``--time-bandwidth F`` zeroes the weights of
the time features above ``F`` radians per unit gamma (30: the slowest 39 of 64 frequencies, at most
about five periods over the path), a smoother random field on which the solvers' orders show (the
features' standardisation still sees the cut ones, so some fast variation remains).

With network access, ``--weights plonk-osv5m`` (or ``plonk-yfcc``, ``plonk-inat``, or ``NAME:DIR`` for a
local copy) runs the same comparison on the released weights instead of random ones: the trained
field is what the speed-up at equal quality should finally be judged on.

Timing uses one thread by default: the ratios are what this measures, and on a busy machine two
threads per process ran 2-4x slower and erratically, one did not. The load average is recorded.

Set-up: the published package lives in its own environment (it pins and pulls far more than its
network needs), made as in ``tools/plonk_fixture.py``:

    python3 -m venv /tmp/plonkenv
    /tmp/plonkenv/bin/pip install torch==2.13.0 einops huggingface_hub safetensors numpy
    /tmp/plonkenv/bin/pip install --no-deps diff-plonk==0.4 geoopt torchdiffeq

Only its pure-Python published modules (``plonk``, ``geoopt``, ``einops``) are imported from there,
through a temporary folder of links at the end of ``sys.path``; torch and everything else come from
globeflow's environment. Modules that ``plonk/__init__`` imports for its image pipeline and that the
network and sampler never use are replaced by stand-ins (the helpers of ``tools/plonk_fixture.py``).

    python benchmarks/published_sampler.py --out bench_out/published_sampler.json
    python benchmarks/published_sampler.py --time-bandwidth 30 --out bench_out/published_sampler_smooth.json
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from globeflow import geo
from globeflow.flow import GeoFlowModel, ModelConfig, SamplerConfig
from globeflow.inference import load_published_network
from globeflow.io import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SITE = "/tmp/plonkenv/lib/python3.11/site-packages"
#: What the published network, sampler and scheduler import beyond torch and numpy.
PUBLISHED_MODULES = ("plonk", "geoopt", "einops")
#: Imported by ``plonk/__init__`` for the image pipeline only; replaced when not installed.
PIPELINE_ONLY = ["torchvision", "transformers", "geos", "pandas", "scipy", "accelerate", "matplotlib"]
#: Installed here, but its import-time dependency check trips over the stand-in for accelerate.
ALWAYS_STUBBED = ["transformers"]
#: The released checkpoints' network size.
NETWORK = {"input_dim": 3, "dim": 512, "depth": 12, "expansion": 4, "cond_dim": 1024}
#: The published RFM schedule (sigmoid, start -7, end 3, tau 1); globeflow's default is the same.
SCHEDULE = {"start": -7, "end": 3, "tau": 1}
EQUAL_STEPS = (16, 32, 250)
OWN_SAMPLERS = (("rk4", 4), ("rk4", 8), ("rk4", 16), ("rk4", 32), ("midpoint", 8), ("midpoint", 16))
EVALS_PER_STEP = {"euler": 1, "midpoint": 2, "rk4": 4}
#: Relative slack when one row must be "at least as accurate" as another.
TOLERANCE = 0.01


@dataclass
class Published:
    """The published package's pieces used here."""

    Plonk: type
    sampler: Callable
    Scheduler: type
    version: str
    stubbed: list[str]


@dataclass
class Row:
    label: str
    impl: str  # "published" or "globeflow"
    method: str
    steps: int
    nfe: int
    run: Callable[[], Tensor]
    times: list[float] = field(default_factory=list)
    samples: Tensor | None = None
    metrics: dict = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        # Best of the rounds: other processes on the machine only ever add time.
        return min(self.times)


def _load_fixture_helpers():
    """``tools/plonk_fixture.py`` as a module (``tools`` is no package): its stand-in helpers."""
    spec = importlib.util.spec_from_file_location("_plonk_fixture", REPO / "tools" / "plonk_fixture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def import_published(site: Path, links: Path) -> Published:
    """Import the published network, sampler and scheduler from ``site`` without its torch or numpy."""
    missing = [n for n in PUBLISHED_MODULES if not (site / n).is_dir()]
    if missing:
        raise SystemExit(f"{site}: no {', '.join(missing)}; set up the published package as this script's "
                         f"docstring says, or pass --plonk-site")
    # Links to the published modules alone: appending the whole site-packages would also expose its
    # second torch and numpy to any import that globeflow's environment cannot satisfy.
    for name in PUBLISHED_MODULES:
        (links / name).symlink_to(site / name, target_is_directory=True)
    sys.path.append(str(links))
    helpers = _load_fixture_helpers()
    before = set(sys.modules)
    stubbed = helpers._stub_missing(PIPELINE_ONLY)
    finder = helpers._StubFinder(stubbed + ALWAYS_STUBBED)
    sys.meta_path.insert(0, finder)
    try:
        from plonk.models.pretrained_models import Plonk
        from plonk.models.samplers.riemannian_flow_sampler import riemannian_flow_sampler
        from plonk.models.schedulers import SigmoidScheduler
    finally:
        # The stand-ins were for plonk's import only; later imports see the real modules again.
        sys.meta_path.remove(finder)
        for name in set(sys.modules) - before:
            if name.split(".")[0] in finder.roots:
                del sys.modules[name]
    version = next(iter(importlib.metadata.distributions(name="diff-plonk", path=[str(site)])), None)
    return Published(Plonk, riemannian_flow_sampler, SigmoidScheduler,
                     version.version if version else "unknown", stubbed + ALWAYS_STUBBED)


def build_published_network(pub: Published, scale: float, bandwidth: float | None) -> tuple[nn.Module, dict]:
    """The published network at the released size, seeded; zero-initialised layers re-drawn, and with
    ``bandwidth`` the time features above it cut off (module doc)."""
    torch.manual_seed(0)
    net = pub.Plonk(**NETWORK).eval()
    zeroed = [m for m in net.modules() if isinstance(m, nn.Linear) and not m.weight.any()]
    assert zeroed, "the published initialisation no longer zeroes any layer; revisit --reinit-scale"
    with torch.no_grad():
        for layer in zeroed:
            layer.reset_parameters()
            layer.weight.mul_(scale)
            layer.bias.mul_(scale)
        cut = 0
        if bandwidth is not None:
            # The time features are cos and sin of gamma times each frequency (radians per unit gamma).
            te = net.time_embedder
            rates = (te.encode_time.freqs * te.time_scaling).repeat(2)
            high = rates > bandwidth
            te.map_time[0].weight[:, high] = 0.0
            cut = int(high.sum())
    return net, {"reinitialised_layers": len(zeroed), "time_features_cut": cut}


def released_weights(spec: str) -> tuple[Path, dict]:
    """The folder of a released RFM model (downloaded into the Hugging Face cache when needed). The
    embeddings stay random: what decides the solvers' accuracy is how the trained field varies along
    the path, and an RFM field is RFM whatever its condition."""
    from globeflow.io.hub import resolve_spec

    source = resolve_spec(spec)
    if source.kind != "rfm":
        sys.exit(f"--weights {spec}: a {source.kind} model; this benchmark compares the RFM samplers")
    return source.folder, {"weights": spec, **source.origin}


def globeflow_model(folder: Path, device: torch.device) -> GeoFlowModel:
    """The saved published folder loaded the way users load a released checkpoint."""
    net = load_published_network(folder)
    model = GeoFlowModel(ModelConfig(net.config, kind="rfm"))
    model.network.load_state_dict(net.state_dict())
    return model.to(device).eval()


def max_output_difference(net: nn.Module, model: GeoFlowModel, device: torch.device, rows: int = 64) -> float:
    g = torch.Generator().manual_seed(11)
    x = geo.uniform((rows,), generator=g).to(device)
    gamma = torch.rand(rows, generator=g).to(device)
    emb = torch.randn(rows, model.cond_dim, generator=g).to(device)
    with torch.no_grad():
        ours = model.network(x, gamma, emb)
        theirs = net({"y": x, "gamma": gamma, "emb": emb})
    return (ours - theirs).abs().max().item()


def published_run(pub: Published, net: nn.Module, emb: Tensor, x0: Tensor, steps: int, w: float) -> Tensor:
    """One published sampling call as the published pipeline makes it: the embedding repeated per sample.

    (The pipeline wraps the network in ``DDPMPrecond``, which returns the network's output unchanged.)
    """
    b, s, _ = x0.shape
    batch = {"y": x0.reshape(b * s, 3).clone(), "emb": emb.repeat_interleave(s, dim=0)}
    with torch.no_grad():
        out = pub.sampler(net, batch, conditioning_keys="emb", scheduler=pub.Scheduler(**SCHEDULE),
                          num_steps=steps, cfg_rate=w)
    return out.reshape(b, s, 3)


def make_rows(pub: Published, net: nn.Module, model: GeoFlowModel, emb: Tensor, x0: Tensor, w: float) -> list[Row]:
    s = x0.shape[1]
    mult = 2 if w > 0 else 1

    def ours(cfg: SamplerConfig) -> Callable[[], Tensor]:
        return lambda: model.sample(emb, s, cfg, x_init=x0)

    rows = []
    for steps in EQUAL_STEPS:
        rows.append(Row("published euler", "published", "euler", steps, steps * mult,
                        lambda steps=steps: published_run(pub, net, emb, x0, steps, w)))
        rows.append(Row("globeflow euler, published step", "globeflow", "euler", steps, steps * mult,
                        ours(SamplerConfig(method="euler", steps=steps, guidance=w, step="published"))))
    for method, steps in OWN_SAMPLERS:
        rows.append(Row(f"globeflow {method}", "globeflow", method, steps, EVALS_PER_STEP[method] * steps * mult,
                        ours(SamplerConfig(method=method, steps=steps, guidance=w))))
    return rows


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Tensor], device: torch.device) -> tuple[Tensor, float]:
    synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    synchronize(device)
    return out, time.perf_counter() - t0


def run_rounds(rows: list[Row], repeats: int, row_seconds: float, device: torch.device) -> None:
    """Time every row once per round; rounds interleave the rows so that load drift hits all alike.

    After the first round a row is re-run only while its runs so far total under ``row_seconds``:
    a long run already averages over many steps, and the 250-step rows dominate the cost.
    """
    for r in range(repeats):
        for row in rows:
            if r > 0 and sum(row.times) >= row_seconds:
                continue
            out, seconds = timed(row.run, device)
            row.times.append(seconds)
            if row.samples is None:
                row.samples = out.double().cpu()
            print(f"round {r + 1}/{repeats}  {row.label:<32} {row.steps:>4} steps  {seconds:8.2f} s", flush=True)


def pairwise_km(a: Tensor, b: Tensor) -> Tensor:
    """Great-circle distances ``(B, S, 3), (B, T, 3) -> (B, S, T)`` in km."""
    return geo.dist(a.unsqueeze(2), b.unsqueeze(1)) * geo.EARTH_RADIUS_KM


def energy_distance_km(a: Tensor, b: Tensor) -> float:
    """Energy distance (V-statistic, geodesic metric) per image, averaged over images; in km.

    The great-circle distance is of negative type on the sphere, so this is >= 0 and 0 only for
    equal sample sets; float64 since it is a small difference of ~10,000 km means.
    """
    ab, aa, bb = pairwise_km(a, b), pairwise_km(a, a), pairwise_km(b, b)
    per_image = 2 * ab.mean((1, 2)) - aa.mean((1, 2)) - bb.mean((1, 2))
    return per_image.mean().item()


def pathwise_km(a: Tensor, b: Tensor) -> Tensor:
    return geo.dist(a, b).flatten() * geo.EARTH_RADIUS_KM


def score_rows(rows: list[Row], ref: Tensor) -> None:
    by_steps = {r.steps: r.samples for r in rows if r.impl == "published"}
    for row in rows:
        err = pathwise_km(row.samples, ref)
        row.metrics = {"mean_km": err.mean().item(), "p95_km": torch.quantile(err, 0.95).item(),
                       "energy_km": energy_distance_km(row.samples, ref)}
        if row.label == "globeflow euler, published step":
            row.metrics["max_abs_vs_published"] = (row.samples - by_steps[row.steps]).abs().max().item()


def cheapest_as_good(rows: list[Row], target: Row, floor: float) -> Row | None:
    """The fastest globeflow row at least as accurate as ``target``: pathwise (mean error within
    ``TOLERANCE`` of the target's, so that the same algorithm qualifies despite float32 rounding), and
    in distribution (energy distance no worse than the target's, or below the noise floor)."""
    ok = [r for r in rows if r.impl == "globeflow"
          and r.metrics["mean_km"] <= target.metrics["mean_km"] * (1 + TOLERANCE)
          and r.metrics["energy_km"] <= max(target.metrics["energy_km"] * (1 + TOLERANCE), floor)]
    return min(ok, key=lambda r: r.seconds, default=None)


def speedups(rows: list[Row], floor: float) -> dict:
    published = {r.steps: r for r in rows if r.impl == "published"}
    same = {r.steps: r for r in rows if r.label == "globeflow euler, published step"}
    out = {"equal_steps": {str(k): published[k].seconds / same[k].seconds for k in EQUAL_STEPS},
           "equal_quality": {}}
    for k, target in published.items():
        match = cheapest_as_good(rows, target, floor)
        out["equal_quality"][str(k)] = None if match is None else {
            "globeflow": f"{match.label} {match.steps}", "speedup": target.seconds / match.seconds,
            "published_mean_km": target.metrics["mean_km"], "globeflow_mean_km": match.metrics["mean_km"]}
    return out


def table(rows: list[Row], n: int) -> str:
    base = next(r for r in rows if r.impl == "published" and r.steps == 250).seconds
    lines = ["| sampler | steps | NFE/sample | seconds | samples/s | x vs published-250 | mean km to ref "
             "| p95 km | energy distance km |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        m = r.metrics
        lines.append(f"| {r.label} | {r.steps} | {r.nfe} | {r.seconds:.2f} | {n / r.seconds:.1f} | "
                     f"{base / r.seconds:.2f} | {m['mean_km']:.3g} | {m['p95_km']:.3g} | {m['energy_km']:.3g} |")
    return "\n".join(lines)


def reference(model: GeoFlowModel, emb: Tensor, x0: Tensor, steps: int, w: float) -> Tensor:
    cfg = SamplerConfig(method="rk4", steps=steps, guidance=w)
    out = model.sample(emb, x0.shape[1], cfg, x_init=x0).double().cpu()
    print(f"reference rk4 {steps} steps done", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="bench_out/published_sampler.json")
    p.add_argument("--plonk-site", default=os.environ.get("PLONK_SITE", DEFAULT_SITE),
                   help="site-packages holding plonk, geoopt, einops (default: $PLONK_SITE, else %(default)s)")
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--samples", type=int, default=32, help="samples per image")
    p.add_argument("--guidance", type=float, default=0.0)
    p.add_argument("--repeats", type=int, default=3, help="timing rounds at most (best reported)")
    p.add_argument("--row-seconds", type=float, default=20.0,
                   help="re-run a row only while its runs total less than this")
    p.add_argument("--ref-steps", type=int, default=512, help="RK4 steps of the reference solution")
    p.add_argument("--reinit-scale", type=float, default=0.5,
                   help="zero-initialised layers get the default init times this")
    p.add_argument("--time-bandwidth", type=float, default=None,
                   help="cut the time features above this many radians per unit gamma (default: keep all)")
    # One thread: the ratios are what this measures, and on a busy two-core machine two threads
    # per process ran 2-4x slower and erratically (oversubscription); one thread did not.
    p.add_argument("--weights", default=None,
                   help="released weights instead of random ones: a published RFM model (plonk-osv5m, plonk-yfcc, "
                        "plonk-inat; downloaded by huggingface_hub) or NAME:DIR for a local copy")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    start = time.perf_counter()
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    # The published sampler wraps each step in torch.cuda.amp.autocast: deprecated in this torch, and
    # on a machine without CUDA it warns that it disables itself (float32 either way).
    warnings.filterwarnings("ignore", message=r".*torch\.cuda\.amp\.autocast.*", category=FutureWarning)
    warnings.filterwarnings("ignore", message=r"CUDA is not available.*Disabling autocast", category=UserWarning)

    with tempfile.TemporaryDirectory() as tmp:
        links, folder = Path(tmp) / "site", Path(tmp) / "model"
        links.mkdir()
        pub = import_published(Path(a.plonk_site), links)
        if a.weights is None:
            net, init = build_published_network(pub, a.reinit_scale, a.time_bandwidth)
            net.save_pretrained(folder)
        else:
            folder, init = released_weights(a.weights)
            net = pub.Plonk.from_pretrained(str(folder)).eval()
        model = globeflow_model(folder, device)
    net = net.to(device)
    diff = max_output_difference(net, model, device)
    assert diff < 1e-4, f"globeflow's network differs from the published one by {diff:.3g}"
    print(f"diff-plonk {pub.version}; stand-ins for {', '.join(pub.stubbed)}; outputs agree to {diff:.2g}", flush=True)

    g = torch.Generator().manual_seed(1)
    emb = torch.randn(a.images, model.cond_dim, generator=g).to(device)
    x0 = geo.uniform((a.images, a.samples), generator=g).to(device)
    x0_other = geo.uniform((a.images, a.samples), generator=g).to(device)  # for the noise floor only
    rows = make_rows(pub, net, model, emb, x0, a.guidance)
    # Warm-up (allocator, kernel selection) outside the timed rounds.
    published_run(pub, net, emb, x0, 2, a.guidance)
    model.sample(emb, a.samples, SamplerConfig(method="rk4", steps=1, guidance=a.guidance), x_init=x0)
    load = {"start": os.getloadavg()}
    run_rounds(rows, a.repeats, a.row_seconds, device)
    load["after_timing"] = os.getloadavg()

    t_ref = time.perf_counter()
    ref = reference(model, emb, x0, a.ref_steps, a.guidance)
    half = reference(model, emb, x0, a.ref_steps // 2, a.guidance)
    # The noise floor only needs a sample of (nearly) the same distribution from other starts: a
    # quarter of the reference's steps moves samples by far less than the floor.
    ref_other = reference(model, emb, x0_other, max(1, a.ref_steps // 4), a.guidance)
    ref_seconds = time.perf_counter() - t_ref
    convergence = pathwise_km(half, ref)
    floor = energy_distance_km(ref_other, ref)
    travel = pathwise_km(x0.double().cpu(), ref).mean().item()
    score_rows(rows, ref)
    ups = speedups(rows, floor)

    n = a.images * a.samples
    print()
    print(table(rows, n))
    print(f"\nreference: globeflow rk4 {a.ref_steps} steps; vs rk4 {a.ref_steps // 2}: mean "
          f"{convergence.mean().item():.3g} km, max {convergence.max().item():.3g} km; samples travel "
          f"{travel:.0f} km on average from their start")
    print(f"energy-distance noise floor (rk4 {max(1, a.ref_steps // 4)} from other starts vs the reference): "
          f"{floor:.3g} km")
    dev = {r.steps: r.metrics["max_abs_vs_published"] for r in rows if "max_abs_vs_published" in r.metrics}
    print("globeflow published-step vs published samples, max |coordinate difference|: "
          + ", ".join(f"{k} steps {v:.2g}" for k, v in dev.items()))
    print("speed-up at equal steps (published euler / globeflow published-step euler): "
          + ", ".join(f"{k}: {v:.2f}x" for k, v in ups["equal_steps"].items()))
    for k, m in ups["equal_quality"].items():
        print(f"speed-up at equal quality vs published euler {k}: "
              + ("no globeflow row is as accurate" if m is None else
                 f"{m['globeflow']} ({m['globeflow_mean_km']:.3g} km vs {m['published_mean_km']:.3g} km): "
                 f"{m['speedup']:.2f}x"))
    wall = time.perf_counter() - start
    print(f"wall time {wall:.0f} s")

    result = {
        "config": {**{k: v for k, v in vars(a).items() if k != "out"}, "network": {k: getattr(model.config.network, k) for k in NETWORK}, "schedule": SCHEDULE,
                   **init},
        "torch": torch.__version__, "diff_plonk": pub.version, "stubbed_modules": pub.stubbed,
        "device": str(device), "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "load_average": load, "samples_total": n,
        "max_output_difference": diff,
        "reference": {"method": "rk4", "steps": a.ref_steps, "seconds": ref_seconds,
                      "noise_floor_steps": max(1, a.ref_steps // 4),
                      "vs_half_steps_mean_km": convergence.mean().item(),
                      "vs_half_steps_max_km": convergence.max().item(), "mean_travel_km": travel},
        "energy_noise_floor_km": floor,
        "rows": [{"sampler": r.label, "method": r.method, "steps": r.steps, "nfe_per_sample": r.nfe,
                  "seconds": r.seconds, "seconds_median": statistics.median(r.times), "seconds_all": r.times, "samples_per_s": n / r.seconds, **r.metrics}
                 for r in rows],
        "speedups": ups, "wall_seconds": wall,
    }
    atomic_write_text(a.out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
