#!/usr/bin/env bash
# Runs ON THE GPU MACHINE from the repo root, after bench/gpu/prepare_carry.sh filled .gpucarry/:
#   bash .gpucarry/gpu/run_on_device.sh [info] [unit] [conformance] [models] [verify] [baseline] [bench] [tune]
# Writes $OUT/results.jsonl (one JSON object per step), conformance.jsonl, conformance_cublaslt.jsonl,
# unit.txt, baseline.json, timing_cache.txt, log.txt.
# Variants (the "tag" of a bench row): fp32 / fp16 = the plan as built (heuristic tactics: our kernels only);
# <p>-cublaslt = every GEMM / conv cuBLASLt can take on cuBLASLt (bench --cublaslt); <p>-cublaslt-f16 = the same with
# FP16 operands in FP16 layers (bench --cublaslt-f16: FP16 weights / im2col / casts, FP32 accumulation);
# <p>-autotune = timed per
# layer among our kernels and cuBLASLt (bench --autotune, shared timing cache); <p>-tuned = the plan written by
# `tune` (tactics from bs32); <p>-tuned-nocublaslt = that plan with PLANFORGE_CUBLASLT=0 (the fallback).
# Every step has its own timeout and records failures instead of stopping the run.
set -u
C=$PWD/.gpucarry
export LD_LIBRARY_PATH=$C/lib:${LD_LIBRARY_PATH:-}
OUT=${OUT:-/tmp/pf-out}
mkdir -p "$OUT"
W=/tmp/pfwork
mkdir -p "$W/plans" "$W/conf"
PHASES=${*:-info unit conformance models verify bench tune baseline}
R=$OUT/results.jsonl
OPT=$C/bin/planforge-opt
GPU=$C/bin/pf-gpu
SM=${PF_SM:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '. ')}
MODELS=${PF_MODELS:-resnet50 mobilenet_v3_large bert-base}
PRECISIONS=${PF_PRECISIONS:-fp32 fp16}
# Sub-steps (to fit a device budget): conformance and bench variants, tune steps.
CONF_VARIANTS=${PF_CONF_VARIANTS:-heuristic cublaslt}
BENCH_VARIANTS=${PF_BENCH_VARIANTS:-heuristic cublaslt cublaslt-f16 tf32 ab}
VERIFY_VARIANTS=${PF_VERIFY_VARIANTS:-heuristic cublaslt cublaslt-f16}
TUNE_STEPS=${PF_TUNE_STEPS:-autotune tune}
in_list() { case " $2 " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
log() { echo "[$(date +%T)] $*" | tee -a "$OUT/log.txt"; }
has() { case " $PHASES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
# record KIND JSON-FIELDS: appends {"kind":KIND, ...} to results.jsonl
record() { echo "{\"kind\":\"$1\",$2}" >>"$R"; }
json_or_error() {  # FILE-WITH-STDOUT FILE-WITH-STDERR -> a JSON value
  if [ -s "$1" ] && head -c1 "$1" | grep -q '[{[]'; then tail -1 "$1"; else printf '%s' "$(tr -d '"\\' <"$2" | tr '\n' ' ' | head -c 600)" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))'; fi
}
input_of() { case $1 in bert-base) echo input_ids ;; *) echo input ;; esac; }
shape_of() { case $1 in bert-base) echo "${2}x128" ;; *) echo "${2}x3x224x224" ;; esac; }

log "phases: $PHASES; sm_$SM"
if has info; then
  nvidia-smi >"$OUT/log.txt.nvidia-smi" 2>&1; cat "$OUT/log.txt.nvidia-smi" >>"$OUT/log.txt"; rm -f "$OUT/log.txt.nvidia-smi"
  "$GPU" devices --json >"$W/dev.json" 2>"$W/dev.err"; record devices "\"rc\":$?,\"result\":$(json_or_error "$W/dev.json" "$W/dev.err")"
  { echo "--- libcublasLt"; ldconfig -p | grep -i cublaslt; ls -l /usr/local/cuda/lib64/libcublasLt.so* 2>&1
    echo "--- enum values used by native/src/core/gpu/cublaslt.h (CUDA headers)"
    grep -hnE 'CUBLAS_COMPUTE_32F(_FAST_16F|_FAST_TF32)? *=|CUDA_R_(16|32)F *=|CUBLAS_OP_[NT] *=|CUBLASLT_MATMUL_DESC_(TRANSA|TRANSB|EPILOGUE|BIAS_POINTER) *=|CUBLASLT_EPILOGUE_(DEFAULT|RELU|BIAS|RELU_BIAS|GELU|GELU_BIAS) *=|CUBLASLT_MATRIX_LAYOUT_(BATCH_COUNT|STRIDED_BATCH_OFFSET) *=|CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES *=|CUBLAS_STATUS_SUCCESS *=' \
      /usr/local/cuda/include/cublasLt.h /usr/local/cuda/include/cublas_api.h /usr/local/cuda/include/library_types.h 2>&1
  } >>"$OUT/log.txt"
