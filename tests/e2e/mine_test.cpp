// `ssld mine` end to end: exact selection with a teacher whose outputs are known
// (tests/plugins/known_teacher.cpp), the written list read back by the file_list dataset,
// planted near-duplicates of protected images removed (resized, flipped, re-encoded) while
// distinct images stay, a run killed halfway resuming to the same result, and two ranks (as
// torchrun starts them) mining the list one process mines.
#include "dist_launch.hpp"
#include "plugin_host.hpp"
#include "test_support.hpp"

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <sstream>
#include <thread>
#include <unistd.h>
#include <sys/wait.h>

namespace {

using ssld::test::RunResult;
using ssld::test::TempDir;
namespace fs = std::filesystem;

const std::string kKnownTeacher = std::string(SSLD_TEST_PLUGIN_ROOT) + "/known_teacher";

RunResult ssld_run(const std::vector<std::string>& args) {
  return ssld::test::run_program(SSLD_BINARY, args, {{"SSLD_PLUGIN_PATH", kKnownTeacher}});
}

void write_gray(const fs::path& path, int value, int size = 8) {
  fs::create_directories(path.parent_path());
  ASSERT_TRUE(cv::imwrite(path.string(), cv::Mat(size, size, CV_8UC1, cv::Scalar(value))));
}

struct ListLine {
  std::string path;
  int64_t label = -1;
  double probability = 0, score = 0;
  std::string source;  // where the image came from
};

std::vector<ListLine> read_list(const fs::path& list) {
  std::vector<ListLine> lines;
  std::istringstream in(ssld::test::read_file(list));
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    ListLine parsed;
    fields >> parsed.path >> parsed.label >> parsed.probability >> parsed.score >> std::ws;
    std::getline(fields, parsed.source);
    lines.push_back(parsed);
  }
  return lines;
}

std::string mine_config(const fs::path& candidates, const fs::path& output, const std::string& extra) {
  return "[teacher]\ntype = \"known\"\nclasses = 4\n[mine]\nbatch_size = 5\noutput = \"" + output.string() + "\"\n" +
         extra + "\n[[mine.sources]]\ntype = \"image_folder\"\nlabeled = false\nroot = \"" + candidates.string() + "\"\n";
}

double known_probability(int value) {  // the known teacher: logit v/16 for class v % 4, 0 for the other three
  const double e = std::exp(value / 16.0);
  return e / (e + 3.0);
}

TEST(MineCommand, SelectsExactlyTheTopKPerClassOfAKnownTeacherAndTheListReadsBack) {
  TempDir dir;
  // Values by file name order (the stream order); class = v % 4. Ties: 40 twice (c03, c07).
  const std::vector<int> values = {44, 8, 36, 40, 60, 13, 17, 40, 52, 21, 5, 33, 62, 1};
  for (size_t i = 0; i < values.size(); ++i) {
    char name[16];
    std::snprintf(name, sizeof(name), "c%02zu.png", i);
    write_gray(dir / "candidates" / name, values[i]);
  }
  const auto config = dir.write("mine.toml", mine_config(dir / "candidates", dir / "out",
                                                         "top_k_per_class = 2\nmin_confidence = 0.5\n"
                                                         "dedup = { method = \"none\" }"));
  const RunResult result = ssld_run({"mine", config.string()});
  ASSERT_EQ(result.exit_code, 0) << result.err;

  // Expected, worked out by hand: p > 0.5 needs v > 16 ln 3 = 17.6, so 8, 13, 17, 5, 1 fail the
  // threshold. Class 0: 44 40 40 60 52 36 -> 60 (c04), 52 (c08); class 1: 33 21 -> both (fewer
  // than k); class 2: 62 -> alone; class 3: none. The tie 40/40 is cut anyway by 60 and 52.
  const std::vector<std::pair<std::string, int>> expected = {
      {"c04.png", 60}, {"c08.png", 52}, {"c11.png", 33}, {"c09.png", 21}, {"c12.png", 62}};
  const auto lines = read_list(dir / "out" / "mined.txt");
  ASSERT_EQ(lines.size(), expected.size()) << ssld::test::read_file(dir / "out" / "mined.txt");
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(fs::path(lines[i].path).filename().string(), expected[i].first);
    EXPECT_EQ(lines[i].label, expected[i].second % 4);
    EXPECT_NEAR(lines[i].probability, known_probability(expected[i].second), 1e-6);
    EXPECT_NEAR(lines[i].score, lines[i].probability, 1e-6);
  }
  const auto summary = nlohmann::json::parse(ssld::test::read_file(dir / "out" / "summary.json"));
  EXPECT_EQ(summary["candidates"], 14);
  EXPECT_EQ(summary["selected"], 5);
  EXPECT_EQ(summary["rejected"]["below_min_confidence"], 5);
  EXPECT_EQ(summary["rejected"]["not_in_top_k"], 4);
  EXPECT_EQ(summary["per_class"][0]["predicted"], 7);
  EXPECT_EQ(summary["per_class"][3]["selected"], 0);

  // The list is a file_list: the dataset reads it back with the teacher's classes as labels.
  ssld::test::PluginHost host;
  const auto pipeline = host.pipeline("[data.val]\nbatch_size = 4\n[[data.val.sources]]\ntype = \"file_list\"\nlists = [\"" +
                                          (dir / "out" / "mined.txt").string() + "\"]\nroot = \"" +
                                          (dir / "out").string() + "\"\ngrayscale = true\n",
                                      "val");
  ASSERT_TRUE(pipeline);
  const auto& source = *pipeline->sources.at(0);
  ASSERT_EQ(source.size(), 5);
  for (int64_t i = 0; i < 5; ++i) {
    EXPECT_EQ(source.label_of(i), expected[static_cast<size_t>(i)].second % 4);
    const auto prepared = pipeline->samples->prepare(ssld::SampleRef{0, i, 0});
    EXPECT_EQ(prepared.image.size(2), 1);
    EXPECT_EQ(prepared.image.to(at::kFloat).mean().item<double>(), expected[static_cast<size_t>(i)].second);
  }

  // A second run finds the work done; --restart mines again.
  const RunResult again = ssld_run({"mine", config.string()});
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.out.find("already mined"), std::string::npos) << again.out;
}

