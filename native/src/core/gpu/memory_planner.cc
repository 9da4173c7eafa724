#include "memory_planner.h"

#include <algorithm>
#include <numeric>

namespace planforge {
namespace gpu {

MemoryPlan planMemory(const std::vector<BufferRequest>& requests, size_t alignment) {
  if (alignment == 0) alignment = 1;
  auto aligned = [&](size_t v) { return (v + alignment - 1) / alignment * alignment; };
  std::vector<size_t> order(requests.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return requests[a].size > requests[b].size; });

  MemoryPlan plan;
  plan.offsets.assign(requests.size(), 0);
  std::vector<size_t> placed;
  for (size_t idx : order) {
    const BufferRequest& r = requests[idx];
    const size_t size = aligned(std::max<size_t>(r.size, 1));
    // Occupied ranges of already-placed buffers that are alive at the same time, by offset.
    std::vector<std::pair<size_t, size_t>> busy;
    for (size_t p : placed) {
      const BufferRequest& q = requests[p];
      if (q.lastStep < r.firstStep || r.lastStep < q.firstStep) continue;
      busy.emplace_back(plan.offsets[p], plan.offsets[p] + aligned(std::max<size_t>(q.size, 1)));
    }
    std::sort(busy.begin(), busy.end());
    // Lowest gap that fits (best-fit would save a little more; lowest-first keeps the arena compact).
    size_t offset = 0;
    for (const auto& b : busy) {
      if (b.first >= offset + size) break;
      offset = std::max(offset, b.second);
    }
    plan.offsets[idx] = offset;
    plan.arenaSize = std::max(plan.arenaSize, offset + size);
    placed.push_back(idx);
  }
  return plan;
}

}  // namespace gpu
}  // namespace planforge
