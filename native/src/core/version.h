#pragma once

namespace planforge {
// Optimizer version: recorded in every plan header; bump when plan bytes for the same input change.
constexpr const char* kOptimizerVersion = "0.3.1";  // 0.3.1: NHWC 1x1 convolutions on cuBLASLt (a new tuning candidate)
}  // namespace planforge
