#include "core/errors.hpp"

namespace ssld::host {

ExitStatus exit_status_of(const std::exception& error) {
  if (const auto* host = dynamic_cast<const HostError*>(&error)) return host->exit_status();
  if (dynamic_cast<const ssld::Error*>(&error)) return kExitUserError;
  return kExitInternalError;
}

}  // namespace ssld::host
