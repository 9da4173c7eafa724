#!/usr/bin/env bash
# One device call that feeds BERT work on the CPU machine: exports the small BERT fixtures (bert-tiny,
# bert-tiny-mask: BERT-base's layer structure at hidden 256, copied to $OUT/models), builds BERT-base fp16
# and records every layer's time (bench --profile-layers: layerProfile) at bs1 and bs32 with --cublaslt-f16
# and --autotune. Run from the repo root on the GPU machine after prepare_carry.sh.
set -u
BUDGET=${BUDGET:-240}
RUN_LOG=run.log
. "$(dirname "$0")/common.sh"
stamp "export"
timeout 150 python3 "$C/gpu/export_models.py" "$W/models" --models bert-tiny,bert-tiny-mask,bert-base >>"$OUT/$RUN_LOG" 2>&1
mkdir -p "$OUT/models" && cp "$W/models/bert-tiny.onnx" "$W/models/bert-tiny-mask.onnx" "$OUT/models/"
stamp "build"
timeout 60 "$OPT" build "$W/models/bert-base.onnx" --target sm_90 --precision fp16 -o "$W/plans/bert-base.fp16.plan" --json \
  --profile "input_ids:min=1x128,opt=32x128,max=256x128" >"$W/b.out" 2>"$W/b.err"
record build "\"model\":\"bert-base\",\"rc\":$?,\"result\":$(json_or_error "$W/b.out" "$W/b.err")"
for b in 1 32; do
  for v in cublaslt-f16 autotune; do
    it=100; [ $b = 32 ] && it=20
    flags=(--cublaslt-f16); [ $v = autotune ] && flags=(--autotune --timing-cache "$W/tc")
    timeout 60 "$GPU" bench "$W/plans/bert-base.fp16.plan" --shape "input_ids=${b}x128" --iterations $it --warmup 3 "${flags[@]}" \
      --profile-layers --json >"$W/bn.out" 2>"$W/bn.err"
    record bench "\"tag\":\"$v\",\"model\":\"bert-base\",\"batch\":$b,\"rc\":$?,\"result\":$(json_or_error "$W/bn.out" "$W/bn.err")"
    stamp "bench $v bs$b $(grep -o '"p50":[0-9.]*' "$W/bn.out" | head -1)"
  done
done
