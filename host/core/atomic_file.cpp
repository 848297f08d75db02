#include "core/atomic_file.hpp"

#include <ssld/error.hpp>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace ssld::host {

namespace fs = std::filesystem;

namespace {

std::string os_error(int number) { return std::strerror(number); }

[[noreturn]] void fail(const fs::path& path, const std::string& what, int number) {
  throw Error("cannot write '" + path.string() + "': " + what + ": " + os_error(number) +
              (number == ENOSPC || number == EFBIG || number == EDQUOT
                   ? " (free space or raise the file-size limit, then run again; the previous file is intact)"
                   : ""));
}

// mkstemp() creates 0600; files ssld writes get the usual 0666 & ~umask.
mode_t file_mode() {
  static const mode_t mode = [] {
    const mode_t mask = ::umask(0);
    ::umask(mask);
    return static_cast<mode_t>(0666 & ~mask);
  }();
  return mode;
}

// Creates a unique empty file beside `target`; returns its descriptor and sets `temporary`.
int create_temporary(const fs::path& target, fs::path& temporary) {
  std::string pattern = target.string() + ".tmp-XXXXXX";
  const int fd = ::mkstemp(pattern.data());
  if (fd < 0) fail(target, "cannot create a temporary file beside it", errno);
  temporary = pattern;
  ::fchmod(fd, file_mode());
  return fd;
}

void fsync_folder(const fs::path& target) {
  const fs::path folder = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // the rename is done; a folder we cannot open only loses durability
  ::fsync(fd);
  ::close(fd);
}

void rename_over(const fs::path& temporary, const fs::path& target) {
  if (::rename(temporary.c_str(), target.c_str()) != 0) {
    const int number = errno;
    ::unlink(temporary.c_str());
    fail(target, "cannot rename '" + temporary.string() + "' over it", number);
  }
  fsync_folder(target);
}

}  // namespace

void write_file_atomically(const fs::path& path, std::string_view bytes) {
  fs::path temporary;
  const int fd = create_temporary(path, temporary);
  auto abandon = [&](const std::string& what, int number) {
    ::close(fd);
    ::unlink(temporary.c_str());
    fail(path, what, number);
  };
  const char* data = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    const ssize_t written = ::write(fd, data, left);
    if (written < 0) {
      if (errno == EINTR) continue;
      abandon("write failed", errno);
    }
    data += written;
    left -= static_cast<size_t>(written);
  }
  if (::fsync(fd) != 0) abandon("fsync failed", errno);
  if (::close(fd) != 0) {
    const int number = errno;
    ::unlink(temporary.c_str());
    fail(path, "close failed", number);
  }
  rename_over(temporary, path);
}

AtomicFile::AtomicFile(fs::path target) : target_(std::move(target)) {
  const int fd = create_temporary(target_, temporary_);
  ::close(fd);
}

AtomicFile::~AtomicFile() {
  if (!committed_) ::unlink(temporary_.c_str());
}

void AtomicFile::commit() {
  const int fd = ::open(temporary_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    const int number = errno;
    if (fd >= 0) ::close(fd);
    fail(target_, "fsync of '" + temporary_.string() + "' failed", number);
  }
  ::close(fd);
  committed_ = true;  // rename_over removes the temporary itself when it fails
  rename_over(temporary_, target_);
}

FileLock::FileLock(const fs::path& path) {
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, file_mode());
  if (fd_ < 0) throw Error("cannot create the lock file '" + path.string() + "': " + os_error(errno));
  while (::flock(fd_, LOCK_EX) != 0) {
    if (errno == EINTR) continue;
    const int number = errno;
    ::close(fd_);
    throw Error("cannot lock '" + path.string() + "': " + os_error(number));
  }
}

FileLock::~FileLock() {
  ::flock(fd_, LOCK_UN);
  ::close(fd_);
}

void ignore_file_size_signal() { std::signal(SIGXFSZ, SIG_IGN); }

}  // namespace ssld::host
