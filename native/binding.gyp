{
  # The addon is a thin layer over the static core library built by native/Makefile
  # (scripts/build-native.js runs make first). --whole-archive keeps the self-registering
  # ops and passes, which nothing references by name.
  "targets": [
    {
      "target_name": "planforge_native",
      "sources": ["src/binding/binding.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "src"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "ONNX_ML=1"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-O2"],
      "libraries": [
        "-Wl,--whole-archive",
        "<(module_root_dir)/build/core/libplanforge_core.a",
        "-Wl,--no-whole-archive",
        "-lonnx_proto",
        "-lprotobuf",
        "-lpthread"
      ]
    }
  ]
}
