#!/usr/bin/env bash
# Runs ON THE GPU MACHINE (after bench/gpu/prepare_carry.sh filled .gpucarry/, which copies the
# light CNNs of ../shared/onnx-conformance/light into .gpucarry/light/): each light CNN is built
# fp32 and fp16 for this GPU's SM and run on the GPU and on the CPU reference with the same
# synthetic inputs (planforge-opt verify --synthetic), with our kernels (heuristic tactics) and
# with every eligible layer on cuBLASLt. One JSON line per run in $OUT/light_cnns.jsonl.
# Tolerances: fp32 rtol 1e-3 / atol 1e-4; fp16 rtol 5e-2 / atol 5e-2 (NaN on both sides is equal:
# six of these models overflow fp16 by construction, see bench/optimizer/REPORT.md).
# PF_LIGHT_PRECISIONS / PF_LIGHT_VARIANTS trim the runs (default "fp32 fp16" / "heuristic cublaslt").
set -u
C=$PWD/.gpucarry
export LD_LIBRARY_PATH=$C/lib:${LD_LIBRARY_PATH:-}
OUT=${OUT:-/tmp/pf-out}
W=/tmp/pf-light
mkdir -p "$OUT" "$W"
OPT=$C/bin/planforge-opt
SM=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '. ')
R=$OUT/light_cnns.jsonl
: >"$R"
for model in "$C"/light/*.onnx; do
  name=$(basename "$model" .onnx)
  for p in ${PF_LIGHT_PRECISIONS:-fp32 fp16}; do
    plan=$W/$name.$p.plan
    if ! timeout 120 "$OPT" build "$model" --target "sm_$SM" --precision "$p" -o "$plan" >"$W/b.out" 2>"$W/b.err"; then
      echo "{\"model\":\"$name\",\"precision\":\"$p\",\"stage\":\"build\",\"error\":\"$(tr -d '"\\' <"$W/b.err" | tr '\n' ' ' | head -c 300)\"}" >>"$R"
      continue
    fi
    if [ "$p" = fp32 ]; then tol="--rtol 1e-3 --atol 1e-4"; else tol="--rtol 5e-2 --atol 5e-2"; fi
    for variant in ${PF_LIGHT_VARIANTS:-heuristic cublaslt}; do
      flag=""; [ "$variant" = cublaslt ] && flag="--cublaslt"
      timeout 120 "$OPT" verify "$plan" --synthetic $tol $flag --json >"$W/v.out" 2>"$W/v.err"
      rc=$?
      python3 - "$name" "$p" "$variant" "$rc" "$W" >>"$R" <<'PY'
import json, sys
name, p, variant, rc, d = sys.argv[1:]
try:
    v = json.loads(open(f'{d}/v.out').read().strip().splitlines()[-1])
    outs = v.get('outputs', [])
    print(json.dumps({'model': name, 'precision': p, 'variant': variant, 'rc': int(rc), 'pass': v.get('pass'),
                      'maxAbs': max((o.get('maxAbs', 0) for o in outs), default=None),
                      'layers': v.get('layers'), 'cublasLtLayers': v.get('cublasLtLayers'), 'nhwcLayers': v.get('nhwcLayers')}))
except Exception as e:
    print(json.dumps({'model': name, 'precision': p, 'variant': variant, 'rc': int(rc), 'error': (str(e) + ' ' + open(f'{d}/v.err').read())[:300]}))
PY
    done
  done
done
cat "$R"
