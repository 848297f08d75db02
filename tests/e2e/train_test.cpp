// `ssld train` end to end on a Fashion-MNIST subset: it learns, stages hand weights on,
// an interrupted and resumed run ends bit-identical to an uninterrupted one, and the
// non-finite policy stops a diverging run with a clear message.
#include "fmnist_subset.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <random>
#include <csignal>
#include <fstream>
#include <iostream>
#include <thread>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

using ssld::test::RunResult;
using ssld::test::TempDir;

namespace {

const std::string kSsld = SSLD_BINARY;

// 2000 labeled training images, 1000 test images, a tiny CNN.
std::string small_config(const std::string& extra = "") {
  return ssld::test::one_thread_run_tables("t") + ssld::test::fmnist_data_tables({2000, 64, true, true, 1000, 250}) +
         R"([student]
type = "small_cnn"
width = 8
depth = 2
[[loss]]
type = "ce"
[train]
epochs = 3
lr = 0.05
warmup_epochs = 0.2
log_every = 5
)" + extra;
}

RunResult train(const TempDir& dir, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args = {"-q", "train", (dir / "c.toml").string()};
  args.insert(args.end(), extra.begin(), extra.end());
  return ssld::test::run_program(kSsld, args);
}

nlohmann::json summary_of(const std::filesystem::path& stage_folder) {
  std::ifstream in(stage_folder / "summary.json");
  return nlohmann::json::parse(in);
}

nlohmann::json summary(const TempDir& dir, const std::string& stage) { return summary_of(dir / "runs" / "t" / stage); }

// `ssld train` interrupted by SIGTERM once its first steps are logged; the exit status (3 when
// it stopped after writing a checkpoint).
int train_until_interrupted(const TempDir& dir) {
  return ssld::test::interrupt_once_written(kSsld, {"-q", "train", (dir / "c.toml").string()},
                                            dir / "runs" / "t" / "main" / "metrics_steps.jsonl");
}

}  // namespace

