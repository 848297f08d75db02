// Starts the ranks of a multi-process run as separate processes, the way torchrun would: each
// gets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR=127.0.0.1 and a MASTER_PORT that was free a
// moment ago, its stdout and stderr in files. No torchrun needed in CI.
#pragma once

#include "dist/local_launch.hpp"
#include "test_support.hpp"

#include <chrono>
#include <csignal>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace ssld::test {

class LaunchedRanks {
 public:
  // Runs `program args...` once per rank in [0, world); `env` is added to each (an empty value
  // unsets the variable). Output goes to <logs>/rank<R>.out and .err.
  LaunchedRanks(const std::string& program, const std::vector<std::string>& args, int world,
                const std::filesystem::path& logs, const std::map<std::string, std::string>& env = {},
                int port = host::free_loopback_port())
      : logs_(logs) {
    std::filesystem::create_directories(logs);
    for (int rank = 0; rank < world; ++rank) {
      const pid_t child = fork();
      if (child == 0) {
        std::map<std::string, std::string> all = {{"RANK", std::to_string(rank)},
                                                  {"WORLD_SIZE", std::to_string(world)},
                                                  {"LOCAL_RANK", std::to_string(rank)},
                                                  {"MASTER_ADDR", "127.0.0.1"},
                                                  {"MASTER_PORT", std::to_string(port)}};
        for (const auto& [name, value] : env) all[name] = value;
        for (const auto& [name, value] : all) value.empty() ? unsetenv(name.c_str()) : setenv(name.c_str(), value.c_str(), 1);
        const std::string out = (logs / ("rank" + std::to_string(rank) + ".out")).string();
        const std::string err = (logs / ("rank" + std::to_string(rank) + ".err")).string();
        dup2(open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), STDOUT_FILENO);
        dup2(open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), STDERR_FILENO);
        std::vector<char*> argv = {const_cast<char*>(program.c_str())};
        for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
        argv.push_back(nullptr);
        execv(program.c_str(), argv.data());
        _exit(127);
      }
      pids_.push_back(child);
    }
  }
  ~LaunchedRanks() {
    for (pid_t pid : pids_)
      if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
      }
  }

  void signal(int rank, int signal_number) const { kill(pids_[rank], signal_number); }

  // Waits for every rank, at most `limit` in all (then kills the rest: exit code -1 for those).
  // Returns each rank's exit code (128 + signal when killed by one), stdout and stderr.
  std::vector<RunResult> wait(std::chrono::seconds limit = std::chrono::seconds(120)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    std::vector<RunResult> results(pids_.size());
    size_t running = pids_.size();
    while (running > 0) {
      for (size_t r = 0; r < pids_.size(); ++r) {
        if (pids_[r] <= 0) continue;
        int status = 0;
        if (waitpid(pids_[r], &status, WNOHANG) == pids_[r]) {
          results[r].exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
          pids_[r] = 0;
          --running;
        }
      }
      if (running == 0) break;
      if (std::chrono::steady_clock::now() > deadline) {
        for (size_t r = 0; r < pids_.size(); ++r)
          if (pids_[r] > 0) {
            kill(pids_[r], SIGKILL);
            waitpid(pids_[r], nullptr, 0);
            pids_[r] = 0;
            results[r].exit_code = -1;
          }
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    for (size_t r = 0; r < results.size(); ++r) {
      results[r].out = read_file(logs_ / ("rank" + std::to_string(r) + ".out"));
      results[r].err = read_file(logs_ / ("rank" + std::to_string(r) + ".err"));
    }
    return results;
  }

 private:
  std::filesystem::path logs_;
  std::vector<pid_t> pids_;
};

}  // namespace ssld::test
