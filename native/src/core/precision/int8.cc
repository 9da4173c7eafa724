#include "int8.h"

#include <algorithm>
#include <cmath>
#include <map>

namespace planforge {

namespace {

bool isMatMulLike(const Node& n) { return n.opType == "MatMul" || n.opType == "FusedMatMul"; }
bool isGemmLike(const Node& n) { return n.opType == "Gemm" || n.opType == "FusedGemm"; }
bool isConvLike(const Node& n) { return n.opType == "Conv" || n.opType == "FusedConv"; }

bool producedByDequantize(const Graph& g, const std::string& v) {
  const int p = g.producerIndex(v);
  return p >= 0 && g.nodes[static_cast<size_t>(p)].opType == "DequantizeLinear";
}

bool isFloat32(const Graph& g, const std::string& v) {
  const ValueType* t = g.typeOf(v);
  return t && t->dtype == DataType::kFloat;
}

// Axis of W that indexes output channels; -1 for a per-tensor scale.
int64_t outputChannelAxis(const Node& n, const Tensor& w) {
  if (isConvLike(n)) return 0;
  if (isGemmLike(n)) return n.attrs.getInt("transB", 0) != 0 ? 0 : 1;
  return w.shape.size() >= 2 ? static_cast<int64_t>(w.shape.size()) - 1 : -1;
}

// Which inputs of an INT8 layer are quantized activations (the weight is input 1 when constant).
std::vector<size_t> activationInputs(const Graph& g, const Node& n) {
  std::vector<size_t> r{0};
  if ((isMatMulLike(n) || isGemmLike(n)) && n.inputs.size() > 1 && !g.isConstant(n.inputs[1])) r.push_back(1);
  return r;
}

}  // namespace

bool hasInt8Kernel(const Graph& g, const Node& n) {
  const bool domainOk = n.domain.empty() || n.domain == "ai.onnx" || n.domain == "planforge";
  if (!domainOk || !(isConvLike(n) || isGemmLike(n) || isMatMulLike(n)) || n.inputs.size() < 2) return false;
  if (!isFloat32(g, n.inputs[0]) || !isFloat32(g, n.inputs[1])) return false;
  // Conv needs a weight it can quantize per channel (or an already dequantized one).
  if (isConvLike(n) && !g.isConstant(n.inputs[1]) && !producedByDequantize(g, n.inputs[1])) return false;
  return true;
}

std::set<std::string> int8ActivationTensors(const Graph& g) {
  std::set<std::string> out;
  for (const auto& n : g.nodes) {
    if (n.precision != "int8" || !hasInt8Kernel(g, n)) continue;
    for (size_t i : activationInputs(g, n)) {
      const std::string& v = n.inputs[i];
      if (!g.isConstant(v) && !producedByDequantize(g, v)) out.insert(v);
    }
  }
  return out;
}

void lowerInt8Layers(Graph& g, const CalibrationTable& table, std::vector<std::string>& changes) {
  bool any = false;
  for (const auto& n : g.nodes) any = any || n.precision == "int8";
  if (!any) return;

  std::map<std::string, std::string> dqActivation;  // value -> its Q/DQ copy
  std::map<std::string, std::string> dqWeight;      // float initializer -> DequantizeLinear output
  std::map<std::string, int> fallback;              // op type -> layers falling back to fp32
  int layers = 0, weights = 0, activations = 0, kept = 0;
  int64_t weightBytesSaved = 0;
  std::vector<Node> out;
  std::set<std::string> usedNames;
  for (const auto& n : g.nodes) usedNames.insert(n.name);
  auto freshName = [&](const std::string& base) {
    std::string s = base;
    for (int i = 1; usedNames.count(s); ++i) s = base + "_" + std::to_string(i);
    usedNames.insert(s);
    return s;
  };
  auto addInit = [&](const std::string& base, Tensor t) {
    const std::string name = g.uniqueValueName(base);
    ValueType vt;
    vt.dtype = t.dtype;
    vt.hasShape = true;
    vt.dims = t.shape;
    vt.dimParams.assign(t.shape.size(), "");
    g.types[name] = vt;
    g.initializers[name] = std::move(t);
    return name;
  };
  auto qdqNode = [&](const std::string& op, const std::string& name, std::vector<std::string> ins, const std::string& output,
                     const Node& owner, int64_t axis) {
    Node q;
    q.opType = op;
    q.name = freshName(name);
    q.inputs = std::move(ins);
    q.outputs = {output};
    q.originalNames = owner.originalNames;
    q.precision = "int8";
    if (axis >= 0) {
      Attribute a;
      a.kind = Attribute::Kind::kInt;
      a.i = axis;
      q.attrs.values["axis"] = a;
    }
    return q;
  };

  const std::vector<Node> nodes = g.nodes;
  for (Node n : nodes) {
    if (n.precision != "int8") {
      out.push_back(std::move(n));
      continue;
    }
    if (!hasInt8Kernel(g, n)) {
      ++fallback[n.opType];
      n.precision = "fp32";
      out.push_back(std::move(n));
      continue;
    }
    ++layers;
    // Activations: per-tensor Q/DQ with the calibrated range.
    for (size_t i : activationInputs(g, n)) {
      const std::string v = n.inputs[i];
      if (g.isConstant(v)) continue;
      if (producedByDequantize(g, v)) {
        ++kept;
        continue;
      }
      auto it = dqActivation.find(v);
      if (it == dqActivation.end()) {
        auto a = table.amax.find(v);
        if (a == table.amax.end())
          throw BuildError(ErrorCode::kCalibration, "calibration table has no range for tensor '" + v + "' read by INT8 layer '" + n.name +
                                                        "' (a cache from another model or optimizer version? delete it to recalibrate)");
        const float amax = std::max(a->second, 1e-12f);
        Tensor scale(DataType::kFloat, {});
        scale.data<float>()[0] = amax / 127.f;
        Tensor zp(DataType::kInt8, {});
        const std::string s = addInit(v + "_scale", std::move(scale));
        const std::string z = addInit(v + "_zero_point", std::move(zp));
        const std::string q = g.uniqueValueName(v + "_int8");
        g.types[q] = g.types[v];
        g.types[q].dtype = DataType::kInt8;
        const std::string dq = g.uniqueValueName(v + "_dequantized");
        g.types[dq] = g.types[v];
        out.push_back(qdqNode("QuantizeLinear", v + "_quantize", {v, s, z}, q, n, -1));
        out.push_back(qdqNode("DequantizeLinear", v + "_dequantize", {q, s, z}, dq, n, -1));
        ++activations;
        it = dqActivation.emplace(v, dq).first;
      }
      n.inputs[i] = it->second;
    }
    // Weight: int8 storage, per-output-channel scales, one DequantizeLinear.
    const std::string w = n.inputs[1];
    if (g.isConstant(w)) {
      auto it = dqWeight.find(w);
      if (it == dqWeight.end()) {
        const Tensor& wt = g.initializers.at(w);
        const int64_t axis = outputChannelAxis(n, wt);
        const int64_t channels = axis < 0 ? 1 : wt.shape[static_cast<size_t>(axis)];
        int64_t inner = 1;
        for (size_t d = static_cast<size_t>(axis + 1); axis >= 0 && d < wt.shape.size(); ++d) inner *= wt.shape[d];
        auto channelOf = [&](int64_t i) { return axis < 0 ? 0 : (i / inner) % channels; };
        std::vector<float> amax(static_cast<size_t>(channels), 0.f);
        const float* p = wt.data<float>();
        for (int64_t i = 0; i < wt.numel(); ++i)
          if (std::isfinite(p[i])) amax[static_cast<size_t>(channelOf(i))] = std::max(amax[static_cast<size_t>(channelOf(i))], std::abs(p[i]));
        Tensor scale(DataType::kFloat, axis < 0 ? Shape{} : Shape{channels});
        for (int64_t c = 0; c < channels; ++c) scale.data<float>()[c] = amax[static_cast<size_t>(c)] > 0 ? amax[static_cast<size_t>(c)] / 127.f : 1.f;
        Tensor q(DataType::kInt8, wt.shape);
        for (int64_t i = 0; i < wt.numel(); ++i) {
          const double v = std::nearbyint(static_cast<double>(p[i]) / scale.data<float>()[channelOf(i)]);
          q.data<int8_t>()[i] = static_cast<int8_t>(std::min(127.0, std::max(-127.0, std::isfinite(v) ? v : 0.0)));
        }
        Tensor zp(DataType::kInt8, scale.shape);
        const std::string qName = addInit(w + "_int8", std::move(q));
        const std::string sName = addInit(w + "_scale", std::move(scale));
        const std::string zName = addInit(w + "_zero_point", std::move(zp));
        const std::string dq = g.uniqueValueName(w + "_dequantized");
        g.types[dq] = g.types[w];
        out.push_back(qdqNode("DequantizeLinear", w + "_dequantize", {qName, sName, zName}, dq, n, axis));
        weightBytesSaved += wt.numel() * 3;
        ++weights;
        it = dqWeight.emplace(w, dq).first;
      }
      n.inputs[1] = it->second;
    } else if (producedByDequantize(g, w)) {
      ++kept;
    }
    out.push_back(std::move(n));
  }
  g.nodes = std::move(out);
  g.pruneUnusedValues();
  inferShapes(g);
  changes.push_back("int8: " + std::to_string(layers) + " layers quantized (" + std::to_string(activations) + " activation Q/DQ pairs, " +
                    std::to_string(weights) + " weights stored as int8 with per-channel scales, " + std::to_string(weightBytesSaved) +
                    " bytes saved" + (kept ? ", " + std::to_string(kept) + " inputs keep the model's own Q/DQ scales" : std::string()) + ")");
  if (!fallback.empty()) {
    std::string list;
    int total = 0;
    for (const auto& kv : fallback) {
      list += (list.empty() ? "" : ", ") + kv.first + " x" + std::to_string(kv.second);
      total += kv.second;
    }
    changes.push_back("int8: " + std::to_string(total) + " layers without an INT8 kernel run in fp32 (" + list + ")");
  }
}

}  // namespace planforge
