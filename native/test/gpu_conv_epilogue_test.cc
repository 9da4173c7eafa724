// Convolution epilogues on cuBLASLt (tactics.h: planConvLtEpilogue, deferrableConvRounds).
// CPU side (CI, no GPU): which layers get the bias as C / the activation in cuBLASLt, the bias
// matrix bound, which FP16 roundings are left to the reading convolutions. GPU side (the device
// machine, when libcublasLt is found): those paths against the CPU reference, fp32 and fp16,
// batched, inside CUDA graphs, with fewer launches than PLANFORGE_GPU_CONV_EPILOGUE=0.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <random>

#include "core/executor.h"
#include "core/gpu/cubin.h"
#include "core/gpu/cublaslt.h"
#include "core/gpu/cuda_driver.h"
#include "core/gpu/device.h"
#include "core/gpu/gpu_executor.h"
#include "core/gpu/kernel_abi.h"
#include "core/gpu/tactics.h"
#include "core/plan/plan.h"
#include "test_framework.h"
#include "gpu_test_util.h"
#include "test_util.h"

using namespace planforge;
using namespace pftest;

namespace {

Node layer(const std::string& op, const std::string& name, std::vector<std::string> ins, std::vector<std::string> outs,
           const std::string& precision, const std::string& act = "") {
  Node n = node(op, name, std::move(ins), std::move(outs));
  if (op.rfind("Fused", 0) == 0 || op == "RoundToFp16") n.domain = "planforge";
  n.precision = precision;
  if (!act.empty()) n.attrs.values["activation"] = stringAttr(act);
  return n;
}

bool haveGpuAndLt(gpu::DeviceInfo* dev) {
  if (!gpu::cudaDriverAvailable()) return false;
  *dev = gpu::deviceInfo(0);
  if (!gpu::embeddedCubin(dev->sm)) return false;
  return gpu::cublasLtAvailable();
}

struct EnvGuard {  // sets (or unsets) one variable for a scope, then restores what it was
  std::string name;
  bool had = false;
  std::string previous;
  EnvGuard(const char* n, const char* v) : name(n) {
    if (const char* old = std::getenv(n)) {
      had = true;
      previous = old;
    }
    if (v) setenv(n, v, 1);
    else unsetenv(n);
  }
  ~EnvGuard() {
    if (had) setenv(name.c_str(), previous.c_str(), 1);
    else unsetenv(name.c_str());
  }
};



// Convolutions with every epilogue case, batch 3: bias + ReLU, bias + tanh-GELU, bias only (all:
// bias as C, nothing left for the pass in fp32), bias + HardSwish (bias as C, activation in the
// pass), bias + residual + ReLU (current path), residual + ReLU without bias (ReLU in cuBLASLt),
// bias + erf-GELU, a 3x3 strided conv with bias + ReLU (im2col path), and a conv whose bias
// matrix (9 x 512 x 512 x 4 bytes) is over the bound (bias and ReLU in the pass).
Plan epiloguePlan(int sm, const std::string& pr) {
  Plan p = emptyPlan(sm, pr);
  Graph& g = p.graph;
  addInput(g, "x", {3, 16, 10, 10});
  addInput(g, "big", {1, 4, 512, 512});
  for (int i = 1; i <= 8; ++i) {
    g.initializers["w" + std::to_string(i)] = uniformFloats({24, i == 8 ? 24 : 16, i == 8 ? 3 : 1, i == 8 ? 3 : 1}, 700 + i);
    g.initializers["b" + std::to_string(i)] = uniformFloats({24}, 720 + i);
  }
  g.initializers["w1"] = uniformFloats({24, 16, 1, 1}, 701);
  g.initializers["wr"] = uniformFloats({16, 16, 1, 1}, 731);
  g.initializers["wbig"] = uniformFloats({9, 4, 1, 1}, 732);
  g.initializers["bbig"] = uniformFloats({9}, 733);
  g.nodes.push_back(layer("FusedConv", "relu", {"x", "w1", "b1"}, {"y1"}, pr, "Relu"));
  g.nodes.push_back(layer("FusedConv", "gelu_tanh", {"x", "w2", "b2"}, {"y2"}, pr, "GeluTanh"));
  g.nodes.push_back(layer("Conv", "bias_only", {"x", "w3", "b3"}, {"y3"}, pr));
  g.nodes.push_back(layer("FusedConv", "hardswish", {"x", "w4", "b4"}, {"y4"}, pr, "HardSwish"));
  g.nodes.push_back(layer("FusedConv", "residual", {"y1", "w8", "b5", "y1"}, {"y5"}, pr, "Relu"));
  g.nodes.back().attrs.values["pads"] = intsAttr({1, 1, 1, 1});
  g.nodes.push_back(layer("FusedConv", "residual_nobias", {"x", "wr", "", "x"}, {"y6"}, pr, "Relu"));
  g.nodes.push_back(layer("FusedConv", "gelu_erf", {"x", "w6", "b6"}, {"y7"}, pr, "Gelu"));
  Node s = layer("FusedConv", "strided", {"y2", "w8", "b7"}, {"y8"}, pr, "Relu");
  s.attrs.values["pads"] = intsAttr({1, 1, 1, 1});
  s.attrs.values["strides"] = intsAttr({2, 2});
  g.nodes.push_back(s);
  g.nodes.push_back(layer("FusedConv", "over_bound", {"big", "wbig", "bbig"}, {"y9"}, pr, "Relu"));
  g.outputs = {"y1", "y2", "y3", "y4", "y5", "y6", "y7", "y8", "y9"};
  inferShapes(g);
  return p;
}
std::map<std::string, Tensor> epilogueInputs() { return {{"x", uniformFloats({3, 16, 10, 10}, 741)}, {"big", uniformFloats({1, 4, 512, 512}, 742)}}; }
// Layers with bias and / or activation in cuBLASLt: relu, gelu_tanh, bias_only, hardswish (bias),
// residual_nobias (ReLU), gelu_erf (bias), strided = 7; bias matrices of 6 of them (24 x 100 / 24 x 25 pixels).
constexpr int kLtEpilogues = 7;
constexpr size_t kBiasMatrixBytes = (5 * 24 * 100 + 24 * 25) * 4;

}  // namespace

