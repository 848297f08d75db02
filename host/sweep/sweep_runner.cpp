#include "sweep/sweep_runner.hpp"

#include "config/config_loader.hpp"
#include "core/atomic_file.hpp"
#include "core/bounded_input.hpp"
#include "core/cpu_budget.hpp"
#include "core/stop_signals.hpp"
#include "sweep/sweep_manifest.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstring>
#include <ctime>
#include <deque>
#include <fcntl.h>
#include <fstream>
#include <spawn.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char** environ;

namespace ssld::host {
namespace fs = std::filesystem;

namespace {

// --- the child's config -------------------------------------------------------------------

int64_t integer_at(const TomlValue& config, const std::string& table, const std::string& key) {
  if (!config.contains(table) || !config.at(table).is_table() || !config.at(table).contains(key)) return 0;
  const TomlValue& value = config.at(table).at(key);
  return value.is_integer() ? value.as_integer() : 0;
}

// A run's threads: its configured number (0: all cores), at most its share of the cores.
TomlValue thread_share(int64_t configured, int64_t share) {
  return TomlValue(static_cast<toml::integer>(configured > 0 ? std::min(configured, share) : share));
}

std::string now_utc() {
  const std::time_t now = std::time(nullptr);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return text;
}

}  // namespace

TomlValue child_config(const PlannedRun& planned, size_t index, const fs::path& sweep_folder,
                       const SweepRunnerOptions& options) {
  TomlValue config = planned.config;
  make_location_independent(config);
  const SourcePlace sweep{"ssld sweep", 0, 0};
  set_config_value(config, "run.name", TomlValue(planned.run.id), sweep);
  set_config_value(config, "run.output_dir", TomlValue(fs::absolute(sweep_folder / "runs").string()), sweep);
  const int64_t cores = options.hardware_threads > 0 ? options.hardware_threads : cpu_budget().threads;
  const int64_t share = std::max<int64_t>(1, cores / std::max(1, options.jobs));
  set_config_value(config, "run.threads", thread_share(integer_at(config, "run", "threads"), share), sweep);
  set_config_value(config, "data.threads", thread_share(integer_at(config, "data", "threads"), share), sweep);
  if (!options.devices.empty()) {
    const int device = options.devices[index % options.devices.size()];
    set_config_value(config, "run.device", TomlValue("cuda:" + std::to_string(device)), sweep);
  }
  return config;
}

namespace {

// --- processes ------------------------------------------------------------------------------

struct Child {
  pid_t pid = -1;
  size_t index = 0;  // into the plan and the manifest's runs
  std::chrono::steady_clock::time_point start;
};

class SweepExecution {
 public:
  SweepExecution(const std::vector<PlannedRun>& runs, nlohmann::json& manifest, fs::path sweep_folder,
                 const SweepRunnerOptions& options)
      : runs_(runs), manifest_(manifest), folder_(std::move(sweep_folder)), options_(options),
        program_(fs::read_symlink("/proc/self/exe").string()) {}

