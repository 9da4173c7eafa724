#include "test_util.h"

#include <cstring>

namespace pftest {

namespace {
std::vector<ValueInfo> passInfer(const NodeContext&, const std::vector<ValueInfo>& in) { return {in.at(0)}; }
std::vector<Tensor> passRun(const NodeContext&, const std::vector<const Tensor*>& in) { return {*in.at(0)}; }
}  // namespace

void ensureTestOps() {
  auto& r = OpRegistry::instance();
  if (!r.find("Identity")) r.add(OpDef{"Identity", passInfer, passRun});
  if (!r.find("Dropout")) r.add(OpDef{"Dropout", passInfer, passRun});
  if (!r.find("Shape"))
    r.add(OpDef{"Shape",
                [](const NodeContext&, const std::vector<ValueInfo>& in) {
                  ValueInfo v;
                  v.dtype = DataType::kInt64;
                  v.shape = {in.at(0).hasShape ? static_cast<int64_t>(in[0].shape.size()) : -1};
                  return std::vector<ValueInfo>{v};
                },
                [](const NodeContext&, const std::vector<const Tensor*>& in) {
                  Tensor t(DataType::kInt64, {static_cast<int64_t>(in.at(0)->shape.size())});
                  for (size_t i = 0; i < in[0]->shape.size(); ++i) t.data<int64_t>()[i] = in[0]->shape[i];
                  return std::vector<Tensor>{t};
                }});
  if (!r.find("Gather"))  // axis 0 of a 1-D tensor, scalar or 1-D indices
    r.add(OpDef{"Gather",
                [](const NodeContext&, const std::vector<ValueInfo>& in) {
                  ValueInfo v;
                  v.dtype = in.at(0).dtype;
                  v.shape = in.at(1).shape;
                  return std::vector<ValueInfo>{v};
                },
                [](const NodeContext&, const std::vector<const Tensor*>& in) {
                  Tensor t(in.at(0)->dtype, in.at(1)->shape);
                  size_t elem = dataTypeSize(t.dtype);
                  for (int64_t i = 0; i < t.numel(); ++i) {
                    int64_t k = in[1]->getInt64(i);
                    if (k < 0) k += in[0]->shape[0];
                    std::memcpy(t.bytes.data() + i * elem, in[0]->bytes.data() + k * elem, elem);
                  }
                  return std::vector<Tensor>{t};
                }});
}

}  // namespace pftest
