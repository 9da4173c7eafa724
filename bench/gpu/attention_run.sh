#!/usr/bin/env bash
# One device call for BERT: fused attention (fuse_attention + planforge.FusedAttention, native/kernels/attention.cuh)
# and FP16 activations (src/core/gpu/half_layout.h). Unit tests on the GPU; BERT-base fp16 built with and without
# the pass ("noattn": the pipeline minus fuse_attention), verified against the CPU reference at batch 1 and 4 with
# FP16 activations on and off; benches at bs1 / bs32 of the plan as built (heuristic), --cublaslt-f16 (every
# layer's time), --autotune, FP16 activations off (PLANFORGE_GPU_HALF=0) and the plan without the pass (the
# session's starting point), bs256 as built; PyTorch's BERT rows last. Run from the repo root on the GPU machine after prepare_carry.sh.
set -u
BUDGET=${BUDGET:-300}
RUN_LOG=run.log
. "$(dirname "$0")/common.sh"
unit_tests

stamp "2. export + build"
timeout 120 python3 "$C/gpu/export_models.py" "$W/models" --models bert-base >>"$OUT/$RUN_LOG" 2>&1
NOATTN=$("$OPT" passes | cut -d: -f1 | grep -v '^fuse_attention$' | paste -sd,)
for v in attn noattn; do
  extra=(); [ $v = noattn ] && extra=(--passes "$NOATTN")
  timeout 60 "$OPT" build "$W/models/bert-base.onnx" --target sm_90 --precision fp16 -o "$W/plans/bert.$v.plan" --json \
    --profile "input_ids:min=1x128,opt=32x128,max=256x128" "${extra[@]}" >"$W/b.out" 2>"$W/b.err"
  record build "\"model\":\"bert-base\",\"tag\":\"$v\",\"rc\":$?,\"result\":$(json_or_error "$W/b.out" "$W/b.err")"
done
for b in 1 4; do
  for flag in "" --cublaslt-f16; do
    for half in 1 0; do
      PLANFORGE_GPU_HALF=$half timeout 60 "$GPU" verify "$W/plans/bert.attn.plan" --synthetic --shape "input_ids=${b}x128" --rtol 5e-2 --atol 5e-2 \
        $flag --json >"$W/v.out" 2>"$W/v.err"
      record verify "\"model\":\"bert-base\",\"batch\":$b,\"tag\":\"attn$flag-half$half\",\"rc\":$?,\"result\":$(json_or_error "$W/v.out" "$W/v.err")"
    done
  done
done
stamp "verify: $(grep -c '"kind":"verify".*"rc":0' "$R") of $(grep -c '"kind":"verify"' "$R") pass"

stamp "3. benches"
bench() {  # PLAN-TAG VARIANT BATCH [VAR=VALUE ...] [-- flags]
  local v=$1 tag=$2 b=$3 it=100 envs=() flags=(); shift 3
  while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
  [ $# -gt 0 ] && shift && flags=("$@")
  [ "$b" -ge 32 ] && it=30
  env "${envs[@]}" timeout 90 "$GPU" bench "$W/plans/bert.$v.plan" --shape "input_ids=${b}x128" --iterations $it --warmup 5 "${flags[@]}" \
    --json >"$W/bn.out" 2>"$W/bn.err"
  record bench "\"tag\":\"$v-$tag\",\"model\":\"bert-base\",\"batch\":$b,\"rc\":$?,\"result\":$(json_or_error "$W/bn.out" "$W/bn.err")"
  stamp "bench $v-$tag bs$b $(grep -o '"p50":[0-9.]*' "$W/bn.out" | head -1) $(grep -o '"launches":[0-9]*' "$W/bn.out") $(grep -o '"halfValues":[0-9]*' "$W/bn.out") $(head -c 300 "$W/bn.err" | tr '\n' ' ')"
}
for b in 1 32; do
  bench attn heuristic $b -- --profile-layers
  bench attn cublaslt-f16 $b -- --cublaslt-f16 --profile-layers
  bench attn autotune $b -- --autotune --timing-cache "$W/tc_attn"
  bench attn cublaslt-f16-nohalf $b PLANFORGE_GPU_HALF=0 -- --cublaslt-f16
  bench noattn cublaslt-f16 $b PLANFORGE_GPU_HALF=0 -- --cublaslt-f16
  [ $b = 32 ] && bench attn heuristic 256
done
stamp "4. PyTorch baseline"
[ "${PF_BASELINE:-1}" = 1 ] && [ "$(left)" -gt 25 ] && PYTHONUNBUFFERED=1 bounded 3 python3 "$C/pytorch_baseline.py" --models bert-base --batches 1,32 \
  --json "$OUT/baseline.json" >"$OUT/baseline_rows.jsonl" 2>>"$OUT/$RUN_LOG"
stamp "done"
