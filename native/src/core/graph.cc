#include "graph.h"

#include <algorithm>
#include <queue>
#include <sstream>

namespace planforge {

bool ValueType::isStatic() const {
  if (!hasShape) return false;
  for (int64_t d : dims)
    if (d < 0) return false;
  return true;
}

std::string ValueType::toString() const {
  std::ostringstream os;
  os << dataTypeName(dtype);
  if (!hasShape) return os.str() + "[?]";
  os << '[';
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) os << ',';
    if (dims[i] >= 0) os << dims[i];
    else if (i < dimParams.size() && !dimParams[i].empty()) os << dimParams[i];
    else os << '?';
  }
  os << ']';
  return os.str();
}

const ValueType* Graph::typeOf(const std::string& value) const {
  auto it = types.find(value);
  return it == types.end() ? nullptr : &it->second;
}

int Graph::producerIndex(const std::string& value) const {
  if (value.empty()) return -1;
  for (size_t i = 0; i < nodes.size(); ++i)
    for (const auto& o : nodes[i].outputs)
      if (o == value) return static_cast<int>(i);
  return -1;
}

std::map<std::string, int> Graph::useCounts() const {
  std::map<std::string, int> uses;
  for (const auto& n : nodes)
    for (const auto& in : n.inputs)
      if (!in.empty()) ++uses[in];
  for (const auto& o : outputs) ++uses[o];
  return uses;
}

namespace {
std::string describe(const Node& n) { return "node '" + n.name + "' (" + n.opType + ")"; }
}  // namespace

void Graph::topologicalSort() {
  // Who produces what; duplicates are a structural error.
  std::map<std::string, size_t> producer;
  std::set<std::string> available(inputs.begin(), inputs.end());
  for (const auto& kv : initializers) available.insert(kv.first);
  for (size_t i = 0; i < nodes.size(); ++i) {
    for (const auto& o : nodes[i].outputs) {
      if (o.empty()) continue;
      if (available.count(o))
        throw BuildError(ErrorCode::kInvalidModel, describe(nodes[i]) + " writes '" + o + "', which is already a graph input or initializer");
      if (!producer.emplace(o, i).second)
        throw BuildError(ErrorCode::kInvalidModel, "value '" + o + "' is produced twice, by " + describe(nodes[producer[o]]) +
                                                       " and " + describe(nodes[i]));
    }
  }
  // Kahn's algorithm with the original index as priority: stable for already-sorted graphs.
  std::vector<int> pending(nodes.size(), 0);
  std::vector<std::vector<size_t>> consumers(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    std::set<size_t> deps;
    for (const auto& in : nodes[i].inputs) {
      if (in.empty() || available.count(in)) continue;
      auto it = producer.find(in);
      if (it == producer.end())
        throw BuildError(ErrorCode::kInvalidModel, describe(nodes[i]) + " uses '" + in +
                                                       "', which is not a graph input, an initializer or any node's output");
      deps.insert(it->second);
    }
    pending[i] = static_cast<int>(deps.size());
    for (size_t d : deps) consumers[d].push_back(i);
  }
  std::priority_queue<size_t, std::vector<size_t>, std::greater<size_t>> ready;
  for (size_t i = 0; i < nodes.size(); ++i)
    if (pending[i] == 0) ready.push(i);
  std::vector<size_t> order;
  order.reserve(nodes.size());
  while (!ready.empty()) {
    size_t i = ready.top();
    ready.pop();
    order.push_back(i);
    for (size_t c : consumers[i])
      if (--pending[c] == 0) ready.push(c);
  }
  if (order.size() != nodes.size()) {
    for (size_t i = 0; i < nodes.size(); ++i)
      if (pending[i] > 0) throw BuildError(ErrorCode::kInvalidModel, "the graph has a cycle through " + describe(nodes[i]));
  }
  for (const auto& o : outputs)
    if (!available.count(o) && !producer.count(o))
      throw BuildError(ErrorCode::kInvalidModel, "graph output '" + o + "' is not produced by any node");
  std::vector<Node> sorted;
  sorted.reserve(nodes.size());
  for (size_t i : order) sorted.push_back(std::move(nodes[i]));
  nodes = std::move(sorted);
}

void Graph::pruneUnusedValues() {
  std::set<std::string> used(inputs.begin(), inputs.end());
  used.insert(outputs.begin(), outputs.end());
  for (const auto& n : nodes) {
    used.insert(n.inputs.begin(), n.inputs.end());
    used.insert(n.outputs.begin(), n.outputs.end());
  }
  for (auto it = initializers.begin(); it != initializers.end();)
    it = used.count(it->first) ? std::next(it) : initializers.erase(it);
  for (auto it = types.begin(); it != types.end();)
    it = used.count(it->first) ? std::next(it) : types.erase(it);
}

std::string Graph::uniqueValueName(const std::string& base) const {
  std::set<std::string> taken(inputs.begin(), inputs.end());
  taken.insert(outputs.begin(), outputs.end());
  for (const auto& kv : initializers) taken.insert(kv.first);
  for (const auto& kv : types) taken.insert(kv.first);
  for (const auto& n : nodes) {
    taken.insert(n.inputs.begin(), n.inputs.end());
    taken.insert(n.outputs.begin(), n.outputs.end());
  }
  if (!taken.count(base)) return base;
  for (int i = 1;; ++i) {
    std::string c = base + "_" + std::to_string(i);
    if (!taken.count(c)) return c;
  }
}