fi

if has unit; then
  log "unit tests"
  timeout 300 "$C/bin/planforge-unit-tests" >"$OUT/unit.txt" 2>&1; record unit "\"rc\":$?,\"summary\":\"$(tail -1 "$OUT/unit.txt" | tr -d '"')\""
fi

conformance_case() {  # DIR [verify flags]
  local d=$1 name; shift; name=$(basename "$(dirname "$d")")_$(basename "$d")
  local plan=$W/conf/$name.plan
  if ! timeout 60 "$OPT" build "$d/model.onnx" --target "sm_$SM" --precision fp32 -o "$plan" >"$W/conf/$name.b.out" 2>"$W/conf/$name.b.err"; then
    echo "{\"case\":\"$name\",\"stage\":\"build\",\"error\":$(json_or_error /dev/null "$W/conf/$name.b.err")}"
    return
  fi
  timeout 60 "$GPU" verify "$plan" --data-dir "$d/test_data_set_0" --rtol 1e-3 --atol 1e-4 "$@" --json >"$W/conf/$name.v.out" 2>"$W/conf/$name.v.err"
  local rc=$?
  echo "{\"case\":\"$name\",\"stage\":\"verify\",\"rc\":$rc,\"result\":$(json_or_error "$W/conf/$name.v.out" "$W/conf/$name.v.err")}"
}
export -f conformance_case json_or_error
export W OPT GPU SM
if has conformance; then
  if in_list heuristic "$CONF_VARIANTS"; then
  log "conformance"
  ls -d "$C"/conformance/*/*/ | sed 's:/$::' | xargs -P 8 -I{} bash -c 'conformance_case {}' >"$OUT/conformance.jsonl" 2>>"$OUT/log.txt"
  record conformance "\"cases\":$(wc -l <"$OUT/conformance.jsonl"),\"passed\":$(grep -c '"rc":0,' "$OUT/conformance.jsonl")"
  fi
  log "conformance --cublaslt"
  ls -d "$C"/conformance/*/*/ | sed 's:/$::' | xargs -P 8 -I{} bash -c 'conformance_case {} --cublaslt' >"$OUT/conformance_cublaslt.jsonl" 2>>"$OUT/log.txt"
  record conformance "\"tag\":\"cublaslt\",\"cases\":$(wc -l <"$OUT/conformance_cublaslt.jsonl"),\"passed\":$(grep -c '"rc":0,' "$OUT/conformance_cublaslt.jsonl"),\"cublasLtLayers\":$(grep -o '"cublasLtLayers":[0-9]*' "$OUT/conformance_cublaslt.jsonl" | awk -F: '{s+=$2} END {print s+0}')"
fi

if has models; then
  log "export models"
  timeout 240 python3 "$C/gpu/export_models.py" "$W/models" --models "$(echo $MODELS | tr ' ' ,)" >>"$OUT/log.txt" 2>&1
  for m in $MODELS; do
    in=$(input_of "$m")
    for p in $PRECISIONS; do
      plan=$W/plans/$m.$p.plan
      t0=$(date +%s.%N)
      timeout 300 "$OPT" build "$W/models/$m.onnx" --target "sm_$SM" --precision "$p" -o "$plan" --json \
        --profile "$in:min=$(shape_of "$m" 1),opt=$(shape_of "$m" 32),max=$(shape_of "$m" 256)" >"$W/b.out" 2>"$W/b.err"
      rc=$?
      record build "\"model\":\"$m\",\"precision\":\"$p\",\"rc\":$rc,\"seconds\":$(python3 -c "import time; print(round(time.time() - $t0, 2))"),\"result\":$(json_or_error "$W/b.out" "$W/b.err")"
      log "build $m $p rc=$rc"
    done
  done
fi

