"""Reference fixture for the published PLONK network (not run in CI; its outputs are committed).

Builds a tiny, randomly initialised network with the *published* package (``diff-plonk``, imported
as ``plonk``), saves it in the Hugging Face hub layout (``config.json`` + ``model.safetensors``, as
``PyTorchModelHubMixin.save_pretrained`` writes them) and records its outputs for fixed inputs, so
that ``tests/test_plonk_fixture.py`` can check that globeflow's network loads the published layout
unchanged and computes the same function.

Set-up (a separate environment: the published package pins and pulls far more than its network
needs, so it is installed without dependencies):

    python3 -m venv /tmp/plonkenv
    /tmp/plonkenv/bin/pip install torch==2.13.0 einops huggingface_hub safetensors numpy
    /tmp/plonkenv/bin/pip install --no-deps diff-plonk==0.4 geoopt torchdiffeq
    /tmp/plonkenv/bin/python tools/plonk_fixture.py --out tests/fixtures/plonk_tiny

``plonk/__init__`` imports its whole inference pipeline (torchvision, transformers); modules that are
not installed are replaced by empty stand-ins, since the network itself uses none of them.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import json
import sys
import types
from pathlib import Path


class _Anything(types.ModuleType):
    """A stand-in module whose every attribute is another stand-in (enough for ``from x import y``)."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        child = _Anything(f"{self.__name__}.{name}")
        setattr(self, name, child)
        return child

    def __call__(self, *args, **kwargs):
        return self


def _stub_missing(names: list[str]) -> list[str]:
    stubbed = []
    for name in names:
        if importlib.util.find_spec(name) is None:
            stub = _Anything(name)
            stub.__path__ = []  # a package, so that submodule imports resolve to stand-ins too
            sys.modules[name] = stub
            stubbed.append(name)
    return stubbed


class _StubFinder:
    """Resolves submodules of stubbed packages (``torchvision.transforms`` ...) to stand-ins."""

    def __init__(self, roots: list[str]):
        self.roots = roots

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in self.roots:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        m = _Anything(spec.name)
        m.__path__ = []
        return m

    def exec_module(self, module):
        pass


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="tests/fixtures/plonk_tiny")
    p.add_argument("--dim", type=int, default=32)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--expansion", type=int, default=2)
    p.add_argument("--cond-dim", type=int, default=16)
    p.add_argument("--rows", type=int, default=24)
    a = p.parse_args(argv)
    stubbed = _stub_missing(["torchvision", "transformers", "geos", "pandas", "scipy", "accelerate"])
    sys.meta_path.insert(0, _StubFinder(stubbed))
    import torch
    from plonk.models.pretrained_models import Plonk
    from safetensors.torch import save_file

    torch.manual_seed(0)
    config = {"input_dim": 3, "dim": a.dim, "depth": a.depth, "expansion": a.expansion, "cond_dim": a.cond_dim}
    net = Plonk(**config).eval()
    # The published initialisation zeroes the blocks' last layers (every block starts as the
    # identity); random values everywhere make the check exercise every weight.
    with torch.no_grad():
        for param in net.parameters():
            param.copy_(0.2 * torch.randn_like(param))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    net.save_pretrained(out)
    g = torch.Generator().manual_seed(1)
    x = torch.nn.functional.normalize(torch.randn(a.rows, 3, generator=g), dim=-1)
    gamma = torch.rand(a.rows, generator=g)
    emb = torch.randn(a.rows, a.cond_dim, generator=g)
    with torch.no_grad():
        y = net({"y": x, "gamma": gamma, "emb": emb})
    # The published Euler sampler from fixed starting points, with the published RFM schedule
    # (sigmoid, start -7, end 3, tau 1), unguided and at guidance 2.
    from plonk.models.samplers.riemannian_flow_sampler import riemannian_flow_sampler
    from plonk.models.schedulers import SigmoidScheduler

    x0 = torch.nn.functional.normalize(torch.randn(a.rows, 3, generator=g), dim=-1)
    samples = {}
    for steps in (16, 32):
        for cfg in (0.0, 2.0):
            with torch.no_grad():
                samples[f"samples_euler{steps}_cfg{cfg:g}"] = riemannian_flow_sampler(
                    net, {"y": x0.clone(), "emb": emb.clone()}, conditioning_keys="emb",
                    scheduler=SigmoidScheduler(start=-7, end=3, tau=1), num_steps=steps, cfg_rate=cfg).contiguous()
    save_file({"x": x, "gamma": gamma, "emb": emb, "output": y.contiguous(), "x0": x0, **samples},
              str(out / "reference_io.safetensors"),
              metadata={"package": "diff-plonk", "version": importlib.metadata.version("diff-plonk"),
                        "torch": torch.__version__, "stubbed_modules": json.dumps(stubbed)})
    print(json.dumps({"out": str(out), "config": config, "rows": a.rows, "stubbed": stubbed,
                      "files": sorted(f.name for f in out.iterdir())}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
