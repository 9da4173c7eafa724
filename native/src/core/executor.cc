#include "executor.h"

#include <set>

namespace planforge {

std::vector<Tensor> runNode(const Graph& g, const Node& node, const std::vector<const Tensor*>& inputs) {
  const OpDef* def = OpRegistry::instance().find(node.opType);
  if (!def || !def->run)
    throw BuildError(ErrorCode::kUnsupportedOp, "no CPU reference kernel for " + node.opType + " (" + node.name + ")");
  NodeContext ctx{node.opType, node.name, node.attrs, g.opset, static_cast<int>(node.outputs.size())};
  std::vector<Tensor> outs;
  try {
    outs = def->run(ctx, inputs);
  } catch (const BuildError& e) {
    std::string msg = e.what();
    if (msg.find(node.name) == std::string::npos) msg = "node '" + node.name + "' (" + node.opType + "): " + msg;
    throw BuildError(e.code(), msg);
  } catch (const std::bad_alloc&) {
    throw BuildError(ErrorCode::kResource, "node '" + node.name + "' (" + node.opType + "): out of memory");
  } catch (const std::exception& e) {
    throw BuildError(ErrorCode::kInternal, "node '" + node.name + "' (" + node.opType + "): " + e.what());
  }
  // A kernel returning an inconsistent tensor would corrupt everything downstream: check it here.
  for (size_t i = 0; i < outs.size(); ++i) {
    const Tensor& t = outs[i];
    if (static_cast<uint64_t>(shapeNumel(t.shape)) * dataTypeSize(t.dtype) != t.bytes.size())
      throw BuildError(ErrorCode::kInternal, "node '" + node.name + "' (" + node.opType + "): output " + std::to_string(i) +
                                                 " has " + std::to_string(t.bytes.size()) + " bytes for shape " +
                                                 shapeToString(t.shape));
  }
  return outs;
}

namespace {
void checkInput(const Graph& g, const std::string& name, const Tensor& t) {
  const ValueType* vt = g.typeOf(name);
  if (!vt || !vt->known()) return;
  if (vt->dtype != t.dtype)
    throw BuildError(ErrorCode::kProfile, "input '" + name + "' must be " + dataTypeName(vt->dtype) + ", got " + dataTypeName(t.dtype));
  if (!vt->hasShape) return;
  if (vt->dims.size() != t.shape.size())
    throw BuildError(ErrorCode::kProfile, "input '" + name + "' must have rank " + std::to_string(vt->dims.size()) + " (" +
                                              vt->toString() + "), got shape " + shapeToString(t.shape));
  for (size_t i = 0; i < t.shape.size(); ++i)
    if (vt->dims[i] >= 0 && vt->dims[i] != t.shape[i])
      throw BuildError(ErrorCode::kProfile, "input '" + name + "' dimension " + std::to_string(i) + " must be " +
                                                std::to_string(vt->dims[i]) + " (" + vt->toString() + "), got shape " +
                                                shapeToString(t.shape));
}
}  // namespace

std::map<std::string, Tensor> runGraph(const Graph& g, const std::map<std::string, Tensor>& inputs, const RunOptions& options) {
  std::set<std::string> declared(g.inputs.begin(), g.inputs.end());
  for (const auto& kv : inputs)
    if (!declared.count(kv.first)) {
      std::string names;
      for (const auto& n : g.inputs) names += (names.empty() ? "" : ", ") + n;
      throw BuildError(ErrorCode::kProfile, "unknown input '" + kv.first + "' (the model's inputs: " + names + ")");
    }
  for (const auto& name : g.inputs) {
    auto it = inputs.find(name);
    if (it == inputs.end()) throw BuildError(ErrorCode::kProfile, "missing input '" + name + "'");
    if (options.checkInputs) checkInput(g, name, it->second);
  }

  // Values are either borrowed (inputs, initializers) or owned (node outputs).
  std::map<std::string, const Tensor*> values;
  std::map<std::string, Tensor> owned;
  for (const auto& kv : g.initializers) values[kv.first] = &kv.second;
  for (const auto& kv : inputs) values[kv.first] = &kv.second;
  std::map<std::string, int> remaining = g.useCounts();
  std::set<std::string> graphOutputs(g.outputs.begin(), g.outputs.end());

  for (const Node& node : g.nodes) {
    if (options.cancel && options.cancel->load()) throw BuildError(ErrorCode::kCancelled, "run cancelled");
    std::vector<const Tensor*> ins;
    ins.reserve(node.inputs.size());
    for (const auto& in : node.inputs) {
      if (in.empty()) {
        ins.push_back(nullptr);
        continue;
      }
      auto it = values.find(in);
      if (it == values.end())
        throw BuildError(ErrorCode::kInternal, "node '" + node.name + "' input '" + in + "' has not been computed");
      ins.push_back(it->second);
    }
    std::vector<Tensor> outs = runNode(g, node, ins);
    if (outs.size() < node.outputs.size()) {
      // Optional trailing outputs a kernel does not produce are fine as long as nobody reads them.
      for (size_t i = outs.size(); i < node.outputs.size(); ++i)
        if (!node.outputs[i].empty() && remaining.count(node.outputs[i]))
          throw BuildError(ErrorCode::kInternal, "node '" + node.name + "' (" + node.opType + ") produced " +
                                                     std::to_string(outs.size()) + " outputs, '" + node.outputs[i] + "' is needed");
    }
    for (size_t i = 0; i < node.outputs.size() && i < outs.size(); ++i) {
      const std::string& name = node.outputs[i];
      if (name.empty()) continue;
      owned[name] = std::move(outs[i]);
      values[name] = &owned[name];
    }
    if (options.freeIntermediates) {
      for (const auto& in : node.inputs) {
        if (in.empty()) continue;
        auto r = remaining.find(in);
        if (r != remaining.end() && --r->second <= 0 && !graphOutputs.count(in) && owned.count(in)) {
          values.erase(in);
          owned.erase(in);
        }
      }
    }
  }

  std::map<std::string, Tensor> result;
  for (const auto& name : g.outputs) {
    auto o = owned.find(name);
    if (o != owned.end()) {
      result[name] = o->second;  // copy: an output may be listed twice
      continue;
    }
    auto v = values.find(name);
    if (v == values.end()) throw BuildError(ErrorCode::kInternal, "graph output '" + name + "' was not computed");
    result[name] = *v->second;
  }
  return result;
}

}  // namespace planforge
