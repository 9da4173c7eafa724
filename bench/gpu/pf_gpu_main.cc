// pf-gpu: the GPU subcommands of planforge-opt (bench, verify, devices) as a standalone binary,
// for device runs while planforge-opt's main.cc does not dispatch to them yet. Built by
// bench/gpu/prepare_carry.sh against the core library.
#include <iostream>

#include "../../native/src/cli/bench_command.h"

int main(int argc, char** argv) {
  if (argc < 2 || !planforge::cli::isGpuCommand(argv[1])) {
    std::cerr << "usage: pf-gpu bench|verify|devices ... (see native/src/cli/bench_command.h)\n";
    return 2;
  }
  return planforge::cli::runGpuCommand(argv[1], argc, argv);
}
