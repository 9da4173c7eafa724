#!/usr/bin/env bash
# Run HERE (the CPU machine): builds the native optimizer (with embedded cubins), the pf-gpu tool,
# and fills the git-ignored folder .gpucarry/ that the device call carries (64 MiB limit):
#   bin/ planforge-opt planforge-unit-tests pf-gpu     lib/ libonnx_proto.so.1 libprotobuf.so.32
#   conformance/ (ONNX backend cases)  light/ (light CNNs)  scripts (this folder)  pytorch_baseline.py
# Then: run(command="bash .gpucarry/gpu/run_on_device.sh", carry=[".gpucarry"]).
# BUILD=build/cublas (relative to native/, default build) builds into another folder, so two
# engineers can build at once (make -C native BUILD=... honours it too).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
C=$ROOT/.gpucarry
BUILD=${BUILD:-build}
LOG=/tmp/pf-native-build.$(echo "$BUILD" | tr / _).log
make -C "$ROOT/native" BUILD="$BUILD" -j2 all >"$LOG" 2>&1 || { tail -30 "$LOG"; exit 1; }
B=$ROOT/native/$BUILD
g++ -O2 -std=c++17 -DONNX_ML=1 "$ROOT/bench/gpu/pf_gpu_main.cc" -o "$B/pf-gpu" \
  -Wl,--whole-archive "$B/core/libplanforge_core.a" -Wl,--no-whole-archive \
  "$B/obj/cli/bench_command.o" -lonnx_proto -lprotobuf -lpthread -ldl
rm -rf "$C"
mkdir -p "$C/bin" "$C/lib" "$C/conformance" "$C/gpu"
cp "$B/planforge-opt" "$B/planforge-unit-tests" "$B/pf-gpu" "$C/bin/"
cp -L /usr/lib/x86_64-linux-gnu/libonnx_proto.so.1 /usr/lib/x86_64-linux-gnu/libprotobuf.so.32 "$C/lib/"
SHARED=${PLANFORGE_SHARED:-$ROOT/../shared}
cp -r "$SHARED/onnx-conformance/pytorch-converted" "$SHARED/onnx-conformance/pytorch-operator" "$C/conformance/"
# The light CNNs (bench/gpu/light_cnns.sh), outside conformance/ (they have no test_data_set).
mkdir -p "$C/light" && cp "$SHARED/onnx-conformance/light/"*.onnx "$C/light/"
cp "$SHARED/bench/pytorch_baseline.py" "$C/"
cp "$ROOT/bench/gpu/"*.sh "$ROOT/bench/gpu/"*.py "$C/gpu/"
chmod -R u+w "$C"
du -sh "$C"
