// A plugin whose registration throws: the SDK wrapper must turn it into an error message that
// reaches the host, instead of an exception crossing the boundary or an abort.
#include <ssld/plugin.hpp>

#include <stdexcept>

SSLD_PLUGIN("registration_throws", "1.0.0", registry) {
  (void)registry;
  throw std::runtime_error("cannot find my model zoo index (simulated failure)");
}
