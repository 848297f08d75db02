#include "components/device.hpp"

#include <ssld/error.hpp>

#include <torch/cuda.h>
#include <torch/version.h>

namespace ssld::host {

c10::Device resolve_device(const std::string& requested) {
  const bool cuda = torch::cuda::is_available();
  if (requested == "auto") return cuda ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  if (requested == "cpu") return c10::Device(c10::kCPU);
  const c10::Device device(requested);  // "cuda" or "cuda:N", already checked by the config schema
  if (!cuda)
    throw Error("device '" + requested + "' was requested, but no CUDA device is usable here (" +
                "this libtorch " + std::string(TORCH_VERSION) + " has no CUDA or no GPU is visible); use \"auto\" or \"cpu\"");
  if (device.has_index() && device.index() >= static_cast<int>(torch::cuda::device_count()))
    throw Error("device '" + requested + "' does not exist: " + std::to_string(torch::cuda::device_count()) +
                " CUDA device(s) are visible");
  return device.has_index() ? device : c10::Device(c10::kCUDA, 0);
}

}  // namespace ssld::host
