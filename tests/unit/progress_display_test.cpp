// The progress bar and log lines share stderr: a warning during an epoch clears the bar, lands
// on its own line and the bar is drawn again below it.
#include "log/logging.hpp"
#include "test_support.hpp"
#include "train/progress_display.hpp"

#include <spdlog/spdlog.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <fcntl.h>
#include <unistd.h>

using ssld::test::TempDir;

namespace {

// stderr into `file` while alive.
class StderrTo {
 public:
  explicit StderrTo(const std::string& file) {
    std::fflush(stderr);
    saved_ = dup(2);
    const int fd = open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    close(fd);
  }
  ~StderrTo() {
    std::fflush(stderr);
    dup2(saved_, 2);
    close(saved_);
  }

 private:
  int saved_;
};

}  // namespace

TEST(ProgressDisplay, AWarningDuringAnEpochGetsItsOwnLineAndTheBarComesBack) {
  ssld::host::configure_logging({});
  TempDir dir;
  const std::string file = (dir / "stderr.txt").string();
  {
    StderrTo redirect(file);
    ssld::host::ProgressDisplay display(/*terminal=*/true);
    display.update({0, 1, 3, 10, 0.5, 0.1, 100, 7}, false);
    spdlog::warn("a bad image was skipped");
    display.update({0, 1, 10, 10, 0.4, 0.1, 100, 0}, false);  // the epoch's end: the bar's line ends
    spdlog::info("epoch 1: top-1 50%");
  }
  const std::string text = ssld::test::read_file(file);
  const std::string bar = "epoch 1/1 [#######.................] 3/10";
  const size_t first_bar = text.find("\r\033[K" + bar);
  const size_t cleared_for_warning = text.find("\r\033[K[", first_bar + 1);
  const size_t warning = text.find("a bad image was skipped\n");
  const size_t redrawn = text.find(bar, warning);
  ASSERT_NE(first_bar, std::string::npos) << text;
  ASSERT_NE(cleared_for_warning, std::string::npos) << "the bar is cleared before the warning:\n" << text;
  ASSERT_NE(warning, std::string::npos) << text;
  EXPECT_LT(cleared_for_warning, warning);
  EXPECT_NE(redrawn, std::string::npos) << "the bar comes back below the warning:\n" << text;
  // After the epoch's last step the bar's line is ended, so the next line does not clear it.
  const size_t last = text.find("10/10");
  ASSERT_NE(last, std::string::npos) << text;
  const size_t newline = text.find('\n', last);
  EXPECT_EQ(text.find("\033[K", last), std::string::npos) << text;
  EXPECT_NE(text.find("epoch 1: top-1 50%", newline), std::string::npos) << text;
}
