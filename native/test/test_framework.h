// A tiny test framework: TEST(name) { CHECK(...); } registered statically, run by test_main.cc.
#pragma once
#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace pftest {

struct TestCase {
  std::string name;
  std::function<void()> fn;
};
std::vector<TestCase>& registry();
struct Registrar {
  Registrar(const char* name, std::function<void()> fn) { registry().push_back({name, std::move(fn)}); }
};
struct Failure {
  std::string message;
};

}  // namespace pftest

#define PF_CAT_(a, b) a##b
#define PF_CAT(a, b) PF_CAT_(a, b)
#define TEST(name)                                                              \
  static void PF_CAT(test_fn_, name)();                                         \
  static ::pftest::Registrar PF_CAT(test_reg_, name)(#name, PF_CAT(test_fn_, name)); \
  static void PF_CAT(test_fn_, name)()

#define PF_FAIL(msg)                                                          \
  do {                                                                        \
    std::ostringstream pf_os;                                                 \
    pf_os << __FILE__ << ":" << __LINE__ << ": " << msg;                      \
    throw ::pftest::Failure{pf_os.str()};                                     \
  } while (0)

#define CHECK(cond) \
  do {              \
    if (!(cond)) PF_FAIL("CHECK(" #cond ") failed"); \
  } while (0)

#define CHECK_EQ(a, b)                                                                               \
  do {                                                                                               \
    auto pf_a = (a);                                                                                 \
    auto pf_b = (b);                                                                                 \
    if (!(pf_a == pf_b)) PF_FAIL("CHECK_EQ(" #a ", " #b ") failed: " << pf_a << " != " << pf_b);     \
  } while (0)

#define CHECK_NEAR(a, b, tol)                                                                           \
  do {                                                                                                  \
    double pf_a = (a), pf_b = (b);                                                                      \
    if (!(std::abs(pf_a - pf_b) <= (tol))) PF_FAIL("CHECK_NEAR(" #a ", " #b ") failed: " << pf_a << " vs " << pf_b); \
  } while (0)

// Expects a planforge::BuildError with the given code whose message contains `part`.
#define CHECK_THROWS_CODE(expr, want_code, part)                                                                    \
  do {                                                                                                         \
    bool pf_threw = false;                                                                                     \
    try {                                                                                                      \
      (void)(expr);                                                                                            \
    } catch (const ::planforge::BuildError& pf_e) {                                                            \
      pf_threw = true;                                                                                         \
      if (pf_e.code() != (want_code))                                                                               \
        PF_FAIL(#expr " threw " << ::planforge::errorCodeName(pf_e.code()) << " (" << pf_e.what() << "), expected " \
                                << ::planforge::errorCodeName(want_code));                                          \
      if (std::string(pf_e.what()).find(part) == std::string::npos)                                            \
        PF_FAIL(#expr " message '" << pf_e.what() << "' lacks '" << part << "'");                              \
    }                                                                                                          \
    if (!pf_threw) PF_FAIL(#expr " did not throw");                                                            \
  } while (0)
