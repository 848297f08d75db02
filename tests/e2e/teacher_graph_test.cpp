// A teacher compiled for inference: a checkpoint teacher trained here on Fashion-MNIST, run as a
// frozen inference graph (BatchNorm folded into the convolutions), predicts the same class for
// every image of Fashion-MNIST's 10k test set as the network run as loaded, with the same
// probabilities to the CSV's 5 decimals.
#include "fmnist_subset.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

using ssld::test::RunResult;
using ssld::test::TempDir;

namespace {

// The rows of an `ssld eval --predictions` CSV, split into cells, without the header.
std::vector<std::vector<std::string>> csv_rows(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  std::vector<std::vector<std::string>> rows;
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    for (std::istringstream split(line); std::getline(split, line, ',');) cells.push_back(line);
    rows.push_back(std::move(cells));
  }
  return rows;
}

}  // namespace

TEST(TeacherGraph, AFoldedCheckpointTeacherPredictsWhatItPredictsAsLoadedOnTheTestSet) {
  TempDir dir;
  const std::string architecture = "type = \"small_cnn\"\nwidth = 16\ndepth = 2\n";
  dir.write("train.toml", ssld::test::one_thread_run_tables("t") +
                              ssld::test::fmnist_data_tables({2000, 64, true, true, 0, 250}) + "[student]\n" +
                              architecture + "[[loss]]\ntype = \"ce\"\n[train]\nepochs = 2\nlr = 0.05\n");
  const RunResult trained = ssld::test::run_program(SSLD_BINARY, {"-q", "train", (dir / "train.toml").string()});
  ASSERT_EQ(trained.exit_code, 0) << trained.err;

  const std::string weights = (dir / "runs" / "t" / "main" / "student.safetensors").string();
  dir.write("eval.toml", ssld::test::one_thread_run_tables("e") +
                             ssld::test::fmnist_data_tables({64, 64, true, false, 10000, 500}) + "[student]\n" +
                             architecture + "[teacher]\ntype = \"checkpoint\"\nweights = \"" + weights +
                             "\"\nstudent = { type = \"small_cnn\", width = 16, depth = 2 }\n");
  auto evaluate = [&](const std::string& optimize) {
    const auto csv = dir / ("predictions_" + optimize + ".csv");
    const RunResult result = ssld::test::run_program(
        SSLD_BINARY, {"eval", (dir / "eval.toml").string(), "--teacher", "--predictions", csv.string(), "--set",
                      "teacher.optimize=" + optimize});
    EXPECT_EQ(result.exit_code, 0) << result.err;
    return std::make_pair(result, csv_rows(csv));
  };
  const auto [loaded_run, loaded] = evaluate("off");
  const auto [graph_run, graph] = evaluate("on");
  EXPECT_EQ(loaded_run.err.find("frozen inference graph"), std::string::npos) << loaded_run.err;
  EXPECT_NE(graph_run.err.find("frozen inference graph (logits within"), std::string::npos)
      << "the graph is not in use: " << graph_run.err;
  const auto accuracy_line = [](const std::string& out) { return out.substr(0, out.find('\n')); };
  EXPECT_EQ(accuracy_line(graph_run.out), accuracy_line(loaded_run.out)) << "the same top-1 and top-5";
  ASSERT_EQ(loaded.size(), 10000u);
  ASSERT_EQ(graph.size(), loaded.size());
  size_t top1_differences = 0;
  double probability_difference = 0;
  for (size_t i = 0; i < loaded.size(); ++i) {
    ASSERT_EQ(loaded[i].size(), 13u);
    top1_differences += loaded[i][3] != graph[i][3];
    for (size_t p = 8; p < 13; ++p)
      probability_difference =
          std::max(probability_difference, std::abs(std::stod(loaded[i][p]) - std::stod(graph[i][p])));
  }
  EXPECT_EQ(top1_differences, 0u);
  EXPECT_LT(probability_difference, 1.5e-5) << "one unit of the CSV's last decimal at most";
}
