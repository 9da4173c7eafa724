# Makefile fragment (include from native/Makefile after CORE_LIB / WHOLE / LDLIBS are defined):
#   make -C native -j2 op-tests           # build + run the kernel unit tests
# Builds $(BUILD)/planforge-op-tests from test/ops/*.cc (own main; hand-computed kernel cases).
OP_TEST_SRCS := $(sort $(wildcard test/ops/*.cc))
OP_TEST_OBJS := $(OP_TEST_SRCS:test/%.cc=$(BUILD)/obj/test/%.o)

$(BUILD)/planforge-op-tests: $(OP_TEST_OBJS) $(CORE_LIB)
	$(CXX) $(LDFLAGS) $(OP_TEST_OBJS) $(WHOLE) $(LDLIBS) -o $@

op-tests: $(BUILD)/planforge-op-tests
	./$(BUILD)/planforge-op-tests

.PHONY: op-tests
-include $(OP_TEST_OBJS:.o=.d)
