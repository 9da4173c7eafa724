// The builder's cross-mode GPU step: every plan carries the cubin of its own target SM (ELF
// header SM = plan SM), heuristic tactics, tuned = false, and stays byte-for-byte deterministic.
// An optimizer built without nvcc writes an empty kernels section and says so in the statistics.
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include <onnx/onnx_pb.h>

#include "core/builder.h"
#include "core/gpu/cubin.h"
#include "core/gpu/tactics.h"
#include "test_framework.h"

using namespace planforge;

namespace {

// x[1,3,8,8] -> Conv(3->4, 3x3, pad 1) -> Relu -> y, written to a temp .onnx file.
std::string writeTinyConvModel() {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.set_producer_name("unit-test");
  auto* os = m.add_opset_import();
  os->set_domain("");
  os->set_version(13);
  auto* g = m.mutable_graph();
  g->set_name("tiny");
  auto io = [](onnx::ValueInfoProto* v, const std::string& name, std::vector<int64_t> dims) {
    v->set_name(name);
    auto* tt = v->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(1);
    for (int64_t d : dims) tt->mutable_shape()->add_dim()->set_dim_value(d);
  };
  io(g->add_input(), "x", {1, 3, 8, 8});
  io(g->add_output(), "y", {1, 4, 8, 8});
  auto* w = g->add_initializer();
  w->set_name("w");
  w->set_data_type(1);
  for (int64_t d : {4, 3, 3, 3}) w->add_dims(d);
  for (int i = 0; i < 4 * 3 * 3 * 3; ++i) w->add_float_data(static_cast<float>((i * 7) % 11 - 5) * 0.05f);
  auto* conv = g->add_node();
  conv->set_op_type("Conv");
  conv->set_name("conv");
  conv->add_input("x");
  conv->add_input("w");
  conv->add_output("c");
  auto* pads = conv->add_attribute();
  pads->set_name("pads");
  pads->set_type(onnx::AttributeProto::INTS);
  for (int k = 0; k < 4; ++k) pads->add_ints(1);
  auto* relu = g->add_node();
  relu->set_op_type("Relu");
  relu->set_name("relu");
  relu->add_input("c");
  relu->add_output("y");
  const std::string path = "/tmp/planforge-builder-kernels-" + std::to_string(::getpid()) + ".onnx";
  std::ofstream(path, std::ios::binary) << m.SerializeAsString();
  return path;
}

BuilderConfig config(int sm) {
  BuilderConfig c;
  c.targetSm = sm;
  c.precision = "fp32";
  return c;
}

const PassStats& gpuStats(const Plan& p) {
  for (const auto& s : p.passes)
    if (s.id == "prepare_gpu") return s;
  throw BuildError(ErrorCode::kInternal, "plan has no prepare_gpu statistics");
}

}  // namespace

TEST(builder_attaches_the_cubin_of_the_target_sm) {
  const std::string model = writeTinyConvModel();
  const bool haveKernels = !gpu::embeddedCubins().empty();
  for (int sm : {80, 90}) {
    BuildSummary s1, s2;
    const std::vector<uint8_t> a = buildPlanBytes(model, config(sm), s1);
    const std::vector<uint8_t> b = buildPlanBytes(model, config(sm), s2);
    CHECK(a == b);  // deterministic, cubin included
    CHECK_EQ(s1.planSha256, s2.planSha256);
    Plan p = parsePlan(a.data(), a.size());
    CHECK(!p.header.tuned);
    CHECK_EQ(p.passes.back().id, std::string("prepare_gpu"));
    // Heuristic tactics: the Conv (with its fused Relu, if fused) gets the FP32 implicit GEMM.
    bool convTactic = false;
    for (const auto& n : p.graph.nodes) convTactic = convTactic || n.tactic == gpu::kTacticConvF32;
    CHECK(convTactic);
    const std::string first = gpuStats(p).changes.at(0);
    if (haveKernels) {
      CHECK_EQ(p.kernels.size(), size_t(1));
      CHECK_EQ(p.kernels[0].sm, sm);
      CHECK_EQ(p.kernels[0].name, std::string(gpu::kKernelModuleName));
      CHECK_EQ(gpu::cubinSm(p.kernels[0].image.data(), p.kernels[0].image.size()), sm);
      gpu::validatePlanKernels(p);
      CHECK(first.find("attached kernel module") != std::string::npos);
      CHECK(s1.planSize > p.kernels[0].image.size());
    } else {
      CHECK(p.kernels.empty());
      CHECK(first.find("built without nvcc") != std::string::npos);
    }
  }
  // Two targets give two different plans (different cubins, different header).
  BuildSummary s80, s90;
  CHECK(buildPlanBytes(model, config(80), s80) != buildPlanBytes(model, config(90), s90));
  std::remove(model.c_str());
}
