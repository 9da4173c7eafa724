// planforge.FusedAttention: multi-head scaled dot-product attention on [batch, seq, heads * head_dim]
// tensors, what the fuse_attention pass makes of an exporter's Reshape / Transpose / MatMul /
// (Mul | Div) / Add(mask) / Softmax / [IsNaN + Where] / MatMul / Transpose / Reshape chain (TensorRT's
// MHA fusion, onnxruntime's MultiHeadAttention). Inputs: Q [B, Sq, H*D], K [B, Skv, H*D],
// V [B, Skv, H*D], Mask (optional, float, broadcasts to [B, H, Sq, Skv] and is added to the scores).
// Attributes: num_heads, scale (multiplies Q.K^T; default 1), nan_to_zero (1: a row whose scores are
// all -inf gives 0, like the Where(IsNaN(p), 0, p) guard of PyTorch's SDPA export; 0: NaN, like a bare
// Softmax). Output [B, Sq, H*D]. Math in float32.
#include <cmath>
#include <limits>

#include "elementwise.h"
#include "op_util.h"

namespace planforge {
namespace ops {

namespace {

struct AttentionDims {
  int64_t batch, sq, skv, heads, headDim;
};

int64_t numHeads(const NodeContext& ctx) {
  const int64_t h = ctx.attrs.getInt("num_heads", 0);
  if (h <= 0) attrError(ctx, "num_heads must be positive, got " + std::to_string(h));
  return h;
}

// The mask's shape right-aligned against [B, H, Sq, Skv]: every dim equal or 1 (unknown dims pass).
void checkMaskShape(const NodeContext& ctx, const Shape& mask, const Shape& scores) {
  if (mask.size() > 4) shapeError(ctx, "mask " + shapeToString(mask) + " has rank > 4");
  for (size_t k = 0; k < mask.size(); ++k) {
    const int64_t m = mask[mask.size() - 1 - k], s = scores[3 - k];
    if (m >= 0 && s >= 0 && m != 1 && m != s)
      shapeError(ctx, "mask " + shapeToString(mask) + " does not broadcast to the scores " + shapeToString(scores));
  }
}

std::vector<ValueInfo> inferFusedAttention(const NodeContext& ctx, const Infos& in) {
  requireInputs(ctx, in.size(), 3, 4);
  const int64_t h = numHeads(ctx);
  const ValueInfo& q = info(ctx, in, 0);
  const ValueInfo& k = info(ctx, in, 1);
  const ValueInfo& v = info(ctx, in, 2);
  if (!q.hasShape) return {unknownRank(q.dtype)};
  for (const ValueInfo* t : {&q, &k, &v})
    if (t->hasShape && t->shape.size() != 3) shapeError(ctx, "Q, K and V must be [batch, seq, heads * head_dim], got " + shapeToString(t->shape));
  const int64_t hd = q.shape[2];
  if (hd >= 0 && hd % h != 0) shapeError(ctx, "Q's last dim " + std::to_string(hd) + " is not a multiple of num_heads " + std::to_string(h));
  for (const ValueInfo* t : {&k, &v})
    if (t->hasShape && t->shape[2] >= 0 && hd >= 0 && t->shape[2] != hd)
      shapeError(ctx, "K and V must have Q's last dim " + std::to_string(hd) + ", got " + shapeToString(t->shape));
  if (hasInfo(in, 3) && in[3].hasShape) {
    const int64_t skv = k.hasShape ? k.shape[1] : -1;
    checkMaskShape(ctx, in[3].shape, {q.shape[0], h, q.shape[1], skv});
  }
  return {makeInfo(q.dtype, q.shape)};
}

std::vector<Tensor> runFusedAttention(const NodeContext& ctx, const Inputs& in) {
  requireInputs(ctx, in.size(), 3, 4);
  const int64_t heads = numHeads(ctx);
  const float scale = ctx.attrs.getFloat("scale", 1.f);
  const bool nanToZero = ctx.attrs.getInt("nan_to_zero", 0) != 0;
  const Tensor& qIn = input(ctx, in, 0);
  for (size_t i = 0; i < 3; ++i) requireFloat(ctx, input(ctx, in, i), i == 0 ? "Q" : i == 1 ? "K" : "V");
  const Tensor q = toFloat32(qIn), k = toFloat32(input(ctx, in, 1)), v = toFloat32(input(ctx, in, 2));
  if (q.shape.size() != 3 || k.shape.size() != 3 || v.shape.size() != 3)
    shapeError(ctx, "Q, K and V must be [batch, seq, heads * head_dim], got " + shapeToString(q.shape) + ", " + shapeToString(k.shape) +
                        ", " + shapeToString(v.shape));
  const AttentionDims d{q.shape[0], q.shape[1], k.shape[1], heads, q.shape[2] / heads};
  if (q.shape[2] % heads != 0 || k.shape[2] != q.shape[2] || v.shape[2] != q.shape[2] || k.shape[0] != d.batch || v.shape[0] != d.batch ||
      v.shape[1] != d.skv)
    shapeError(ctx, "Q " + shapeToString(q.shape) + ", K " + shapeToString(k.shape) + " and V " + shapeToString(v.shape) +
                        " do not fit " + std::to_string(heads) + " heads");
  const Shape scores{d.batch, heads, d.sq, d.skv};
  Tensor mask;
  Shape ms(4, 0);  // mask strides over [B, H, Sq, Skv]
  if (hasInput(in, 3)) {
    mask = toFloat32(*in[3]);
    checkMaskShape(ctx, mask.shape, scores);
    Shape padded(4 - mask.shape.size(), 1);
    padded.insert(padded.end(), mask.shape.begin(), mask.shape.end());
    ms = broadcastStrides(padded, scores);
  }
  const float* mp = hasInput(in, 3) ? mask.data<float>() : nullptr;
  const int64_t ld = q.shape[2];
  Tensor y(DataType::kFloat, q.shape);
  std::vector<float> s(static_cast<size_t>(d.skv));
  const float* qp = q.data<float>();
  const float* kp = k.data<float>();
  const float* vp = v.data<float>();
  float* yp = y.data<float>();
  for (int64_t b = 0; b < d.batch; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < d.sq; ++i) {
        const float* qr = qp + (b * d.sq + i) * ld + h * d.headDim;
        float mx = -std::numeric_limits<float>::infinity();
        for (int64_t j = 0; j < d.skv; ++j) {
          const float* kr = kp + (b * d.skv + j) * ld + h * d.headDim;
          float acc = 0.f;
          for (int64_t c = 0; c < d.headDim; ++c) acc += qr[c] * kr[c];
          acc *= scale;
          if (mp) acc += mp[b * ms[0] + h * ms[1] + i * ms[2] + j * ms[3]];
          s[static_cast<size_t>(j)] = acc;
          mx = std::max(mx, acc);
        }
        double sum = 0;
        for (int64_t j = 0; j < d.skv; ++j) sum += s[static_cast<size_t>(j)] = std::exp(s[static_cast<size_t>(j)] - mx);
        float* yr = yp + (b * d.sq + i) * ld + h * d.headDim;
        // All scores -inf: exp(-inf - -inf) is NaN, as in the unfused Softmax.
        const bool masked = std::isinf(mx) && mx < 0;
        const float inv = static_cast<float>(1.0 / sum);
        for (int64_t c = 0; c < d.headDim; ++c) yr[c] = 0.f;
        for (int64_t j = 0; j < d.skv && !masked; ++j) {
          const float p = s[static_cast<size_t>(j)] * inv;
          const float* vr = vp + (b * d.skv + j) * ld + h * d.headDim;
          for (int64_t c = 0; c < d.headDim; ++c) yr[c] += p * vr[c];
        }
        if (masked && !nanToZero)
          for (int64_t c = 0; c < d.headDim; ++c) yr[c] = std::numeric_limits<float>::quiet_NaN();
      }
  return {castFromFloat32(y, qIn.dtype)};
}

}  // namespace

PLANFORGE_REGISTER_OP(OpDef{"FusedAttention", inferFusedAttention, runFusedAttention});

}  // namespace ops
}  // namespace planforge