TEST(Train, LearnsFashionMnistWellAboveChanceAndWritesItsRunFolder) {
  TempDir dir;
  dir.write("c.toml", small_config());
  const auto start = std::chrono::steady_clock::now();
  const RunResult result = train(dir);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 120.0);
  const auto folder = dir / "runs" / "t" / "main";
  for (const char* file : {"config.toml", "metrics_steps.jsonl", "metrics_epochs.jsonl", "metrics_epochs.csv",
                           "best.safetensors", "student.safetensors", "checkpoints/last.safetensors", "summary.json"})
    EXPECT_TRUE(std::filesystem::exists(folder / file)) << file;
  EXPECT_TRUE(std::filesystem::exists(dir / "runs" / "t" / "results.md"));
  // Every run draws its stage's plots, results.md links them, each renders (rsvg-convert), and
  // `ssld report RUN_FOLDER` draws the same bytes again.
  const std::string results_md = ssld::test::read_file(dir / "runs" / "t" / "results.md");
  for (const char* plot : {"loss.svg", "lr.svg", "accuracy.svg"}) {
    EXPECT_NE(results_md.find(std::string("(main/") + plot + ")"), std::string::npos) << results_md;
    const auto svg = folder / plot, png = dir / (std::string(plot) + ".png");
    ASSERT_TRUE(std::filesystem::exists(svg)) << plot;
    const RunResult rendered = ssld::test::run_program("/usr/bin/rsvg-convert", {"-o", png.string(), svg.string()});
    EXPECT_EQ(rendered.exit_code, 0) << plot << ": " << rendered.err;
    EXPECT_EQ(ssld::test::read_file(png).substr(1, 3), "PNG") << plot;
  }
  EXPECT_NE(ssld::test::read_file(folder / "loss.svg").find(">ce</text>"), std::string::npos) << "the ce term's line";
  EXPECT_NE(ssld::test::read_file(folder / "accuracy.svg").find(">top-5</text>"), std::string::npos);
  const std::string drawn = ssld::test::read_file(folder / "accuracy.svg");
  std::filesystem::remove(folder / "accuracy.svg");
  const RunResult redrawn = ssld::test::run_program(kSsld, {"report", (dir / "runs" / "t").string()});
  EXPECT_EQ(redrawn.exit_code, 0) << redrawn.err;
  EXPECT_EQ(ssld::test::read_file(folder / "accuracy.svg"), drawn);
  const double top1 = summary(dir, "main").at("result").at("best_top1").get<double>();
  EXPECT_GT(top1, 60.0) << "chance is 10%";
  EXPECT_NE(result.out.find("| main | small_cnn |"), std::string::npos) << result.out;

  // `ssld eval` reproduces the best epoch's accuracy from its weights and writes predictions.
  const RunResult eval = ssld::test::run_program(
      kSsld, {"-q", "eval", (dir / "c.toml").string(), "--weights", (folder / "best.safetensors").string(),
              "--predictions", (dir / "predictions.csv").string()});
  ASSERT_EQ(eval.exit_code, 0) << eval.err;
  char expected[64];
  std::snprintf(expected, sizeof(expected), "top-1 %.2f%%", top1);
  EXPECT_NE(eval.out.find(expected), std::string::npos) << eval.out << " expected " << expected;
  std::ifstream predictions(dir / "predictions.csv");
  std::string header;
  std::getline(predictions, header);
  EXPECT_EQ(header, "id,source,label,top1,top2,top3,top4,top5,p1,p2,p3,p4,p5");
  int rows = 0;
  std::string first_row;
  for (std::string line; std::getline(predictions, line);) first_row = rows++ ? first_row : line;
  EXPECT_EQ(rows, 1000);
  // Each row names the image behind it: the IDX file and the index in it (the id here).
  EXPECT_EQ(first_row.rfind("0,/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz#0,", 0), 0u) << first_row;

  // `ssld export` writes the best weights in torch.save's format; evaluating that file, or
  // starting the student from it (`student.weights`), gives the same accuracy.
  const RunResult exported = ssld::test::run_program(
      kSsld, {"-q", "export", (dir / "c.toml").string(), "--output", (dir / "student.pth").string()});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  const RunResult from_pth = ssld::test::run_program(
      kSsld, {"-q", "eval", (dir / "c.toml").string(), "--weights", (dir / "student.pth").string()});
  EXPECT_NE(from_pth.out.find(expected), std::string::npos) << from_pth.out << from_pth.err;
  const RunResult as_init = ssld::test::run_program(
      kSsld, {"-q", "eval", (dir / "c.toml").string(), "--set", "student.weights=" + (dir / "student.pth").string()});
  EXPECT_NE(as_init.out.find(expected), std::string::npos) << as_init.out << as_init.err;

  // A second invocation finds the stage finished and skips it.
  const RunResult again = train(dir);
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(summary(dir, "main").at("result").at("best_top1").get<double>(), top1);
}