// ------------------------------------------------------------------ CPU side

TEST(gpu_conv_lt_epilogue_selection) {
  using gpu::planConvLtEpilogue;
  const int relu = gpu::kUnaryRelu, gelu = gpu::kUnaryGeluTanh, none = gpu::kUnaryCopy;
  // Bias, no residual, ReLU / tanh-GELU / none: bias as C, activation in cuBLASLt, no pass.
  for (int act : {relu, gelu, none}) {
    const gpu::ConvLtEpilogue e = planConvLtEpilogue(true, false, act, false, 64, 56 * 56, true);
    CHECK(e.biasAsC);
    CHECK_EQ(e.ltActivation, act == none ? 0 : act);
    CHECK(!e.passBias && !e.passActivation && !e.needsPass);
  }
  // The folded RoundToFp16 keeps the pass (rounding only).
  gpu::ConvLtEpilogue e = planConvLtEpilogue(true, false, relu, true, 64, 56 * 56, true);
  CHECK(e.biasAsC && e.ltActivation == relu && !e.passBias && !e.passActivation && e.needsPass);
  // Activations cuBLASLt lacks (HardSwish, erf-GELU) stay in the pass; the bias still goes in as C.
  for (int act : {int(gpu::kUnaryHardSwish), int(gpu::kUnaryGelu), int(gpu::kUnarySigmoid)}) {
    e = planConvLtEpilogue(true, false, act, false, 64, 56 * 56, true);
    CHECK(e.biasAsC && e.ltActivation == 0 && !e.passBias && e.passActivation && e.needsPass);
  }
  // A residual input: C is the residual, the bias (and so the activation) stays in the pass.
  e = planConvLtEpilogue(true, true, relu, false, 64, 56 * 56, true);
  CHECK(!e.biasAsC && e.ltActivation == 0 && e.passBias && e.passActivation && e.needsPass);
  // A residual without bias: ReLU in cuBLASLt (after beta * C), no pass.
  e = planConvLtEpilogue(false, true, relu, false, 64, 56 * 56, true);
  CHECK(!e.biasAsC && e.ltActivation == relu && !e.needsPass);
  // The bound: Co x HW x 4 bytes <= 8 MiB (ResNet-50 layer1 at 256 x 56 x 56 = 3.1 MiB fits; the
  // same channels at 112 x 112 = 12.3 MiB do not: bias and activation stay in the pass).
  CHECK_EQ(gpu::kConvBiasMatrixMaxBytes, size_t(8) << 20);
  CHECK(planConvLtEpilogue(true, false, relu, false, 256, 56 * 56, true).biasAsC);
  CHECK(planConvLtEpilogue(true, false, relu, false, 8, 512 * 512, true).biasAsC);   // exactly 8 MiB
  e = planConvLtEpilogue(true, false, relu, false, 9, 512 * 512, true);
  CHECK(!e.biasAsC && e.ltActivation == 0 && e.passBias && e.passActivation && e.needsPass);
  e = planConvLtEpilogue(true, false, relu, false, 256, 112 * 112, true);
  CHECK(!e.biasAsC && e.passBias);
  CHECK(planConvLtEpilogue(true, false, relu, false, 256, 112 * 112, true, size_t(16) << 20).biasAsC);  // another bound
  // Disabled (PLANFORGE_GPU_CONV_EPILOGUE=0 / bias not host-known): the previous pass, unchanged.
  e = planConvLtEpilogue(true, false, relu, false, 64, 56 * 56, false);
  CHECK(!e.biasAsC && e.ltActivation == 0 && e.passBias && e.passActivation && e.needsPass);
  e = planConvLtEpilogue(false, false, none, false, 64, 56 * 56, true);
  CHECK(!e.biasAsC && e.ltActivation == 0 && !e.needsPass);
}

