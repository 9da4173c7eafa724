#include "fp16.h"

#include <map>
#include <set>

#include "../half.h"

namespace planforge {

namespace {

// Kernels that convert float16 weights themselves, and which of their inputs are weights.
bool readsFp16WeightDirectly(const Node& n, size_t input) {
  const std::string& op = n.opType;
  if (op == "Conv" || op == "ConvTranspose" || op == "FusedConv") return input == 1 || input == 2;
  if (op == "Gemm" || op == "FusedGemm" || op == "FusedMatMul") return input == 1 || input == 2;
  // Normalization parameters and PRelu slopes: the kernels read them through toFloats().
  if (op == "BatchNormalization") return input >= 1 && input <= 4;
  if (op == "InstanceNormalization" || op == "LayerNormalization" || op == "GroupNormalization") return input == 1 || input == 2;
  if (op == "PRelu") return input == 1;
  return false;
}

// Ops whose float inputs beyond the first are parameters (scales, bounds, shapes), not data.
bool hasParameterInputs(const std::string& op) {
  static const std::set<std::string> ops{"Resize", "Upsample", "Pad", "Clip", "Range", "ConstantOfShape", "Slice", "Tile",
                                         "Expand", "Reshape", "TopK", "Split", "Gather", "GatherElements", "ScatterElements",
                                         "RoiAlign", "NonMaxSuppression", "QuantizeLinear", "DequantizeLinear", "Where"};
  return ops.count(op) != 0;
}

// Ops whose outputs are copies or a selection of their input values (no new values): an FP16
// layer of this kind writes FP16-exact values when it reads FP16-exact ones.
bool preservesValues(const Node& n) {
  static const std::set<std::string> ops{"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Concat", "Split", "Slice",
                                         "Gather", "GatherElements", "Expand", "Tile", "Identity", "MaxPool", "GlobalMaxPool",
                                         "ReduceMax", "ReduceMin", "Relu", "Max", "Min", "Neg", "Abs", "DepthToSpace",
                                         "SpaceToDepth", "Dropout", "RoundToFp16"};
  return n.domain.empty() ? ops.count(n.opType) != 0 : n.opType == "RoundToFp16";
}

bool isFloat32(const Graph& g, const std::string& v) {
  const ValueType* t = g.typeOf(v);
  return t && t->dtype == DataType::kFloat;
}

}  // namespace

void lowerFp16Layers(Graph& g, std::vector<std::string>& changes) {
  bool any = false;
  for (const auto& n : g.nodes) any = any || n.precision == "fp16";
  if (!any) return;

  std::set<std::string> exact;                  // float32 values that hold FP16-representable numbers
  std::map<std::string, std::string> rounded;   // value -> its RoundToFp16 copy
  std::map<std::string, std::string> halfInit;  // float32 initializer -> float16 copy
  std::map<std::string, std::string> castInit;  // float32 initializer -> Cast(float16 copy) output
  int weights = 0, reformats = 0, casts = 0;
  int64_t weightBytesSaved = 0;
  std::vector<Node> out;
  out.reserve(g.nodes.size() * 2);

  auto fp16Copy = [&](const std::string& init) {
    auto it = halfInit.find(init);
    if (it != halfInit.end()) return it->second;
    const Tensor& src = g.initializers.at(init);
    Tensor h(DataType::kFloat16, src.shape);
    const float* p = src.data<float>();
    uint16_t* q = h.data<uint16_t>();
    for (int64_t i = 0; i < src.numel(); ++i) q[i] = floatToHalf(p[i]);
    const std::string name = g.uniqueValueName(init + "_fp16");
    ValueType vt;
    vt.dtype = DataType::kFloat16;
    vt.hasShape = true;
    vt.dims = src.shape;
    vt.dimParams.assign(src.shape.size(), "");
    g.types[name] = vt;
    weightBytesSaved += src.numel() * 2;
    g.initializers[name] = std::move(h);
    ++weights;
    return halfInit[init] = name;
  };
  auto makeNode = [&](const std::string& op, const std::string& domain, const std::string& name, const std::string& in,
                      const std::string& outName, const Node& owner) {
    Node r;
    r.opType = op;
    r.domain = domain;
    r.name = name;
    r.inputs = {in};
    r.outputs = {outName};
    r.originalNames = owner.originalNames;
    r.precision = "fp16";
    return r;
  };
  // Node names must be unique across the nodes being built too.
  std::set<std::string> usedNames;
  for (const auto& n : g.nodes) usedNames.insert(n.name);
  auto freshName = [&](const std::string& base) {
    std::string s = base;
    for (int i = 1; usedNames.count(s); ++i) s = base + "_" + std::to_string(i);
    usedNames.insert(s);
    return s;
  };

  const std::vector<Node> nodes = g.nodes;
  for (Node n : nodes) {
    if (n.precision != "fp16") {
      out.push_back(std::move(n));
      continue;
    }
    const bool params = hasParameterInputs(n.opType);
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      const std::string v = n.inputs[i];
      if (v.empty() || !isFloat32(g, v)) continue;
      if (g.isConstant(v)) {
        if (params && i > 0) continue;
        if (readsFp16WeightDirectly(n, i)) {
          n.inputs[i] = fp16Copy(v);
          continue;
        }
        auto c = castInit.find(v);
        if (c == castInit.end()) {
          const std::string half = fp16Copy(v);
          const std::string castOut = g.uniqueValueName(v + "_fp16_cast");
          g.types[castOut] = g.types[v];
          Node cast = makeNode("Cast", "", freshName(v + "_fp16_cast"), half, castOut, n);
          Attribute to;
          to.kind = Attribute::Kind::kInt;
          to.i = static_cast<int64_t>(DataType::kFloat);
          cast.attrs.values["to"] = to;
          out.push_back(std::move(cast));
          ++casts;
          c = castInit.emplace(v, castOut).first;
        }
        n.inputs[i] = c->second;
        continue;
      }
      if (exact.count(v)) continue;
      // An FP32 tensor read by an FP16 layer: reformat it once, share the copy.
      auto r = rounded.find(v);
      if (r == rounded.end()) {
        const std::string name = g.uniqueValueName(v + "_fp16");
        g.types[name] = g.types[v];
        out.push_back(makeNode("RoundToFp16", "planforge", freshName(v + "_to_fp16"), v, name, n));
        ++reformats;
        r = rounded.emplace(v, name).first;
        exact.insert(name);
      }
      n.inputs[i] = r->second;
    }
    if (preservesValues(n)) {
      for (const auto& o : n.outputs)
        if (!o.empty() && isFloat32(g, o)) exact.insert(o);
      out.push_back(std::move(n));
      continue;
    }
    // The layer computes in float32; its float outputs are stored as FP16.
    std::vector<Node> after;
    for (auto& o : n.outputs) {
      if (o.empty() || !isFloat32(g, o)) continue;
      const std::string acc = g.uniqueValueName(o + "_fp32");
      g.types[acc] = g.types[o];
      after.push_back(makeNode("RoundToFp16", "planforge", freshName(n.name + "_output_fp16"), acc, o, n));
      ++reformats;
      exact.insert(o);
      o = acc;
    }
    out.push_back(std::move(n));
    for (auto& a : after) out.push_back(std::move(a));
  }
  g.nodes = std::move(out);
  if (reformats) g.opsetImports["planforge"] = std::max<int64_t>(g.opsetImports["planforge"], 1);
  g.pruneUnusedValues();
  inferShapes(g);
  changes.push_back("fp16: " + std::to_string(weights) + " weights stored as float16 (" + std::to_string(weightBytesSaved) +
                    " bytes saved), " + std::to_string(reformats) + " RoundToFp16 reformats, " + std::to_string(casts) +
                    " weight casts");
}

}  // namespace planforge
