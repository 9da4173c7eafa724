# Makefile fragment (include from native/Makefile after CORE_LIB / WHOLE / LDLIBS are defined):
#   make -C native -j2 conformance        # build + run against ../shared/onnx-conformance
# Builds $(BUILD)/planforge-conformance from test/conformance/*.cc; objects use the generic
# $(BUILD)/obj/test/%.o rule of the main Makefile.
CONFORMANCE_SRCS := $(sort $(wildcard test/conformance/*.cc))
CONFORMANCE_OBJS := $(CONFORMANCE_SRCS:test/%.cc=$(BUILD)/obj/test/%.o)
CONFORMANCE_DATA ?= ../../shared/onnx-conformance

$(BUILD)/planforge-conformance: $(CONFORMANCE_OBJS) $(CORE_LIB)
	$(CXX) $(LDFLAGS) $(CONFORMANCE_OBJS) $(WHOLE) $(LDLIBS) -o $@

conformance: $(BUILD)/planforge-conformance
	./$(BUILD)/planforge-conformance $(CONFORMANCE_DATA)

.PHONY: conformance
-include $(CONFORMANCE_OBJS:.o=.d)
