// A teacher trained in Python the way a PyTorch user trains one (torchvision's Resize(64) on
// 150x150 JPEGs through ImageFolder, saved with TorchScript) scores in `ssld eval --teacher`
// what it scores in Python on the same files: the preprocessing crosses unchanged.
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

using ssld::test::RunResult;
using ssld::test::TempDir;

namespace {

// path -> (label, top-1 class) from a CSV whose columns `path_column`, `label`, `top1` are named
// in its header.
std::map<std::string, std::pair<int, int>> predictions(const std::filesystem::path& file, const std::string& path_column) {
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  std::vector<std::string> header;
  for (std::istringstream cells(line); std::getline(cells, line, ',');) header.push_back(line);
  auto column = [&](const std::string& name) {
    return static_cast<size_t>(std::find(header.begin(), header.end(), name) - header.begin());
  };
  const size_t path = column(path_column), label = column("label"), top1 = column("top1");
  std::map<std::string, std::pair<int, int>> rows;
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    for (std::istringstream split(line); std::getline(split, line, ',');) cells.push_back(line);
    if (cells.size() > std::max({path, label, top1}))
      rows[std::filesystem::path(cells[path]).lexically_normal().string()] = {std::stoi(cells[label]),
                                                                              std::stoi(cells[top1])};
  }
  return rows;
}

}  // namespace

TEST(PythonTeacher, ATorchvisionTrainedTeacherScoresInSsldWhatItScoresInPython) {
  TempDir dir;
  const RunResult made = ssld::test::run_program(
      "/usr/bin/python3", {SSLD_SOURCE_DIR "/tests/unit/fixtures/torchvision_teacher.py", dir.path().string()});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  dir.write("eval.toml", "[run]\nname = \"e\"\noutput_dir = \"" + (dir / "runs").string() +
                             "\"\ndevice = \"cpu\"\n[teacher]\ntype = \"torchscript\"\npath = \"" +
                             (dir / "teacher.pt").string() +
                             "\"\nprobe_shape = [3, 64, 64]\n[data.val]\nbatch_size = 250\n[[data.val.sources]]\n"
                             "type = \"image_folder\"\nroot = \"" + (dir / "test").string() +
                             "\"\n[[data.val.augment]]\ntype = \"resize\"\nsize = [64]\n"
                             "[[data.val.batch_augment]]\ntype = \"normalize\"\nmean = [0.3, 0.28, 0.25]\n"
                             "std = [0.33, 0.31, 0.3]\n");
  const RunResult eval = ssld::test::run_program(
      SSLD_BINARY, {"-q", "eval", (dir / "eval.toml").string(), "--teacher", "--predictions",
                    (dir / "ssld_predictions.csv").string()});
  ASSERT_EQ(eval.exit_code, 0) << eval.err;

  const auto python = predictions(dir / "python_predictions.csv", "path");
  const auto ssld = predictions(dir / "ssld_predictions.csv", "source");
  ASSERT_EQ(python.size(), 1500u);
  ASSERT_EQ(ssld.size(), 1500u) << "every held-out file, found by its path in the source column";
  int python_correct = 0, ssld_correct = 0, agree = 0;
  for (const auto& [path, row] : python) {
    ASSERT_TRUE(ssld.count(path)) << path;
    const auto& other = ssld.at(path);
    EXPECT_EQ(other.first, row.first) << "labels of " << path;
    python_correct += row.second == row.first;
    ssld_correct += other.second == other.first;
    agree += other.second == row.second;
  }
  const double python_top1 = 100.0 * python_correct / 1500, ssld_top1 = 100.0 * ssld_correct / 1500;
  std::cout << "top-1: python " << python_top1 << "%, ssld " << ssld_top1 << "%; per-image agreement "
            << 100.0 * agree / 1500 << "%\n";
  EXPECT_GT(python_top1, 40.0) << "the teacher learned something (chance is 10%)";
  EXPECT_LE(std::abs(python_top1 - ssld_top1), 0.1);
  EXPECT_GE(agree, 1493) << "at least 99.5% of the images get the same class";
}