if has verify; then
  for m in $MODELS; do
    for p in $PRECISIONS; do
      plan=$W/plans/$m.$p.plan; [ -f "$plan" ] || continue
      tol="--rtol 1e-3 --atol 1e-3"; [ "$p" = fp32 ] || tol="--rtol 5e-2 --atol 5e-2"
      for v in $VERIFY_VARIANTS; do
        flag=; [ $v = cublaslt ] && flag=--cublaslt; [ $v = cublaslt-f16 ] && flag=--cublaslt-f16
        timeout 240 "$GPU" verify "$plan" --synthetic --shape "$(input_of "$m")=$(shape_of "$m" 1)" $tol $flag --json >"$W/v.out" 2>"$W/v.err"
        rc=$?
        record verify "\"model\":\"$m\",\"precision\":\"$p\",\"tag\":\"$v\",\"rc\":$rc,\"result\":$(json_or_error "$W/v.out" "$W/v.err")"
        log "verify $m $p $v rc=$rc"
      done
    done
  done
fi

bench_one() {  # TAG MODEL PLAN BATCH [extra bench args...]
  local tag=$1 m=$2 plan=$3 b=$4; shift 4
  local it=100; [ "$b" -ge 32 ] && it=20; [ "$b" -ge 256 ] && it=8
  timeout 240 "$GPU" bench "$plan" --shape "$(input_of "$m")=$(shape_of "$m" "$b")" --iterations $it --warmup 3 "$@" --json >"$W/bn.out" 2>"$W/bn.err"
  local rc=$?
  record bench "\"tag\":\"$tag\",\"model\":\"$m\",\"batch\":$b,\"rc\":$rc,\"result\":$(json_or_error "$W/bn.out" "$W/bn.err")"
  log "bench $tag $m bs$b rc=$rc"
}
batches_of() { case $1 in bert-base) echo "${PF_BERT_BATCHES:-1 32}" ;; *) echo "${PF_BATCHES:-1 32 256}" ;; esac; }
if has bench; then
  # 1. the plans as built (cross mode, heuristic tactics: our kernels only) = "before"
  in_list heuristic "$BENCH_VARIANTS" && for m in $MODELS; do for p in $PRECISIONS; do
    plan=$W/plans/$m.$p.plan; [ -f "$plan" ] || continue
    for b in $(batches_of "$m"); do
      if [ "$b" = 1 ]; then bench_one "$p" "$m" "$plan" "$b" --profile-layers; else bench_one "$p" "$m" "$plan" "$b"; fi
    done
  done; done
  # reference rows only (our kernels), to compare cards between runs
  in_list heuristic-ref "$BENCH_VARIANTS" && for b in 1 256; do bench_one fp16 resnet50 "$W/plans/resnet50.fp16.plan" $b; done
  # 2. every GEMM / convolution that cuBLASLt can take on cuBLASLt
  in_list cublaslt "$BENCH_VARIANTS" && for m in $MODELS; do for p in $PRECISIONS; do
    plan=$W/plans/$m.$p.plan; [ -f "$plan" ] || continue
    for b in $(batches_of "$m"); do bench_one "$p-cublaslt" "$m" "$plan" "$b" --cublaslt --profile-layers; done
  done; done
  # 2b. the same with FP16 operands in the FP16 layers (FP32 plans: identical to 2, so FP16 plans only)
  in_list cublaslt-f16 "$BENCH_VARIANTS" && for m in $MODELS; do for p in $PRECISIONS; do
    plan=$W/plans/$m.$p.plan; [ -f "$plan" ] && [ "$p" != fp32 ] || continue
    for b in $(batches_of "$m"); do bench_one "$p-cublaslt-f16" "$m" "$plan" "$b" --cublaslt-f16 --profile-layers; done
  done; done
  # A/B of the cuBLASLt set-up at the large batches (FP16 operands): "ab" = 8 heuristic algorithms timed
  # once per call instead of the first one, and the one-element-per-thread FP16 im2col instead of pf_im2col_h8;
  # "ab-ws" = a 256 MiB workspace instead of 32 MiB (alone and with 8 algorithms)
  if in_list ab "$BENCH_VARIANTS"; then
    PLANFORGE_GPU_IM2COL_H8=0 bench_one fp16-cublaslt-f16-h8off resnet50 "$W/plans/resnet50.fp16.plan" 256 --cublaslt-f16
    for mb in "resnet50 256" "bert-base 32"; do
      set -- $mb
      PLANFORGE_CUBLASLT_ALGOS=8 bench_one fp16-cublaslt-f16-algos8 "$1" "$W/plans/$1.fp16.plan" "$2" --cublaslt-f16
    done
  fi
  if in_list ab-ws "$BENCH_VARIANTS"; then
    for mb in "resnet50 256" "bert-base 32"; do
      set -- $mb
      PLANFORGE_CUBLASLT_WORKSPACE_MB=256 bench_one fp16-cublaslt-f16-ws256 "$1" "$W/plans/$1.fp16.plan" "$2" --cublaslt-f16
      PLANFORGE_CUBLASLT_ALGOS=8 PLANFORGE_CUBLASLT_WORKSPACE_MB=256 bench_one fp16-cublaslt-f16-ws256-algos8 "$1" "$W/plans/$1.fp16.plan" "$2" --cublaslt-f16
    done
  fi
  # FP16 plans: cuBLASLt's TF32 instead of FP16 tensor cores (A/B of the compute type)
  if in_list tf32 "$BENCH_VARIANTS"; then
    PLANFORGE_CUBLASLT_FP16_COMPUTE=tf32 bench_one fp16-cublaslt-tf32 resnet50 "$W/plans/resnet50.fp16.plan" 256 --cublaslt
    PLANFORGE_CUBLASLT_FP16_COMPUTE=tf32 bench_one fp16-cublaslt-tf32 bert-base "$W/plans/bert-base.fp16.plan" 32 --cublaslt
  fi