TEST(gpu_fp16_conv_roundings_are_left_to_fp16_conv_readers) {
  Plan p = emptyPlan(90, "fp16");
  Graph& g = p.graph;
  addInput(g, "x", {1, 8, 6, 6});
  for (const char* w : {"w1", "w2", "w3", "w4", "w5", "w6"}) g.initializers[w] = uniformFloats({8, 8, 1, 1}, 800);
  g.initializers["wd"] = uniformFloats({8, 1, 3, 3}, 801);
  auto conv = [&](const std::string& name, std::vector<std::string> ins, const std::string& out, const std::string& pr = "fp16") {
    g.nodes.push_back(layer("FusedConv", name, std::move(ins), {out + "_acc"}, pr, "Relu"));
    g.nodes.push_back(layer("RoundToFp16", "r_" + name, {out + "_acc"}, {out}, "fp16"));
  };
  conv("c1", {"x", "w1"}, "y1");              // read by c2 (input 0) only: deferred
  conv("c2", {"y1", "w2"}, "y2");             // read by c4 as its residual: kept
  conv("c3", {"x", "w3"}, "y3");              // read by c4 and by a depthwise conv (no FP16-operand tactic): kept
  conv("c4", {"y3", "w4", "", "y2"}, "y4");   // read by a Relu: kept
  g.nodes.push_back(node("Relu", "relu", {"y4"}, {"y5"}));
  Node dw = layer("Conv", "dw", {"y3", "wd"}, {"y6"}, "fp16");
  dw.attrs.values["group"] = intAttr(8);
  dw.attrs.values["pads"] = intsAttr({1, 1, 1, 1});
  g.nodes.push_back(dw);
  conv("c5", {"y5", "w5"}, "y7");             // read by an FP32 conv: kept
  g.nodes.push_back(layer("Conv", "c6", {"y7", "w6"}, {"y8"}, "fp32"));
  conv("c7", {"y8", "w6"}, "y9");             // its rounded output is a graph output: kept
  conv("c8", {"x", "w2"}, "y10");             // read by two FP16 convs (each would round it): kept
  conv("c9", {"y10", "w3"}, "y11");
  conv("c10", {"y10", "w4"}, "y12");
  g.outputs = {"y6", "y9", "y11", "y12"};
  inferShapes(g);
  const auto d = gpu::deferrableConvRounds(g);
  CHECK_EQ(d.size(), size_t(1));
  CHECK_EQ(g.nodes[d.at(0).first].name, std::string("c1"));
  CHECK_EQ(d.at(0).second, std::string("y1"));
  // A second reader of the unrounded value (not only the RoundToFp16): nothing to defer.
  Graph h = g;
  h.nodes.push_back(node("Relu", "peek", {"y1_acc"}, {"peek"}));
  CHECK(gpu::deferrableConvRounds(h).empty());
  // FP32 plans have no RoundToFp16: nothing.
  Graph f = g;
  f.nodes.erase(std::remove_if(f.nodes.begin(), f.nodes.end(), [](const Node& n) { return n.opType == "RoundToFp16"; }), f.nodes.end());
  CHECK(gpu::deferrableConvRounds(f).empty());
}

