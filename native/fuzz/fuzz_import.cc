// libFuzzer target: arbitrary bytes -> importer (protobuf parse, validation, tensor
// conversion, shape inference) -> the default optimizer pass pipeline.
// A BuildError is the expected answer to bad input; anything else (a crash, an ASan
// report, another exception type, a hang) is a finding. Built by scripts/fuzz.sh.
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
  return 0;
}
