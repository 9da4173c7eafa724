set -u
BUDGET=300
RUN_LOG=run.log
. .gpucarry/gpu/common.sh
timeout 150 python3 "$C/gpu/export_models.py" "$W/models" --models bert-base >>"$OUT/$RUN_LOG" 2>&1
timeout 60 "$OPT" build "$W/models/bert-base.onnx" --target sm_90 --precision fp16 -o "$W/plans/bert.plan" --profile "input_ids:min=1x128,opt=32x128,max=256x128" >/dev/null 2>>"$OUT/$RUN_LOG"
PLANFORGE_GPU_ATTENTION_B4=1 timeout 90 "$GPU" verify "$W/plans/bert.plan" --synthetic --shape input_ids=4x128 --rtol 5e-2 --atol 5e-2 --json >"$W/v.out" 2>"$W/v.err"; stamp "verify b4 rc=$? $(grep -o '"maxAbs":[0-9.e-]*' "$W/v.out" | head -1)"
for round in 1 2; do for b in 1 32 256; do for b4 in 0 1; do
  it=200; [ $b -ge 32 ] && it=50; [ $b -ge 256 ] && it=10
  PLANFORGE_GPU_ATTENTION_B4=$b4 timeout 60 "$GPU" bench "$W/plans/bert.plan" --shape "input_ids=${b}x128" --iterations $it --warmup 5 --json >"$W/bn.out" 2>"$W/bn.err"
  record bench "\"batch\":$b,\"b4\":$b4,\"round\":$round,\"result\":$(json_or_error "$W/bn.out" "$W/bn.err")"
  stamp "bs$b b4=$b4 $(grep -o '"p50":[0-9.]*' "$W/bn.out" | head -1)"
done; done; done
