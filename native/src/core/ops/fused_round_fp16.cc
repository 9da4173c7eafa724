// planforge.RoundToFp16: float32 -> float32 with every value rounded to the nearest IEEE
// binary16 (overflow -> +-inf, like an FP16 store). The FP16 precision rewrite inserts it where
// TensorRT would store a tensor in half precision (after an FP16 layer, and where an FP16 layer
// reads a float32 tensor): the CPU reference then sees exactly the values an FP16 engine sees.
#include "../half.h"
#include "op_util.h"

namespace planforge {
namespace ops {

PLANFORGE_REGISTER_OP(OpDef{
    "RoundToFp16",
    [](const NodeContext& ctx, const Infos& in) {
      requireInputs(ctx, in.size(), 1, 1);
      if (info(ctx, in, 0).dtype != DataType::kFloat) shapeError(ctx, "input must be float32");
      return sameAsInput0(ctx, in);
    },
    [](const NodeContext& ctx, const Inputs& in) {
      requireInputs(ctx, in.size(), 1, 1);
      const Tensor& x = input(ctx, in, 0);
      if (x.dtype != DataType::kFloat) shapeError(ctx, std::string("input must be float32, got ") + dataTypeName(x.dtype));
      Tensor y(DataType::kFloat, x.shape);
      const float* p = x.data<float>();
      float* o = y.data<float>();
      for (int64_t i = 0; i < x.numel(); ++i) o[i] = halfToFloat(floatToHalf(p[i]));
      return std::vector<Tensor>{y};
    }});

}  // namespace ops
}  // namespace planforge