TEST(MineCommand, NonFileCandidatesAreWrittenAsImagesTheListNames) {
  TempDir dir;
  const auto config = dir.write(
      "mine.toml", "[teacher]\ntype = \"known\"\nclasses = 4\n[mine]\ntop_k_per_class = 3\noutput = \"" +
                       (dir / "out").string() +
                       "\"\ndedup = { method = \"none\" }\n[[mine.sources]]\ntype = \"synthetic\"\ncount = 40\n"
                       "size = [8, 8]\nchannels = 1\nlabeled = false\nsubset = { range = [10, 40] }\n");
  const RunResult result = ssld_run({"mine", config.string()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto lines = read_list(dir / "out" / "mined.txt");
  ASSERT_FALSE(lines.empty());
  for (const auto& line : lines) {
    EXPECT_EQ(line.path.rfind("images/" + std::to_string(line.label) + "/", 0), 0u) << line.path;
    // Named by the sample's stable id (its index in the whole synthetic set, not in the subset),
    // and the list says where it came from.
    const std::string id = fs::path(line.path).stem().string();
    EXPECT_GE(std::stoi(id), 10) << line.path;
    EXPECT_EQ(line.source, "synthetic#" + id) << line.path;
    const cv::Mat image = cv::imread((dir / "out" / line.path).string(), cv::IMREAD_GRAYSCALE);
    ASSERT_FALSE(image.empty()) << line.path;
    EXPECT_EQ(static_cast<int64_t>(std::lround(cv::mean(image)[0])) % 4, line.label) << line.path;
  }
}

// Fashion-MNIST test images as protected PNGs; copies planted among distinct candidates.
class PlantedDuplicates : public ::testing::Test {
 protected:
  void SetUp() override {
    ssld::test::PluginHost host;
    const auto pipeline = host.pipeline(
        "[data.val]\nbatch_size = 10\n[[data.val.sources]]\ntype = \"idx\"\n"
        "images = \"/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz\"\nsubset = { range = [0, 60] }\n",
        "val");
    ASSERT_TRUE(pipeline);
    for (int64_t i = 0; i < 60; ++i) {
      const at::Tensor image = pipeline->samples->prepare(ssld::SampleRef{0, i, 0}).image.contiguous();
      images_.push_back(cv::Mat(28, 28, CV_8UC1, image.data_ptr<uint8_t>()).clone());
    }
    fs::create_directories(dir_ / "val");
    fs::create_directories(dir_ / "candidates");
    for (int i = 0; i < 20; ++i)
      cv::imwrite((dir_ / ("val/v" + std::to_string(100 + i) + ".png")).string(), images_[static_cast<size_t>(i)]);
  }
  // Planted: v0-4 upscaled to 56x56, v5-9 mirrored, v10-14 re-encoded as JPEG quality 75.
  // Distinct: test images 20..59.
  void plant() {
    for (int i = 0; i < 5; ++i) {
      cv::Mat big;
      cv::resize(images_[size_t(i)], big, cv::Size(56, 56), 0, 0, cv::INTER_LINEAR);
      cv::imwrite((dir_ / ("candidates/resized" + std::to_string(i) + ".png")).string(), big);
    }
    for (int i = 5; i < 10; ++i) {
      cv::Mat mirrored;
      cv::flip(images_[size_t(i)], mirrored, 1);
      cv::imwrite((dir_ / ("candidates/flipped" + std::to_string(i) + ".png")).string(), mirrored);
    }
    for (int i = 10; i < 15; ++i)
      cv::imwrite((dir_ / ("candidates/jpeg" + std::to_string(i) + ".jpg")).string(), images_[size_t(i)],
                  {cv::IMWRITE_JPEG_QUALITY, 75});
    for (int i = 20; i < 60; ++i)
      cv::imwrite((dir_ / ("candidates/distinct" + std::to_string(i) + ".png")).string(), images_[size_t(i)]);
  }
  std::string config(const std::string& dedup) {
    return mine_config(dir_ / "candidates", dir_ / "out",
                       "top_k_per_class = 0\ndedup = " + dedup + "\naugment = [{ type = \"resize\", size = [28, 28] }]\n") +
           "[[mine.protected.sources]]\ntype = \"image_folder\"\nlabeled = false\nroot = \"" + (dir_ / "val").string() +
           "\"\n";
  }
  // Candidate file name -> protected file name, from removed_pairs.tsv.
  std::map<std::string, std::string> removed() {
    std::map<std::string, std::string> pairs;
    std::istringstream in(ssld::test::read_file(dir_ / "out" / "removed_pairs.tsv"));
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string candidate, protected_image;
      std::getline(fields, candidate, '\t');
      std::getline(fields, protected_image, '\t');
      pairs[fs::path(candidate).filename().string()] = fs::path(protected_image).filename().string();
    }
    return pairs;
  }
  TempDir dir_;
  std::vector<cv::Mat> images_;
};

TEST_F(PlantedDuplicates, PerceptualHashRemovesResizedFlippedAndReencodedCopiesOnly) {
  plant();
  const auto file = dir_.write("mine.toml", config("{ method = \"phash\" }"));
  const RunResult result = ssld_run({"mine", file.string()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto pairs = removed();
  std::map<std::string, std::string> expected;
  for (int i = 0; i < 5; ++i) expected["resized" + std::to_string(i) + ".png"] = "v" + std::to_string(100 + i) + ".png";
  for (int i = 5; i < 10; ++i) expected["flipped" + std::to_string(i) + ".png"] = "v" + std::to_string(100 + i) + ".png";
  for (int i = 10; i < 15; ++i) expected["jpeg" + std::to_string(i) + ".jpg"] = "v" + std::to_string(100 + i) + ".png";
  EXPECT_EQ(pairs, expected);
  const auto lines = read_list(dir_ / "out" / "mined.txt");
  EXPECT_EQ(lines.size(), 40u);  // every distinct image stays
  for (const auto& line : lines) EXPECT_EQ(fs::path(line.path).filename().string().rfind("distinct", 0), 0u) << line.path;
  const auto summary = nlohmann::json::parse(ssld::test::read_file(dir_ / "out" / "summary.json"));
  EXPECT_EQ(summary["rejected"]["duplicate_of_protected"], 15);
  EXPECT_EQ(summary["protected_images"], 20);
}

TEST_F(PlantedDuplicates, TeacherFeaturesRemoveExactAndReencodedCopies) {
  for (int i = 0; i < 5; ++i)
    cv::imwrite((dir_ / ("candidates/copy" + std::to_string(i) + ".png")).string(), images_[size_t(i)]);
  for (int i = 10; i < 15; ++i)
    cv::imwrite((dir_ / ("candidates/jpeg" + std::to_string(i) + ".jpg")).string(), images_[size_t(i)],
                {cv::IMWRITE_JPEG_QUALITY, 90});
  for (int i = 20; i < 60; ++i)
    cv::imwrite((dir_ / ("candidates/distinct" + std::to_string(i) + ".png")).string(), images_[size_t(i)]);
  const auto file = dir_.write("mine.toml", config("{ method = \"feature\", feature = \"embedding\", min_cosine = 0.98 }"));
  const RunResult result = ssld_run({"mine", file.string()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto pairs = removed();
  EXPECT_EQ(pairs.size(), 10u);
  for (const auto& [candidate, protected_image] : pairs) EXPECT_EQ(candidate.rfind("distinct", 0), std::string::npos);
  EXPECT_EQ(read_list(dir_ / "out" / "mined.txt").size(), 40u);

  // A feature the teacher does not have is a config error naming the key.
  const auto bad = dir_.write("bad.toml", config("{ method = \"feature\", feature = \"pool5\" }"));
  const RunResult refused = ssld_run({"mine", bad.string()});
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("bad.toml:"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("the teacher has no feature 'pool5' (it has: embedding)"), std::string::npos) << refused.err;
}

// A slow `ssld mine` in the background (the known teacher sleeps per batch), and the batch its
// state.json has reached once it reached `at_least` (or the deadline passed).
pid_t start_slow_mining(const fs::path& config) {
  const pid_t child = fork();
  if (child == 0) {
    setenv("SSLD_PLUGIN_PATH", kKnownTeacher.c_str(), 1);
    execl(SSLD_BINARY, SSLD_BINARY, "-q", "mine", config.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return child;
}

int64_t wait_for_state(const fs::path& state, int64_t at_least) {
  int64_t reached = 0;
  for (int wait = 0; wait < 600 && reached < at_least; ++wait) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (!fs::exists(state)) continue;
    try {
      reached = nlohmann::json::parse(ssld::test::read_file(state))["tally"]["next_step"].get<int64_t>();
    } catch (const std::exception&) {
    }
  }
  return reached;
}

class InterruptedMining : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 300; ++i) {
      char name[16];
      std::snprintf(name, sizeof(name), "c%03d.png", i);
      write_gray(dir / "candidates" / name, (i * 37) % 101);
    }
    const auto straight = dir.write("straight.toml", mine_config(dir / "candidates", dir / "straight", options));
    ASSERT_EQ(ssld_run({"mine", straight.string()}).exit_code, 0);
    std::string slow = mine_config(dir / "candidates", dir / "cut", options);
    slow.replace(slow.find("classes = 4"), 11, "classes = 4\ndelay_ms = 60");
    cut = dir.write("cut.toml", slow);
  }

  // --resume ends with the uninterrupted run's list and counts.
  void expect_resume_gives_the_straight_result() {
    const RunResult resumed = ssld_run({"mine", cut.string(), "--resume"});
    ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
    EXPECT_EQ(ssld::test::read_file(dir / "cut" / "mined.txt"), ssld::test::read_file(dir / "straight" / "mined.txt"));
    const auto a = nlohmann::json::parse(ssld::test::read_file(dir / "cut" / "summary.json"));
    const auto b = nlohmann::json::parse(ssld::test::read_file(dir / "straight" / "summary.json"));
    EXPECT_EQ(a["rejected"], b["rejected"]);
    EXPECT_EQ(a["per_class"], b["per_class"]);
    EXPECT_EQ(a["confidence_histogram"], b["confidence_histogram"]);
    EXPECT_EQ(a["candidates"], 300);
  }

  TempDir dir;
  const std::string options = "top_k_per_class = 7\ncheckpoint_every = 2\ndedup = { method = \"none\" }\n";
  fs::path cut;
};

TEST_F(InterruptedMining, AKilledRunResumesToTheSameResult) {
  const pid_t child = start_slow_mining(cut);
  // Kill it (no chance to clean up) once a state past a few batches is on disk.
  const int64_t reached = wait_for_state(dir / "cut" / "state.json", 10);
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_GE(reached, 10);
  ASSERT_FALSE(fs::exists(dir / "cut" / "mined.txt")) << "the run finished before it was killed";

  const RunResult refused = ssld_run({"mine", cut.string()});
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("--resume"), std::string::npos) << refused.err;
  expect_resume_gives_the_straight_result();
}

// SIGINT saves the state after the current batch (not at the next checkpoint_every) and exits 3.
TEST_F(InterruptedMining, SigintSavesTheStateAtOnceAndResumesToTheSameResult) {
  const pid_t child = start_slow_mining(cut);
  const int64_t reached = wait_for_state(dir / "cut" / "state.json", 4);
  ASSERT_GE(reached, 4);
  std::this_thread::sleep_for(std::chrono::milliseconds(90));  // into an odd batch: between checkpoints
  kill(child, SIGINT);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 3);
  ASSERT_FALSE(fs::exists(dir / "cut" / "mined.txt")) << "the run finished before the signal";
  const auto state = nlohmann::json::parse(ssld::test::read_file(dir / "cut" / "state.json"));
  EXPECT_GT(state["tally"]["next_step"].get<int64_t>(), reached);
  EXPECT_FALSE(state["done"].get<bool>());
  expect_resume_gives_the_straight_result();
}

// Each rank mines its shard, rank 0 merges: the list and every count are the single process's
// (203 candidates: the shards differ in size), the shard folders are gone, rank 0 reports; the
// same with the ranks started by `--nproc-per-node 2`.
TEST(MineCommand, TwoRanksMineTheListOneProcessMines) {
  TempDir dir;
  for (int i = 0; i < 203; ++i) {
    char name[16];
    std::snprintf(name, sizeof(name), "c%03d.png", i);
    write_gray(dir / "candidates" / name, (i * 37) % 101);
  }
  const std::string options =
      "top_k_per_class = 7\nmin_confidence = 0.6\ncheckpoint_every = 4\ndedup = { method = \"none\" }\n";
  const auto one = dir.write("one.toml", mine_config(dir / "candidates", dir / "one", options));
  const auto two = dir.write("two.toml", mine_config(dir / "candidates", dir / "two", options));
  const RunResult single = ssld_run({"mine", one.string()});
  ASSERT_EQ(single.exit_code, 0) << single.err;

  ssld::test::LaunchedRanks ranks(SSLD_BINARY, {"mine", two.string()}, 2, dir / "logs",
                                  {{"SSLD_PLUGIN_PATH", kKnownTeacher}});
  const auto results = ranks.wait();
  for (size_t rank = 0; rank < results.size(); ++rank)
    ASSERT_EQ(results[rank].exit_code, 0) << "rank " << rank << ": " << results[rank].err;
  EXPECT_EQ(ssld::test::read_file(dir / "two" / "mined.txt"), ssld::test::read_file(dir / "one" / "mined.txt"));
  const auto a = nlohmann::json::parse(ssld::test::read_file(dir / "two" / "summary.json"));
  const auto b = nlohmann::json::parse(ssld::test::read_file(dir / "one" / "summary.json"));
  EXPECT_EQ(a["candidates"], 203);
  EXPECT_EQ(a["selected"], b["selected"]);
  EXPECT_EQ(a["rejected"], b["rejected"]);
  EXPECT_EQ(a["per_class"], b["per_class"]);
  EXPECT_EQ(a["confidence_histogram"], b["confidence_histogram"]);
  EXPECT_FALSE(fs::exists(dir / "two" / "shards"));
  EXPECT_NE(results[0].out.find("list: "), std::string::npos) << results[0].out;
  EXPECT_NE(results[1].out.find("rank 1: "), std::string::npos) << results[1].out;

  // `--nproc-per-node 2` starts the two ranks itself, to the same list.
  const auto three = dir.write("three.toml", mine_config(dir / "candidates", dir / "three", options));
  const RunResult launched = ssld_run({"mine", three.string(), "--nproc-per-node", "2"});
  ASSERT_EQ(launched.exit_code, 0) << launched.err;
  EXPECT_EQ(ssld::test::read_file(dir / "three" / "mined.txt"), ssld::test::read_file(dir / "one" / "mined.txt"));
  EXPECT_FALSE(fs::exists(dir / "three" / "shards"));

  // Done is done whatever the world size: one process finds the merged list.
  const RunResult again = ssld_run({"mine", two.string()});
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.out.find("already mined"), std::string::npos) << again.out;
}

TEST(MineCommand, BadOptionsAreConfigErrorsWithTheirPlace) {
  TempDir dir;
  write_gray(dir / "candidates" / "a.png", 10);
  const auto config = dir.write(
      "mine.toml", mine_config(dir / "candidates", dir / "out",
                               "top_k_per_clas = 3\nscore = \"confidence\"\nclasses = [7]\ndedup = { method = \"none\" }"));
  const RunResult result = ssld_run({"mine", config.string()});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("mine.toml:"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("did you mean 'top_k_per_class'"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("confidence"), std::string::npos) << result.err;
}

}  // namespace
