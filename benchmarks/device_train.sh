#!/usr/bin/env bash
# Continue the bundled field model on a lent GPU, in one call of the device tool:
#
#   run(command='bash benchmarks/device_train.sh 7 "--batch-size 64"', carry=[".whl"], timeout_s=600)
#
# $1: minutes of training (the session's clock, compilation included). Import, the last validation and saving come
#     on top (~1-1.5 min), and the machine's start (~30 s) counts against the device budget: with 15 minutes a task,
#     7 minutes in one call is the plan. A call killed before the end brings back only the log.
# $2: extra arguments for train_bundled.py. On an H200 a step of 64 tasks is ~0.1 s and the samplers (all cores
#     but two) give ~4 such steps a second (benchmarks/RESULTS.md, stop 33): the GPU waits on them. "--task-reuse 2"
#     uses each sampled batch for two steps (under two symmetries of the prior); not yet measured on a GPU.
# The machine has jax, flax and optax of its own but not dask: carry wheels in .whl (`echo /.whl/ >> .git/info/exclude`):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .whl dask==2026.8.0 partd==1.4.2 locket==1.0.0 tblib==3.2.2 \
#       flax==0.12.8 optax==0.2.8
# If the machine's own flax/optax fail within the first minutes, the run is repeated with the carried ones.
# What comes back under $OUT: the release (config.json, params.safetensors; copy into
# geonp/pretrained_models/field-normal after checking it), train.log, and runs.tgz (the resumable run:
# unpack into runs/ and rerun train_bundled.py to continue it exactly).
set -u
MINUTES=${1:-7}
EXTRA=${2:-}
OUT=${OUT:-/tmp/geonp-device-out}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
START=$SECONDS

if ls .whl/dask-*.whl >/dev/null 2>&1; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/dask-*.whl .whl/partd-*.whl .whl/locket-*.whl .whl/tblib-*.whl || exit 1
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
versions() {
    "$PYTHON" -c "import jax, flax, optax, numpy; print('jax', jax.__version__, 'flax', flax.__version__, \
'optax', optax.__version__, 'numpy', numpy.__version__, jax.devices())"
}
versions | tee "$OUT/versions.txt"

export PYTHONUNBUFFERED=1
train() {  # $1: minutes
    # shellcheck disable=SC2086
    "$PYTHON" -m benchmarks.train_bundled --model field --minutes "$1" --steps 6000 --install $EXTRA \
        >>"$OUT/train.log" 2>&1
}
train "$MINUTES"
status=$?
if [ $status -ne 0 ] && [ $((SECONDS - START)) -lt 180 ] && ls .whl/flax-*.whl >/dev/null 2>&1; then
    echo "training failed with the machine's flax/optax (rc $status); again with the carried ones" | tee -a "$OUT/train.log"
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site2 \
        .whl/flax-*.whl .whl/optax-*.whl && export PYTHONPATH=/tmp/site2:$PYTHONPATH
    versions | tee -a "$OUT/versions.txt"
    train "$(awk -v m="$MINUTES" -v spent=$((SECONDS - START)) 'BEGIN { x = m - spent / 60; print (x < 1 ? 1 : x) }')"
    status=$?
fi

cp geonp/pretrained_models/field-normal/config.json geonp/pretrained_models/field-normal/params.safetensors "$OUT/"
[ -d runs ] && tar czf "$OUT/runs.tgz" runs
grep -v "^training:" "$OUT/train.log" | tail -n 30
tail -c 600 "$OUT/train.log"
echo "rc $status after $((SECONDS - START)) s"
exit $status