fi
if has tune; then
  # 3. autotuned on this GPU per shape (our kernels and cuBLASLt; timing cache shared across runs)
  in_list autotune "$TUNE_STEPS" && for m in $MODELS; do for p in $PRECISIONS; do
    plan=$W/plans/$m.$p.plan; [ -f "$plan" ] || continue
    for b in $(batches_of "$m"); do bench_one "$p-autotune" "$m" "$plan" "$b" --autotune --timing-cache "$W/timing.cache"; done
  done; done
  cp "$W/timing.cache" "$OUT/timing_cache.txt" 2>/dev/null
  # 4. `tune` (opt shape bs32) writes a tuned plan; it runs as tuned, and with cuBLASLt missing (fallback)
  in_list tune "$TUNE_STEPS" && for m in $MODELS; do for p in $PRECISIONS; do
    plan=$W/plans/$m.$p.plan; [ -f "$plan" ] || continue
    t0=$(date +%s.%N)
    timeout 240 "$GPU" tune "$plan" -o "$W/plans/$m.$p.tuned.plan" --json >"$W/t.out" 2>"$W/t.err"
    rc=$?
    record tune "\"model\":\"$m\",\"precision\":\"$p\",\"rc\":$rc,\"seconds\":$(python3 -c "import time; print(round(time.time() - $t0, 2))"),\"result\":$(json_or_error "$W/t.out" "$W/t.err")"
    tp=$W/plans/$m.$p.tuned.plan; [ -f "$tp" ] || continue
    bench_one "$p-tuned" "$m" "$tp" 32
    PLANFORGE_CUBLASLT=0 bench_one "$p-tuned-nocublaslt" "$m" "$tp" 32
    grep -h "warning" "$W/bn.err" >>"$OUT/log.txt"
    tol="--rtol 1e-3 --atol 1e-3"; [ "$p" = fp32 ] || tol="--rtol 5e-2 --atol 5e-2"
    timeout 240 "$GPU" verify "$tp" --synthetic --shape "$(input_of "$m")=$(shape_of "$m" 1)" $tol --json >"$W/v.out" 2>"$W/v.err"
    rc=$?
    record verify "\"model\":\"$m\",\"precision\":\"$p\",\"tag\":\"tuned\",\"rc\":$rc,\"result\":$(json_or_error "$W/v.out" "$W/v.err")"
    log "verify tuned $m $p rc=$rc"
  done; done
fi

if has baseline; then
  log "pytorch baseline"
  timeout 300 python3 "$C/pytorch_baseline.py" --models "$(echo $MODELS | tr ' ' ,)" --batches "${PF_BASELINE_BATCHES:-1,32,256}" \
    --json "$OUT/baseline.json" >>"$OUT/log.txt" 2>&1
  record baseline "\"rc\":$?"
fi
log "done"
