#include "core/bounded_input.hpp"

#include <ssld/error.hpp>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace ssld::host {

namespace fs = std::filesystem;

std::string read_regular_file(const fs::path& path, uint64_t max_bytes, const std::string& what) {
  const std::string where = what + " '" + path.string() + "'";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);  // O_NONBLOCK: a FIFO does not hang open()
  if (fd < 0) throw Error("cannot open " + where + ": " + std::strerror(errno));
  struct stat info {};
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd);
    throw Error(where + " is not a regular file");
  }
  if (static_cast<uint64_t>(info.st_size) > max_bytes) {
    ::close(fd);
    throw Error(where + " is " + std::to_string(info.st_size) + " bytes, more than the " + std::to_string(max_bytes) +
                " such a file may have");
  }
  std::string bytes(static_cast<size_t>(info.st_size), '\0');
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t got = ::read(fd, bytes.data() + done, bytes.size() - done);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      const int number = errno;
      ::close(fd);
      throw Error("cannot read " + where + ": " + std::strerror(number));
    }
    if (got == 0) break;  // shrank while read: keep what is there
    done += static_cast<size_t>(got);
  }
  ::close(fd);
  bytes.resize(done);
  return bytes;
}

nlohmann::json parse_json(std::string_view text, const std::string& what) {
  const auto bound_depth = [&](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
    if (depth > kMaxJsonDepth)
      throw Error(what + ": JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    return true;
  };
  try {
    return nlohmann::json::parse(text.begin(), text.end(), bound_depth);
  } catch (const nlohmann::json::exception& error) {
    throw Error(what + ": malformed JSON: " + error.what());
  }
}

int64_t json_int(const nlohmann::json& value) {
  if (value.is_number_integer() && !(value.is_number_unsigned() && value.get<uint64_t>() > INT64_MAX))
    return value.get<int64_t>();
  throw Error("expected an integer, found " + value.dump());
}

uint64_t json_uint(const nlohmann::json& value) {
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  throw Error("expected a non-negative integer, found " + value.dump());
}

nlohmann::json read_json_file(const fs::path& path, const std::string& what) {
  return parse_json(read_regular_file(path, uint64_t{256} << 20, what), what + " '" + path.string() + "'");
}

}  // namespace ssld::host
