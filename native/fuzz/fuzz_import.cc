// libFuzzer target: arbitrary bytes -> importer (protobuf parse, validation, tensor
// conversion, shape inference) -> the default optimizer pass pipeline; and the same bytes
// through inspectModelBytes (the streaming check of checkModel, onnx_lazy_reader.cc), which
// must come to the same verdict: the same error (code and message) or the same report and
// input/output types. A BuildError is the expected answer to bad input; anything else (a crash,
// an ASan report, another exception type, a hang, a streaming verdict that differs) is a
// finding. Built by scripts/fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "core/onnx_import.h"
#include "core/passes/pass.h"
#include "core/tensor.h"

using namespace planforge;

namespace {

// The verdict of an import: the error, or what checkModel reports of the graph.
template <typename Import>
std::string verdict(Import&& import) {
  try {
    ImportReport r;
    Graph g = import(&r);
    std::string s = "ok " + std::to_string(r.nodeCount) + "/" + std::to_string(r.initializerCount) + "/" + r.unsupportedOps + "|";
    for (const auto& t : r.opTypes) s += t + ",";
    for (const auto* names : {&g.inputs, &g.outputs})
      for (const auto& n : *names) {
        const ValueType* t = g.typeOf(n);
        s += "|" + n + ":" + (t ? t->toString() : "?");
      }
    return s;
  } catch (const BuildError& e) {
    return std::string(errorCodeName(e.code())) + ": " + e.what();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  ImportOptions options;
  // Small ceilings: an input declaring a huge tensor must be refused (E_RESOURCE), not
  // allocated; the fuzzer's own -rss_limit_mb catches a guard that does not hold.
  options.maxModelBytes = 1u << 20;
  options.maxTensorBytes = 16u << 20;
  options.maxTotalBytes = 64u << 20;
  options.requireSupportedOps = false;
  try {
    // "" = no model directory: external-data references are refused (E_EXTERNAL_DATA).
    Graph graph = importModelBytes(bytes, "", options);
    PassContext ctx;
    ctx.maxFoldBytes = 1u << 20;
    runPasses(graph, PassRegistry::instance().defaultPipeline(), ctx);
  } catch (const BuildError&) {
    // Bad input reported as such: fine.
  } catch (const std::exception& e) {
    // The native layer promises typed errors only; an escaped std::exception would surface as E_INTERNAL.
    std::fprintf(stderr, "untyped exception escaped the importer: %s\n", e.what());
    std::abort();
  }
  // The streaming check (checkModel) against the whole-buffer import: tensors over `keep` bytes
  // are walked without their payload (0: every tensor; 64: the small ones are kept whole).
  try {
    const uint64_t keep = (size & 1) ? 0 : 64;
    const std::string whole = verdict([&](ImportReport* r) { return importModelBytes(bytes, "", options, r); });
    const std::string streamed = verdict([&](ImportReport* r) { return inspectModelBytes(bytes, "", options, r, keep); });
    if (whole != streamed) {
      std::fprintf(stderr, "streaming check differs (keep %llu):\n  whole:     %s\n  streaming: %s\n",
                   static_cast<unsigned long long>(keep), whole.c_str(), streamed.c_str());
      std::abort();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "untyped exception escaped the importer: %s\n", e.what());
    std::abort();
  }
  return 0;
}
