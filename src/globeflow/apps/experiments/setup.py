"""The experiments' tasks, trained runs and cached measurements, all under one work folder.

Everything the report needs is made once and kept: the tasks' data, each trained model (the shared
trainer, resumable), each evaluation and each experiment's cells as JSON. A rerun reads what is
there, so an interrupted report resumes; a work folder belongs to one configuration
(:meth:`ExperimentsConfig.stamp`) and another is refused rather than mixed in.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow.parquet as pq
import torch

from ...data.embeddings import write_embeddings
from ...evaluation.baselines import read_arrays
from ...evaluation.report import evaluate
from ...geo.distance import distances_km
from ...inference.loading import load_locator
from ...io.checkpoint import CHECKPOINT_NAME, load_checkpoint
from ...io.files import atomic_write_text
from ...train import TrainConfig, train
from ..demos.blue_marble import build_demo_data
from ..demos.known_answer import make_task_data
from ..tasks.known_answer import KnownAnswerTask, default_task
from .config import ExperimentsConfig

__all__ = ["TestSet", "Task", "Workspace", "FLOWS"]

#: The three generative variants compared throughout.
FLOWS = ("rfm", "fm", "diffusion")
#: Beside a run trained here: the seconds its training took, all resumed parts together.
TRAIN_SECONDS = "experiments_train_seconds.json"


def _run_name(kind: str, components: int | None) -> str:
    """A run's folder name: its kind, with a vMF mixture's number of components."""
    return kind if components is None else f"{kind}-{components}"


@dataclass
class TestSet:
    """One test split: ``latlon (N, 2)`` degrees, ``emb (N, D)``, and the known-answer labels ``(N,)``."""

    task: str
    name: str
    path: Path
    latlon: np.ndarray
    emb: np.ndarray
    labels: np.ndarray | None = None

    @property
    def key(self) -> str:
        return f"{self.task}/{self.name}"

    @property
    def title(self) -> str:
        return {"known-answer/test": "known answer", "blue-marble/unseen": "Blue Marble, unseen regions",
                "blue-marble/random": "Blue Marble, random split"}.get(self.key, self.key)


@dataclass
class Task:
    """A task's training data, test splits and the settings every model on it shares."""

    name: str
    train_path: Path
    tests: list[TestSet]
    network: dict[str, int]
    train_config: TrainConfig
    runs: Path
    #: Runs reused from elsewhere (the demo's rfm model), by model name.
    reuse: dict[str, Path] = field(default_factory=dict)


