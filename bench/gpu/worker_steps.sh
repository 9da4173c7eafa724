#!/usr/bin/env bash
# Runs ON THE GPU MACHINE (after bench/gpu/prepare_carry.sh filled .gpucarry/): the exact CLI
# sequence a gpu-mode worker runs for a target (apps/worker/src/gpu-tuning/gpu-plan-stage.ts),
# for two workers sharing a timing cache the way they share it through S3:
#   worker A builds ResNet-50 with an empty cache: timing-cache merge (nothing yet) -> tune ->
#     verify --synthetic (GPU vs CPU reference) -> bench; publishes its cache file
#   worker B builds ResNet-50 again, then ResNet-101 (a similar model: most layer signatures
#     are ResNet-50's), each time starting from the merge of the published files
# and records each step's time, tuned layers and timing-cache hits in $OUT/worker_steps.jsonl.
set -u
C=$PWD/.gpucarry
export LD_LIBRARY_PATH=$C/lib:${LD_LIBRARY_PATH:-}
OUT=${OUT:-/tmp/pf-out}
W=/tmp/pf-worker-steps
mkdir -p "$OUT" "$W/models" "$W/published"
OPT=$C/bin/planforge-opt
SM=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '. ')
PREC=${PF_PRECISION:-fp16}
BATCH=${PF_BATCH:-32}
R=$OUT/worker_steps.jsonl
now() { date +%s.%N; }
python3 - "$W/models" <<'PY'
import sys, torch, torchvision
out = sys.argv[1]
torch.manual_seed(0)
for name in ('resnet50', 'resnet101'):
    m = getattr(torchvision.models, name)(weights=None).eval()
    torch.onnx.export(m, (torch.randn(1, 3, 224, 224),), f'{out}/{name}.onnx', opset_version=17, dynamo=False,
                      input_names=['input'], output_names=['output'], dynamic_axes={'input': {0: 'batch'}, 'output': {0: 'batch'}})
PY
step() {  # WORKER MODEL
  local worker=$1 model=$2 plan=$W/$1-$2.plan cache=$W/$1-$2.tsv t0 t1 t2 t3 t4 files
  "$OPT" build "$W/models/$model.onnx" --target "sm_$SM" --precision "$PREC" \
    --profile "input:min=1x3x224x224,opt=${BATCH}x3x224x224,max=${BATCH}x3x224x224" -o "$plan" --json >"$W/build.json" 2>"$W/err" || { echo "{\"worker\":\"$worker\",\"model\":\"$model\",\"error\":\"build: $(tr -d '"' <"$W/err" | head -c 300)\"}" >>"$R"; return; }
  t0=$(now)
  files=$(ls "$W/published"/*.tsv 2>/dev/null | wc -l)
  if [ "$files" -gt 0 ]; then "$OPT" timing-cache merge -o "$cache" "$W/published"/*.tsv --json >"$W/merge.json"; else echo '{}' >"$W/merge.json"; fi
  t1=$(now)
  "$OPT" tune "$plan" -o "$plan.tuned" --timing-cache "$cache" --shape "input=${BATCH}x3x224x224" --json >"$W/tune.json" 2>"$W/err"; local tune_rc=$?
  t2=$(now)
  "$OPT" verify "$plan.tuned" --synthetic --shape "input=${BATCH}x3x224x224" --rtol 5e-2 --atol 5e-2 --json >"$W/verify.json" 2>>"$W/err"; local verify_rc=$?
  t3=$(now)
  "$OPT" bench "$plan.tuned" --shape "input=${BATCH}x3x224x224" --iterations 50 --warmup 10 --json >"$W/bench.json" 2>>"$W/err"; local bench_rc=$?
  t4=$(now)
  cp "$cache" "$W/published/$worker.tsv" 2>/dev/null
  python3 - "$worker" "$model" "$files" "$t0" "$t1" "$t2" "$t3" "$t4" "$tune_rc" "$verify_rc" "$bench_rc" "$W" "$PREC" "$BATCH" >>"$R" <<'PY'
import json, sys
w, model, files, t0, t1, t2, t3, t4, trc, vrc, brc, d, prec, batch = sys.argv[1:]
def load(name):
    try: return json.loads(open(f'{d}/{name}.json').read().strip().splitlines()[-1])
    except Exception as e: return {'error': str(e)}
tune, ver, bench, merge = load('tune'), load('verify'), load('bench'), load('merge')
print(json.dumps({'worker': w, 'model': model, 'precision': prec, 'batch': int(batch), 'publishedFilesMerged': int(files),
  'mergedEntries': merge.get('entries', 0), 'mergeS': float(t1) - float(t0), 'tuneS': float(t2) - float(t1),
  'tunedLayers': tune.get('tunedLayers'), 'timingCacheHits': tune.get('timingCacheHits'), 'tuneRc': int(trc),
  'verifyS': float(t3) - float(t2), 'verifyPass': ver.get('pass'), 'verifyRc': int(vrc),
  'benchS': float(t4) - float(t3), 'p50Ms': bench.get('gpuMs', {}).get('p50'), 'p99Ms': bench.get('gpuMs', {}).get('p99'),
  'throughput': bench.get('throughputPerSecond'), 'benchRc': int(brc), 'device': bench.get('device', {}).get('name'),
  'stderr': open(f'{d}/err').read()[-300:]}))
PY
}
step A resnet50
step B resnet50
step B resnet101
cat "$R"
