#include "dist/local_launch.hpp"

#include "core/cpu_budget.hpp"
#include "core/errors.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <thread>

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace ssld::host {

namespace {

volatile std::sig_atomic_t pending_signal = 0;

void remember_signal(int number) { pending_signal = number; }

std::string this_program() {
  std::vector<char> path(4096);
  const ssize_t size = readlink("/proc/self/exe", path.data(), path.size() - 1);
  if (size <= 0) throw Error("--nproc-per-node: cannot find this program's path (/proc/self/exe)");
  return std::string(path.data(), static_cast<size_t>(size));
}

int exit_status_of_wait(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

}  // namespace

int free_loopback_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  const bool bound = fd >= 0 && bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
                     getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
  if (fd >= 0) close(fd);
  if (!bound) throw Error("--nproc-per-node: cannot find a free TCP port on 127.0.0.1 for the ranks' rendezvous");
  return ntohs(address.sin_port);
}

std::vector<std::string> without_nproc_flag(int argc, char** argv) {
  std::vector<std::string> args;
  for (int i = 0; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--nproc-per-node") {
      ++i;  // and its value
      continue;
    }
    if (arg.rfind("--nproc-per-node=", 0) == 0) continue;
    args.push_back(arg);
  }
  return args;
}

int run_local_ranks(int ranks, const std::vector<std::string>& args, const std::filesystem::path& logs) {
  if (std::getenv("RANK") != nullptr)
    throw Error("--nproc-per-node inside a launched rank (RANK is set, e.g. by torchrun): use one launcher, not both");
  std::filesystem::create_directories(logs);
  const std::string program = this_program();
  const int port = free_loopback_port();
  const char* omp = std::getenv("OMP_NUM_THREADS");
  const std::string threads = omp != nullptr && *omp != '\0' ? omp : std::to_string(std::max(1, cpu_budget().threads / ranks));
  spdlog::info("--nproc-per-node {}: {} ranks on 127.0.0.1:{}, {} threads each; ranks 1.. log to {}", ranks, ranks,
               port, threads, logs.string());

  struct sigaction forward {};
  forward.sa_handler = remember_signal;
  sigemptyset(&forward.sa_mask);
  sigaction(SIGINT, &forward, nullptr);
  sigaction(SIGTERM, &forward, nullptr);

  std::vector<pid_t> pids(static_cast<size_t>(ranks), 0);
  for (int rank = 0; rank < ranks; ++rank) {
    const pid_t child = fork();
    if (child < 0) throw Error("--nproc-per-node: cannot start rank " + std::to_string(rank) + " (fork failed)");
    if (child == 0) {
      signal(SIGINT, SIG_DFL);
      signal(SIGTERM, SIG_DFL);
      setenv("RANK", std::to_string(rank).c_str(), 1);
      setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
      setenv("WORLD_SIZE", std::to_string(ranks).c_str(), 1);
      setenv("LOCAL_WORLD_SIZE", std::to_string(ranks).c_str(), 1);
      setenv("MASTER_ADDR", "127.0.0.1", 1);
      setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      setenv("OMP_NUM_THREADS", threads.c_str(), 1);
      if (rank > 0) {
        const std::string log = (logs / ("rank" + std::to_string(rank) + ".log")).string();
        const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) dup2(fd, STDOUT_FILENO), dup2(fd, STDERR_FILENO), close(fd);
      }
      std::vector<char*> argv;
      for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
      argv.push_back(nullptr);
      execv(program.c_str(), argv.data());
      _exit(127);
    }
    pids[static_cast<size_t>(rank)] = child;
  }

  int status = 0, running = ranks, failed_rank = -1;
  bool interrupted = false;  // the user's signal: the ranks stop with status 3 together
  std::chrono::steady_clock::time_point kill_at{};
  while (running > 0) {
    if (pending_signal != 0) {  // the user's SIGINT/SIGTERM, for every rank
      const int number = pending_signal;
      pending_signal = 0;
      interrupted = true;
      for (pid_t pid : pids)
        if (pid > 0) kill(pid, number);
    }
    for (int rank = 0; rank < ranks; ++rank) {
      pid_t& pid = pids[static_cast<size_t>(rank)];
      int wait_status = 0;
      if (pid <= 0 || waitpid(pid, &wait_status, WNOHANG) != pid) continue;
      pid = 0;
      --running;
      const int code = exit_status_of_wait(wait_status);
      if (code == 0 || failed_rank >= 0) continue;
      failed_rank = rank;
      status = code;
      if (running == 0 || interrupted) continue;
      spdlog::error("rank {} exited with status {}{}; stopping the other ranks", rank, code,
                    rank > 0 ? " (its log: " + (logs / ("rank" + std::to_string(rank) + ".log")).string() + ")" : "");
      for (pid_t other : pids)
        if (other > 0) kill(other, SIGTERM);
      kill_at = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    }
    if (failed_rank >= 0 && running > 0 && std::chrono::steady_clock::now() > kill_at)
      for (pid_t pid : pids)
        if (pid > 0) kill(pid, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return status;
}

}  // namespace ssld::host