TEST(Train, StagesDistillFromAnEarlierStageAndFineTuneFromIt) {
  TempDir dir;
  dir.write("c.toml", small_config(R"(
[[stage]]
name = "teacher"
student = { width = 16 }
train = { epochs = 2 }
[[stage]]
name = "distill"
teacher = { stage = "teacher" }
loss = [{ type = "ssld" }]
train = { epochs = 2 }
[[stage]]
name = "finetune"
student = { init_from = "distill", init_which = "last" }
train = { epochs = 1, lr = 0.005, warmup_epochs = 0.0 }
)"));
  const RunResult result = train(dir);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto distill = summary(dir, "distill").at("result");
  EXPECT_GT(distill.at("teacher_top1").get<double>(), 50.0);
  EXPECT_GT(distill.at("best_top1").get<double>(), 25.0);  // learned from predictions alone; chance is 10%
  EXPECT_EQ(summary(dir, "distill").at("labels_used").get<int64_t>(), 0);
  EXPECT_EQ(summary(dir, "finetune").at("labels_used").get<int64_t>(), 2000);
  // The run's own figure: every stage's top-1 in one plot, linked from results.md, rendering.
  const auto run_plot = dir / "runs" / "t" / "accuracy.svg";
  const std::string svg = ssld::test::read_file(run_plot);
  for (const char* stage : {">teacher top-1<", ">distill top-1<", ">finetune top-1<"})
    EXPECT_NE(svg.find(stage), std::string::npos) << stage;
  EXPECT_NE(ssld::test::read_file(dir / "runs" / "t" / "results.md").find("(accuracy.svg)"), std::string::npos);
  EXPECT_EQ(ssld::test::run_program("/usr/bin/rsvg-convert", {"-o", (dir / "run.png").string(), run_plot.string()})
                .exit_code,
            0);
  // The fine-tuning started from the distilled weights: after one epoch at a tiny learning
  // rate it is about as good as they were, not back near chance.
  std::ifstream epochs(dir / "runs" / "t" / "finetune" / "metrics_epochs.jsonl");
  std::string line;
  std::getline(epochs, line);
  const auto first = nlohmann::json::parse(line);
  EXPECT_GT(first.at("top1").get<double>(), distill.at("final_top1").get<double>() - 5.0);
}

// A labels-only stage beside a teacher (a sweep's baseline row): the teacher's accuracy is still
// measured, but no step runs it, since no loss reads it (it took 70% of the step time before).
TEST(Train, ATeacherNoLossReadsIsEvaluatedButNotRunInTheSteps) {
  TempDir dir;
  dir.write("c.toml", small_config(R"(
[[stage]]
name = "teacher"
train = { epochs = 1 }
[[stage]]
name = "labels"
teacher = { stage = "teacher" }
train = { epochs = 1 }
)"));
  const RunResult result = train(dir);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto labels = summary(dir, "labels").at("result");
  EXPECT_GT(labels.at("teacher_top1").get<double>(), 20.0);  // chance is 10%
  EXPECT_EQ(labels.at("teacher_share").get<double>(), 0.0);
}

TEST(Train, InterruptedAndResumedEqualsUninterrupted) {
  TempDir straight, interrupted;
  straight.write("c.toml", small_config());
  interrupted.write("c.toml", small_config());
  ASSERT_EQ(train(straight).exit_code, 0);

  // SIGTERM after the first logged steps: the step finishes, a checkpoint is written, and the
  // exit code says so.
  ASSERT_EQ(train_until_interrupted(interrupted), 3) << "expected the documented 'interrupted' exit code";
  EXPECT_TRUE(std::filesystem::exists(interrupted / "runs" / "t" / "main" / "checkpoints" / "last.safetensors"));

  const RunResult refused = train(interrupted);  // neither --resume nor --restart: nothing is lost
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("--resume"), std::string::npos) << refused.err;

  const RunResult resumed = train(interrupted, {"--resume"});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(ssld::test::read_file(straight / "runs" / "t" / "main" / "student.safetensors"),
            ssld::test::read_file(interrupted / "runs" / "t" / "main" / "student.safetensors"))
      << "resumed weights differ from the uninterrupted run's";
}

// kill -9 at random moments, each time resuming, until the run finishes (in new rounds until
// at least 20 kills landed): the final weights equal the uninterrupted run's every time.
TEST(Train, KilledAtRandomMomentsAndResumedEqualsUninterrupted) {
  const std::string config = small_config("checkpoint_every_steps = 4\n");
  TempDir straight;
  straight.write("c.toml", config);
  ASSERT_EQ(train(straight).exit_code, 0);
  const std::string expected = ssld::test::read_file(straight / "runs" / "t" / "main" / "student.safetensors");

  // Each try is killed at a random moment 0-400 ms after it wrote a new checkpoint, so every try
  // makes progress however slow the machine is, and kills land in steps and in writes alike.
  std::mt19937 random(20261202);
  std::uniform_int_distribution<int> delay_ms(0, 400);
  int kills = 0;
  for (int round = 0; kills < 20 && round < 10; ++round) {
    TempDir dir;
    dir.write("c.toml", config);
    const auto summary_file = dir / "runs" / "t" / "main" / "summary.json";
    const auto checkpoint = dir / "runs" / "t" / "main" / "checkpoints" / "last.safetensors";
    auto written = [&] {
      std::error_code error;
      const auto time = std::filesystem::last_write_time(checkpoint, error);
      return error ? std::filesystem::file_time_type::min() : time;
    };
    for (int attempt = 0; attempt < 200 && !std::filesystem::exists(summary_file); ++attempt) {
      const auto before = written();
      const pid_t child = fork();
      if (child == 0) {
        const std::string path = (dir / "c.toml").string();
        if (!std::freopen("/dev/null", "w", stdout)) _exit(126);  // the results table of each finished try
        execl(kSsld.c_str(), kSsld.c_str(), "-q", "train", path.c_str(), "--resume", static_cast<char*>(nullptr));
        _exit(127);
      }
      int status = 0;
      pid_t done = 0;
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(120);
      while ((done = waitpid(child, &status, WNOHANG)) == 0 && written() == before &&
             std::chrono::steady_clock::now() < give_up)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      if (done == 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(random)));
        done = waitpid(child, &status, WNOHANG);
      }
      if (done == 0) {
        kill(child, SIGKILL);
        waitpid(child, &status, 0);
        ++kills;
      } else {
        ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "a resumed run failed after " << kills << " kills";
      }
    }
    ASSERT_TRUE(std::filesystem::exists(summary_file));
    EXPECT_EQ(ssld::test::read_file(dir / "runs" / "t" / "main" / "student.safetensors"), expected)
        << "round " << round << ": weights after kill -9 and --resume differ from the uninterrupted run's";
  }
  EXPECT_GE(kills, 20);
  std::cout << kills << " kill -9 survived, every round bit-identical\n";
}