// ------------------------------------------------------------------ GPU side

// Every case of epiloguePlan on cuBLASLt against the CPU reference, fp32 (exact FP32 compute) and
// fp16 (FP32 operands with FAST_16F, and FP16 operands), batch 3 with one bias matrix for the
// batch, inside CUDA graphs; fewer launches than the previous epilogue pass; the bias matrices
// counted in the weight bytes.
TEST(gpu_conv_bias_as_c_and_lt_activation_match_the_cpu_reference) {
  gpu::DeviceInfo dev;
  if (!haveGpuAndLt(&dev)) return;
  EnvGuard on("PLANFORGE_GPU_CONV_EPILOGUE", nullptr);  // the default (on), whatever the environment says
  const auto in = epilogueInputs();
  for (const char* pr : {"fp32", "fp16"}) {
    for (bool f16ops : {false, true}) {
      if (f16ops && std::string(pr) == "fp32") continue;
      gpu::GpuExecutorOptions o;
      o.preferCublasLt = true;
      o.preferCublasLtF16 = f16ops;
      const double tol = std::string(pr) == "fp32" ? 1e-4 : 2e-2;
      gpu::GpuLayerStats before, after;
      std::map<std::string, Tensor> outBefore, outAfter;
      {
        EnvGuard off("PLANFORGE_GPU_CONV_EPILOGUE", "0");
        before = matchCpu(epiloguePlan(dev.sm, pr), in, tol, o, &outBefore);
      }
      after = matchCpu(epiloguePlan(dev.sm, pr), in, tol, o, &outAfter);
      CHECK_EQ(before.cublasLtLayers, 9);
      CHECK_EQ(after.cublasLtLayers, 9);
      CHECK_EQ(before.convEpiloguesOnLt, 0);
      CHECK_EQ(before.biasMatrixBytes, size_t(0));
      std::cerr << "  (" << pr << (f16ops ? " FP16 operands" : "") << ": launches " << before.launches << " -> " << after.launches
                << ", bias matrices " << after.biasMatrixBytes << " bytes, bias-as-C refused " << after.convBiasAsCRefused << ")\n";
      CHECK_EQ(after.biasMatrixBytes, kBiasMatrixBytes);
      CHECK_EQ(after.weightBytes, before.weightBytes + kBiasMatrixBytes);
      if (after.convBiasAsCRefused == 0) {  // cuBLASLt took the bias matrix with a batch stride of 0
        if (after.convEpiloguesOnLt != kLtEpilogues) {
          std::string names;
          for (const auto& n : after.convEpilogueLayers) names += " " + n;
          std::cerr << "  (" << pr << ": epilogues on cuBLASLt:" << names << ")\n";
        }
        CHECK_EQ(after.convEpiloguesOnLt, kLtEpilogues);
        // relu, gelu_tanh, bias_only, residual_nobias, strided lose their pass (5 launches); the
        // fp16 plans here have no RoundToFp16 nodes, so the same.
        CHECK_EQ(after.launches, before.launches - 5);
      } else {  // it did not (batch 3): those layers keep the pass, never more launches than before
        CHECK(after.launches <= before.launches);
      }
      // ReLU after beta * C: every ReLU output is >= 0 and some bias-driven values are positive
      // where the product alone is not (checked by the CPU comparison above); here just the sign.
      for (const char* y : {"y1", "y8", "y9"})
        for (int64_t i = 0; i < outAfter.at(y).numel(); ++i) CHECK(outAfter.at(y).data<float>()[i] >= 0.f);
      // Same math, another rounding order: close to the previous path.
      for (const auto& kv : outBefore) {
        const double e = maxRelErr(outAfter.at(kv.first), kv.second);
        if (!(e <= tol)) PF_FAIL(pr << " " << kv.first << " before/after relative difference " << e);
      }
    }
  }
  // Autotuned (our kernels and both cuBLASLt tactics timed per layer): whatever wins, still right.
  gpu::GpuExecutorOptions at;
  at.autotune = true;
  const gpu::GpuLayerStats st = matchCpu(epiloguePlan(dev.sm, "fp16"), in, 2e-2, at);
  std::cerr << "  (epilogue plan fp16 autotuned: " << st.cublasLtLayers << " cuBLASLt layers, " << st.convEpiloguesOnLt
            << " with bias / activation in cuBLASLt)\n";
}

