// Conv / ConvTranspose / pooling: padding modes, ceil mode, count_include_pad.
#include "op_test_util.h"

using namespace optest;

TEST(op_conv_same_upper_stride2) {
  Tensor x = F({1, 1, 5, 5}, std::vector<float>(25, 1.f));
  Tensor w = F({1, 1, 3, 3}, std::vector<float>(9, 1.f));
  Tensor y = Call("Conv", 11).s("auto_pad", "SAME_UPPER").ints("strides", {2, 2}).run1({&x, &w});
  CHECK_TENSOR(y, Shape({1, 1, 3, 3}), std::vector<float>({4, 6, 4, 6, 9, 6, 4, 6, 4}), 1e-6);
}

TEST(op_conv_same_lower_puts_extra_pad_first) {
  Tensor x = ramp({1, 1, 3, 3});
  Tensor w = F({1, 1, 2, 2}, {1, 1, 1, 1});
  Tensor lower = Call("Conv", 11).s("auto_pad", "SAME_LOWER").run1({&x, &w});
  CHECK_TENSOR(lower, Shape({1, 1, 3, 3}), std::vector<float>({0, 1, 3, 3, 8, 12, 9, 20, 24}), 1e-6);
  Tensor upper = Call("Conv", 11).s("auto_pad", "SAME_UPPER").run1({&x, &w});
  CHECK_TENSOR(upper, Shape({1, 1, 3, 3}), std::vector<float>({8, 12, 7, 20, 24, 13, 13, 15, 8}), 1e-6);
}

TEST(op_conv_groups_bias_1d) {
  // Two groups of one channel each; kernel [1, -1] per group, bias 10 / 20.
  Tensor x = F({1, 2, 3}, {1, 2, 4, 10, 20, 40});
  Tensor w = F({2, 1, 2}, {1, -1, 2, 0});
  Tensor b = F({2}, {10, 20});
  Tensor y = Call("Conv").i("group", 2).run1({&x, &w, &b});
  CHECK_TENSOR(y, Shape({1, 2, 2}), std::vector<float>({9, 8, 40, 60}), 1e-6);
}

TEST(op_conv_rejects_channel_mismatch) {
  Tensor x = ramp({1, 3, 4, 4});
  Tensor w = ramp({2, 2, 3, 3});
  CHECK_THROWS_CODE(Call("Conv").run({&x, &w}), ErrorCode::kShape, "channels");
}

TEST(op_conv_transpose_stride2_bias) {
  Tensor x = F({1, 1, 2}, {1, 2});
  Tensor w = F({1, 1, 3}, {1, 1, 1});
  Tensor b = F({1}, {0.5});
  Tensor y = Call("ConvTranspose").ints("strides", {2}).run1({&x, &w, &b});
  CHECK_TENSOR(y, Shape({1, 1, 5}), std::vector<float>({1.5, 1.5, 3.5, 2.5, 2.5}), 1e-6);
}

TEST(op_conv_transpose_output_shape_sets_pads) {
  // Full output is 5 wide; output_shape 4 trims one column: NOTSET trims at the beginning.
  Tensor x = F({1, 1, 2}, {1, 2});
  Tensor w = F({1, 1, 3}, {1, 1, 1});
  Tensor y = Call("ConvTranspose").ints("strides", {2}).ints("output_shape", {4}).run1({&x, &w});
  CHECK_TENSOR(y, Shape({1, 1, 4}), std::vector<float>({1, 3, 2, 2}), 1e-6);
  Tensor upper = Call("ConvTranspose").ints("strides", {2}).ints("output_shape", {4}).s("auto_pad", "SAME_UPPER").run1({&x, &w});
  CHECK_TENSOR(upper, Shape({1, 1, 4}), std::vector<float>({1, 1, 3, 2}), 1e-6);
}

TEST(op_maxpool_ceil_mode) {
  Tensor x = F({1, 1, 5}, {1, 2, 3, 4, 5});
  CHECK_TENSOR(Call("MaxPool").ints("kernel_shape", {2}).ints("strides", {2}).i("ceil_mode", 1).run1({&x}), Shape({1, 1, 3}),
               std::vector<float>({2, 4, 5}), 0);
  CHECK_TENSOR(Call("MaxPool").ints("kernel_shape", {2}).ints("strides", {2}).run1({&x}), Shape({1, 1, 2}),
               std::vector<float>({2, 4}), 0);
  // A window may not start in the end padding, even in ceil mode.
  Tensor x4 = F({1, 1, 4}, {1, 2, 3, 4});
  Tensor y4 = Call("MaxPool").ints("kernel_shape", {2}).ints("strides", {2}).ints("pads", {0, 1}).i("ceil_mode", 1).run1({&x4});
  CHECK_TENSOR(y4, Shape({1, 1, 2}), std::vector<float>({2, 4}), 0);
}

TEST(op_maxpool_indices_output) {
  Tensor x = F({1, 1, 2, 2}, {1, 4, 3, 2});
  std::vector<Tensor> r = Call("MaxPool").outputs(2).ints("kernel_shape", {2, 2}).run({&x});
  CHECK_EQ(r.size(), size_t(2));
  CHECK_TENSOR(r[0], Shape({1, 1, 1, 1}), std::vector<float>({4}), 0);
  CHECK(r[1].dtype == DataType::kInt64);
  CHECK_EQ(r[1].data<int64_t>()[0], int64_t(1));
}

TEST(op_averagepool_count_include_pad) {
  Tensor x = F({1, 1, 3}, {1, 2, 3});
  Tensor incl = Call("AveragePool").ints("kernel_shape", {3}).ints("pads", {1, 1}).i("count_include_pad", 1).run1({&x});
  CHECK_TENSOR(incl, Shape({1, 1, 3}), std::vector<float>({1, 2, 5.f / 3}), 1e-6);
  Tensor excl = Call("AveragePool").ints("kernel_shape", {3}).ints("pads", {1, 1}).run1({&x});
  CHECK_TENSOR(excl, Shape({1, 1, 3}), std::vector<float>({1.5, 2, 2.5}), 1e-6);
}

TEST(op_global_pools) {
  Tensor x = F({1, 2, 2}, {1, 3, -1, -5});
  CHECK_TENSOR(Call("GlobalAveragePool").run1({&x}), Shape({1, 2, 1}), std::vector<float>({2, -3}), 1e-6);
  CHECK_TENSOR(Call("GlobalMaxPool").run1({&x}), Shape({1, 2, 1}), std::vector<float>({3, -1}), 0);
}

TEST(op_infer_conv_keeps_symbolic_batch) {
  Tensor w = ramp({4, 3, 3, 3});
  std::vector<ValueInfo> r = Call("Conv").ints("pads", {1, 1, 1, 1}).infer({vi(DataType::kFloat, {-1, 3, 8, 8}), vi(DataType::kFloat, {4, 3, 3, 3}, &w)});
  CHECK_EQ(shapeToString(r[0].shape), shapeToString({-1, 4, 8, 8}));
  std::vector<ValueInfo> p = Call("MaxPool").ints("kernel_shape", {2, 2}).ints("strides", {2, 2}).infer({vi(DataType::kFloat, {1, 4, -1, 9})});
  CHECK_EQ(shapeToString(p[0].shape), shapeToString({1, 4, -1, 4}));
}