// A write that fails (here: past `ulimit -f`) stops the run with exit 2 naming the file, leaves
// no temporary behind and the last checkpoint intact: a later --resume ends bit-identical.
TEST(Train, AFailingWriteStopsCleanlyAndTheRunResumesExactly) {
  TempDir straight, limited;
  straight.write("c.toml", small_config());
  limited.write("c.toml", small_config());
  ASSERT_EQ(train(straight).exit_code, 0);
  ASSERT_EQ(train_until_interrupted(limited), 3);
  const auto checkpoint = limited / "runs" / "t" / "main" / "checkpoints" / "last.safetensors";
  const std::string before = ssld::test::read_file(checkpoint);

  int err_pipe[2];
  ASSERT_EQ(pipe(err_pipe), 0);
  const pid_t child = fork();
  if (child == 0) {
    struct rlimit limit {16 << 10, 16 << 10};  // smaller than any weights file of this run
    setrlimit(RLIMIT_FSIZE, &limit);
    dup2(err_pipe[1], STDERR_FILENO);
    if (!std::freopen("/dev/null", "w", stdout)) _exit(126);
    const std::string path = (limited / "c.toml").string();
    execl(kSsld.c_str(), kSsld.c_str(), "-q", "train", path.c_str(), "--resume", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(err_pipe[1]);
  std::string err;
  char buffer[4096];
  for (ssize_t got; (got = read(err_pipe[0], buffer, sizeof(buffer))) > 0;) err.append(buffer, static_cast<size_t>(got));
  close(err_pipe[0]);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status) << " (SIGXFSZ not ignored?)";
  EXPECT_EQ(WEXITSTATUS(status), 2) << err;
  EXPECT_NE(err.find("cannot write '"), std::string::npos) << err;
  EXPECT_NE(err.find("File too large"), std::string::npos) << err;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(limited / "runs"))
    EXPECT_EQ(entry.path().filename().string().find(".tmp-"), std::string::npos) << entry.path();
  EXPECT_EQ(ssld::test::read_file(checkpoint), before) << "the last checkpoint changed";

  const RunResult resumed = train(limited, {"--resume"});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(ssld::test::read_file(straight / "runs" / "t" / "main" / "student.safetensors"),
            ssld::test::read_file(limited / "runs" / "t" / "main" / "student.safetensors"));
}

