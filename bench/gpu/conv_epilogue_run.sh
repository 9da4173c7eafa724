#!/usr/bin/env bash
# One device call for the convolution epilogues on cuBLASLt (run 10): bias as C + ReLU / GELU in
# cuBLASLt, FP16 roundings left to FP16-operand conv readers. "before" = PLANFORGE_GPU_CONV_EPILOGUE=0
# (exactly the previous epilogue pass), "after" = the default; each bench row is run before, then
# after, on the same card in the same call. Parts, most important first, bounded to BUDGET (default 185 s):
#   1. unit tests on the GPU   2. models (fp16 + ResNet-50 fp32), verify (after)   3. bs1 benches
#   4. the 117 conformance cases with --cublaslt (after)   5. ResNet-50 bs32 / bs256 benches
# Run from the repo root on the GPU machine after prepare_carry.sh: bash .gpucarry/gpu/conv_epilogue_run.sh
set -u
BUDGET=${BUDGET:-185}
RUN_LOG=run.log
. "$(dirname "$0")/common.sh"
bench() {  # WHEN(before|after) VARIANT PRECISION MODEL BATCH
  local when=$1 v=$2 p=$3 m=$4 b=$5 flag it=100 env=
  case $v in cublaslt) flag=--cublaslt ;; cublaslt-f16) flag=--cublaslt-f16 ;; autotune) flag="--autotune --timing-cache $W/tc_$when" ;; esac
  [ "$b" -ge 32 ] && it=20; [ "$b" -ge 256 ] && it=8
  if [ $when = before ]; then env=PLANFORGE_GPU_CONV_EPILOGUE=0; else env=PLANFORGE_GPU_CONV_EPILOGUE=1; fi
  env $env timeout 60 "$GPU" bench "$W/plans/$m.$p.plan" --shape "$(input_of "$m")=$(shape_of "$m" "$b")" --iterations $it --warmup 3 \
    $flag --json >"$W/bn.out" 2>"$W/bn.err"
  local rc=$?
  record bench "\"tag\":\"$p-$v-$when\",\"model\":\"$m\",\"batch\":$b,\"rc\":$rc,\"result\":$(json_or_error "$W/bn.out" "$W/bn.err")"
  echo "[$(date +%T)] bench $p-$v-$when $m bs$b rc=$rc $(grep -o '"p50":[0-9.]*' "$W/bn.out" | head -1)" >>"$OUT/run.log"
}

stamp "1. unit tests"
nvidia-smi -L >>"$OUT/run.log" 2>&1
timeout 60 "$C/bin/planforge-unit-tests" >"$OUT/unit.txt" 2>&1
record unit "\"rc\":$?,\"summary\":\"$(tail -1 "$OUT/unit.txt" | tr -d '"')\""
stamp "unit: $(tail -1 "$OUT/unit.txt")"

stamp "2. models + verify"
PF_MODELS="resnet50 mobilenet_v3_large bert-base" PF_PRECISIONS=fp16 PF_VERIFY_VARIANTS="cublaslt cublaslt-f16" \
  bounded 120 bash "$C/gpu/run_on_device.sh" models verify >>"$OUT/run.log" 2>&1
timeout 30 "$OPT" build "$W/models/resnet50.onnx" --target sm_90 --precision fp32 -o "$W/plans/resnet50.fp32.plan" >/dev/null 2>&1
timeout 30 "$GPU" verify "$W/plans/resnet50.fp32.plan" --synthetic --shape input=1x3x224x224 --rtol 1e-3 --atol 1e-3 --cublaslt --json \
  >"$W/v.out" 2>"$W/v.err"
record verify "\"model\":\"resnet50\",\"precision\":\"fp32\",\"tag\":\"cublaslt\",\"rc\":$?,\"result\":$(json_or_error "$W/v.out" "$W/v.err")"
stamp "verify done"

stamp "3. bs1 benches (before / after)"
for v in cublaslt-f16 autotune cublaslt; do
  for m in resnet50 mobilenet_v3_large bert-base; do
    [ "$(left)" -gt 75 ] || break 2
    bench before $v fp16 $m 1; bench after $v fp16 $m 1
  done
done
bench before cublaslt fp32 resnet50 1; bench after cublaslt fp32 resnet50 1

stamp "4. conformance --cublaslt"
PF_CONF_VARIANTS=cublaslt bounded 35 bash "$C/gpu/run_on_device.sh" conformance >>"$OUT/run.log" 2>&1

stamp "5. ResNet-50 bs32 / bs256"
for b in 32 256; do
  for v in autotune cublaslt-f16; do
    [ "$(left)" -gt 8 ] || break 2
    bench before $v fp16 resnet50 $b; bench after $v fp16 resnet50 $b
  done
done
stamp "done"
