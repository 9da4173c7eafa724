#!/usr/bin/env bash
# One device call that does everything the FP16-operand cuBLASLt work needs (run 7), most important
# first, each part bounded so the call ends inside BUDGET seconds (default 315):
#   1. run_on_device.sh info unit models verify bench tune (FP16 plans: --cublaslt vs --cublaslt-f16 vs
#      --autotune, A/B rows), plus ResNet-50 FP32 verified with --cublaslt-f16 (must run no FP16 operands)
#   2. worker_steps.sh (the lead's tune / verify / bench sequence with a shared timing cache)
#   3. the 117 conformance cases with --cublaslt
#   4. PyTorch baseline (resnet50, bert-base; bs 1/32/256), one JSON row per line as it goes
# Run from the repo root on the GPU machine after prepare_carry.sh: bash .gpucarry/gpu/final_run.sh
set -u
BUDGET=${BUDGET:-315}
RUN_LOG=final_run.log
. "$(dirname "$0")/common.sh"

stamp "1. unit, models, verify, bench, autotune"
PF_MODELS="resnet50 mobilenet_v3_large bert-base" PF_PRECISIONS=fp16 PF_VERIFY_VARIANTS="cublaslt cublaslt-f16" \
  PF_BENCH_VARIANTS="cublaslt cublaslt-f16 ab" PF_TUNE_STEPS=autotune \
  bounded 150 bash "$C/gpu/run_on_device.sh" info unit models verify bench tune
W=/tmp/pfwork
timeout 30 "$C/bin/planforge-opt" build "$W/models/resnet50.onnx" --target sm_90 --precision fp32 -o "$W/plans/resnet50.fp32.plan" >/dev/null 2>&1
timeout 30 "$C/bin/pf-gpu" verify "$W/plans/resnet50.fp32.plan" --synthetic --shape input=1x3x224x224 --rtol 1e-3 --atol 1e-3 \
  --cublaslt-f16 --json >"$OUT/verify_resnet50_fp32_cublaslt-f16.json" 2>&1
stamp "2. worker_steps.sh"
bounded 75 bash "$C/gpu/worker_steps.sh" >"$OUT/worker_steps.out" 2>&1
stamp "3. conformance --cublaslt"
PF_CONF_VARIANTS=cublaslt bounded 60 bash "$C/gpu/run_on_device.sh" conformance
stamp "4. PyTorch baseline"
PYTHONUNBUFFERED=1 bounded 3 python3 "$C/pytorch_baseline.py" --models resnet50,bert-base --batches 1,32,256 \
  --json "$OUT/baseline.json" >"$OUT/baseline_rows.jsonl" 2>>"$OUT/final_run.log"
stamp "done"
