#include "log/logging.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace ssld::host {

void configure_logging(const LogOptions& options) {
  auto logger = spdlog::get("ssld");
  if (!logger) logger = spdlog::stderr_color_mt("ssld");
  logger->set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
  spdlog::set_default_logger(logger);
  spdlog::level::level_enum level = spdlog::level::from_str(options.level);
  if (options.verbose) level = spdlog::level::debug;
  if (options.quiet) level = spdlog::level::warn;
  spdlog::set_level(level);
}

}  // namespace ssld::host
