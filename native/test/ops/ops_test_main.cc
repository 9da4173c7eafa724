// planforge-op-tests: hand-computed cases for the CPU reference kernels (native/src/core/ops).
// Usage: planforge-op-tests [substring]   (runs the tests whose name contains substring)
#include <cstring>

#include "../test_framework.h"

namespace pftest {
std::vector<TestCase>& registry() {
  static std::vector<TestCase> r;
  return r;
}
}  // namespace pftest

int main(int argc, char** argv) {
  const char* filter = argc > 1 ? argv[1] : nullptr;
  int passed = 0, failed = 0;
  for (const auto& t : pftest::registry()) {
    if (filter && t.name.find(filter) == std::string::npos) continue;
    try {
      t.fn();
      ++passed;
      std::cout << "ok   " << t.name << "\n";
    } catch (const pftest::Failure& f) {
      ++failed;
      std::cout << "FAIL " << t.name << "\n     " << f.message << "\n";
    } catch (const std::exception& e) {
      ++failed;
      std::cout << "FAIL " << t.name << "\n     unexpected exception: " << e.what() << "\n";
    }
  }
  std::cout << passed << " passed, " << failed << " failed\n";
  return failed == 0 && passed > 0 ? 0 : 1;
}
