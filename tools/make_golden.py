"""Build the golden-output fixtures in ``tests/fixtures/golden`` (run once; the files are committed).

Small trained models and data on the two tasks, then the outputs of ``predict``, ``map``,
``log-prob``, ``evaluate``, photo answers and the web server's answer (``tests/golden.py`` runs the
cases). ``tests/test_golden.py`` re-runs every case and compares it with the recorded output, so a
restructuring that changes any answer fails.

    python tools/make_golden.py            # models, data and expected outputs
    python tools/make_golden.py --expected # only re-record the expected outputs (a deliberate change)
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import golden  # noqa: E402  (tests/golden.py: the cases and their normalisation)

KNOWN_TRAIN_ROWS = 20_000
BLUE_TRAIN_ROWS = 3_000


def _save_inference(run: Path, out: Path) -> None:
    """The run's EMA weights and configs as a small inference checkpoint (no optimiser state)."""
    from globeflow.io import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(run)
    tensors = {f"ema.{k}": v for k, v in ckpt.state("ema").items()}
    save_checkpoint(out / "checkpoint.safetensors", tensors, model_config=ckpt.meta["model_config"],
                    train_config=ckpt.meta["train_config"], step=ckpt.meta["step"], extra=ckpt.meta["extra"])


def build_known_answer(work: Path) -> None:
    from globeflow.apps.tasks.known_answer import default_task
    from globeflow.data import write_embeddings
    from globeflow.train import TrainConfig, train

    task = default_task()
    latlon, emb, labels = task.sample(KNOWN_TRAIN_ROWS, generator=torch.Generator().manual_seed(0))
    train_path = write_embeddings(work / "known_train.parquet", latlon, emb, metadata={"label": labels.tolist()})
    latlon, emb, labels = task.sample(golden.KNOWN_TEST_ROWS, generator=torch.Generator().manual_seed(1))
    write_embeddings(golden.FIXTURES / "known_test.parquet", latlon, emb,
                     ids=[f"k{i:02d}" for i in range(len(latlon))], metadata={"label": labels.tolist()})
    config = TrainConfig(steps=400, batch_size=256, warmup_steps=50, ckpt_every=400, val_every=400)
    net = {"dim": 32, "depth": 2}
    for kind, name in (("rfm", "known_rfm"), ("fm", "known_fm"), ("vmf-mixture", "known_vmf")):
        run = work / name
        train(train_path, run, kind=kind, network=net, config=config, progress=False, device="cpu")
        _save_inference(run, golden.FIXTURES / name)


def build_blue_marble(work: Path) -> None:
    from PIL import Image

    from globeflow.apps.tasks.blue_marble import BlueMarbleConfig, make_splits, patches_for
    from globeflow.data import write_embeddings
    from globeflow.data.encoders import load_encoder
    from globeflow.train import TrainConfig, train

    config = BlueMarbleConfig()
    splits = make_splits(config)
    encoder = load_encoder(golden.BLUE_ENCODER)
    latlon = splits.train[:BLUE_TRAIN_ROWS]
    emb = []
    for i in range(0, len(latlon), 256):
        patches = patches_for(latlon[i:i + 256], config)
        emb.append(encoder.embed_images([Image.fromarray(p) for p in patches]).numpy())
    work = work / "blue"
    train_path = write_embeddings(work / "blue_train.parquet", latlon, np.concatenate(emb))
    (work / "embed.json").write_text('{"encoder": "%s"}' % golden.BLUE_ENCODER)  # read_manifest -> encoder
    run = work / "blue_rfm"
    train(train_path, run, network={"dim": 32, "depth": 2},
          config=TrainConfig(steps=300, batch_size=256, warmup_steps=50, ckpt_every=300, val_every=300),
          progress=False, device="cpu")
    _save_inference(run, golden.FIXTURES / "blue_rfm")
    folder = golden.FIXTURES / "blue_patches"
    folder.mkdir(parents=True, exist_ok=True)
    pick = np.linspace(0, len(splits.test_unseen) - 1, golden.BLUE_PATCHES).astype(int)
    for j, i in enumerate(pick):
        patch = patches_for(splits.test_unseen[i:i + 1], config)[0]
        buf = io.BytesIO()
        Image.fromarray(patch).save(buf, format="PNG")
        (folder / f"patch{j}.png").write_bytes(buf.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--expected", action="store_true", help="only re-record the expected outputs")
    args = parser.parse_args()
    torch.set_num_threads(2)
    if not args.expected:
        import tempfile

        golden.FIXTURES.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            build_known_answer(Path(tmp))
            build_blue_marble(Path(tmp))
    golden.write_expected()


if __name__ == "__main__":
    main()
