// Robustness: every registered kernel fed random small tensors and attributes must either
// compute or throw a BuildError, never crash or throw anything else (run this binary under
// -fsanitize=address,undefined to catch out-of-bounds accesses too).
#include <cstdlib>
#include <random>

#include "op_test_util.h"

using namespace optest;

namespace {

Tensor randomTensor(std::mt19937& rng) {
  static const DataType types[] = {DataType::kFloat, DataType::kFloat, DataType::kFloat, DataType::kInt64, DataType::kBool,
                                   DataType::kInt32, DataType::kUint8, DataType::kFloat16};
  const DataType t = types[rng() % 8];
  const size_t rank = rng() % 5;
  Shape s;
  for (size_t i = 0; i < rank; ++i) s.push_back(static_cast<int64_t>(rng() % 4));
  Tensor x(t, s);
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int v = static_cast<int>(rng() % 7) - 3;
    switch (t) {
      case DataType::kFloat: x.data<float>()[i] = static_cast<float>(v) * 0.5f; break;
      case DataType::kInt64: x.data<int64_t>()[i] = v; break;
      case DataType::kInt32: x.data<int32_t>()[i] = v; break;
      case DataType::kBool: case DataType::kUint8: x.data<uint8_t>()[i] = static_cast<uint8_t>(v & 1); break;
      case DataType::kFloat16: x.data<uint16_t>()[i] = 0x3c00; break;  // 1.0
      default: break;
    }
  }
  return x;
}

void randomAttrs(std::mt19937& rng, Call& c) {
  static const char* intNames[] = {"axis", "keepdims", "group", "ceil_mode", "count_include_pad", "transA", "transB",
                                   "num_outputs", "blocksize", "batch_dims", "upper", "exclusive", "reverse", "largest",
                                   "select_last_index", "noop_with_empty_axes", "to", "size", "p", "k", "allowzero"};
  static const char* intsNames[] = {"axes", "perm", "pads", "kernel_shape", "strides", "dilations", "starts", "ends",
                                    "split", "output_padding", "output_shape", "shape"};
  static const char* strings[][2] = {{"auto_pad", "SAME_UPPER"}, {"auto_pad", "VALID"}, {"mode", "reflect"},
                                     {"mode", "linear"}, {"mode", "edge"}, {"mode", "cubic"},
                                     {"coordinate_transformation_mode", "align_corners"}, {"equation", "ij,jk->ik"},
                                     {"equation", "...i->i"}, {"reduction", "add"}, {"approximate", "tanh"}};
  const int n = static_cast<int>(rng() % 4);
  for (int k = 0; k < n; ++k) {
    switch (rng() % 3) {
      case 0: c.i(intNames[rng() % 21], static_cast<int64_t>(rng() % 6) - 2); break;
      case 1: {
        std::vector<int64_t> v;
        const size_t len = rng() % 5;
        for (size_t j = 0; j < len; ++j) v.push_back(static_cast<int64_t>(rng() % 6) - 2);
        c.ints(intsNames[rng() % 12], v);
        break;
      }
      default: {
        const auto& s = strings[rng() % 11];
        c.s(s[0], s[1]);
      }
    }
  }
}

}  // namespace

// PLANFORGE_FUZZ_SEED / PLANFORGE_FUZZ_TRIALS widen the search (e.g. in an ASan build).
TEST(op_fuzz_never_crashes) {
  const char* seedEnv = std::getenv("PLANFORGE_FUZZ_SEED");
  const char* trialsEnv = std::getenv("PLANFORGE_FUZZ_TRIALS");
  std::mt19937 rng(seedEnv ? static_cast<unsigned>(std::strtoul(seedEnv, nullptr, 10)) : 12345u);
  const int trials = trialsEnv ? std::atoi(trialsEnv) : 300;
  int computed = 0, rejected = 0;
  for (const std::string& op : OpRegistry::instance().names()) {
    for (int trial = 0; trial < trials; ++trial) {
      Call c(op, 6 + static_cast<int>(rng() % 16));
      c.outputs(1 + static_cast<int>(rng() % 3));
      randomAttrs(rng, c);
      std::vector<Tensor> storage;
      const size_t n = rng() % 5;
      for (size_t i = 0; i < n; ++i) storage.push_back(randomTensor(rng));
      std::vector<const Tensor*> in;
      std::vector<ValueInfo> infos;
      for (size_t i = 0; i < n; ++i) {
        const bool omitted = rng() % 8 == 0;
        in.push_back(omitted ? nullptr : &storage[i]);
        ValueInfo v = vi(storage[i].dtype, storage[i].shape, rng() % 2 ? &storage[i] : nullptr);
        v.present = !omitted;
        infos.push_back(v);
      }
      try {
        c.infer(infos);
      } catch (const BuildError&) {
      } catch (const std::exception& e) {
        PF_FAIL(op << " infer threw a non-BuildError: " << e.what());
      }
      try {
        std::vector<Tensor> outs = c.run(in);
        for (const Tensor& t : outs)
          if (static_cast<uint64_t>(shapeNumel(t.shape)) * dataTypeSize(t.dtype) != t.bytes.size())
            PF_FAIL(op << " returned " << t.bytes.size() << " bytes for shape " << shapeToString(t.shape));
        ++computed;
      } catch (const BuildError&) {
        ++rejected;
      } catch (const std::exception& e) {
        PF_FAIL(op << " run threw a non-BuildError: " << e.what());
      }
    }
  }
  CHECK(computed > 1000);
  CHECK(rejected > 1000);
}
