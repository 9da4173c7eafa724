#include "op_registry.h"

#include <algorithm>

namespace planforge {

OpRegistry& OpRegistry::instance() {
  // Function-local static: safe to use from other translation units' static registrars.
  static OpRegistry registry;
  return registry;
}

void OpRegistry::add(OpDef def) {
  for (auto& d : defs_) {
    if (d.opType == def.opType) {  // last registration wins; keeps a single definition per op
      d = std::move(def);
      return;
    }
  }
  defs_.push_back(std::move(def));
}

const OpDef* OpRegistry::find(const std::string& opType) const {
  for (const auto& d : defs_)
    if (d.opType == opType) return &d;
  return nullptr;
}

std::vector<std::string> OpRegistry::names() const {
  std::vector<std::string> out;
  out.reserve(defs_.size());
  for (const auto& d : defs_) out.push_back(d.opType);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace planforge