TEST(Train, ResumeRefusesAChangedConfig) {
  TempDir dir;
  dir.write("c.toml", small_config());
  ASSERT_EQ(train_until_interrupted(dir), 3);
  const RunResult changed = train(dir, {"--resume", "--set", "train.lr=0.01"});
  EXPECT_EQ(changed.exit_code, 2);
  EXPECT_NE(changed.err.find("refusing to resume"), std::string::npos) << changed.err;
  EXPECT_NE(changed.err.find("config changed"), std::string::npos) << changed.err;
  EXPECT_NE(changed.err.find("train.lr: 0.05 then, 0.01 now"), std::string::npos) << changed.err;
  const std::string kept = ssld::test::read_file(dir / "runs" / "t" / "main" / "config.toml");
  EXPECT_NE(kept.find("lr = 0.05"), std::string::npos) << "a refused resume must keep the run's config.toml";
  // What cannot change the result does not block: the log cadence and the loader's threads.
  const RunResult resumed = train(dir, {"--resume", "--set", "train.log_every=7", "--set", "data.threads=2"});
  EXPECT_EQ(resumed.exit_code, 0) << resumed.err;
}

TEST(Train, DivergingRunSkipsNonFiniteStepsThenStops) {
  TempDir dir;
  dir.write("c.toml", small_config());
  const RunResult result = train(dir, {"--set", "train.lr=1e30", "--set", "train.max_nonfinite_steps=3"});
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_NE(result.err.find("consecutive steps had a non-finite loss or gradient"), std::string::npos) << result.err;
}

// A student scripted in Python trains in ssld and goes back to Python as TorchScript: the
// exported file, loaded with torch.jit.load, scores what `ssld eval` reports for it.
TEST(Train, TorchScriptStudentTrainsAndGoesBackToPython) {
  TempDir dir;
  const RunResult fixtures = ssld::test::run_program(
      "/usr/bin/python3", {SSLD_SOURCE_DIR "/tests/unit/fixtures/make_torchscript_teachers.py", dir.path().string()});
  ASSERT_EQ(fixtures.exit_code, 0) << fixtures.err;
  const std::string scripted = (dir / "tensor.pt").string();
  std::string config = small_config();
  const std::string small_cnn = "type = \"small_cnn\"\nwidth = 8\ndepth = 2\n";
  config.replace(config.find(small_cnn), small_cnn.size(),
                 "type = \"torchscript\"\npath = \"" + scripted + "\"\nprobe_shape = [1, 28, 28]\n");
  dir.write("c.toml", config);
  const RunResult trained = train(dir);
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  const double top1 = summary(dir, "main").at("result").at("best_top1").get<double>();
  EXPECT_GT(top1, 20.0) << "chance is 10%; the scripted model is one 6-channel convolution";

  const std::string exported = (dir / "trained.pt").string();
  const RunResult export_result = ssld::test::run_program(
      kSsld, {"-q", "export", (dir / "c.toml").string(), "--torchscript", scripted, "--output", exported});
  ASSERT_EQ(export_result.exit_code, 0) << export_result.err;
  const RunResult python = ssld::test::run_program(
      "/usr/bin/python3", {SSLD_SOURCE_DIR "/tests/unit/fixtures/torchscript_accuracy.py", exported, "1000"});
  ASSERT_EQ(python.exit_code, 0) << python.err;
  char expected[64];
  std::snprintf(expected, sizeof(expected), "top-1 %.2f%%", top1);
  EXPECT_NE(python.out.find(expected), std::string::npos) << python.out << " expected " << expected;

  // A template with other names is refused with the offending keys.
  const RunResult mismatch = ssld::test::run_program(
      kSsld, {"-q", "export", (dir / "c.toml").string(), "--torchscript", (dir / "seven.pt").string(), "--output",
              (dir / "x.pt").string()});
  EXPECT_EQ(mismatch.exit_code, 2);
  EXPECT_NE(mismatch.err.find("shape mismatch (file vs model) fc.weight [10, 6] vs [7, 6]"), std::string::npos)
      << mismatch.err;
}

