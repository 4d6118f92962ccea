"""Check that the published package loads globeflow's exports (not run in CI; needs ``diff-plonk``).

``globeflow export`` writes ``config.json`` + ``model.safetensors`` in the published layout. This
script makes small random globeflow models (both time-embedding variants), exports them and records
their outputs with globeflow (run by ``--globeflow-python``), then loads each export with the
published ``Plonk.from_pretrained`` and prints the largest output difference.

    /tmp/plonkenv/bin/python tools/plonk_check_export.py --globeflow-python .venv/bin/python

(``/tmp/plonkenv`` as set up in ``tools/plonk_fixture.py``.)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

_EXPORT = """
import sys, torch
from safetensors.torch import save_file
from globeflow.inference import Geolocator
from globeflow.apps.export import export_model
from globeflow.flow import GeoFlowModel, ModelConfig
from globeflow.flow.network import NetworkConfig
out = sys.argv[1]
for variant in ("published", "endpoint"):
    torch.manual_seed(0)
    model = GeoFlowModel(ModelConfig(NetworkConfig(cond_dim=16, dim=24, depth=2, time_frequencies=variant)))
    with torch.no_grad():
        for p in model.network.parameters():
            p.add_(0.05 * torch.randn_like(p))  # zero-initialised layers too
    Geolocator(model, device="cpu", encoder="streetclip").save(f"{out}/run-{variant}")
    export_model(f"{out}/run-{variant}", f"{out}/hub-{variant}")
    g = torch.Generator().manual_seed(1)
    x = torch.nn.functional.normalize(torch.randn(32, 3, generator=g), dim=-1)
    gamma, emb = torch.rand(32, generator=g), torch.randn(32, 16, generator=g)
    with torch.no_grad():
        y = model.network(x, gamma, emb)
    save_file({"x": x, "gamma": gamma, "emb": emb, "y": y}, f"{out}/io-{variant}.safetensors")
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--globeflow-python", required=True, help="python of an environment with globeflow installed")
    a = p.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).parent))
    from plonk_fixture import _stub_missing, _StubFinder

    sys.meta_path.insert(0, _StubFinder(_stub_missing(["torchvision", "transformers", "geos", "pandas", "scipy",
                                                       "accelerate"])))
    import torch
    from plonk.models.pretrained_models import Plonk
    from safetensors.torch import load_file

    with tempfile.TemporaryDirectory() as out:
        subprocess.run([a.globeflow_python, "-c", _EXPORT, out], check=True)
        result = {}
        for variant in ("published", "endpoint"):
            net = Plonk.from_pretrained(f"{out}/hub-{variant}").eval()
            io = load_file(f"{out}/io-{variant}.safetensors")
            with torch.no_grad():
                y = net({"y": io["x"], "gamma": io["gamma"], "emb": io["emb"]})
            result[variant] = float((y - io["y"]).abs().max())
    print(json.dumps({"max_abs_difference": result}))
    return 0 if max(result.values()) < 1e-5 else 1


if __name__ == "__main__":
    raise SystemExit(main())
