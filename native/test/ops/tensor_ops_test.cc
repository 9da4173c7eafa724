// Shape / data-movement kernels and their shape inference.
#include "op_test_util.h"

using namespace optest;

TEST(op_slice_negative_steps_and_clamping) {
  Tensor x = ramp({10});
  Tensor starts = I64({1}, {-1}), ends = I64({1}, {-11}), axes = I64({1}, {0}), steps = I64({1}, {-3});
  CHECK_TENSOR(Call("Slice").run1({&x, &starts, &ends, &axes, &steps}), Shape({4}), std::vector<float>({9, 6, 3, 0}), 0);
  Tensor m = ramp({3, 4});
  CHECK_TENSOR(Call("Slice", 9).ints("starts", {1, -3}).ints("ends", {100, -1}).ints("axes", {0, 1}).run1({&m}), Shape({2, 2}),
               std::vector<float>({5, 6, 9, 10}), 0);
  Tensor e0 = I64({1}, {3}), e1 = I64({1}, {1});
  CHECK_TENSOR(Call("Slice").run1({&x, &e0, &e1}), Shape({0}), std::vector<float>({}), 0);
}

TEST(op_pad_modes) {
  Tensor x = F({3}, {1, 2, 3});
  Tensor pads = I64({2}, {2, 2});
  CHECK_TENSOR(Call("Pad", 11).s("mode", "reflect").run1({&x, &pads}), Shape({7}), std::vector<float>({3, 2, 1, 2, 3, 2, 1}), 0);
  CHECK_TENSOR(Call("Pad", 11).s("mode", "edge").run1({&x, &pads}), Shape({7}), std::vector<float>({1, 1, 1, 2, 3, 3, 3}), 0);
  CHECK_TENSOR(Call("Pad", 19).s("mode", "wrap").run1({&x, &pads}), Shape({7}), std::vector<float>({2, 3, 1, 2, 3, 1, 2}), 0);
  Tensor crop = I64({2}, {-1, 2});
  Tensor value = F({}, {9});
  CHECK_TENSOR(Call("Pad", 11).run1({&x, &crop, &value}), Shape({4}), std::vector<float>({2, 3, 9, 9}), 0);
  CHECK_TENSOR(Call("Pad", 6).ints("pads", {1, 0}).f("value", -1).run1({&x}), Shape({4}), std::vector<float>({-1, 1, 2, 3}), 0);
  Tensor one = F({1}, {5});
  Tensor p1 = I64({2}, {1, 0});
  CHECK_THROWS_CODE(Call("Pad", 11).s("mode", "reflect").run({&one, &p1}), ErrorCode::kShape, "reflect");
}

TEST(op_reshape_zero_and_minus_one) {
  Tensor x = ramp({2, 3, 4});
  Tensor shape = I64({2}, {0, -1});
  CHECK_TENSOR(Call("Reshape").run1({&x, &shape}), Shape({2, 12}), values(x), 0);
  Tensor bad = I64({2}, {5, -1});
  CHECK_THROWS_CODE(Call("Reshape").run({&x, &bad}), ErrorCode::kShape, "reshape");
  Tensor empty = ramp({0, 3});
  Tensor zeros = I64({2}, {3, 0});
  CHECK_TENSOR(Call("Reshape", 14).i("allowzero", 1).run1({&empty, &zeros}), Shape({3, 0}), std::vector<float>({}), 0);
}

TEST(op_split_forms) {
  Tensor x = ramp({4});
  std::vector<Tensor> eq = Call("Split", 11).outputs(2).run({&x});
  CHECK_EQ(eq.size(), size_t(2));
  CHECK_TENSOR(eq[1], Shape({2}), std::vector<float>({2, 3}), 0);
  Tensor sizes = I64({2}, {1, 3});
  std::vector<Tensor> bySizes = Call("Split", 13).outputs(2).run({&x, &sizes});
  CHECK_TENSOR(bySizes[0], Shape({1}), std::vector<float>({0}), 0);
  Tensor seven = ramp({7});
  std::vector<Tensor> n3 = Call("Split", 18).outputs(3).i("num_outputs", 3).run({&seven});
  CHECK_TENSOR(n3[2], Shape({1}), std::vector<float>({6}), 0);
  CHECK_TENSOR(n3[0], Shape({3}), std::vector<float>({0, 1, 2}), 0);
  CHECK_THROWS_CODE(Call("Split", 11).outputs(0).run({&x}), ErrorCode::kShape, "how many outputs");
}

TEST(op_gather_transpose_concat_expand_tile) {
  Tensor x = ramp({3, 2});
  Tensor idx = I64({2}, {-1, 0});
  CHECK_TENSOR(Call("Gather").run1({&x, &idx}), Shape({2, 2}), std::vector<float>({4, 5, 0, 1}), 0);
  Tensor far = I64({1}, {3});
  CHECK_THROWS_CODE(Call("Gather").run({&x, &far}), ErrorCode::kShape, "out of range");
  CHECK_TENSOR(Call("Transpose").run1({&x}), Shape({2, 3}), std::vector<float>({0, 2, 4, 1, 3, 5}), 0);
  CHECK_THROWS_CODE(Call("Transpose").ints("perm", {0, 0}).run({&x}), ErrorCode::kInvalidModel, "permutation");
  Tensor y = F({1, 2}, {7, 8});
  CHECK_TENSOR(Call("Concat").i("axis", 0).run1({&x, &y}), Shape({4, 2}), std::vector<float>({0, 1, 2, 3, 4, 5, 7, 8}), 0);
  Tensor shape = I64({2}, {2, 2});
  CHECK_TENSOR(Call("Expand").run1({&y, &shape}), Shape({2, 2}), std::vector<float>({7, 8, 7, 8}), 0);
  Tensor reps = I64({2}, {2, 1});
  CHECK_TENSOR(Call("Tile").run1({&y, &reps}), Shape({2, 2}), std::vector<float>({7, 8, 7, 8}), 0);
}

