#pragma once

namespace planforge {
// Optimizer version: recorded in every plan header; bump when plan bytes for the same input change.
constexpr const char* kOptimizerVersion = "0.3.3";  // 0.3.3: tuning candidates: NHWC convolutions on wgmma (sm_90a). 0.3.2: NHWC 1x1 convolutions on cuBLASLt, one-pixel 1x1 convolutions on a vector kernel
}  // namespace planforge