// [teacher_cache]: soft labels stored by one run and read by the next train the same student,
// bit for bit, as the teacher running online; `ssld cache-teacher` fills a store ahead; a
// store of another teacher is refused in read mode, naming what differs.
// Two runs fill one teacher-cache key at the same moment (key.json, the epoch files, the
// teacher accuracy beside them), 20 times: neither fails and both train the online run's student.
TEST(Train, TwoRunsFillingOneTeacherCacheKeyAtOnceBothSucceed) {
  TempDir dir;
  dir.write("c.toml", small_config());
  ASSERT_EQ(train(dir, {"--set", "train.epochs=1"}).exit_code, 0);
  std::filesystem::copy_file(dir / "runs" / "t" / "main" / "student.safetensors", dir / "teacher.safetensors");
  const std::string distill = "[teacher]\ntype = \"checkpoint\"\nweights = \"teacher.safetensors\"\n"
                              "student = { type = \"small_cnn\", width = 8, depth = 2 }\n";
  auto named = [](std::string config, const std::string& name) {
    return config.replace(config.find("name = \"t\""), 10, "name = \"" + name + "\"");
  };
  const std::vector<std::string> settings = {"--set", "loss.0.type=ssld", "--set", "train.epochs=1"};
  dir.write("online.toml", named(small_config(distill), "online"));
  std::vector<std::string> online = {"-q", "train", (dir / "online.toml").string()};
  online.insert(online.end(), settings.begin(), settings.end());
  ASSERT_EQ(ssld::test::run_program(kSsld, online).exit_code, 0);
  const std::string expected = ssld::test::read_file(dir / "runs" / "online" / "main" / "student.safetensors");

  for (int trial = 0; trial < 20; ++trial) {
    const std::string store = "store" + std::to_string(trial);
    std::vector<pid_t> children;
    for (const std::string name : {"a", "b"}) {
      const auto config = dir.write(name + std::to_string(trial) + ".toml",
                                    named(small_config(distill + "[teacher_cache]\nstore = \"" + store + "\"\n"),
                                          name + std::to_string(trial)));
      const pid_t child = fork();
      if (child == 0) {
        if (!std::freopen("/dev/null", "w", stdout)) _exit(126);
        execl(kSsld.c_str(), kSsld.c_str(), "-q", "train", config.c_str(), "--set", "loss.0.type=ssld", "--set",
              "train.epochs=1", static_cast<char*>(nullptr));
        _exit(127);
      }
      children.push_back(child);
    }
    for (const pid_t child : children) {
      int status = 0;
      waitpid(child, &status, 0);
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "trial " << trial << ": a run failed";
    }
    for (const std::string name : {"a", "b"})
      EXPECT_EQ(ssld::test::read_file(dir / "runs" / (name + std::to_string(trial)) / "main" / "student.safetensors"),
                expected)
          << "trial " << trial << ", run " << name;
    std::vector<std::filesystem::path> keys(std::filesystem::directory_iterator(dir / store), {});
    ASSERT_EQ(keys.size(), 1u);
    EXPECT_TRUE(std::filesystem::exists(keys[0] / "epoch_00000.bin"));
  }
}

