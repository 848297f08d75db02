// Shared test helpers: a temporary folder that cleans up after itself, file writing, and
// running the built `ssld` program with a controlled environment.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace ssld::test {

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "ssld_test_XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

  // Writes `text` to `name` (creating folders) and returns the full path.
  std::filesystem::path write(const std::string& name, const std::string& text) const {
    const auto file = path_ / name;
    std::filesystem::create_directories(file.parent_path());
    std::ofstream(file, std::ios::binary) << text;
    return file;
  }

 private:
  std::filesystem::path path_;
};

struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline std::string shell_quote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

// Runs `program args...` with `env` set (an empty value unsets the variable).
inline RunResult run_program(const std::string& program, const std::vector<std::string>& args,
                             const std::map<std::string, std::string>& env = {}) {
  TempDir scratch;
  std::string command;
  for (const auto& [name, value] : env)
    command += value.empty() ? "unset " + name + "; " : "export " + name + "=" + shell_quote(value) + "; ";
  command += shell_quote(program);
  for (const auto& arg : args) command += " " + shell_quote(arg);
  command += " >" + shell_quote((scratch / "out").string()) + " 2>" + shell_quote((scratch / "err").string());
  const int status = std::system(command.c_str());
  RunResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.out = read_file(scratch / "out");
  result.err = read_file(scratch / "err");
  return result;
}

// The message of the exception `action` throws (of type Exception), or "(no error)".
template <class Exception = std::exception>
std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Exception& error) {
    return error.what();
  }
  return "(no error)";
}

}  // namespace ssld::test
