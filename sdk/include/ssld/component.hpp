// What every component shares: its kind, a common base with a virtual destructor, and the
// host services (Context) handed to a component's factory.
#pragma once

#include <ssld/options.hpp>

#include <c10/core/Device.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace ssld {

class Student;

// Frozen order: values cross the ABI. Appending a kind bumps the minor version.
enum class Kind : int32_t {
  Dataset,
  Sampler,
  Augmentation,       // per-sample, CPU, uint8 HWC in and out
  BatchAugmentation,  // per-batch, on the device, after normalization
  Teacher,
  Student,
  Loss,
};
constexpr int kKindCount = 7;

inline const char* to_string(Kind kind) {
  switch (kind) {
    case Kind::Dataset: return "dataset";
    case Kind::Sampler: return "sampler";
    case Kind::Augmentation: return "augmentation";
    case Kind::BatchAugmentation: return "batch_augmentation";
    case Kind::Teacher: return "teacher";
    case Kind::Student: return "student";
    case Kind::Loss: return "loss";
  }
  return "unknown";
}

// Base of every component interface. Components are destroyed by the host through this
// virtual destructor while their plugin library is still loaded (the host never unloads one).
class Component {
 public:
  virtual ~Component() = default;
};

enum class LogLevel : int32_t { Debug, Info, Warning, Error };

// Host services available to a factory. Implemented by the host; new services are appended
// (a minor bump), so a plugin only calls what its SDK minor version declares.
class Context {
 public:
  virtual ~Context() = default;
  // Where the run computes ("cpu", "cuda:0"); components are built on the CPU and moved there.
  virtual c10::Device device() const = 0;
  // The run's seed: the first key of every ssld::Rng stream. The host seeds torch's global
  // generator with it right before each factory call, so a model initialized in its factory
  // (torch::nn::init, module constructors) is the same in every run without seeding it itself.
  virtual uint64_t seed() const = 0;
  // Logs through the host's logger, prefixed with the component's name.
  virtual void log(LogLevel level, const std::string& message) const = 0;
  // Builds another component from a sub-table of this component's options (an ensemble's
  // members): the table's `type` names it and it is validated like a top-level component.
  virtual std::unique_ptr<Component> create(Kind kind, const Options& table) const = 0;
  // Loads a weights file (safetensors, as ssld writes them) into `student`, matching tensors
  // by state-dict name; throws ssld::Error listing missing, unexpected and mis-shaped names.
  virtual void load_weights(Student& student, const std::string& path) const = 0;
  // A log function that stays valid after the factory returns (this Context does not), for a
  // component that decides something at run time, e.g. a teacher compiled at its first batch.
  // Since ABI 1.3.
  virtual std::function<void(LogLevel, const std::string&)> logger() const = 0;
};

}  // namespace ssld
