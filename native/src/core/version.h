#pragma once

namespace planforge {
// Optimizer version: recorded in every plan header; bump when plan bytes for the same input change.
constexpr const char* kOptimizerVersion = "0.2.0";  // 0.2.0: NHWC FP16 convolutions and GEMMs (tactics 15-18, 24-27)
}  // namespace planforge
