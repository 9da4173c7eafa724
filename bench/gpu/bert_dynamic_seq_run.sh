#!/usr/bin/env bash
# One device call: unit tests; BERT-base fp16 benches at bs1 / bs32 and verify at bs4; the same BERT-base exported
# with an attention_mask input (bert-base-mask) verified at bs4 with padded sequences and benched at bs1 / bs32; a BERT exported with a dynamic sequence
# length (bert-tiny-dyn: attention_mask input, profile seq 16..256) verified against the CPU reference at seq 77 and
# 120 with a padded attention_mask, fp32 and fp16. (Run 27 ran its first version, which also timed one-warp
# attention CTAs, since dropped, and seq 200, which the model itself refuses: max_position_embeddings is 128.)
set -u
BUDGET=${BUDGET:-300}
RUN_LOG=run.log
. "$(dirname "$0")/common.sh"
unit_tests
stamp "2. BERT-base"
timeout 150 python3 "$C/gpu/export_models.py" "$W/models" --models bert-base,bert-tiny-dyn >>"$OUT/$RUN_LOG" 2>&1
timeout 60 "$OPT" build "$W/models/bert-base.onnx" --target sm_90 --precision fp16 -o "$W/plans/bert.plan" \
  --profile "input_ids:min=1x128,opt=32x128,max=256x128" >/dev/null 2>>"$OUT/$RUN_LOG"
for b in 1 32; do
  it=200; [ $b = 32 ] && it=50
  timeout 60 "$GPU" bench "$W/plans/bert.plan" --shape "input_ids=${b}x128" --iterations $it --warmup 10 --json >"$W/bn.out" 2>"$W/bn.err"
  record bench "\"model\":\"bert-base\",\"batch\":$b,\"rc\":$?,\"result\":$(json_or_error "$W/bn.out" "$W/bn.err")"
  stamp "bert bs$b $(grep -o '"p50":[0-9.]*' "$W/bn.out" | head -1) $(head -c 200 "$W/bn.err")"
done
timeout 90 "$GPU" verify "$W/plans/bert.plan" --synthetic --shape input_ids=4x128 --rtol 5e-2 --atol 5e-2 --json >"$W/v.out" 2>"$W/v.err"
record verify "\"model\":\"bert-base\",\"batch\":4,\"rc\":$?,\"result\":$(json_or_error "$W/v.out" "$W/v.err")"
stamp "bert-base verify bs4 rc=$(tail -1 "$R" | grep -o '"rc":[0-9]*' | head -1) $(grep -o '"maxAbs":[0-9.e-]*' "$W/v.out" | head -1)"
stamp "2b. BERT-base with an attention_mask input"
timeout 150 python3 "$C/gpu/export_models.py" "$W/models" --models bert-base-mask >>"$OUT/$RUN_LOG" 2>&1
timeout 60 "$OPT" build "$W/models/bert-base-mask.onnx" --target sm_90 --precision fp16 -o "$W/plans/bertm.plan" \
  --profile "input_ids:min=1x128,opt=32x128,max=256x128" --profile "attention_mask:min=1x128,opt=32x128,max=256x128" >/dev/null 2>>"$OUT/$RUN_LOG"
python3 - "$W" <<'PY'
import numpy as np, sys
w = sys.argv[1]
rng = np.random.default_rng(2)
for b in (1, 4, 32):
    np.save(f'{w}/bids{b}.npy', rng.integers(0, 30000, (b, 128)).astype(np.int64))
    m = np.ones((b, 128), np.int64); m[b // 2:, 100:] = 0
    np.save(f'{w}/bmask{b}.npy', m)
PY
timeout 90 "$GPU" verify "$W/plans/bertm.plan" --input "input_ids=$W/bids4.npy" --input "attention_mask=$W/bmask4.npy" --rtol 5e-2 --atol 5e-2 --json \
  >"$W/v.out" 2>"$W/v.err"
record verify "\"model\":\"bert-base-mask\",\"batch\":4,\"rc\":$?,\"result\":$(json_or_error "$W/v.out" "$W/v.err")"
stamp "bert-base-mask verify bs4 rc=$(tail -1 "$R" | grep -o '"rc":[0-9]*' | head -1) $(grep -o '"maxAbs":[0-9.e-]*' "$W/v.out" | head -1) $(grep -o '"cpu":[0-9]*' "$W/v.out" | head -1) $(grep -o '"cudaGraph":[a-z]*' "$W/v.out" | head -1)"
for b in 1 32; do
  it=200; [ $b = 32 ] && it=50
  timeout 60 "$GPU" bench "$W/plans/bertm.plan" --shape "input_ids=${b}x128" --shape "attention_mask=${b}x128" --iterations $it --warmup 10 --json \
    >"$W/bn.out" 2>"$W/bn.err"
  record bench "\"model\":\"bert-base-mask\",\"batch\":$b,\"rc\":$?,\"result\":$(json_or_error "$W/bn.out" "$W/bn.err")"
  stamp "bert-base-mask bs$b $(grep -o '"p50":[0-9.]*' "$W/bn.out" | head -1) $(grep -o '"cudaGraph":[a-z]*' "$W/bn.out") $(grep -o '"launches":[0-9]*' "$W/bn.out") $(head -c 200 "$W/bn.err")"
done
stamp "3. dynamic sequence length"
python3 - "$W" <<'PY'
import numpy as np, sys
w = sys.argv[1]
rng = np.random.default_rng(1)
for s in (77, 120):
    np.save(f'{w}/ids{s}.npy', rng.integers(0, 1000, (2, s)).astype(np.int64))
    m = np.ones((2, s), np.int64); m[1, s - 20:] = 0
    np.save(f'{w}/mask{s}.npy', m)
PY
for p in fp32 fp16; do
  timeout 60 "$OPT" build "$W/models/bert-tiny-dyn.onnx" --target sm_90 --precision $p -o "$W/plans/dyn.$p.plan" \
    --profile "input_ids:min=1x16,opt=2x128,max=4x256" --profile "attention_mask:min=1x16,opt=2x128,max=4x256" --json >"$W/b.out" 2>"$W/b.err"
  record build "\"model\":\"bert-tiny-dyn\",\"precision\":\"$p\",\"rc\":$?,\"attention\":$(grep -o 'into FusedAttention' "$W/b.out" | wc -l)"
  for s in 77 120; do
    tol="--rtol 1e-3 --atol 1e-3"; [ $p = fp16 ] && tol="--rtol 5e-2 --atol 5e-2"
    timeout 60 "$GPU" verify "$W/plans/dyn.$p.plan" --input "input_ids=$W/ids$s.npy" --input "attention_mask=$W/mask$s.npy" $tol --json >"$W/v.out" 2>"$W/v.err"
    record verify "\"model\":\"bert-tiny-dyn\",\"precision\":\"$p\",\"seq\":$s,\"rc\":$?,\"result\":$(json_or_error "$W/v.out" "$W/v.err")"
    stamp "dyn $p seq $s rc=$(tail -1 "$R" | grep -o '"rc":[0-9]*' | head -1) $(grep -o '"maxAbs":[0-9.e-]*' "$W/v.out" | head -1) $(grep -o '"cpu":[0-9]*' "$W/v.out" | head -1) $(head -c 200 "$W/v.err")"
  done
done
stamp "done"
