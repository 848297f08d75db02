// Files that another process, a resume or a second writer reads: written whole under a unique
// temporary name beside the target, fsynced, renamed over it, and the folder fsynced, so a crash
// leaves the old file or the new one and two writers never share a temporary. A failed write
// (no space, a file-size limit) removes its temporary and throws ssld::Error naming the file and
// the OS error; the previous file is untouched.
#pragma once

#include <filesystem>
#include <string_view>

namespace ssld::host {

// Writes `bytes` to `path` atomically.
void write_file_atomically(const std::filesystem::path& path, std::string_view bytes);

// For writers that produce a file by path themselves (TorchScript's save): write to
// temporary(), then commit(). Without commit() the temporary is removed.
class AtomicFile {
 public:
  explicit AtomicFile(std::filesystem::path target);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  const std::filesystem::path& temporary() const { return temporary_; }
  void commit();  // fsync, rename over the target, fsync the folder

 private:
  std::filesystem::path target_, temporary_;
  bool committed_ = false;
};

// An exclusive advisory lock (flock) on `path`, created if missing, held for the object's life:
// serializes read-modify-write of a file shared by processes (a cache key's teacher accuracy).
class FileLock {
 public:
  explicit FileLock(const std::filesystem::path& path);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

// A write past RLIMIT_FSIZE raises SIGXFSZ, whose default kills the process without a word.
// Ignored, the write fails with EFBIG and becomes an error naming the file. Called by main().
void ignore_file_size_signal();

}  // namespace ssld::host