// `ssld cache-teacher` and `ssld train` get the teacher's soft labels from one source, so the
// epoch a run fills and the one filled ahead are the same bytes, also in channels_last (where
// the teacher's weights are converted with the batches).
TEST(Train, CacheTeacherStoresTheSoftLabelsTrainingComputes) {
  TempDir dir;
  dir.write("c.toml", small_config());
  ASSERT_EQ(train(dir, {"--set", "train.epochs=1"}).exit_code, 0);
  std::filesystem::copy_file(dir / "runs" / "t" / "main" / "student.safetensors", dir / "teacher.safetensors");
  dir.write("cached.toml", small_config("[teacher]\ntype = \"checkpoint\"\nweights = \"teacher.safetensors\"\n"
                                        "student = { type = \"small_cnn\", width = 8, depth = 2 }\n"
                                        "[teacher_cache]\nformat = \"fp32\"\n"));
  for (const std::string layout : {"false", "true"}) {
    const std::vector<std::string> settings = {"--set", "loss.0.type=ssld", "--set", "train.epochs=1",
                                               "--set", "train.channels_last=" + layout};
    auto with_store = [&](std::vector<std::string> args, const std::string& store) {
      args.insert(args.end(), settings.begin(), settings.end());
      args.insert(args.end(), {"--set", "teacher_cache.store=" + (dir / store).string()});
      return ssld::test::run_program(kSsld, args);
    };
    const RunResult ahead = with_store({"-q", "cache-teacher", (dir / "cached.toml").string()}, "ahead" + layout);
    ASSERT_EQ(ahead.exit_code, 0) << ahead.err;
    const RunResult filled = with_store({"-q", "train", (dir / "cached.toml").string(), "--restart"}, "filled" + layout);
    ASSERT_EQ(filled.exit_code, 0) << filled.err;
    std::vector<std::filesystem::path> keys(std::filesystem::directory_iterator(dir / ("ahead" + layout)), {});
    ASSERT_EQ(keys.size(), 1u);
    const auto key = keys[0].filename();
    ASSERT_TRUE(std::filesystem::exists(dir / ("filled" + layout) / key / "epoch_00000.bin")) << "another key";
    EXPECT_TRUE(ssld::test::read_file(dir / ("ahead" + layout) / key / "epoch_00000.bin") ==
                ssld::test::read_file(dir / ("filled" + layout) / key / "epoch_00000.bin"))
        << "the soft labels differ, channels_last = " << layout;
  }
}

