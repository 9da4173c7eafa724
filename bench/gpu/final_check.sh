#!/usr/bin/env bash
# The closing device call of a session: nhwc_run.sh (unit tests, ResNet-50 / MobileNetV3 / BERT fp16 verify and
# benches, light CNNs, conformance --cublaslt, worker steps) without PyTorch, then BERT with a real
# attention_mask input (bert-tiny-mask: padded keys, one fully padded sequence) verified against the CPU
# reference on the GPU in fp32 and fp16, FP16 activations on and off. From the repo root after prepare_carry.sh.
set -u
BUDGET=${BUDGET:-480}
RUN_LOG=run.log
. "$(dirname "$0")/common.sh"
PF_WORKER_STEPS=1 PF_BASELINE=0 BUDGET=$((BUDGET - 60)) bash "$C/gpu/nhwc_run.sh"
stamp "8. BERT with an attention mask"
timeout 60 python3 "$C/gpu/export_models.py" "$W/models" --models bert-tiny-mask >>"$OUT/$RUN_LOG" 2>&1
python3 - "$W" <<'PY'
import numpy as np, sys
w = sys.argv[1]
rng = np.random.default_rng(0)
np.save(f'{w}/ids.npy', rng.integers(0, 1000, (3, 128)).astype(np.int64))
m = np.ones((3, 128), np.int64); m[1, 100:] = 0; m[2, 7:] = 0
np.save(f'{w}/mask.npy', m)
PY
for p in fp32 fp16; do
  timeout 60 "$OPT" build "$W/models/bert-tiny-mask.onnx" --target sm_90 --precision $p -o "$W/plans/btm.$p.plan" >/dev/null 2>>"$OUT/$RUN_LOG"
  for half in 1 0; do
    tol="--rtol 1e-3 --atol 1e-3"; [ $p = fp16 ] && tol="--rtol 5e-2 --atol 5e-2"
    PLANFORGE_GPU_HALF=$half timeout 60 "$GPU" verify "$W/plans/btm.$p.plan" --input "input_ids=$W/ids.npy" --input "attention_mask=$W/mask.npy" \
      $tol --json >"$W/v.out" 2>"$W/v.err"
    record verify "\"model\":\"bert-tiny-mask\",\"precision\":\"$p\",\"tag\":\"half$half\",\"rc\":$?,\"result\":$(json_or_error "$W/v.out" "$W/v.err")"
    stamp "bert-tiny-mask $p half=$half rc=$(tail -1 "$R" | grep -o '"rc":[0-9]*' | head -1) $(grep -o '"maxAbs":[0-9.e-]*' "$W/v.out" | head -1)"
  done
done
stamp "done"
