#pragma once

namespace planforge {
// Optimizer version: recorded in every plan header; bump when plan bytes for the same input change.
constexpr const char* kOptimizerVersion = "0.1.0";
}  // namespace planforge
