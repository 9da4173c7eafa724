// The CPU reference executor: walks a Graph in (topological) node order and calls the
// OpRegistry kernels. Slow but exact; it is the numerical reference for every plan.
#pragma once
#include <atomic>
#include <map>
#include <string>

#include "graph.h"
#include "tensor.h"

namespace planforge {

struct RunOptions {
  // Checked between nodes; when set, runGraph throws BuildError(kCancelled).
  const std::atomic<bool>* cancel = nullptr;
  // Free an intermediate as soon as its last consumer ran (lower peak memory).
  bool freeIntermediates = true;
  // Check that runtime inputs match the declared dtype and fixed dims (E_PROFILE otherwise).
  bool checkInputs = true;
};

// Runs the graph on the given runtime inputs (by graph input name) and returns the graph
// outputs by name. Missing inputs, unknown inputs, dtype or fixed-dim mismatches throw
// BuildError(kProfile); kernel failures carry the node name in the message.
std::map<std::string, Tensor> runGraph(const Graph& g, const std::map<std::string, Tensor>& inputs,
                                       const RunOptions& options = {});

// Runs one node's kernel on the given input values (nullptr for omitted optional inputs).
// Used by the executor and by fold_constants. Throws BuildError(kUnsupportedOp) when no kernel.
std::vector<Tensor> runNode(const Graph& g, const Node& node, const std::vector<const Tensor*>& inputs);

}  // namespace planforge
