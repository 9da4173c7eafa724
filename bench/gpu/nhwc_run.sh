#!/usr/bin/env bash
# One device call for the NHWC FP16 convolutions (native/kernels/conv_nhwc.cuh, tactics 15-19; rows per model
# and batch chosen with PF_ROWS, see row() below):
# "nhwc" = the plan as built (heuristic: NHWC 128x128 tiles), "nhwc-autotune" = NHWC tiles timed per
# layer (and the NCHW candidates for convolutions next to no NHWC value), against the previous best
# paths with the NHWC path off (PLANFORGE_GPU_NHWC=0): "nchw-cublaslt-f16" and "nchw-autotune".
# Every row of a model / batch runs on the same card in this call. Parts, most important first,
# bounded to BUDGET (default 280 s):
#   1. unit tests on the GPU   2. ResNet-50 / MobileNetV3 fp16 plans, verify   3. bs1 benches
#   4. ResNet-50 bs256 / bs32 benches (+ per-layer profile)   5a. light CNNs fp16   5. conv epilogues on
#   cuBLASLt: rows without them   5b. conformance --cublaslt   6. worker_steps.sh (PF_WORKER_STEPS=1)
#   7. PyTorch baseline (PF_BASELINE=0 skips it; PF_BASELINE_MODELS / PF_BASELINE_BATCHES)
# Run from the repo root on the GPU machine after prepare_carry.sh: bash .gpucarry/gpu/nhwc_run.sh
set -u
BUDGET=${BUDGET:-280}
RUN_LOG=run.log
. "$(dirname "$0")/common.sh"
bench() {  # TAG MODEL BATCH [VAR=VALUE ...] [-- bench flags ...]
  local tag=$1 m=$2 b=$3 it=100 envs=() flags=(); shift 3
  while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
  [ $# -gt 0 ] && shift && flags=("$@")
  [ "$b" -ge 32 ] && it=20; [ "$b" -ge 256 ] && it=8
  env "${envs[@]}" timeout 90 "$GPU" bench "$W/plans/$m.fp16.plan" --shape "$(input_of "$m")=$(shape_of "$m" "$b")" --iterations $it \
    --warmup 3 "${flags[@]}" --json >"$W/bn.out" 2>"$W/bn.err"
  local rc=$?
  record bench "\"tag\":\"$tag\",\"model\":\"$m\",\"batch\":$b,\"rc\":$rc,\"result\":$(json_or_error "$W/bn.out" "$W/bn.err")"
  stamp "bench $tag $m bs$b rc=$rc $(grep -o '"p50":[0-9.]*' "$W/bn.out" | head -1) $(head -c 300 "$W/bn.err" | tr '\n' ' ')"
  grep -h "warning" "$W/bn.err" | head -3 >>"$OUT/$RUN_LOG"
}
# Rows per model / batch: PF_ROWS (default the four below); A/B rows: "nhwc-autotune-nopdl" (no programmatic
# dependent launch), "nhwc-autotune-nolt" (no cuBLASLt at all, so no 1x1 convolutions on it),
# "nhwc-autotune-wgmma" (with the opt-in wgmma convolutions, PLANFORGE_GPU_WGMMA=1).
row() {  # TAG MODEL BATCH [extra bench flags]
  local tag=$1 m=$2 b=$3; shift 3
  case $tag in
    nhwc) bench nhwc "$m" "$b" -- "$@" ;;
    nhwc-autotune) bench "$tag" "$m" "$b" -- --autotune --timing-cache "$W/tc_nhwc" "$@" ;;
    nhwc-autotune-nopdl) bench "$tag" "$m" "$b" PLANFORGE_GPU_PDL=0 -- --autotune --timing-cache "$W/tc_nhwc" "$@" ;;
    nhwc-autotune-nolt) bench "$tag" "$m" "$b" PLANFORGE_CUBLASLT=0 -- --autotune --timing-cache "$W/tc_nolt" "$@" ;;
    nhwc-autotune-wgmma) bench "$tag" "$m" "$b" PLANFORGE_GPU_WGMMA=1 -- --autotune --timing-cache "$W/tc_wgmma" "$@" ;;
    nchw-cublaslt-f16) bench "$tag" "$m" "$b" PLANFORGE_GPU_NHWC=0 -- --cublaslt-f16 "$@" ;;
    nchw-autotune) bench "$tag" "$m" "$b" PLANFORGE_GPU_NHWC=0 -- --autotune --timing-cache "$W/tc_nchw" "$@" ;;
    nchw-autotune-nopdl) bench "$tag" "$m" "$b" PLANFORGE_GPU_NHWC=0 PLANFORGE_GPU_PDL=0 -- --autotune --timing-cache "$W/tc_nchw" "$@" ;;
  esac
}
rows() {  # MODEL BATCH [extra flags for every row]
  local m=$1 b=$2 t; shift 2
  for t in ${PF_ROWS:-nhwc nhwc-autotune nchw-cublaslt-f16 nchw-autotune}; do row "$t" "$m" "$b" "$@"; done
}

