#!/usr/bin/env bash
# One device call that feeds MobileNetV3 / INT8 work on the CPU machine: MobileNetV3-Large fp16 bs1 with every
# layer's time and launch count (as built, autotuned, --cublaslt-f16), and ResNet-50 INT8 (calibrated on 8
# random images in DIR/<batch>/input.npy) built and benched at bs32 to see which layers run where.
set -u
BUDGET=${BUDGET:-240}
RUN_LOG=run.log
. "$(dirname "$0")/common.sh"
stamp "export"
timeout 120 python3 "$C/gpu/export_models.py" "$W/models" --models mobilenet_v3_large,resnet50 >>"$OUT/$RUN_LOG" 2>&1
timeout 60 "$OPT" build "$W/models/mobilenet_v3_large.onnx" --target sm_90 --precision fp16 -o "$W/plans/mnv3.plan" \
  --profile "input:min=1x3x224x224,opt=1x3x224x224,max=32x3x224x224" >/dev/null 2>>"$OUT/$RUN_LOG"
for v in heuristic autotune cublaslt-f16; do
  flags=(); [ $v = autotune ] && flags=(--autotune); [ $v = cublaslt-f16 ] && flags=(--cublaslt-f16)
  timeout 60 "$GPU" bench "$W/plans/mnv3.plan" --shape input=1x3x224x224 --iterations 200 --warmup 10 "${flags[@]}" --profile-layers --json \
    >"$W/bn.out" 2>"$W/bn.err"
  record bench "\"tag\":\"$v\",\"model\":\"mobilenet_v3_large\",\"batch\":1,\"rc\":$?,\"result\":$(json_or_error "$W/bn.out" "$W/bn.err")"
  stamp "mnv3 $v $(grep -o '"p50":[0-9.]*' "$W/bn.out" | head -1) $(grep -o '"launches":[0-9]*' "$W/bn.out")"
done
stamp "int8"
python3 -c "
import numpy as np, os
for b in range(2):
    os.makedirs('$W/calib/%d' % b, exist_ok=True)
    np.save('$W/calib/%d/input.npy' % b, np.random.default_rng(b).standard_normal((4, 3, 224, 224)).astype(np.float32))
"
timeout 120 "$OPT" build "$W/models/resnet50.onnx" --target sm_90 --precision int8 --calib "$W/calib" -o "$W/plans/r50.int8.plan" --json \
  --profile "input:min=1x3x224x224,opt=32x3x224x224,max=256x3x224x224" >"$W/b.out" 2>"$W/b.err"
record build "\"model\":\"resnet50\",\"precision\":\"int8\",\"rc\":$?,\"result\":$(json_or_error "$W/b.out" "$W/b.err")"
timeout 90 "$GPU" bench "$W/plans/r50.int8.plan" --shape input=32x3x224x224 --iterations 5 --warmup 1 --json >"$W/bn.out" 2>"$W/bn.err"
record bench "\"tag\":\"int8\",\"model\":\"resnet50\",\"batch\":32,\"rc\":$?,\"result\":$(json_or_error "$W/bn.out" "$W/bn.err")"
stamp "int8 bench $(grep -o '"p50":[0-9.]*' "$W/bn.out" | head -1) $(head -c 300 "$W/bn.err")"
