#!/usr/bin/env bash
# One device call for INT8 plans on the GPU (activation Q/DQ pairs as kernels, pf_quantize_linear /
# pf_dequantize_linear) and the final rows: unit tests; ResNet-50 fp32 / fp16 / int8 (calibrated on 8 random
# images: entropy, minmax, percentile 99.99) run with `planforge-opt run --device gpu` on 256 other random images
# (4 files of 64): top-1 / centered top-1 / top-5 agreement with fp32; int8 and fp16 benches at bs256 (as built
# and autotuned); then ResNet-50 / MobileNetV3 / BERT-base fp16 rows at optimizer 0.3.0 and PyTorch's rows. From the repo root after prepare_carry.sh.
set -u
BUDGET=${BUDGET:-420}
RUN_LOG=run.log
. "$(dirname "$0")/common.sh"
unit_tests

stamp "2. export, calibrate, build"
timeout 150 python3 "$C/gpu/export_models.py" "$W/models" --models resnet50,mobilenet_v3_large,bert-base >>"$OUT/$RUN_LOG" 2>&1
python3 - "$W" <<'PY'
import numpy as np, os, sys
w = sys.argv[1]
for b in range(2):
    os.makedirs(f'{w}/calib/{b}', exist_ok=True)
    np.save(f'{w}/calib/{b}/input.npy', np.random.default_rng(b).standard_normal((4, 3, 224, 224)).astype(np.float32))
os.makedirs(f'{w}/eval', exist_ok=True)
for k in range(4):
    np.save(f'{w}/eval/in{k}.npy', np.random.default_rng(100 + k).standard_normal((64, 3, 224, 224)).astype(np.float32))
PY
prof="input:min=1x3x224x224,opt=64x3x224x224,max=256x3x224x224"
VARIANTS="fp32 fp16 int8 int8-minmax int8-percentile"
for v in $VARIANTS; do
  p=${v%%-*}; extra=()
  case $v in int8) extra=(--calib "$W/calib") ;; int8-minmax) extra=(--calib "$W/calib" --calib-method minmax) ;;
    int8-percentile) extra=(--calib "$W/calib" --calib-method percentile --percentile 99.99) ;; esac
  t0=$(date +%s.%N)
  timeout 120 "$OPT" build "$W/models/resnet50.onnx" --target sm_90 --precision $p "${extra[@]}" -o "$W/plans/r50.$v.plan" --profile "$prof" --json \
    >"$W/b.out" 2>"$W/b.err"
  record build "\"model\":\"resnet50\",\"precision\":\"$v\",\"rc\":$?,\"seconds\":$(python3 -c "import time; print(round(time.time() - $t0, 2))"),\"result\":$(json_or_error "$W/b.out" "$W/b.err")"
done
stamp "3. top-1 agreement on 256 random images"
for p in $VARIANTS; do
  for k in 0 1 2 3; do
    timeout 60 "$OPT" run "$W/plans/r50.$p.plan" --input "input=$W/eval/in$k.npy" --output-dir "$W/out_${p}_$k" --device gpu >>"$OUT/$RUN_LOG" 2>&1
  done
done
python3 - "$W" "$OUT/agreement.json" <<'PY'
import numpy as np, json, sys, glob
w, out = sys.argv[1], sys.argv[2]
def logits(p):
    try: return np.concatenate([np.load(glob.glob(f'{w}/out_{p}_{k}/*.npy')[0]) for k in range(4)])
    except Exception as e: return None
# Random weights put every random image in one class, so the plain top-1 says little: also compare the
# centered logits (minus each class's mean over the images), whose argmax varies per image, and top-5 overlap.
ref = logits('fp32'); res = {'images': 0 if ref is None else int(ref.shape[0])}
def centered(l): return l - l.mean(0, keepdims=True)
for p in ('fp16', 'int8', 'int8-minmax', 'int8-percentile'):
    l = logits(p)
    if ref is None or l is None: res[p] = None; continue
    top5 = lambda x: np.argsort(-x, 1)[:, :5]
    a5, b5 = top5(l), top5(ref)
    res[p] = {'top1_agreement': float((l.argmax(1) == ref.argmax(1)).mean()),
              'centered_top1_agreement': float((centered(l).argmax(1) == centered(ref).argmax(1)).mean()),
              'top5_overlap': float(np.mean([len(set(a) & set(b)) / 5 for a, b in zip(a5, b5)])),
              'max_abs_logit_error': float(np.abs(l - ref).max()), 'max_abs_logit': float(np.abs(ref).max()),
              'distinct_top1_fp32': int(len(set(ref.argmax(1).tolist()))),
              'distinct_centered_top1_fp32': int(len(set(centered(ref).argmax(1).tolist())))}
json.dump(res, open(out, 'w')); print(json.dumps(res))
PY
stamp "agreement: $(cat "$OUT/agreement.json" 2>/dev/null)"

stamp "4. benches"
bench() {  # TAG PLAN INPUT SHAPE [flags]
  local tag=$1 plan=$2 input=$3 shape=$4 it=50; shift 4
  case $shape in 256x*) it=10 ;; 32x*) it=30 ;; esac
  timeout 90 "$GPU" bench "$plan" --shape "$input=$shape" --iterations $it --warmup 3 "$@" --json >"$W/bn.out" 2>"$W/bn.err"
  record bench "\"tag\":\"$tag\",\"shape\":\"$shape\",\"rc\":$?,\"result\":$(json_or_error "$W/bn.out" "$W/bn.err")"
  stamp "bench $tag $shape $(grep -o '"p50":[0-9.]*' "$W/bn.out" | head -1) $(grep -o '"launches":[0-9]*' "$W/bn.out") $(grep -o '"cpu":[0-9]*' "$W/bn.out") $(head -c 200 "$W/bn.err" | tr '\n' ' ')"
}
bench r50-int8 "$W/plans/r50.int8.plan" input 256x3x224x224
bench r50-int8-autotune "$W/plans/r50.int8.plan" input 256x3x224x224 --autotune
bench r50-fp16 "$W/plans/r50.fp16.plan" input 256x3x224x224
bench r50-fp16-autotune "$W/plans/r50.fp16.plan" input 256x3x224x224 --autotune
bench r50-fp16 "$W/plans/r50.fp16.plan" input 1x3x224x224
bench r50-fp16-autotune "$W/plans/r50.fp16.plan" input 1x3x224x224 --autotune
timeout 60 "$OPT" build "$W/models/mobilenet_v3_large.onnx" --target sm_90 --precision fp16 -o "$W/plans/mnv3.plan" >/dev/null 2>&1
for i in 1 2; do bench mnv3-fp16-autotune "$W/plans/mnv3.plan" input 1x3x224x224 --autotune; done
timeout 60 "$OPT" build "$W/models/bert-base.onnx" --target sm_90 --precision fp16 -o "$W/plans/bert.plan" \
  --profile "input_ids:min=1x128,opt=32x128,max=256x128" >/dev/null 2>&1
for b in 1 32 256; do bench bert-fp16 "$W/plans/bert.plan" input_ids ${b}x128; done
stamp "5. PyTorch baseline"
[ "$(left)" -gt 40 ] && PYTHONUNBUFFERED=1 bounded 3 python3 "$C/pytorch_baseline.py" --models resnet50,bert-base,mobilenet_v3_large --batches 1,32,256 \
  --json "$OUT/baseline.json" >"$OUT/baseline_rows.jsonl" 2>>"$OUT/$RUN_LOG"
stamp "done"
