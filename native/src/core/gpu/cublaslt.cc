#include "cublaslt.h"

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <mutex>

#include "../tensor.h"

namespace planforge {
namespace gpu {

namespace {

template <typename Fn>
bool bindSym(void* lib, Fn& fn, const char* name, std::string* missing) {
  void* sym = dlsym(lib, name);
  if (!sym) {
    if (missing && missing->empty()) *missing = name;
    return false;
  }
  fn = reinterpret_cast<Fn>(sym);
  return true;
}

std::atomic<bool> gDisabledForTesting{false};

struct Loaded {
  std::unique_ptr<CublasLtApi> api;
  std::string why;
};

const Loaded& loaded() {
  static Loaded l;
  static std::once_flag once;
  std::call_once(once, [] {
    const char* env = std::getenv("PLANFORGE_CUBLASLT");
    if (env && std::string(env) == "0") {
      l.why = "disabled by PLANFORGE_CUBLASLT=0";
      return;
    }
    std::string whys;
    for (const std::string& name : cublasLtLibraryCandidates()) {
      std::string why;
      l.api = loadCublasLt(name, &why);
      if (l.api) return;
      if (!whys.empty()) whys += "; ";
      whys += why;
    }
    l.why = "libcublasLt not found (" + whys + ")";
  });
  return l;
}

}  // namespace

std::vector<std::string> cublasLtLibraryCandidates() {
  std::vector<std::string> names;
  const char* env = std::getenv("PLANFORGE_CUBLASLT");
  if (env && *env && std::string(env) != "0" && std::string(env) != "1") names.push_back(env);
  for (const char* n : {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"}) {
    names.push_back(n);
    names.push_back(std::string("/usr/local/cuda/lib64/") + n);
  }
  return names;
}

std::unique_ptr<CublasLtApi> loadCublasLt(const std::string& libraryName, std::string* why) {
  void* lib = dlopen(libraryName.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    if (why) {
      const char* e = dlerror();
      *why = libraryName + ": " + (e ? e : "dlopen failed");
    }
    return nullptr;
  }
  auto a = std::make_unique<CublasLtApi>();
  std::string missing;
  bool ok = true;
  ok &= bindSym(lib, a->cublasLtCreate, "cublasLtCreate", &missing);
  ok &= bindSym(lib, a->cublasLtDestroy, "cublasLtDestroy", &missing);
  ok &= bindSym(lib, a->cublasLtGetVersion, "cublasLtGetVersion", &missing);
  ok &= bindSym(lib, a->cublasLtMatmulDescCreate, "cublasLtMatmulDescCreate", &missing);
  ok &= bindSym(lib, a->cublasLtMatmulDescDestroy, "cublasLtMatmulDescDestroy", &missing);
  ok &= bindSym(lib, a->cublasLtMatmulDescSetAttribute, "cublasLtMatmulDescSetAttribute", &missing);
  ok &= bindSym(lib, a->cublasLtMatrixLayoutCreate, "cublasLtMatrixLayoutCreate", &missing);
  ok &= bindSym(lib, a->cublasLtMatrixLayoutDestroy, "cublasLtMatrixLayoutDestroy", &missing);
  ok &= bindSym(lib, a->cublasLtMatrixLayoutSetAttribute, "cublasLtMatrixLayoutSetAttribute", &missing);
  ok &= bindSym(lib, a->cublasLtMatmulPreferenceCreate, "cublasLtMatmulPreferenceCreate", &missing);
  ok &= bindSym(lib, a->cublasLtMatmulPreferenceDestroy, "cublasLtMatmulPreferenceDestroy", &missing);
  ok &= bindSym(lib, a->cublasLtMatmulPreferenceSetAttribute, "cublasLtMatmulPreferenceSetAttribute", &missing);
  ok &= bindSym(lib, a->cublasLtMatmulAlgoGetHeuristic, "cublasLtMatmulAlgoGetHeuristic", &missing);
  ok &= bindSym(lib, a->cublasLtMatmul, "cublasLtMatmul", &missing);
  if (!ok) {
    if (why) *why = libraryName + " lacks " + missing;
    dlclose(lib);
    return nullptr;
  }
  a->path = libraryName;
  a->version = a->cublasLtGetVersion();
  // Major 11 has a different heuristic-result layout history; 12 and 13 match the declarations.
  if (a->version < 120000) {
    if (why) *why = libraryName + " is version " + std::to_string(a->version) + " (need CUDA 12 or later)";
    dlclose(lib);
    return nullptr;
  }
  return a;  // the library stays loaded for the life of the process
}

const CublasLtApi* cublasLt() {
  if (gDisabledForTesting.load()) return nullptr;
  return loaded().api.get();
}

bool cublasLtAvailable() { return cublasLt() != nullptr; }

std::string cublasLtUnavailableReason() {
  if (gDisabledForTesting.load()) return "disabled for testing";
  return loaded().api ? "" : loaded().why;
}

void setCublasLtDisabledForTesting(bool disabled) { gDisabledForTesting.store(disabled); }

// ------------------------------------------------------------------------------------------ LtMatmul

LtMatmul::~LtMatmul() {
  if (!api_) return;
  if (a_) api_->cublasLtMatrixLayoutDestroy(a_);
  if (b_) api_->cublasLtMatrixLayoutDestroy(b_);
  if (c_) api_->cublasLtMatrixLayoutDestroy(c_);
  if (d_) api_->cublasLtMatrixLayoutDestroy(d_);
  if (desc_) api_->cublasLtMatmulDescDestroy(desc_);
}

void LtMatmul::operator()(CUstream stream) const {
  const lt::Status st = api_->cublasLtMatmul(handle_, desc_, &alpha_, reinterpret_cast<const void*>(A_), a_, reinterpret_cast<const void*>(B_), b_,
                                             &beta_, reinterpret_cast<const void*>(C_), c_, reinterpret_cast<void*>(D_), d_, &algo_,
                                             reinterpret_cast<void*>(workspace_), workspaceBytes_, stream);
  if (st != 0) throw BuildError(ErrorCode::kInternal, "cublasLtMatmul failed: cuBLAS status " + std::to_string(st));
}

std::shared_ptr<LtMatmul> LtMatmul::create(lt::Handle handle, const LtGemmDesc& g, CUdeviceptr workspace, size_t workspaceBytes,
                                           std::string* why) {
  // FP16 plans: FP16 tensor cores when cuBLASLt has them for this case, else TF32 (the same 10-bit
  // mantissa), else exact FP32. FP32 plans: exact FP32 only.
  std::vector<int> computeTypes{g.computeType};
  if (g.abType == lt::kR16F) computeTypes = {lt::kCompute32F};  // FP16 operands, FP32 accumulation
  else if (g.computeType == lt::kCompute32FFast16F) computeTypes = {lt::kCompute32FFast16F, lt::kCompute32FFastTF32, lt::kCompute32F};
  std::string whys;
  for (int ct : computeTypes) {
    LtGemmDesc d = g;
    d.computeType = ct;
    std::string w;
    if (auto m = createOne(handle, d, workspace, workspaceBytes, &w)) return m;
    if (!whys.empty()) whys += "; ";
    whys += "compute type " + std::to_string(ct) + ": " + w;
  }
  if (why) *why = whys;
  return nullptr;
}

std::shared_ptr<LtMatmul> LtMatmul::createOne(lt::Handle handle, const LtGemmDesc& g, CUdeviceptr workspace, size_t workspaceBytes,
                                              std::string* why) {
  const CublasLtApi* api = cublasLt();
  auto fail = [&](const std::string& w) -> std::shared_ptr<LtMatmul> {
    if (why) *why = w;
    return nullptr;
  };
  if (!api || !handle) return fail("cuBLASLt is not available");
  if (g.M <= 0 || g.N <= 0 || g.K <= 0 || g.batch <= 0 || g.batch > INT32_MAX) return fail("bad shape");
  std::shared_ptr<LtMatmul> m(new LtMatmul());
  m->api_ = api;
  m->handle_ = handle;
  m->alpha_ = g.alpha;
  m->beta_ = g.C ? g.beta : 0.f;
  // Row-major Y (M x N) is column-major Y^T (N x M): compute Y^T = op(B)^T op(A)^T, so cuBLASLt's
  // "A" is our B and its "B" is our A; the bias (one per column n of Y) is per row of Y^T.
  m->A_ = g.B;
  m->B_ = g.A;
  m->C_ = g.C ? g.C : g.Y;
  m->D_ = g.Y;
  m->workspace_ = workspace;
  m->workspaceBytes_ = workspaceBytes;
  auto ok = [](lt::Status s) { return s == 0; };
  if (!ok(api->cublasLtMatmulDescCreate(&m->desc_, g.computeType, lt::kR32F))) return fail("cublasLtMatmulDescCreate failed");
  const int32_t opA = g.transB ? lt::kOpT : lt::kOpN, opB = g.transA ? lt::kOpT : lt::kOpN;
  if (!ok(api->cublasLtMatmulDescSetAttribute(m->desc_, lt::kDescTransA, &opA, sizeof(opA))) ||
      !ok(api->cublasLtMatmulDescSetAttribute(m->desc_, lt::kDescTransB, &opB, sizeof(opB))))
    return fail("cannot set the transposes");
  const uint32_t epi = g.epilogue;
  if (!ok(api->cublasLtMatmulDescSetAttribute(m->desc_, lt::kDescEpilogue, &epi, sizeof(epi)))) return fail("epilogue not accepted");
  if (epi & lt::kEpiBias) {
    if (!g.bias) return fail("bias epilogue without a bias");
    const void* bias = reinterpret_cast<const void*>(g.bias);
    if (!ok(api->cublasLtMatmulDescSetAttribute(m->desc_, lt::kDescBiasPointer, &bias, sizeof(bias)))) return fail("bias not accepted");
  }
  // Layouts (column-major; A' and B' FP32 or FP16, C and D FP32): A' = our B, B' = our A, C and D = Y^T.
  if (g.abType != lt::kR32F && g.abType != lt::kR16F) return fail("bad operand type");
  if (g.yType != lt::kR32F && !(g.yType == lt::kR16F && g.abType == lt::kR16F)) return fail("bad output type");
  const uint64_t aRows = g.transB ? g.K : g.N, aCols = g.transB ? g.N : g.K;
  const uint64_t bRows = g.transA ? g.M : g.K, bCols = g.transA ? g.K : g.M;
  if (!ok(api->cublasLtMatrixLayoutCreate(&m->a_, g.abType, aRows, aCols, g.ldb)) ||
      !ok(api->cublasLtMatrixLayoutCreate(&m->b_, g.abType, bRows, bCols, g.lda)) ||
      !ok(api->cublasLtMatrixLayoutCreate(&m->c_, g.yType, g.N, g.M, g.C && g.ldc ? g.ldc : g.ldy)) ||
      !ok(api->cublasLtMatrixLayoutCreate(&m->d_, g.yType, g.N, g.M, g.ldy)))
    return fail("cublasLtMatrixLayoutCreate failed");
  if (g.batch > 1) {
    const int32_t count = static_cast<int32_t>(g.batch);
    const int64_t sA = g.strideB, sB = g.strideA, sY = g.strideY, sC = g.C && g.strideC >= 0 ? g.strideC : g.strideY;
    const std::pair<lt::MatrixLayout, int64_t> layouts[] = {{m->a_, sA}, {m->b_, sB}, {m->c_, sC}, {m->d_, sY}};
    for (const auto& l : layouts)
      if (!ok(api->cublasLtMatrixLayoutSetAttribute(l.first, lt::kLayoutBatchCount, &count, sizeof(count))) ||
          !ok(api->cublasLtMatrixLayoutSetAttribute(l.first, lt::kLayoutStridedBatchOffset, &l.second, sizeof(l.second))))
        return fail("cannot set the batch");
  }
  lt::MatmulPreference pref = nullptr;
  if (!ok(api->cublasLtMatmulPreferenceCreate(&pref))) return fail("cublasLtMatmulPreferenceCreate failed");
  const uint64_t maxWs = workspaceBytes;
  const int requested = std::max(1, std::min(g.requestAlgos, 32));
  std::vector<lt::HeuristicResult> results(static_cast<size_t>(requested));
  int returned = 0;
  lt::Status hs = api->cublasLtMatmulPreferenceSetAttribute(pref, lt::kPrefMaxWorkspaceBytes, &maxWs, sizeof(maxWs));
  if (ok(hs))
    hs = api->cublasLtMatmulAlgoGetHeuristic(handle, m->desc_, m->a_, m->b_, m->c_, m->d_, pref, requested, results.data(), &returned);
  api->cublasLtMatmulPreferenceDestroy(pref);
  if (ok(hs))
    for (int i = 0; i < returned && i < requested; ++i)
      if (ok(results[i].state) && results[i].workspaceSize <= workspaceBytes) m->algos_.emplace_back(results[i].algo, results[i].workspaceSize);
  if (!ok(hs) || m->algos_.empty())
    return fail("no cuBLASLt algorithm (status " + std::to_string(hs) + ", " + std::to_string(returned) + " result(s))");
  m->selectAlgo(0);
  m->computeType_ = g.computeType;
  m->abType_ = g.abType;
  return m;
}

}  // namespace gpu
}  // namespace planforge
