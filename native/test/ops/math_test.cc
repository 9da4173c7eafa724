// Element-wise, activation, softmax, normalization, reduction and quantization kernels.
#include <cmath>

#include "op_test_util.h"

using namespace optest;

TEST(op_softmax_legacy_coerces_to_2d) {
  Tensor x = F({1, 2, 2}, {0, 1, 2, 3});
  Tensor legacy = Call("Softmax", 11).i("axis", 1).run1({&x});
  CHECK_TENSOR(legacy, Shape({1, 2, 2}), std::vector<float>({0.0320586f, 0.0871443f, 0.2368828f, 0.6439143f}), 1e-6);
  Tensor axis = Call("Softmax", 13).i("axis", 1).run1({&x});
  CHECK_TENSOR(axis, Shape({1, 2, 2}), std::vector<float>({0.1192029f, 0.1192029f, 0.8807971f, 0.8807971f}), 1e-6);
  Tensor log = Call("LogSoftmax", 13).run1({&x});
  CHECK_TENSOR(log, Shape({1, 2, 2}), std::vector<float>({-1.3132617f, -0.3132617f, -1.3132617f, -0.3132617f}), 1e-6);
}

TEST(op_broadcast_arithmetic) {
  Tensor a = F({2, 1}, {1, 2});
  Tensor b = F({3}, {10, 20, 30});
  CHECK_TENSOR(Call("Add").run1({&a, &b}), Shape({2, 3}), std::vector<float>({11, 21, 31, 12, 22, 32}), 0);
  CHECK_TENSOR(Call("Sub").run1({&b, &a}), Shape({2, 3}), std::vector<float>({9, 19, 29, 8, 18, 28}), 0);
  Tensor c = F({3}, {1, 25, 0});
  CHECK_TENSOR(Call("Max").run1({&a, &b, &c}), Shape({2, 3}), std::vector<float>({10, 25, 30, 10, 25, 30}), 0);
  CHECK_TENSOR(Call("Mean").run1({&b, &c}), Shape({3}), std::vector<float>({5.5, 22.5, 15}), 1e-6);
  Tensor bad = F({4}, {1, 2, 3, 4});
  CHECK_THROWS_CODE(Call("Mul").run({&b, &bad}), ErrorCode::kShape, "broadcast");
}

TEST(op_integer_arithmetic_and_compare) {
  Tensor a = I64({3}, {7, -7, 9});
  Tensor b = I64({3}, {2, 2, 3});
  CHECK_TENSOR(Call("Div").run1({&a, &b}), Shape({3}), std::vector<float>({3, -3, 3}), 0);
  Tensor m = Call("Mod").run1({&a, &b});
  CHECK_TENSOR(m, Shape({3}), std::vector<float>({1, 1, 0}), 0);  // sign of the divisor
  Tensor g = Call("Greater").run1({&a, &b});
  CHECK(g.dtype == DataType::kBool);
  CHECK_TENSOR(g, Shape({3}), std::vector<float>({1, 0, 1}), 0);
}

TEST(op_activations) {
  Tensor x = F({4}, {-2, -0.5, 0.5, 1});
  CHECK_TENSOR(Call("Relu").run1({&x}), Shape({4}), std::vector<float>({0, 0, 0.5, 1}), 0);
  CHECK_TENSOR(Call("LeakyRelu").f("alpha", 0.1f).run1({&x}), Shape({4}), std::vector<float>({-0.2f, -0.05f, 0.5, 1}), 1e-7);
  CHECK_TENSOR(Call("HardSigmoid").run1({&x}), Shape({4}), std::vector<float>({0.1f, 0.4f, 0.6f, 0.7f}), 1e-6);
  CHECK_TENSOR(Call("HardSwish").run1({&x}), Shape({4}), std::vector<float>({-2 * (1.f / 6), -0.5f * (0.5f - 1.f / 12), 0.5f * (0.5f + 1.f / 12), 1 * (0.5f + 1.f / 6)}), 1e-6);
  Tensor one = F({1}, {1});
  CHECK_TENSOR(Call("Gelu", 20).run1({&one}), Shape({1}), std::vector<float>({0.8413447f}), 1e-6);
  CHECK_TENSOR(Call("Gelu", 20).s("approximate", "tanh").run1({&one}), Shape({1}), std::vector<float>({0.8411920f}), 1e-5);
  CHECK_THROWS_CODE(Call("Gelu", 20).s("approximate", "fast").run({&one}), ErrorCode::kInvalidModel, "approximate");
}

TEST(op_clip_attribute_and_input_forms) {
  Tensor x = F({4}, {-2, -0.5, 0.5, 2});
  CHECK_TENSOR(Call("Clip", 6).f("min", -1).f("max", 1).run1({&x}), Shape({4}), std::vector<float>({-1, -0.5, 0.5, 1}), 0);
  Tensor hi = F({}, {0});
  CHECK_TENSOR(Call("Clip", 13).run1({&x, nullptr, &hi}), Shape({4}), std::vector<float>({-2, -0.5, 0, 0}), 0);
}