unit_tests

stamp "2. models + verify"
PF_MODELS="${PF_NHWC_MODELS:-resnet50 mobilenet_v3_large bert-base}" PF_PRECISIONS=fp16 PF_VERIFY_VARIANTS="heuristic" \
  bounded 200 bash "$C/gpu/run_on_device.sh" models verify >>"$OUT/$RUN_LOG" 2>&1
for m in resnet50 mobilenet_v3_large bert-base; do
  [ -f "$W/plans/$m.fp16.plan" ] || continue
  timeout 30 "$GPU" verify "$W/plans/$m.fp16.plan" --synthetic --shape "$(input_of "$m")=$(shape_of "$m" 4)" --rtol 5e-2 --atol 5e-2 --json >"$W/v.out" 2>"$W/v.err"
  record verify "\"model\":\"$m\",\"precision\":\"fp16\",\"tag\":\"nhwc-bs4\",\"rc\":$?,\"result\":$(json_or_error "$W/v.out" "$W/v.err")"
done
stamp "verify: $(grep -c '"kind":"verify".*"rc":0' "$R") of $(grep -c '"kind":"verify"' "$R") pass"

stamp "3. bs1"
rows resnet50 1 --profile-layers
rows mobilenet_v3_large 1 --profile-layers
[ -f "$W/plans/bert-base.fp16.plan" ] && rows bert-base 1 --profile-layers

stamp "4. ResNet-50 bs256 / bs32"
[ "$(left)" -gt 60 ] && rows resnet50 256 --profile-layers
[ "$(left)" -gt 40 ] && rows resnet50 32
[ "$(left)" -gt 40 ] && [ -f "$W/plans/bert-base.fp16.plan" ] && rows bert-base 32 --profile-layers

stamp "5a. light CNNs fp16 (heuristic: NHWC chains)"
[ "$(left)" -gt 60 ] && PF_LIGHT_PRECISIONS=fp16 PF_LIGHT_VARIANTS=heuristic bounded 40 bash "$C/gpu/light_cnns.sh" >/dev/null 2>&1
stamp "light: $(grep -c '"pass": true' "$OUT/light_cnns.jsonl" 2>/dev/null) of $(wc -l <"$OUT/light_cnns.jsonl" 2>/dev/null) pass"

stamp "5. conv epilogues on cuBLASLt (NCHW path; on by default): the rows without them"
if [ "$(left)" -gt 30 ]; then
  for m in resnet50 mobilenet_v3_large; do
    bench nchw-cublaslt-f16-noepilogue "$m" 1 PLANFORGE_GPU_NHWC=0 PLANFORGE_GPU_CONV_EPILOGUE=0 -- --cublaslt-f16
  done
fi

stamp "5b. conformance --cublaslt with the conv epilogues"
[ "$(left)" -gt 60 ] && PF_CONF_VARIANTS=cublaslt bounded 25 bash "$C/gpu/run_on_device.sh" conformance >>"$OUT/$RUN_LOG" 2>&1
stamp "conformance: $(grep -c '"rc":0,' "$OUT/conformance_cublaslt.jsonl" 2>/dev/null) of $(wc -l <"$OUT/conformance_cublaslt.jsonl" 2>/dev/null) pass"

stamp "6. worker steps (tune with a shared timing cache, verify, bench)"
# PF_WORKER_WGMMA=1: the worker steps tune (and verify) with the opt-in wgmma convolutions.
[ "${PF_WORKER_STEPS:-0}" = 1 ] && [ "$(left)" -gt 70 ] && (
  [ "${PF_WORKER_WGMMA:-0}" = 1 ] && export PLANFORGE_GPU_WGMMA=1
  bounded 25 bash "$C/gpu/worker_steps.sh" >"$OUT/worker_steps.out" 2>&1
)

stamp "7. PyTorch baseline"
[ "${PF_BASELINE:-1}" = 1 ] && [ "$(left)" -gt 25 ] && PYTHONUNBUFFERED=1 bounded 3 python3 "$C/pytorch_baseline.py" --models ${PF_BASELINE_MODELS:-resnet50} --batches ${PF_BASELINE_BATCHES:-1,256} \
  --json "$OUT/baseline.json" >"$OUT/baseline_rows.jsonl" 2>>"$OUT/$RUN_LOG"
stamp "done"
