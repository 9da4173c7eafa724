// Node binding: argument unpacking, one AsyncWorker per call (slow work never runs on the JS
// thread), errors as Error objects with a .code ("E_..."). All logic lives in the core.
#include <napi.h>
#include <sys/stat.h>

#include <cstring>
#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/builder.h"
#include "core/executor.h"
#include "core/gpu/device.h"
#include "core/plan/plan.h"
#include "core/reports.h"
#include "core/version.h"

namespace {

using namespace planforge;

Napi::Error makeError(Napi::Env env, const std::string& code, const std::string& message) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Value().Set("code", Napi::String::New(env, code));
  return e;
}

// Base worker: resolves a promise with result(), rejects with {message, code} on BuildError.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  explicit PromiseWorker(Napi::Env env) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  virtual void work() = 0;
  virtual Napi::Value result(Napi::Env env) = 0;

  void Execute() override {
    try {
      work();
    } catch (const BuildError& e) {
      code_ = errorCodeName(e.code());
      SetError(e.what());
    } catch (const std::bad_alloc&) {
      code_ = "E_RESOURCE";
      SetError("out of memory");
    } catch (const std::exception& e) {
      code_ = "E_INTERNAL";
      SetError(e.what());
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    try {
      deferred_.Resolve(result(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error& e) override {
    deferred_.Reject(makeError(Env(), code_, e.Message()).Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::string code_ = "E_INTERNAL";
};

std::string requireString(const Napi::Value& v, const char* what) {
  if (!v.IsString()) throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

Shape requireDims(const Napi::Value& v, const std::string& what) {
  if (!v.IsArray()) throw Napi::TypeError::New(v.Env(), what + " must be an array of integers");
  Napi::Array a = v.As<Napi::Array>();
  Shape s;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value d = a.Get(i);
    if (!d.IsNumber()) throw Napi::TypeError::New(v.Env(), what + " must be an array of integers");
    s.push_back(d.As<Napi::Number>().Int64Value());
  }
  return s;
}

// ---- checkModel ----

class CheckModelWorker : public PromiseWorker {
 public:
  CheckModelWorker(Napi::Env env, std::string path) : PromiseWorker(env), path_(std::move(path)) {}
 protected:
  void work() override { json_ = checkModelJson(path_); }
  Napi::Value result(Napi::Env env) override { return Napi::String::New(env, json_); }
 private:
  std::string path_, json_;
};

Napi::Value CheckModel(const Napi::CallbackInfo& info) {
  auto* w = new CheckModelWorker(info.Env(), requireString(info[0], "path"));
  w->Queue();
  return w->promise();
}

// ---- inspectPlan ----

class InspectPlanWorker : public PromiseWorker {
 public:
  InspectPlanWorker(Napi::Env env, std::string path) : PromiseWorker(env), path_(std::move(path)) {}
 protected:
  void work() override {
    Plan plan = loadPlanFile(path_);
    struct stat st;
    json_ = planInfoJson(plan, ::stat(path_.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0);
  }
  Napi::Value result(Napi::Env env) override { return Napi::String::New(env, json_); }
 private:
  std::string path_, json_;
};

Napi::Value InspectPlan(const Napi::CallbackInfo& info) {
  auto* w = new InspectPlanWorker(info.Env(), requireString(info[0], "path"));
  w->Queue();
  return w->promise();
}

// ---- buildPlan ----

struct ProgressEvent {
  std::string stage;
  double percent;
};

class BuildPlanWorker : public PromiseWorker {
 public:
  BuildPlanWorker(Napi::Env env, std::string model, std::string output, BuilderConfig config,
                  std::shared_ptr<std::atomic<bool>> cancel, Napi::Value onProgress)
      : PromiseWorker(env), model_(std::move(model)), output_(std::move(output)), config_(std::move(config)), cancel_(std::move(cancel)) {
    config_.cancel = cancel_.get();
    if (onProgress.IsFunction()) {
      tsfn_ = Napi::ThreadSafeFunction::New(env, onProgress.As<Napi::Function>(), "planforge-build-progress", 0, 1);
      hasProgress_ = true;
      config_.progress = [this](const std::string& stage, double pct) {
        auto* ev = new ProgressEvent{stage, pct};
        napi_status st = tsfn_.NonBlockingCall(ev, [](Napi::Env env, Napi::Function fn, ProgressEvent* e) {
          // A throwing progress callback must not take down the build; JS wraps it anyway.
          if (env != nullptr && fn != nullptr) {
            try {
              fn.Call({Napi::String::New(env, e->stage), Napi::Number::New(env, e->percent)});
            } catch (...) {
            }
          }
          delete e;
        });
        if (st != napi_ok) delete ev;
      };
    }
  }
  ~BuildPlanWorker() override { releaseProgress(); }

 protected:
  void work() override { summary_ = buildPlan(model_, output_, config_); }
  Napi::Value result(Napi::Env env) override { return Napi::String::New(env, buildSummaryJson(summary_)); }
  void OnOK() override {
    releaseProgress();
    PromiseWorker::OnOK();
  }
  void OnError(const Napi::Error& e) override {
    releaseProgress();
    PromiseWorker::OnError(e);
  }

 private:
  void releaseProgress() {
    if (hasProgress_) {
      hasProgress_ = false;
      tsfn_.Release();
    }
  }
  std::string model_, output_;
  BuilderConfig config_;
  std::shared_ptr<std::atomic<bool>> cancel_;
  Napi::ThreadSafeFunction tsfn_;
  bool hasProgress_ = false;
  BuildSummary summary_;
};

// buildPlan(options, onProgress?) -> { promise, cancel() }
Napi::Value BuildPlan(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw Napi::TypeError::New(env, "options must be an object");
  Napi::Object o = info[0].As<Napi::Object>();
  std::string model = requireString(o.Get("modelPath"), "modelPath");
  std::string output = requireString(o.Get("outputPath"), "outputPath");
  BuilderConfig c;
  c.targetSm = parseSm(requireString(o.Get("target"), "target"));
  if (!c.targetSm) throw Napi::RangeError::New(env, "target must be sm_80, sm_86, sm_87 or sm_90");
  c.precision = requireString(o.Get("precision"), "precision");
  if (o.Has("specHash") && o.Get("specHash").IsString()) c.specHash = o.Get("specHash").As<Napi::String>().Utf8Value();
  if (o.Has("modelSha256") && o.Get("modelSha256").IsString()) c.modelSha256 = o.Get("modelSha256").As<Napi::String>().Utf8Value();
  if (o.Has("profiles") && o.Get("profiles").IsObject()) {
    Napi::Object profiles = o.Get("profiles").As<Napi::Object>();
    Napi::Array names = profiles.GetPropertyNames();
    for (uint32_t i = 0; i < names.Length(); ++i) {
      std::string name = names.Get(i).As<Napi::String>().Utf8Value();
      Napi::Value pv = profiles.Get(name);
      if (!pv.IsObject()) throw Napi::TypeError::New(env, "profile '" + name + "' must be an object");
      Napi::Object p = pv.As<Napi::Object>();
      c.profiles[name] = InputProfile{requireDims(p.Get("min"), "profile min"), requireDims(p.Get("opt"), "profile opt"),
                                      requireDims(p.Get("max"), "profile max")};
    }
  }
  if (o.Has("layerPrecisions") && o.Get("layerPrecisions").IsObject()) {
    Napi::Object lp = o.Get("layerPrecisions").As<Napi::Object>();
    Napi::Array names = lp.GetPropertyNames();
    for (uint32_t i = 0; i < names.Length(); ++i) {
      std::string name = names.Get(i).As<Napi::String>().Utf8Value();
      c.layerPrecisions[name] = requireString(lp.Get(name), "layer precision");
    }
  }
  if (o.Has("calibration") && o.Get("calibration").IsObject()) {
    Napi::Object cal = o.Get("calibration").As<Napi::Object>();
    c.calibration.enabled = true;
    if (cal.Has("dataDir") && cal.Get("dataDir").IsString()) c.calibration.dataDir = cal.Get("dataDir").As<Napi::String>().Utf8Value();
    if (cal.Has("cacheFile") && cal.Get("cacheFile").IsString()) c.calibration.cacheFile = cal.Get("cacheFile").As<Napi::String>().Utf8Value();
    if (cal.Has("method") && cal.Get("method").IsString()) c.calibration.method = cal.Get("method").As<Napi::String>().Utf8Value();
    if (cal.Has("percentile") && cal.Get("percentile").IsNumber()) c.calibration.percentile = cal.Get("percentile").As<Napi::Number>().DoubleValue();
  }
  if (o.Has("limits") && o.Get("limits").IsObject()) {
    Napi::Object l = o.Get("limits").As<Napi::Object>();
    auto limit = [&](const char* key, uint64_t& target) {
      if (!l.Has(key) || !l.Get(key).IsNumber()) return;
      double v = l.Get(key).As<Napi::Number>().DoubleValue();
      if (!(v >= 1 && v <= 9.0e15)) throw Napi::RangeError::New(env, std::string("limits.") + key + " must be a positive number of bytes");
      target = static_cast<uint64_t>(v);
    };
    limit("maxModelBytes", c.importOptions.maxModelBytes);
    limit("maxTensorBytes", c.importOptions.maxTensorBytes);
    limit("maxTotalBytes", c.importOptions.maxTotalBytes);
  }
  if (o.Has("passes") && o.Get("passes").IsArray()) {
    Napi::Array a = o.Get("passes").As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) c.passes.push_back(requireString(a.Get(i), "pass id"));
  }
  auto cancel = std::make_shared<std::atomic<bool>>(false);
  auto* w = new BuildPlanWorker(env, model, output, std::move(c), cancel, info[1]);
  Napi::Object handle = Napi::Object::New(env);
  handle.Set("promise", w->promise());
  handle.Set("cancel", Napi::Function::New(env, [cancel](const Napi::CallbackInfo&) { cancel->store(true); }));
  w->Queue();
  return handle;
}

// ---- runPlan ----

DataType dtypeFromName(Napi::Env env, const std::string& s) {
  static const std::map<std::string, DataType> names = {
      {"float32", DataType::kFloat}, {"float16", DataType::kFloat16}, {"float64", DataType::kDouble}, {"int64", DataType::kInt64},
      {"int32", DataType::kInt32},   {"int16", DataType::kInt16},     {"int8", DataType::kInt8},      {"uint8", DataType::kUint8},
      {"bool", DataType::kBool},     {"uint16", DataType::kUint16},   {"uint32", DataType::kUint32},  {"uint64", DataType::kUint64}};
  auto it = names.find(s);
  if (it == names.end()) throw Napi::TypeError::New(env, "unsupported dtype '" + s + "'");
  return it->second;
}

class RunPlanWorker : public PromiseWorker {
 public:
  RunPlanWorker(Napi::Env env, std::string path, std::map<std::string, Tensor> inputs, int expectedSm)
      : PromiseWorker(env), path_(std::move(path)), inputs_(std::move(inputs)), expectedSm_(expectedSm) {}
 protected:
  void work() override {
    PlanLoadOptions lo;
    lo.expectedSm = expectedSm_;
    Plan plan = loadPlanFile(path_, lo);
    checkInputsAgainstProfiles(plan, inputs_);
    outputs_ = runGraph(plan.graph, inputs_);
    inputs_.clear();
  }
  Napi::Value result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    for (auto& kv : outputs_) {
      Napi::Object t = Napi::Object::New(env);
      t.Set("dtype", Napi::String::New(env, dataTypeName(kv.second.dtype)));
      Napi::Array shape = Napi::Array::New(env, kv.second.shape.size());
      for (size_t i = 0; i < kv.second.shape.size(); ++i) shape.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(kv.second.shape[i])));
      t.Set("shape", shape);
      Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, kv.second.bytes.size());
      if (!kv.second.bytes.empty()) std::memcpy(buf.Data(), kv.second.bytes.data(), kv.second.bytes.size());
      t.Set("data", buf);
      out.Set(kv.first, t);
    }
    return out;
  }
 private:
  std::string path_;
  std::map<std::string, Tensor> inputs_;
  int expectedSm_;
  std::map<std::string, Tensor> outputs_;
};

// runPlan(planPath, { name: {dtype, shape, data: ArrayBufferView} }, expectedSm?)
Napi::Value RunPlan(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = requireString(info[0], "planPath");
  if (!info[1].IsObject()) throw Napi::TypeError::New(env, "inputs must be an object");
  Napi::Object ins = info[1].As<Napi::Object>();
  Napi::Array names = ins.GetPropertyNames();
  std::map<std::string, Tensor> inputs;
  for (uint32_t i = 0; i < names.Length(); ++i) {
    std::string name = names.Get(i).As<Napi::String>().Utf8Value();
    Napi::Value v = ins.Get(name);
    if (!v.IsObject()) throw Napi::TypeError::New(env, "input '" + name + "' must be {dtype, shape, data}");
    Napi::Object o = v.As<Napi::Object>();
    DataType dt = dtypeFromName(env, requireString(o.Get("dtype"), "dtype"));
    Shape shape = requireDims(o.Get("shape"), "input '" + name + "' shape");
    for (int64_t d : shape)
      if (d < 0) throw Napi::RangeError::New(env, "input '" + name + "' shape has a negative dimension");
    Napi::Value data = o.Get("data");
    if (!data.IsTypedArray() && !data.IsDataView() && !data.IsBuffer())
      throw Napi::TypeError::New(env, "input '" + name + "' data must be a TypedArray, Buffer or DataView");
    const uint8_t* bytes;
    size_t length;
    if (data.IsDataView()) {
      Napi::DataView dv = data.As<Napi::DataView>();
      bytes = static_cast<const uint8_t*>(dv.Data());
      length = dv.ByteLength();
    } else {
      Napi::TypedArray ta = data.As<Napi::TypedArray>();
      bytes = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
      length = ta.ByteLength();
    }
    Tensor t;
    try {
      t = Tensor(dt, shape);
    } catch (const BuildError& e) {
      throw makeError(env, errorCodeName(e.code()), e.what());
    }
    if (t.bytes.size() != length)
      throw makeError(env, "E_PROFILE", "input '" + name + "' has " + std::to_string(length) + " bytes, " + dataTypeName(dt) + " " +
                                            shapeToString(shape) + " needs " + std::to_string(t.bytes.size()));
    if (length) std::memcpy(t.bytes.data(), bytes, length);  // copied: the JS buffer may move or be freed
    inputs.emplace(name, std::move(t));
  }
  int expectedSm = 0;
  if (info.Length() > 2 && info[2].IsString()) {
    expectedSm = parseSm(info[2].As<Napi::String>().Utf8Value());
    if (!expectedSm) throw Napi::RangeError::New(env, "expectedSm must be sm_80, sm_86, sm_87 or sm_90");
  }
  auto* w = new RunPlanWorker(env, path, std::move(inputs), expectedSm);
  w->Queue();
  return w->promise();
}

// ---- listDevices / gpuAvailable ----

// Opens the CUDA driver off the JS thread (dlopen + cuInit can take seconds). A missing driver or
// no device (E_NO_GPU) is an answer, not a failure: listDevices() resolves [] and gpuAvailable()
// {available: false, reason}; other CUDA errors reject.
class DevicesWorker : public PromiseWorker {
 public:
  enum class Mode { kList, kAvailable };
  DevicesWorker(Napi::Env env, Mode mode) : PromiseWorker(env), mode_(mode) {}
 protected:
  void work() override {
    try {
      devices_ = gpu::listDevices();
    } catch (const BuildError& e) {
      if (e.code() != ErrorCode::kNoGpu) throw;
      reason_ = e.what();
    }
  }
  Napi::Value result(Napi::Env env) override {
    if (mode_ == Mode::kAvailable) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("available", Napi::Boolean::New(env, !devices_.empty()));
      if (devices_.empty()) o.Set("reason", Napi::String::New(env, reason_));
      else o.Set("deviceCount", Napi::Number::New(env, static_cast<double>(devices_.size())));
      return o;
    }
    Napi::Array out = Napi::Array::New(env, devices_.size());
    for (size_t i = 0; i < devices_.size(); ++i) {
      const gpu::DeviceInfo& d = devices_[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("index", Napi::Number::New(env, d.ordinal));
      o.Set("name", Napi::String::New(env, d.name));
      o.Set("sm", Napi::String::New(env, "sm_" + std::to_string(d.sm)));
      o.Set("multiprocessors", Napi::Number::New(env, d.multiprocessors));
      o.Set("memoryBytes", Napi::Number::New(env, static_cast<double>(d.totalMemory)));
      o.Set("driverVersion", Napi::String::New(env, std::to_string(d.driverVersion / 1000) + "." + std::to_string((d.driverVersion % 1000) / 10)));
      out.Set(static_cast<uint32_t>(i), o);
    }
    return out;
  }
 private:
  Mode mode_;
  std::vector<gpu::DeviceInfo> devices_;
  std::string reason_;
};

Napi::Value ListDevices(const Napi::CallbackInfo& info) {
  auto* w = new DevicesWorker(info.Env(), DevicesWorker::Mode::kList);
  w->Queue();
  return w->promise();
}

Napi::Value GpuAvailable(const Napi::CallbackInfo& info) {
  auto* w = new DevicesWorker(info.Env(), DevicesWorker::Mode::kAvailable);
  w->Queue();
  return w->promise();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("version", Napi::String::New(env, kOptimizerVersion));
  exports.Set("checkModel", Napi::Function::New(env, CheckModel));
  exports.Set("inspectPlan", Napi::Function::New(env, InspectPlan));
  exports.Set("buildPlan", Napi::Function::New(env, BuildPlan));
  exports.Set("runPlan", Napi::Function::New(env, RunPlan));
  exports.Set("listDevices", Napi::Function::New(env, ListDevices));
  exports.Set("gpuAvailable", Napi::Function::New(env, GpuAvailable));
  Napi::Array ops = Napi::Array::New(env);
  auto names = OpRegistry::instance().names();
  for (size_t i = 0; i < names.size(); ++i) ops.Set(static_cast<uint32_t>(i), Napi::String::New(env, names[i]));
  exports.Set("supportedOps", ops);
  return exports;
}

}  // namespace

NODE_API_MODULE(planforge_native, Init)