TEST(op_prelu_legacy_per_channel_slope) {
  Tensor x = F({1, 2, 1}, {-1, -1});
  Tensor slope = F({2}, {0.1f, 0.2f});
  CHECK_TENSOR(Call("PRelu", 6).run1({&x, &slope}), Shape({1, 2, 1}), std::vector<float>({-0.1f, -0.2f}), 1e-7);
}

TEST(op_layer_normalization) {
  Tensor x = F({1, 2}, {1, 3});
  Tensor scale = F({2}, {1, 2});
  Tensor bias = F({2}, {0, 1});
  std::vector<Tensor> r = Call("LayerNormalization", 17).outputs(3).run({&x, &scale, &bias});
  CHECK_TENSOR(r[0], Shape({1, 2}), std::vector<float>({-1, 3}), 1e-4);
  CHECK_TENSOR(r[1], Shape({1, 1}), std::vector<float>({2}), 1e-6);
  CHECK_TENSOR(r[2], Shape({1, 1}), std::vector<float>({1}), 1e-4);
}

TEST(op_batch_normalization_inference) {
  Tensor x = F({1, 2, 1}, {3, 3});
  Tensor s = F({2}, {1, 2}), b = F({2}, {0, 1}), m = F({2}, {1, 2}), v = F({2}, {4, 1});
  Tensor y = Call("BatchNormalization", 15).f("epsilon", 0).run1({&x, &s, &b, &m, &v});
  CHECK_TENSOR(y, Shape({1, 2, 1}), std::vector<float>({1, 3}), 1e-6);
}

TEST(op_reductions_axes_forms) {
  Tensor x = ramp({2, 3});
  CHECK_TENSOR(Call("ReduceMean", 13).ints("axes", {1}).i("keepdims", 0).run1({&x}), Shape({2}), std::vector<float>({1, 4}), 1e-6);
  CHECK_TENSOR(Call("ReduceSum", 13).run1({&x}), Shape({1, 1}), std::vector<float>({15}), 0);
  Tensor axes = I64({1}, {0});
  CHECK_TENSOR(Call("ReduceSum", 13).run1({&x, &axes}), Shape({1, 3}), std::vector<float>({3, 5, 7}), 0);
  Tensor none = I64({0}, {});
  CHECK_TENSOR(Call("ReduceSum", 13).i("noop_with_empty_axes", 1).run1({&x, &none}), Shape({2, 3}), std::vector<float>({0, 1, 2, 3, 4, 5}), 0);
  CHECK_TENSOR(Call("ReduceMax", 18).i("keepdims", 0).run1({&x, &axes}), Shape({3}), std::vector<float>({3, 4, 5}), 0);
  Tensor am = Call("ArgMax").i("axis", 1).run1({&x});
  CHECK(am.dtype == DataType::kInt64);
  CHECK_TENSOR(am, Shape({2, 1}), std::vector<float>({2, 2}), 0);
}

TEST(op_quantize_rounds_half_to_even_and_saturates) {
  Tensor x = F({4}, {2.5, 3.5, -2.5, 300});
  Tensor s = F({}, {1});
  Tensor zpU8(DataType::kUint8, {});
  CHECK_TENSOR(Call("QuantizeLinear").run1({&x, &s, &zpU8}), Shape({4}), std::vector<float>({2, 4, 0, 255}), 0);
  Tensor zpI8(DataType::kInt8, {});
  Tensor q = Call("QuantizeLinear").run1({&x, &s, &zpI8});
  CHECK(q.dtype == DataType::kInt8);
  CHECK_TENSOR(q, Shape({4}), std::vector<float>({2, 4, -2, 127}), 0);
  // Per-axis dequantization along axis 0.
  Tensor xq(DataType::kInt8, {2, 2});
  xq.data<int8_t>()[0] = 4; xq.data<int8_t>()[1] = 6; xq.data<int8_t>()[2] = -4; xq.data<int8_t>()[3] = 0;
  Tensor sc = F({2}, {0.5, 2});
  Tensor zp(DataType::kInt8, {2});
  zp.data<int8_t>()[0] = 2; zp.data<int8_t>()[1] = -1;
  CHECK_TENSOR(Call("DequantizeLinear").i("axis", 0).run1({&xq, &sc, &zp}), Shape({2, 2}), std::vector<float>({1, 2, -6, 2}), 1e-6);
}

TEST(op_cast_range_where) {
  Tensor x = F({2}, {-1.7f, 2.9f});
  Tensor i = Call("Cast").i("to", 6).run1({&x});
  CHECK(i.dtype == DataType::kInt32);
  CHECK_TENSOR(i, Shape({2}), std::vector<float>({-1, 2}), 0);
  Tensor s = F({}, {1}), l = F({}, {4}), d = F({}, {0.7f});
  CHECK_TENSOR(Call("Range", 11).run1({&s, &l, &d}), Shape({5}), std::vector<float>({1, 1.7f, 2.4f, 3.1f, 3.8f}), 1e-5);
  Tensor c(DataType::kBool, {2});
  c.data<uint8_t>()[0] = 1;
  Tensor a = F({2}, {1, 2}), b = F({2, 1}, {5, 6});
  CHECK_TENSOR(Call("Where").run1({&c, &a, &b}), Shape({2, 2}), std::vector<float>({1, 5, 1, 6}), 0);
}