  int run() {
    std::deque<size_t> queue;
    for (size_t i = 0; i < runs_.size(); ++i)
      if (entry(i)["status"] != kRunDone) queue.push_back(i);
    spdlog::info("sweep: {} runs, {} done, {} to run, {} at a time", runs_.size(), runs_.size() - queue.size(),
                 queue.size(), options_.jobs);
    install_stop_signals(SecondSignal::Counts);
    int forwarded = 0;  // signals passed on to the children
    while (!queue.empty() || !children_.empty()) {
      const int received = stop_signals_received();
      if (received > forwarded) {
        // First signal: children checkpoint and exit 3; a second one: stop them at once.
        for (const auto& child : children_) kill(child.pid, forwarded == 0 ? SIGTERM : SIGKILL);
        forwarded = received;
      }
      while (!stop_requested() && static_cast<int>(children_.size()) < options_.jobs && !queue.empty()) {
        start(queue.front());
        queue.pop_front();
      }
      reap();
      if (stop_requested() && children_.empty()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    restore_default_signals();
    if (stop_requested()) return kExitInterrupted;
    for (const auto& run : manifest_["runs"])
      if (run["status"] == kRunFailed) return kExitSweepRunsFailed;
    return kExitSuccess;
  }

 private:
  nlohmann::json& entry(size_t index) { return manifest_["runs"][index]; }
  void record_device(size_t index, const TomlValue& config) {
    const TomlValue& run = config.at("run");
    entry(index)["device"] = run.contains("device") ? toml_to_json(run.at("device")) : nlohmann::json("auto");
  }
  void save() { write_sweep_manifest(folder_, manifest_); }

  void start(size_t index) {
    const PlannedRun& planned = runs_[index];
    const fs::path folder = sweep_run_folder(folder_, planned.run.id);
    fs::create_directories(folder);
    const fs::path config_file = folder / "config.toml";
    // A run with a checkpoint continues with the config it started with: `ssld train` refuses to
    // resume a stage whose config changed, and another --jobs would change its thread counts.
    const bool resume = sweep_run_has_checkpoint(folder, planned.stages) && fs::exists(config_file);
    if (!resume) {
      const TomlValue config = child_config(planned, index, folder_, options_);
      write_file_atomically(config_file.string(), "# Written by `ssld sweep` for run " + planned.run.id + " of " +
                                                      manifest_.value("config", "") +
                                                      ".\n# `ssld train` this file to repeat the run alone.\n" +
                                                      toml::format(config));
      record_device(index, config);
    }
    // The child says why it failed in a file, not only in its stderr text.
    const fs::path failure = failure_file(folder);
    fs::remove(failure);
    std::vector<std::string> args = {program_, "--failure-file", failure.string(), "train", config_file.string()};
    if (resume) args.push_back("--resume");

    nlohmann::json& record = entry(index);
    record["status"] = kRunRunning;
    record["started"] = now_utc();
    record["finished"] = "";
    record["exit_code"] = nullptr;
    record["error"] = "";
    const pid_t pid = spawn(args, folder);
    if (pid < 0) {
      record["status"] = kRunFailed;
      record["error"] = "could not start " + program_ + ": " + std::strerror(errno);
      save();
      return;
    }
    spdlog::info("sweep: run {} started{}", planned.run.id, resume ? " (resuming)" : "");
    children_.push_back(Child{pid, index, std::chrono::steady_clock::now()});
    save();
  }

  // fork/exec without a shell: stdout and stderr go to files in the run folder (appended, so
  // a resumed run keeps its earlier log); the child gets its own process group so a terminal's
  // Ctrl-C reaches only the sweep, which forwards one SIGTERM.
  pid_t spawn(const std::vector<std::string>& args, const fs::path& folder) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    const std::string out = (folder / "stdout.txt").string(), err = (folder / "stderr.txt").string();
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    sigset_t defaults;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGTERM);
    posix_spawnattr_setsigdefault(&attributes, &defaults);  // even when the sweep runs with them ignored
    posix_spawnattr_setpgroup(&attributes, 0);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
    std::vector<char*> argv;
    for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    pid_t pid = -1;
    const int error = posix_spawn(&pid, program_.c_str(), &actions, &attributes, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
    if (error != 0) {
      errno = error;
      return -1;
    }
    return pid;
  }

  void reap() {
    for (auto child = children_.begin(); child != children_.end();) {
      int status = 0;
      if (waitpid(child->pid, &status, WNOHANG) != child->pid) {
        ++child;
        continue;
      }
      finish(*child, status);
      child = children_.erase(child);
    }
  }

  void finish(const Child& child, int status) {
    const PlannedRun& planned = runs_[child.index];
    const fs::path folder = sweep_run_folder(folder_, planned.run.id);
    nlohmann::json& record = entry(child.index);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - child.start).count();
    record["seconds"] = record.value("seconds", 0.0) + seconds;
    record["finished"] = now_utc();
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    record["exit_code"] = code;
    if (code == 0 && sweep_run_finished(folder, planned.stages)) {
      record["status"] = kRunDone;
      spdlog::info("sweep: run {} done in {:.0f} s", planned.run.id, seconds);
    } else if (code == kExitInterrupted) {
      record["status"] = kRunPending;  // interrupted after writing a checkpoint: resumed next time
      spdlog::info("sweep: run {} interrupted; the next `ssld sweep` resumes it", planned.run.id);
    } else {
      record["status"] = kRunFailed;
      record["error"] = record_failure(folder, status);
      spdlog::warn("sweep: run {} failed (exit code {}): {}", planned.run.id, code, record["error"].get<std::string>());
    }
    save();
  }

  static fs::path failure_file(const fs::path& folder) { return folder / "failure.json"; }

  // Saves the last lines of the child's stderr as error.txt (for a reader) and returns what went
  // wrong: the message of the child's failure file, else how it ended (a signal, a crash that
  // wrote nothing) and its last line of stderr.
  static std::string record_failure(const fs::path& folder, int status) {
    constexpr size_t kTailLines = 20;
    std::ifstream in(folder / "stderr.txt");
    std::deque<std::string> tail;
    for (std::string line; std::getline(in, line);) {
      if (line.empty()) continue;
      tail.push_back(line);
      if (tail.size() > kTailLines) tail.pop_front();
    }
    std::string text;
    for (const auto& line : tail) text += line + "\n";
    write_file_atomically((folder / "error.txt").string(), text);
    std::string summary = failure_message(folder);
    if (WIFSIGNALED(status)) summary = "killed by signal " + std::to_string(WTERMSIG(status));
    if (summary.empty())
      summary = "exited with code " + std::to_string(WEXITSTATUS(status)) + (tail.empty() ? "" : ": " + tail.back());
    constexpr size_t kMaxSummary = 500;
    return summary.size() > kMaxSummary ? summary.substr(0, kMaxSummary) + "..." : summary;
  }

  // The "error" of the child's failure file; "" when it wrote none or one that does not parse.
  static std::string failure_message(const fs::path& folder) {
    try {
      const nlohmann::json failure = read_json_file(failure_file(folder), "run failure file");
      if (failure.is_object() && failure.contains("error") && failure.at("error").is_string())
        return failure.at("error").get<std::string>();
    } catch (const Error&) {
    }
    return "";
  }

  const std::vector<PlannedRun>& runs_;
  nlohmann::json& manifest_;
  fs::path folder_;
  SweepRunnerOptions options_;
  std::string program_;
  std::vector<Child> children_;
};

}  // namespace

int run_sweep(const std::vector<PlannedRun>& runs, nlohmann::json& manifest, const fs::path& sweep_folder,
              const SweepRunnerOptions& options) {
  SweepExecution execution(runs, manifest, sweep_folder, options);
  return execution.run();
}

}  // namespace ssld::host
