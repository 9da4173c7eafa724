// Activation memory planning: every intermediate tensor gets an offset in one device arena;
// tensors whose lifetimes do not overlap share bytes (greedy by size, like TensorRT / TFLite).
#pragma once
#include <cstddef>
#include <vector>

namespace planforge {
namespace gpu {

struct BufferRequest {
  size_t size = 0;
  int firstStep = 0;  // step that writes it
  int lastStep = 0;   // last step that reads it (inclusive); >= firstStep
};

struct MemoryPlan {
  std::vector<size_t> offsets;  // one per request, multiples of the alignment
  size_t arenaSize = 0;
};

// Deterministic: ties are broken by request index.
MemoryPlan planMemory(const std::vector<BufferRequest>& requests, size_t alignment = 256);

}  // namespace gpu
}  // namespace planforge
