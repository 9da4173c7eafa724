# Included by native/Makefile. Compiles native/kernels/planforge.cu into one cubin per target SM
# and embeds them into the core library (src/core/gpu/cubin.cc pulls them in with .incbin).
# Make's timestamps are the cache: unchanged kernel sources are not recompiled; the four SMs are
# independent targets, so `make -j2` compiles two at a time. Without nvcc the core builds with no
# embedded kernels (GPU execution then fails with a clear error; CPU paths are unaffected).
NVCC ?= $(firstword $(shell command -v nvcc 2>/dev/null) $(wildcard /usr/local/cuda/bin/nvcc))
GPU_SMS := 80 86 87 90
NVCCFLAGS ?= -O3 -std=c++17
KERNEL_SRCS := $(sort $(wildcard kernels/*.cu kernels/*.cuh))
CUBINS := $(GPU_SMS:%=$(BUILD)/kernels/sm_%.cubin)

# sm_90 is built as sm_90a (same SM in the ELF header, loads on every sm_90 GPU): Hopper's wgmma
# kernels (conv_nhwc_wgmma.cuh) exist only there; the other targets compile without them.
NVCC_ARCH_90 := -gencode=arch=compute_90a,code=sm_90a
nvcc_arch = $(or $(NVCC_ARCH_$(1)),-arch=sm_$(1))

$(BUILD)/kernels/sm_%.cubin: $(KERNEL_SRCS)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -cubin $(call nvcc_arch,$*) -o $@.tmp kernels/planforge.cu
	mv $@.tmp $@

ifneq ($(NVCC),)
# Explicit rule (not a target-specific CXXFLAGS, which would leak into the flags stamp).
$(BUILD)/obj/core/gpu/cubin.o: src/core/gpu/cubin.cc $(FLAGS_STAMP) $(CUBINS)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -DPLANFORGE_CUBIN_DIR='"$(abspath $(BUILD)/kernels)"' -c $< -o $@
cubins: $(CUBINS)
else
cubins:
	@echo "nvcc not found: building without GPU kernels"
endif
.PHONY: cubins