TEST(op_resize_nearest_and_linear) {
  Tensor x = F({1, 1, 1, 2}, {1, 2});
  Tensor roi = F({0}, {});
  Tensor scales = F({4}, {1, 1, 1, 2});
  Tensor nearest = Call("Resize", 13).s("coordinate_transformation_mode", "asymmetric").s("nearest_mode", "floor").run1({&x, &roi, &scales});
  CHECK_TENSOR(nearest, Shape({1, 1, 1, 4}), std::vector<float>({1, 1, 2, 2}), 0);
  Tensor z = F({1, 1, 1, 2}, {0, 3});
  Tensor noScales = F({0}, {});
  Tensor sizes = I64({4}, {1, 1, 1, 4});
  Tensor linear = Call("Resize", 13).s("mode", "linear").s("coordinate_transformation_mode", "align_corners").run1({&z, &roi, &noScales, &sizes});
  CHECK_TENSOR(linear, Shape({1, 1, 1, 4}), std::vector<float>({0, 1, 2, 3}), 1e-6);
  Tensor up = Call("Upsample", 7).floats("scales", {1, 1, 1, 2}).run1({&x});
  CHECK_TENSOR(up, Shape({1, 1, 1, 4}), std::vector<float>({1, 1, 2, 2}), 0);
}

TEST(op_infer_uses_constant_inputs) {
  Tensor shape = I64({2}, {-1, 6});
  CHECK_EQ(shapeToString(Call("Reshape").infer({vi(DataType::kFloat, {2, 3, 4}), vi(DataType::kInt64, {2}, &shape)})[0].shape),
           shapeToString({4, 6}));
  // A symbolic batch copied through 0 still lets the -1 resolve.
  Tensor keepBatch = I64({2}, {0, -1});
  CHECK_EQ(shapeToString(Call("Reshape").infer({vi(DataType::kFloat, {-1, 3, 4}), vi(DataType::kInt64, {2}, &keepBatch)})[0].shape),
           shapeToString({-1, 12}));
  Tensor movesBatch = I64({2}, {-1, 4});
  CHECK_EQ(shapeToString(Call("Reshape").infer({vi(DataType::kFloat, {-1, 3, 4}), vi(DataType::kInt64, {2}, &movesBatch)})[0].shape),
           shapeToString({-1, 4}));
  // Non-constant shape: only the rank is known.
  CHECK_EQ(shapeToString(Call("Reshape").infer({vi(DataType::kFloat, {2, 3, 4}), vi(DataType::kInt64, {3})})[0].shape),
           shapeToString({-1, -1, -1}));
  Tensor axes = I64({2}, {0, -1});
  CHECK_EQ(shapeToString(Call("Unsqueeze").infer({vi(DataType::kFloat, {3}), vi(DataType::kInt64, {2}, &axes)})[0].shape),
           shapeToString({1, 3, 1}));
  Tensor starts = I64({1}, {1});
  std::vector<ValueInfo> sl = Call("Slice").infer({vi(DataType::kFloat, {5, 6}), vi(DataType::kInt64, {1}, &starts), vi(DataType::kInt64, {1})});
  CHECK_EQ(shapeToString(sl[0].shape), shapeToString({-1, -1}));
  std::vector<ValueInfo> sp = Call("Split", 13).outputs(2).infer({vi(DataType::kFloat, {4, 3})});
  CHECK_EQ(sp.size(), size_t(2));
  CHECK_EQ(shapeToString(sp[1].shape), shapeToString({2, 3}));
  std::vector<ValueInfo> add = Call("Add").infer({vi(DataType::kFloat, {-1, 3}), vi(DataType::kFloat, {3})});
  CHECK_EQ(shapeToString(add[0].shape), shapeToString({-1, 3}));
  CHECK_THROWS_CODE(Call("Add").infer({vi(DataType::kFloat, {2, 3}), vi(DataType::kFloat, {4})}), ErrorCode::kShape, "broadcast");
  std::vector<ValueInfo> cat = Call("Concat").i("axis", 1).infer({vi(DataType::kFloat, {2, -1}), vi(DataType::kFloat, {-1, 3})});
  CHECK_EQ(shapeToString(cat[0].shape), shapeToString({2, -1}));
  std::vector<ValueInfo> mm = Call("MatMul").infer({vi(DataType::kFloat, {-1, 1, 3, 4}), vi(DataType::kFloat, {5, 4, 2})});
  CHECK_EQ(shapeToString(mm[0].shape), shapeToString({-1, 5, 3, 2}));
}
