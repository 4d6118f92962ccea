"""The paper's experiments and open questions as one reproducible report (``benchmarks/experiments.py``):

1. Euclidean vs Riemannian (:mod:`.geometry`), 2. the guidance scale (:mod:`.guidance`), 3. the
projection onto the sphere (:mod:`.projection`), 4. vMF mixture components (:mod:`.mixtures`),
5. solver steps (:mod:`.steps`). Models are trained by the shared trainer and cached with every
measurement under a work folder (:mod:`.setup`); :mod:`.report` writes the answers, tables and pictures.
"""

from .config import EXPERIMENTS, FULL, PRESETS, QUICK, TINY, ExperimentsConfig, KnownAnswerSizes
from .run import TASKS, run_experiments

__all__ = ["EXPERIMENTS", "FULL", "PRESETS", "QUICK", "TINY", "ExperimentsConfig", "KnownAnswerSizes", "TASKS",
           "run_experiments"]