// FP16 plans: a conv's RoundToFp16 left to its FP16-operand conv readers. A chain without bias or
// activation (so the only change is the deferral): bit-identical to the folded rounding, one
// launch fewer per deferred rounding; with readers on FP32 operands or our kernels (which round
// their input in place first) and autotuned: still equal to the CPU reference.
TEST(gpu_fp16_deferred_conv_rounding_matches) {
  gpu::DeviceInfo dev;
  if (!haveGpuAndLt(&dev)) return;
  EnvGuard on("PLANFORGE_GPU_CONV_EPILOGUE", nullptr);  // the default (on), whatever the environment says
  auto chain = [&](bool withEpilogue) {
    Plan p = emptyPlan(dev.sm, "fp16");
    Graph& g = p.graph;
    addInput(g, "x", {2, 32, 14, 14});
    g.initializers["w1"] = uniformFloats({48, 32, 1, 1}, 901);
    g.initializers["w2"] = uniformFloats({48, 48, 3, 3}, 902);
    g.initializers["w3"] = uniformFloats({32, 48, 1, 1}, 903);
    g.initializers["b1"] = uniformFloats({48}, 904);
    g.initializers["b2"] = uniformFloats({48}, 905);
    const std::string act = withEpilogue ? "Relu" : "";
    std::vector<std::string> i1{"x", "w1"}, i2{"y1", "w2"};
    if (withEpilogue) {
      i1.push_back("b1");
      i2.push_back("b2");
    }
    g.nodes.push_back(layer(withEpilogue ? "FusedConv" : "Conv", "c1", i1, {"a1"}, "fp16", act));
    g.nodes.push_back(layer("RoundToFp16", "r1", {"a1"}, {"y1"}, "fp16"));
    Node c2 = layer(withEpilogue ? "FusedConv" : "Conv", "c2", i2, {"a2"}, "fp16", act);
    c2.attrs.values["pads"] = intsAttr({1, 1, 1, 1});
    g.nodes.push_back(c2);
    g.nodes.push_back(layer("RoundToFp16", "r2", {"a2"}, {"y2"}, "fp16"));
    g.nodes.push_back(layer("Conv", "c3", {"y2", "w3"}, {"a3"}, "fp16"));
    g.nodes.push_back(layer("RoundToFp16", "r3", {"a3"}, {"y3"}, "fp16"));
    g.outputs = {"y3"};
    inferShapes(g);
    return p;
  };
  const std::map<std::string, Tensor> in{{"x", uniformFloats({2, 32, 14, 14}, 906)}};
  gpu::GpuExecutorOptions f16;
  f16.preferCublasLt = f16.preferCublasLtF16 = true;
  std::map<std::string, Tensor> folded, deferred;
  gpu::GpuLayerStats a, b;
  {
    EnvGuard off("PLANFORGE_GPU_CONV_EPILOGUE", "0");
    a = matchCpu(chain(false), in, 2e-2, f16, &folded);
  }
  b = matchCpu(chain(false), in, 2e-2, f16, &deferred);
  CHECK_EQ(a.deferredRounds, 0);
  CHECK_EQ(b.deferredRounds, 2);
  CHECK_EQ(b.cublasLtF16Layers, 3);
  CHECK_EQ(b.launches, a.launches - 2);
  CHECK(deferred.at("y3").bytes == folded.at("y3").bytes);
  // With bias + ReLU: c1 and c2 run no pass at all (bias as C, ReLU in cuBLASLt, rounding deferred).
  a = matchCpu(chain(true), in, 2e-2, f16);
  CHECK_EQ(a.deferredRounds, 2);
  CHECK_EQ(a.convEpiloguesOnLt, 2);
  // Readers that do not round their input themselves round it in place first.
  gpu::GpuExecutorOptions f32ops;
  f32ops.preferCublasLt = true;
  b = matchCpu(chain(true), in, 2e-2, f32ops);
  CHECK_EQ(b.deferredRounds, 2);
  CHECK_EQ(b.cublasLtF16Layers, 0);
  b = matchCpu(chain(true), in, 2e-2, {});  // our kernels (heuristic tactics)
  CHECK_EQ(b.cublasLtLayers, 0);
  gpu::GpuExecutorOptions at;
  at.autotune = true;
  b = matchCpu(chain(true), in, 2e-2, at);
  CHECK_EQ(b.tunedLayers, 3);
}
