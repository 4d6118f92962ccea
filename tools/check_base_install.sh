#!/usr/bin/env bash
# The base install, checked as a user would: a fresh virtual environment with `pip install .` and no
# extras, then the known-answer task's train -> predict -> evaluate, and the one-line hints of the
# features whose extras are missing (serve, demo, an image encoder). Prints the venv's size.
#
#   tools/check_base_install.sh [WORK_DIR]      (default /tmp/globeflow-base; about 3 minutes)
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/globeflow-base}
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
python3 -m venv venv
venv/bin/pip install -q torch==2.13.0 "$repo" 2>&1 | grep -v "WARNING: Location" | tail -3
echo "venv size: $(du -sh venv | cut -f1)"
venv/bin/python - <<'PY'
import torch
from globeflow.apps.tasks.known_answer import default_task
from globeflow.data import write_embeddings
task = default_task()
for name, rows, seed in (("train", 20000, 0), ("test", 200, 1)):
    latlon, emb, labels = task.sample(rows, generator=torch.Generator().manual_seed(seed))
    write_embeddings(f"{name}.parquet", latlon, emb, metadata={"label": labels.tolist()})
PY
status=0
run() { echo "\$ globeflow $*"; venv/bin/globeflow "$@"; }
run train train.parquet --out run --dim 64 --depth 2 --steps 300 --no-progress || status=1
run predict run test.parquet --out preds.csv --num-samples 32 || status=1
run evaluate run test.parquet --out report.json --num-samples 32 --calibration-samples 16 > /dev/null || status=1
venv/bin/python -c "import json; m = json.load(open('report.json'))['metrics']; print('GeoScore', round(m['geoscore']), 'NLL', round(m['nll'], 3), 'nats/sr')"
for args in "serve --model run" "demo" "predict run $repo/tests/fixtures/golden/blue_patches --out a.csv --encoder efficientnet-lite0@64"; do
    # shellcheck disable=SC2086
    run $args; code=$?
    [ "$code" -eq 2 ] || { echo "expected a one-line error (exit 2), got $code"; status=1; }
done
venv/bin/python -c "import globeflow, sys; print('heavy modules after import globeflow:', [m for m in ('healpy', 'matplotlib', 'transformers', 'fastapi') if m in sys.modules])"
exit $status
