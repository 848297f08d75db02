// Turns the config's device string into a c10::Device, falling back from "auto" to the CPU
// when no GPU is usable, and refusing an explicit CUDA request that cannot be met.
#pragma once

#include <c10/core/Device.h>

#include <string>

namespace ssld::host {

// Throws ssld::Error when "cuda" or "cuda:N" is asked for and not available.
c10::Device resolve_device(const std::string& requested);

}  // namespace ssld::host
