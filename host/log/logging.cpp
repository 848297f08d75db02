#include "log/logging.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <mutex>

namespace ssld::host {

namespace {

// What the status line shows; guarded by the mutex every write to stderr here takes.
struct StatusLineState {
  std::mutex mutex;
  std::string text;
  bool shown = false;
};

StatusLineState& status_state() {
  static StatusLineState state;
  return state;
}

// stderr's colored sink, with the status line cleared before each message and drawn again after.
class StatusAwareSink : public spdlog::sinks::sink {
 public:
  StatusAwareSink() : inner_(std::make_shared<spdlog::sinks::stderr_color_sink_mt>()) {}
  void log(const spdlog::details::log_msg& message) override {
    StatusLineState& state = status_state();
    std::lock_guard<std::mutex> lock(state.mutex);
    if (state.shown) std::fputs("\r\033[K", stderr);
    inner_->log(message);
    inner_->flush();
    if (state.shown) {
      std::fputs(state.text.c_str(), stderr);
      std::fflush(stderr);
    }
  }
  void flush() override { inner_->flush(); }
  void set_pattern(const std::string& pattern) override { inner_->set_pattern(pattern); }
  void set_formatter(std::unique_ptr<spdlog::formatter> formatter) override { inner_->set_formatter(std::move(formatter)); }

 private:
  std::shared_ptr<spdlog::sinks::stderr_color_sink_mt> inner_;
};

}  // namespace

void configure_logging(const LogOptions& options) {
  auto logger = spdlog::get("ssld");
  if (!logger) {
    logger = std::make_shared<spdlog::logger>("ssld", std::make_shared<StatusAwareSink>());
    spdlog::register_logger(logger);
  }
  logger->set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
  spdlog::set_default_logger(logger);
  spdlog::level::level_enum level = spdlog::level::from_str(options.level);
  if (options.verbose) level = spdlog::level::debug;
  if (options.quiet) level = spdlog::level::warn;
  spdlog::set_level(level);
}

namespace status_line {

void show(const std::string& text) {
  StatusLineState& state = status_state();
  std::lock_guard<std::mutex> lock(state.mutex);
  state.text = text;
  state.shown = true;
  std::fputs("\r\033[K", stderr);
  std::fputs(text.c_str(), stderr);
  std::fflush(stderr);
}

void end() {
  StatusLineState& state = status_state();
  std::lock_guard<std::mutex> lock(state.mutex);
  if (!state.shown) return;
  std::fputs("\n", stderr);
  std::fflush(stderr);
  state.shown = false;
  state.text.clear();
}

}  // namespace status_line

}  // namespace ssld::host
