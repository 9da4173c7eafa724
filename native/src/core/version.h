#pragma once

namespace planforge {
// Optimizer version: recorded in every plan header; bump when plan bytes for the same input change.
constexpr const char* kOptimizerVersion = "0.3.0";  // 0.3.0: fuse_attention (FusedAttention layers)
}  // namespace planforge