class Workspace:
    """The work folder of one configuration: tasks, trained runs, cached results."""

    def __init__(self, work: str | Path, config: ExperimentsConfig, *, demo: str | Path | None = None,
                 progress: bool = True, blue_marble: bool = True):
        self.work, self.config, self.progress = Path(work), config, progress
        self.demo = Path(demo) if demo is not None else None
        #: Seconds each cached measurement took when it was made (also when read back).
        self.measure_seconds: dict[str, float] = {}
        self._check_stamp()
        self.known_answer_task: KnownAnswerTask = default_task()
        self.tasks = [self._known_answer()]
        if blue_marble and config.blue_marble is not None:
            self.tasks.append(self._blue_marble())

    def _check_stamp(self) -> None:
        stamp_file = self.work / "config.json"
        stamp = {"stamp": self.config.stamp(), "config": self.config.to_dict()}
        if stamp_file.exists():
            old = json.loads(stamp_file.read_text())
            if old.get("stamp") != stamp["stamp"]:
                raise ValueError(f"{self.work} holds the experiments of another configuration ({old.get('config', {}).get('name')!r}, "
                                 f"stamp {old.get('stamp')}); use another --work folder or delete this one")
            return
        atomic_write_text(stamp_file, json.dumps(stamp, indent=2))

    # --- tasks ------------------------------------------------------------------------------------------------------

    def _known_answer(self) -> Task:
        sizes = self.config.known_answer
        train_path, test_path = make_task_data(self.known_answer_task, self.work / "known-answer" / "data",
                                               sizes.train_rows, sizes.test_rows)
        latlon, emb, _, _ = read_arrays(test_path)
        labels = np.asarray(pq.read_table(test_path, columns=["label"]).column("label").to_pylist())
        test = TestSet("known-answer", "test", test_path, latlon, emb, labels)
        return Task("known-answer", train_path, [test], dict(sizes.network), sizes.train,
                    self.work / "known-answer" / "runs")

    def _blue_marble(self) -> Task:
        cfg = self.config.blue_marble
        assert cfg is not None
        reuse: dict[str, Path] = {}
        if self.demo is not None:
            # The demo's data and rfm model, when they are what this configuration would build.
            data = build_demo_data(self.demo / "data", cfg, progress=self.progress)
            run = self.demo / "rfm"
            if (run / CHECKPOINT_NAME).exists():
                if _same_settings(load_checkpoint(run, prefixes=()).meta, cfg.train, dict(cfg.network)):
                    reuse["rfm"] = run
        else:
            data = build_demo_data(self.work / "blue-marble" / "data", cfg, progress=self.progress)
        tests = []
        for name, key in (("unseen", "test_unseen"), ("random", "test_random")):
            latlon, emb, ids, _ = read_arrays(data[key])
            path, rows = data[key], self.config.blue_marble_rows
            if rows is not None and rows < len(ids):
                # The first rows only (measuring every flow on all of them is the slow part).
                path = self.work / "blue-marble" / f"{key}_first{rows}.parquet"
                latlon, emb, ids = latlon[:rows], emb[:rows], ids[:rows]
                if not path.exists():
                    write_embeddings(path, latlon, emb, ids=ids)
            tests.append(TestSet("blue-marble", name, path, latlon, emb))
        return Task("blue-marble", data["train"], tests, dict(cfg.network), cfg.train,
                    self.work / "blue-marble" / "runs", reuse)

    # --- trained runs -----------------------------------------------------------------------------------------------

    def run(self, task: Task, kind: str, components: int | None = None) -> Path:
        """The trained run of ``kind`` on ``task`` (trained now unless finished; same network, optimiser
        and steps for every kind). ``components``: the vMF mixture's."""
        name = _run_name(kind, components)
        if name in task.reuse:
            return task.reuse[name]
        run = task.runs / name
        done = (run / CHECKPOINT_NAME).exists() and load_checkpoint(run, prefixes=()).meta["step"] >= task.train_config.steps
        timing = run / TRAIN_SECONDS
        if not done:
            t0 = time.time()
            train(task.train_path, run, kind=kind, network=task.network, config=task.train_config, resume=True,
                  progress=self.progress, head=None if components is None else {"components": components})
            spent = time.time() - t0 + (json.loads(timing.read_text()) if timing.exists() else 0.0)
            atomic_write_text(timing, json.dumps(round(spent, 1)))  # a resumed training adds its part
        return run

    def train_seconds(self) -> dict[str, float]:
        """Seconds each run in the work folder took to train, by ``task/run`` (read from the runs, so
        also when every measurement is read back; the demo's reused model is not counted)."""
        return {f"{f.parents[2].name}/{f.parent.name}": json.loads(f.read_text())
                for f in sorted(self.work.glob(f"*/runs/*/{TRAIN_SECONDS}"))}

    def entropy(self) -> torch.Tensor:
        """The known-answer classes' true entropies ``(C,)`` nats (Monte Carlo, cached)."""
        return torch.tensor(self.cached("known-answer-entropy", lambda: self.known_answer_task.entropy().tolist()),
                            dtype=torch.float64)

    def locator(self, task: Task, kind: str, components: int | None = None) -> Any:
        return load_locator(self.run(task, kind, components))

    # --- cached measurements ----------------------------------------------------------------------------------------

    def cached(self, name: str, compute: Callable[[], Any]) -> Any:
        """``compute()``'s JSON value, kept at ``work/results/<name>.json`` with the seconds it took, and
        read back on a rerun (its seconds still count in :attr:`measure_seconds`)."""
        path = self.work / "results" / f"{name}.json"
        if path.exists():
            saved = json.loads(path.read_text())
        else:
            t0 = time.time()
            value = compute()
            saved = {"seconds": round(time.time() - t0, 2), "value": json.loads(json.dumps(value))}
            atomic_write_text(path, json.dumps(saved))
        self.measure_seconds[name] = saved["seconds"]
        return saved["value"]

    def evaluation(self, task: Task, test: TestSet, kind: str, components: int | None = None) -> dict[str, Any]:
        """``globeflow evaluate``'s measurements of a model on a test split, with per-row errors (km)
        and log-densities (cached)."""
        name = _run_name(kind, components)

        def compute() -> dict[str, Any]:
            ev = evaluate(self.locator(task, kind, components), test.path, progress=self.progress,
                          num_samples=self.config.point_samples, seed=self.config.seed,
                          calibration_samples=self.config.calibration_samples)
            err = distances_km(torch.from_numpy(ev.pred), torch.from_numpy(ev.true)).numpy()
            return {"metrics": ev.report["metrics"], "seconds": ev.report["seconds"], "errors_km": err.tolist(),
                    "log_prob": None if ev.log_prob is None else ev.log_prob.tolist()}

        return self.cached(f"evaluations/{test.task}-{test.name}-{name}", compute)


def _same_settings(meta: dict[str, Any], config: TrainConfig, network: dict[str, int]) -> bool:
    """Whether a checkpoint was trained with ``config`` and ``network`` (read through JSON: tuples are
    lists), i.e. whether it is the run this configuration would train."""
    saved_net = meta.get("model_config", {}).get("network", {})
    return (meta.get("train_config") == json.loads(json.dumps(config.__dict__))
            and all(saved_net.get(k) == v for k, v in network.items()))
