// Tiny JSON writer for the CLI's --json output and the binding's results (one serializer for both).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace planforge {

class JsonWriter {
 public:
  JsonWriter& beginObject() { sep(); out_ += '{'; first_.push_back(true); return *this; }
  JsonWriter& endObject() { out_ += '}'; first_.pop_back(); return *this; }
  JsonWriter& beginArray() { sep(); out_ += '['; first_.push_back(true); return *this; }
  JsonWriter& endArray() { out_ += ']'; first_.pop_back(); return *this; }
  JsonWriter& key(const std::string& k) { sep(); quote(k); out_ += ':'; afterKey_ = true; return *this; }
  JsonWriter& value(const std::string& s) { sep(); quote(s); return *this; }
  JsonWriter& value(const char* s) { return value(std::string(s)); }
  JsonWriter& value(int64_t v) { sep(); out_ += std::to_string(v); return *this; }
  JsonWriter& value(int v) { return value(static_cast<int64_t>(v)); }
  JsonWriter& value(uint64_t v) { sep(); out_ += std::to_string(v); return *this; }
  JsonWriter& value(double v) {
    sep();
    if (!std::isfinite(v)) { out_ += "null"; return *this; }
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.9g", v);
    out_ += buf;
    return *this;
  }
  JsonWriter& value(bool b) { sep(); out_ += b ? "true" : "false"; return *this; }
  JsonWriter& null() { sep(); out_ += "null"; return *this; }
  template <typename T>
  JsonWriter& field(const std::string& k, const T& v) { key(k); return value(v); }
  JsonWriter& field(const std::string& k, const std::vector<std::string>& v) {
    key(k).beginArray();
    for (const auto& s : v) value(s);
    return endArray();
  }
  const std::string& str() const { return out_; }

 private:
  void sep() {
    if (afterKey_) { afterKey_ = false; return; }
    if (!first_.empty()) {
      if (!first_.back()) out_ += ',';
      first_.back() = false;
    }
  }
  void quote(const std::string& s) {
    out_ += '"';
    for (unsigned char c : s) {
      switch (c) {
        case '"': out_ += "\\\""; break;
        case '\\': out_ += "\\\\"; break;
        case '\n': out_ += "\\n"; break;
        case '\r': out_ += "\\r"; break;
        case '\t': out_ += "\\t"; break;
        default:
          if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof(buf), "\\u%04x", c);
            out_ += buf;
          } else {
            out_ += static_cast<char>(c);  // UTF-8 passes through
          }
      }
    }
    out_ += '"';
  }
  std::string out_;
  std::vector<bool> first_;
  bool afterKey_ = false;
};

}  // namespace planforge
