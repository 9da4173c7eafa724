# Shared preamble of the one-call device scripts (final_run.sh, conv_epilogue_run.sh, nhwc_run.sh):
# sourced from the repo root on the GPU machine after prepare_carry.sh. Set BUDGET (seconds) and
# RUN_LOG (file name under $OUT) before sourcing.
C=$PWD/.gpucarry
export OUT=${OUT:-/tmp/pf-out}
mkdir -p "$OUT"
export LD_LIBRARY_PATH=$C/lib:${LD_LIBRARY_PATH:-}
T0=$(date +%s)
BUDGET=${BUDGET:-300}
RUN_LOG=${RUN_LOG:-run.log}
left() { echo $((BUDGET - ($(date +%s) - T0))); }
bounded() {  # RESERVE CMD...: runs CMD with the time left minus RESERVE seconds (at least 5)
  local reserve=$1 t; shift
  t=$(($(left) - reserve)); [ "$t" -lt 5 ] && t=5
  timeout "$t" "$@"
}
stamp() { echo "[$(date +%T)] +$(($(date +%s) - T0))s $*" | tee -a "$OUT/$RUN_LOG"; }
R=$OUT/results.jsonl
W=/tmp/pfwork
mkdir -p "$W/plans"
GPU=$C/bin/pf-gpu
OPT=$C/bin/planforge-opt
record() { echo "{\"kind\":\"$1\",$2}" >>"$R"; }
json_or_error() {  # FILE-WITH-STDOUT FILE-WITH-STDERR -> a JSON value
  if [ -s "$1" ] && head -c1 "$1" | grep -q '[{[]'; then tail -1 "$1"; else printf '%s' "$(tr -d '"\\' <"$2" | tr '\n' ' ' | head -c 600)" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))'; fi
}
input_of() { case $1 in bert-base) echo input_ids ;; *) echo input ;; esac; }
shape_of() { case $1 in bert-base) echo "${2}x128" ;; *) echo "${2}x3x224x224" ;; esac; }
unit_tests() {  # step 1 of every device script: the C++ unit tests on the GPU -> $OUT/unit.txt
  stamp "1. unit tests"
  nvidia-smi -L >>"$OUT/$RUN_LOG" 2>&1
  timeout 120 "$C/bin/planforge-unit-tests" >"$OUT/unit.txt" 2>&1
  record unit "\"rc\":$?,\"summary\":\"$(tail -1 "$OUT/unit.txt" | tr -d '"')\""
  stamp "unit: $(tail -1 "$OUT/unit.txt"); $(grep -c '^FAIL' "$OUT/unit.txt") FAIL"
}
