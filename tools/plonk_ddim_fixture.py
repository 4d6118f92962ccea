"""Reference DDIM samples of the published package (not run in CI; the output is committed).

Runs the published DDIM sampler (``plonk.models.samplers.ddim.ddim_sampler``, ``diff-plonk`` 0.4) with
the tiny published network of ``tests/fixtures/plonk_tiny`` on fixed starting points and embeddings,
250 steps and the published sigmoid schedule, and writes the inputs and the samples to
``tests/fixtures/plonk_tiny/ddim_reference.safetensors``. ``tests/test_plonk_fixture.py`` checks that
globeflow's ``--protocol published`` DDIM reproduces them.

    pip install --no-deps --target /tmp/plonksite diff-plonk==0.4 geoopt einops
    python tools/plonk_ddim_fixture.py --plonk-site /tmp/plonksite
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from published_sampler import SCHEDULE, import_published  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--plonk-site", default="/tmp/plonksite")
    p.add_argument("--fixture", default=str(ROOT / "tests" / "fixtures" / "plonk_tiny"))
    p.add_argument("--rows", type=int, default=4)
    p.add_argument("--samples", type=int, default=16)
    a = p.parse_args(argv)
    pub = import_published(Path(a.plonk_site), Path(tempfile.mkdtemp(prefix="plonk-links-")))
    from plonk.models.samplers.ddim import ddim_sampler

    fixture = Path(a.fixture)
    import json

    cfg = json.loads((fixture / "config.json").read_text())
    net = pub.Plonk(**{k: cfg[k] for k in ("input_dim", "dim", "depth", "expansion", "cond_dim")}).eval()
    missing, unexpected = net.load_state_dict(load_file(str(fixture / "model.safetensors")), strict=False)
    assert not missing and not unexpected, (missing, unexpected)
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(a.rows, cfg["cond_dim"], generator=g)
    x0 = torch.randn(a.rows, a.samples, 3, generator=g)
    batch = {"y": x0.reshape(-1, 3).clone(), "emb": emb.repeat_interleave(a.samples, dim=0)}
    with torch.no_grad():
        out = ddim_sampler(net, batch, conditioning_keys="emb", scheduler=pub.Scheduler(**SCHEDULE), num_steps=250)
    out = out.reshape(a.rows, a.samples, 3).contiguous()
    save_file({"emb": emb, "x0": x0, "samples": out}, str(fixture / "ddim_reference.safetensors"),
              metadata={"package": f"diff-plonk {pub.version}", "sampler": "ddim_sampler", "steps": "250",
                        "schedule": json.dumps(SCHEDULE)})
    print(f"wrote {fixture / 'ddim_reference.safetensors'}: samples {tuple(out.shape)}, "
          f"norms {out.norm(dim=-1).min():.3f}..{out.norm(dim=-1).max():.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
