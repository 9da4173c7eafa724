// Einsum: explicit ("ij,jk->ik") and implicit ("ij,jk") equations, ellipsis broadcasting,
// repeated labels (diagonals), sums over labels absent from the output. Plain nested loops
// over every label: a reference, not a fast path.
#include <algorithm>
#include <cctype>
#include <map>

#include "elementwise.h"
#include "op_util.h"

namespace planforge {
namespace ops {

namespace {

struct Equation {
  std::vector<std::string> inputs;  // labels per input; '.' stands for the ellipsis
  std::string output;
};

std::string stripSpaces(const std::string& s) {
  std::string r;
  for (char c : s)
    if (c != ' ') r += c;
  return r;
}

Equation parseEquation(const NodeContext& ctx, size_t numInputs) {
  std::string eq = stripSpaces(ctx.attrs.getString("equation", ""));
  if (eq.empty()) attrError(ctx, "equation is required");
  Equation e;
  const size_t arrow = eq.find("->");
  std::string lhs = arrow == std::string::npos ? eq : eq.substr(0, arrow);
  size_t start = 0;
  while (true) {
    size_t comma = lhs.find(',', start);
    e.inputs.push_back(lhs.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (e.inputs.size() != numInputs)
    shapeError(ctx, "equation has " + std::to_string(e.inputs.size()) + " operands but the node has " + std::to_string(numInputs) + " inputs");
  auto collapse = [&](std::string& s) {
    const size_t p = s.find("...");
    if (p != std::string::npos) s.replace(p, 3, ".");
    for (char c : s)
      if (c != '.' && !std::isalpha(static_cast<unsigned char>(c))) attrError(ctx, "invalid equation '" + eq + "'");
    if (std::count(s.begin(), s.end(), '.') > 1) attrError(ctx, "more than one ellipsis in an operand");
  };
  for (auto& s : e.inputs) collapse(s);
  if (arrow != std::string::npos) {
    e.output = eq.substr(arrow + 2);
    collapse(e.output);
  } else {
    // Implicit output: the ellipsis, then the labels that appear once, in alphabetical order.
    std::map<char, int> count;
    bool ellipsis = false;
    for (const auto& s : e.inputs)
      for (char c : s) {
        if (c == '.') ellipsis = true;
        else ++count[c];
      }
    if (ellipsis) e.output = ".";
    for (const auto& kv : count)
      if (kv.second == 1) e.output += kv.first;
  }
  return e;
}

// Expands the ellipsis of every operand into labels '0', '1', ... (right-aligned broadcast dims).
struct Expanded {
  std::vector<std::string> inputs;
  std::string output;
  std::map<char, int64_t> dims;
};

Expanded expand(const NodeContext& ctx, const Equation& e, const std::vector<Shape>& shapes) {
  size_t ellRank = 0;
  for (size_t i = 0; i < e.inputs.size(); ++i) {
    const std::string& s = e.inputs[i];
    const size_t named = s.size() - (s.find('.') != std::string::npos ? 1 : 0);
    if (s.find('.') == std::string::npos && named != shapes[i].size())
      shapeError(ctx, "operand " + std::to_string(i) + " has rank " + std::to_string(shapes[i].size()) + " but the equation names " + std::to_string(named) + " dims");
    if (shapes[i].size() < named) shapeError(ctx, "operand " + std::to_string(i) + " rank too small for the equation");
    if (s.find('.') != std::string::npos) ellRank = std::max(ellRank, shapes[i].size() - named);
  }
  auto ellLabels = [](size_t n) {
    std::string r;
    for (size_t k = 0; k < n; ++k) r += static_cast<char>('0' + k);
    return r;
  };
  Expanded x;
  for (size_t i = 0; i < e.inputs.size(); ++i) {
    std::string s = e.inputs[i];
    const size_t p = s.find('.');
    if (p != std::string::npos) {
      const size_t n = shapes[i].size() - (s.size() - 1);
      s.replace(p, 1, ellLabels(ellRank).substr(ellRank - n));
    }
    for (size_t k = 0; k < s.size(); ++k) {
      const char c = s[k];
      const int64_t d = shapes[i][k];
      auto it = x.dims.find(c);
      if (it == x.dims.end()) x.dims[c] = d;
      else if (it->second < 0 || d < 0) {  // unknown (inference only)
        if (it->second < 0) it->second = d;
      } else if (it->second != d) {
        if (c >= '0' && c <= '9' && (it->second == 1 || d == 1)) it->second = std::max(it->second, d);
        else shapeError(ctx, std::string("label '") + c + "' has sizes " + std::to_string(it->second) + " and " + std::to_string(d));
      }
    }
    x.inputs.push_back(s);
  }
  x.output = e.output;
  const size_t p = x.output.find('.');
  if (p != std::string::npos) x.output.replace(p, 1, ellLabels(ellRank));
  for (char c : x.output)
    if (!x.dims.count(c)) shapeError(ctx, std::string("output label '") + c + "' does not appear in the inputs");
  return x;
}

Tensor einsum(const NodeContext& ctx, const Inputs& in) {
  if (in.empty()) shapeError(ctx, "expects at least one input");
  std::vector<Tensor> xs;
  std::vector<Shape> shapes;
  DataType dt = input(ctx, in, 0).dtype;
  for (size_t i = 0; i < in.size(); ++i) {
    xs.push_back(toFloat32(input(ctx, in, i)));
    shapes.push_back(in[i]->shape);
  }
  Expanded x = expand(ctx, parseEquation(ctx, in.size()), shapes);
  std::string labels = x.output;
  for (const auto& kv : x.dims)
    if (labels.find(kv.first) == std::string::npos) labels += kv.first;
  const size_t L = labels.size(), O = x.output.size();
  Shape extent(L);
  for (size_t k = 0; k < L; ++k) extent[k] = x.dims[labels[k]];
  // Stride of every label in every operand (0 where absent or broadcast).
  std::vector<std::vector<int64_t>> strides(xs.size(), std::vector<int64_t>(L, 0));
  for (size_t i = 0; i < xs.size(); ++i) {
    Shape st = stridesOf(xs[i].shape);
    for (size_t k = 0; k < x.inputs[i].size(); ++k) {
      const size_t l = labels.find(x.inputs[i][k]);
      if (xs[i].shape[k] != 1 || extent[l] == 1) strides[i][l] += st[k];
    }
  }
  Shape outShape(extent.begin(), extent.begin() + O);
  Tensor out(DataType::kFloat, outShape);
  int64_t total = 1;
  for (auto e : extent) total *= e;
  if (total == 0) return castFromFloat32(out, dt);
  std::vector<int64_t> pos(L, 0), off(xs.size(), 0);
  int64_t outIndex = 0;
  Shape ost = stridesOf(outShape);
  for (int64_t t = 0; t < total; ++t) {
    float prod = 1.f;
    for (size_t i = 0; i < xs.size(); ++i) prod *= xs[i].data<float>()[off[i]];
    out.data<float>()[outIndex] += prod;
    for (int64_t k = static_cast<int64_t>(L) - 1; k >= 0; --k) {
      if (++pos[k] < extent[k]) {
        for (size_t i = 0; i < xs.size(); ++i) off[i] += strides[i][k];
        if (static_cast<size_t>(k) < O) outIndex += ost[k];
        break;
      }
      for (size_t i = 0; i < xs.size(); ++i) off[i] -= strides[i][k] * (extent[k] - 1);
      if (static_cast<size_t>(k) < O) outIndex -= ost[k] * (extent[k] - 1);
      pos[k] = 0;
    }
  }
  return castFromFloat32(out, dt);
}

std::vector<ValueInfo> inferEinsum(const NodeContext& ctx, const Infos& in) {
  if (in.empty()) shapeError(ctx, "expects at least one input");
  std::vector<Shape> shapes;
  for (size_t i = 0; i < in.size(); ++i) {
    const ValueInfo& v = info(ctx, in, i);
    if (!v.hasShape) return {unknownRank(in[0].dtype)};
    shapes.push_back(v.shape);
  }
  Expanded x = expand(ctx, parseEquation(ctx, in.size()), shapes);
  Shape out;
  for (char c : x.output) out.push_back(x.dims[c]);
  return {makeInfo(in[0].dtype, out)};
}

}  // namespace

PLANFORGE_REGISTER_OP(OpDef{"Einsum", inferEinsum, [](const NodeContext& ctx, const Inputs& in) {
                              return std::vector<Tensor>{einsum(ctx, in)};
                            }});

}  // namespace ops
}  // namespace planforge
