// Counts the tensor values this thread reads on the host (item(), a tensor used as a bool) while
// a counter lives: a dispatcher-level RecordFunction callback, so it sees every such read the
// code under it makes. A trace refuses a forward that reads any (inference_graph.hpp), and tests
// check that a training step between log steps makes none.
#pragma once

#include <ATen/record_function.h>

#include <cstdint>
#include <memory>
#include <string>

namespace ssld {

class HostValueReadCounter {
 public:
  // Counters nest: the callback is added by the outermost one of this thread and removed with it.
  HostValueReadCounter() : start_(thread().reads) {
    if (thread().counters++ == 0) thread().handle = at::addThreadLocalCallback(at::RecordFunctionCallback(count));
  }
  ~HostValueReadCounter() {
    if (--thread().counters == 0) at::removeCallback(thread().handle);
  }
  HostValueReadCounter(const HostValueReadCounter&) = delete;
  HostValueReadCounter& operator=(const HostValueReadCounter&) = delete;

  // Reads since this counter was made.
  int64_t count() const { return thread().reads - start_; }

 private:
  struct ThreadState {
    int64_t reads = 0;
    int counters = 0;
    at::CallbackHandle handle = 0;
  };
  static ThreadState& thread() {
    static thread_local ThreadState state;
    return state;
  }
  static std::unique_ptr<at::ObserverContext> count(const at::RecordFunction& call) {
    const std::string name = call.name();
    if (name == "aten::_local_scalar_dense" || name == "aten::is_nonzero") ++thread().reads;
    return nullptr;
  }

  int64_t start_;
};

}  // namespace ssld