std::string Graph::uniqueNodeName(const std::string& base) const {
  std::set<std::string> taken;
  for (const auto& n : nodes) taken.insert(n.name);
  if (!taken.count(base)) return base;
  for (int i = 1;; ++i) {
    std::string c = base + "_" + std::to_string(i);
    if (!taken.count(c)) return c;
  }
}

ValueInfo valueInfoOf(const Graph& g, const std::string& value) {
  ValueInfo vi;
  if (value.empty()) {
    vi.present = false;
    vi.hasShape = false;
    return vi;
  }
  auto init = g.initializers.find(value);
  if (init != g.initializers.end()) {
    vi.dtype = init->second.dtype;
    vi.shape = init->second.shape;
    vi.hasShape = true;
    vi.constValue = &init->second;
    return vi;
  }
  const ValueType* t = g.typeOf(value);
  if (!t || !t->known()) {
    vi.dtype = DataType::kUndefined;
    vi.hasShape = false;
    return vi;
  }
  vi.dtype = t->dtype;
  vi.hasShape = t->hasShape;
  vi.shape = t->dims;
  return vi;
}

namespace {
bool isKnownDomain(const std::string& d) { return d.empty() || d == "ai.onnx" || d == "planforge"; }
}  // namespace

std::string unsupportedOpsReport(const Graph& g) {
  std::map<std::string, std::vector<std::string>> missing;
  for (const auto& n : g.nodes) {
    bool ok = isKnownDomain(n.domain) && OpRegistry::instance().find(n.opType) != nullptr;
    if (!ok) missing[n.domain.empty() || n.domain == "ai.onnx" ? n.opType : n.domain + "::" + n.opType].push_back(n.name);
  }
  std::string out;
  for (const auto& kv : missing) {
    if (!out.empty()) out += ", ";
    out += kv.first + " (";
    for (size_t i = 0; i < kv.second.size(); ++i) {
      if (i) out += ", ";
      out += kv.second[i];
    }
    out += ")";
  }
  return out;
}

namespace {
// Keeps symbolic names from a declared type where inference only knows "unknown".
ValueType mergeTypes(const ValueInfo& inferred, const ValueType* declared) {
  ValueType t;
  t.dtype = inferred.dtype;
  t.hasShape = inferred.hasShape;
  if (inferred.hasShape) {
    t.dims = inferred.shape;
    t.dimParams.assign(t.dims.size(), "");
    if (declared && declared->hasShape && declared->dims.size() == t.dims.size()) {
      for (size_t i = 0; i < t.dims.size(); ++i) {
        if (t.dims[i] >= 0) continue;
        if (declared->dims[i] >= 0) t.dims[i] = declared->dims[i];
        else if (i < declared->dimParams.size()) t.dimParams[i] = declared->dimParams[i];
      }
    }
  } else if (declared && declared->hasShape) {
    t = *declared;
    t.dtype = inferred.dtype == DataType::kUndefined ? declared->dtype : inferred.dtype;
  }
  if (t.dtype == DataType::kUndefined && declared) t.dtype = declared->dtype;
  return t;
}
}  // namespace

void inferNodeShapes(Graph& g, size_t index) {
  const Node& n = g.nodes[index];
  const OpDef* def = isKnownDomain(n.domain) ? OpRegistry::instance().find(n.opType) : nullptr;
  if (!def) throw BuildError(ErrorCode::kUnsupportedOp, "unsupported op " + n.opType + " (" + n.name + ")");
  std::vector<ValueInfo> ins;
  ins.reserve(n.inputs.size());
  for (const auto& in : n.inputs) ins.push_back(valueInfoOf(g, in));
  NodeContext ctx{n.opType, n.name, n.attrs, g.opset, static_cast<int>(n.outputs.size())};
  std::vector<ValueInfo> outs;
  try {
    outs = def->infer(ctx, ins);
  } catch (const BuildError& e) {
    std::string msg = e.what();
    if (msg.find(n.name) == std::string::npos) msg = "node '" + n.name + "' (" + n.opType + "): " + msg;
    throw BuildError(e.code(), msg);
  } catch (const std::exception& e) {
    throw BuildError(ErrorCode::kShape, "node '" + n.name + "' (" + n.opType + "): shape inference failed: " + e.what());
  }
  if (outs.size() < n.outputs.size()) {
    // Optional trailing outputs the op does not describe (e.g. Dropout mask) stay untyped.
    outs.resize(n.outputs.size(), ValueInfo{DataType::kUndefined, {}, false, nullptr, true});
  }
  for (size_t i = 0; i < n.outputs.size(); ++i) {
    if (n.outputs[i].empty()) continue;
    auto prev = g.types.find(n.outputs[i]);
    ValueType t = mergeTypes(outs[i], prev == g.types.end() ? nullptr : &prev->second);
    g.types[n.outputs[i]] = t;
  }
}

void inferShapes(Graph& g) {
  for (size_t i = 0; i < g.nodes.size(); ++i) inferNodeShapes(g, i);
}

}  // namespace planforge
