#!/usr/bin/env bash
# One training run on a GPU machine that has JAX but no TensorFlow and no network.
#
#   python tools/gpu_prepare.py          # here, with TensorFlow: fills .gpu/ and .whl/
#   bash tools/gpu_train.sh OUT MINUTES [train.py flags ...]     # there
#
# .whl/ (keras, optree, namex wheels; gpu_prepare.py downloads them with `pip download`) and
# .gpu/ (photos re-encoded to fit the transfer, the hole pool, the state to resume from, the
# JAX compilation cache) are git-ignored and travel with the working tree. The run resumes from
# .gpu/state if it is there, else starts from the bundled weights; it trains with
# `train.py --backend=jax --train_minutes MINUTES` and copies the state files (training.state),
# best.npz, the validation log and the log to OUT every 20 s, so a run cut short still leaves
# its last state; at the end it adds the compilation cache (OUT/jax-cache.tar) for the next run.
# Several calls with the same RUN_DIR continue one run (say reconstruction, then Algorithm 1).
# ALLOW_CPU=1 runs on the CPU (the test does, with a tiny budget).
set -euo pipefail
OUT=${1:?usage: gpu_train.sh OUT MINUTES [train.py flags ...]}
MINUTES=${2:?usage: gpu_train.sh OUT MINUTES [train.py flags ...]}
shift 2
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
RUN_DIR=${RUN_DIR:-/tmp/hifill-run}
GPU=${GPU_DIR:-.gpu}
mkdir -p "$OUT" "$RUN_DIR"
log() { echo "[gpu_train $(date -u +%H:%M:%S)] $*" | tee -a "$OUT/train.log"; }

# 1. Keras from the carried wheels, unless this Python has it.
if ! "$PYTHON" -c "import keras" 2>/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/hifill-site .whl/*.whl
  export PYTHONPATH=/tmp/hifill-site${PYTHONPATH:+:$PYTHONPATH}
fi
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1

# 2. Imports and the device, in the first seconds.
"$PYTHON" - <<'EOF' 2>&1 | tee -a "$OUT/train.log"
import os, sys
import jax, keras
device = jax.devices()[0]
print(f"jax {jax.__version__}, keras {keras.__version__} ({keras.backend.backend()}), "
      f"device {device.platform} {device.device_kind}, {os.cpu_count()} cores")
if device.platform != "gpu" and os.environ.get("ALLOW_CPU") != "1":
    sys.exit("gpu_train.sh: no GPU visible to JAX (ALLOW_CPU=1 runs on the CPU)")
import hifill_tf.training.jax_trainer  # noqa: F401  (the trainer imports without TensorFlow)
assert "tensorflow" not in sys.modules, "the JAX trainer imported TensorFlow"
EOF

# 3. The compilation cache of the last run, if it came along.
CACHE=/tmp/hifill-jax-cache
mkdir -p "$CACHE"
if [ -f "$GPU/jax-cache.tar" ] && [ -z "$(ls -A "$CACHE")" ]; then
  tar -xf "$GPU/jax-cache.tar" -C "$CACHE"
fi
export JAX_COMPILATION_CACHE_DIR=$CACHE

# 4. Resume from the carried state, else start from the bundled weights.
START=()
if [ -d "$GPU/state" ] && [ ! -d "$RUN_DIR/state" ]; then
  cp -r "$GPU/state" "$RUN_DIR/state"
  [ -f "$GPU/validation-network.jsonl" ] && cp "$GPU/validation-network.jsonl" "$RUN_DIR/"
  [ -f "$GPU/best.npz" ] && cp "$GPU/best.npz" "$RUN_DIR/"
fi
[ -d "$RUN_DIR/state" ] || START=(--init_generator hifill_tf/weights/hifill_default.npz)

copy_out() {  # atomic per file: the trainer writes atomically, OUT gets whole files only
  for f in "$RUN_DIR"/state/*.npz "$RUN_DIR/best.npz" "$RUN_DIR/validation-network.jsonl"; do
    [ -f "$f" ] || continue
    cp "$f" "$OUT/.$(basename "$f").tmp" && mv "$OUT/.$(basename "$f").tmp" "$OUT/$(basename "$f")"
  done
}
( while sleep 20; do copy_out; done ) &
COPIER=$!
trap 'kill $COPIER 2>/dev/null || true' EXIT

log "train.py --train_minutes $MINUTES $* ${START[*]}"
set +e
"$PYTHON" train.py --backend=jax --model_dir "$RUN_DIR" --data_dir "$GPU/photos/train" \
  --validation_dir "$GPU/photos/val" --train_minutes "$MINUTES" "${START[@]}" "$@" \
  2>&1 | tee -a "$OUT/train.log"
STATUS=${PIPESTATUS[0]}
set -e
copy_out
tar -cf "$OUT/.jax-cache.tar" -C "$CACHE" . && mv "$OUT/.jax-cache.tar" "$OUT/jax-cache.tar"
if [ "$(stat -c %s "$OUT/jax-cache.tar")" -gt $((16 * 1024 * 1024)) ]; then
  log "compilation cache over 16 MiB: not kept"
  rm -f "$OUT/jax-cache.tar"
fi
log "train.py exited with $STATUS"
exit "$STATUS"