TEST(Train, TeacherCacheTrainsBitIdenticalStudentsAndRefusesAnotherTeachersStore) {
  TempDir dir;
  dir.write("c.toml", small_config());
  ASSERT_EQ(train(dir, {"--set", "train.epochs=1"}).exit_code, 0);
  std::filesystem::copy_file(dir / "runs" / "t" / "main" / "student.safetensors", dir / "teacher.safetensors");
  const std::string distill = R"(
[teacher]
type = "checkpoint"
weights = "teacher.safetensors"
student = { type = "small_cnn", width = 8, depth = 2 }
)";
  const std::vector<std::string> ssld_loss = {"--set", "loss.0.type=ssld", "--set", "train.epochs=2"};
  auto run = [&](const std::string& config, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"-q", "train", (dir / config).string()};
    args.insert(args.end(), ssld_loss.begin(), ssld_loss.end());
    args.insert(args.end(), extra.begin(), extra.end());
    return ssld::test::run_program(kSsld, args);
  };
  auto student = [&](const std::string& name) {
    return ssld::test::read_file(dir / "runs" / name / "main" / "student.safetensors");
  };
  auto named = [](std::string config, const std::string& name) {
    return config.replace(config.find("name = \"t\""), 10, "name = \"" + name + "\"");
  };
  dir.write("online.toml", named(small_config(distill), "online"));
  dir.write("cached.toml", named(small_config(distill + "[teacher_cache]\nstore = \"store\"\n"), "cached"));
  const RunResult online = run("online.toml");
  ASSERT_EQ(online.exit_code, 0) << online.err;
  const RunResult filling = run("cached.toml");
  ASSERT_EQ(filling.exit_code, 0) << filling.err;
  std::vector<std::filesystem::path> keys(std::filesystem::directory_iterator(dir / "store"), {});
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_TRUE(std::filesystem::exists(keys[0] / "epoch_00000.bin"));
  EXPECT_TRUE(std::filesystem::exists(keys[0] / "epoch_00001.bin"));
  const std::string filled_student = student("cached");
  const RunResult reading = run("cached.toml", {"--restart", "--set", "teacher_cache.mode=read"});
  ASSERT_EQ(reading.exit_code, 0) << reading.err;
  EXPECT_EQ(student("online"), filled_student) << "filling the cache changed the training";
  EXPECT_EQ(student("online"), student("cached")) << "cached soft labels trained another student";
  const double share = summary_of(dir / "runs" / "online" / "main").at("result").at("teacher_share").get<double>();
  EXPECT_GT(share, 0.0);
  EXPECT_LT(share, 1.0);

  // Another teacher (retrained with another seed): its soft labels are not in the store.
  ASSERT_EQ(train(dir, {"--restart", "--set", "train.epochs=1", "--set", "run.seed=7"}).exit_code, 0);
  std::filesystem::copy_file(dir / "runs" / "t" / "main" / "student.safetensors", dir / "teacher.safetensors",
                             std::filesystem::copy_options::overwrite_existing);
  const RunResult refused = run("cached.toml", {"--restart", "--set", "teacher_cache.mode=read"});
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("no soft labels for epoch(s) 1, 2"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("teacher.identity"), std::string::npos) << refused.err;

  const RunResult cached_ahead =
      ssld::test::run_program(kSsld, {"-q", "cache-teacher", (dir / "cached.toml").string(), "--epochs", "2"});
  ASSERT_EQ(cached_ahead.exit_code, 0) << cached_ahead.err;
  const RunResult after = run("cached.toml", {"--restart", "--set", "teacher_cache.mode=read"});
  EXPECT_EQ(after.exit_code, 0) << after.err;

  // Under torchrun's variables each rank fills the store of its own shard.
  for (const char* rank : {"0", "1"}) {
    const RunResult shard = ssld::test::run_program(
        kSsld, {"-q", "cache-teacher", (dir / "cached.toml").string(), "--epochs", "1", "--set", "teacher_cache.store=" + (dir / "shards").string()},
        {{"RANK", rank}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", rank}, {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", "29500"}});
    ASSERT_EQ(shard.exit_code, 0) << shard.err;
    EXPECT_NE(shard.out.find("rank " + std::string(rank) + ", stage main"), std::string::npos) << shard.out;
  }
  std::vector<std::filesystem::path> shards(std::filesystem::directory_iterator(dir / "shards"), {});
  ASSERT_EQ(shards.size(), 2u) << "one key per rank";
  for (const auto& shard : shards) {
    EXPECT_TRUE(std::filesystem::exists(shard / "epoch_00000.bin"));
    EXPECT_NE(ssld::test::read_file(shard / "key.json").find("\"world_size\": 2"), std::string::npos);
  }
  // `--nproc-per-node 2` starts those two ranks itself: the same keys, the same soft labels.
  const RunResult launched = ssld::test::run_program(
      kSsld, {"-q", "cache-teacher", (dir / "cached.toml").string(), "--epochs", "1", "--set",
              "teacher_cache.store=" + (dir / "launched").string(), "--nproc-per-node", "2"});
  ASSERT_EQ(launched.exit_code, 0) << launched.err;
  for (const auto& shard : shards)
    EXPECT_EQ(ssld::test::read_file(dir / "launched" / shard.filename() / "epoch_00000.bin"),
              ssld::test::read_file(shard / "epoch_00000.bin"))
        << shard.filename();
}
