// `ssld train|mine|cache-teacher CONFIG --nproc-per-node N`: the launcher Lightning and
// Accelerate users expect, for where torchrun does not work (Debian 12's own torchrun fails
// before starting a process). It starts N ranks of this same program on this machine with
// torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR=127.0.0.1, a MASTER_PORT that
// was free a moment ago) and OMP_NUM_THREADS = its CPU budget / N unless set; rank 0 writes to
// the terminal, the others to <logs>/rank<R>.log. SIGINT and SIGTERM reach every rank (they stop
// together after a step, as under torchrun); a rank that fails stops the others (SIGTERM, then
// SIGKILL after 60 s) and its exit status is the launcher's.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace ssld::host {

// `args`: the command line each rank runs, program name first. Returns the exit status.
int run_local_ranks(int ranks, const std::vector<std::string>& args, const std::filesystem::path& logs);

// A TCP port on 127.0.0.1 the kernel handed out just now (bound to port 0, then released), for a
// rendezvous; throws ssld::Error when there is none.
int free_loopback_port();

// `argv` without the `--nproc-per-node N` / `--nproc-per-node=N` it was launched with.
std::vector<std::string> without_nproc_flag(int argc, char** argv);

}  // namespace ssld::host
