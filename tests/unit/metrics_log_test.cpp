// The run folder's epoch CSV: values at full precision without exponent notation, and a resumed
// run that continues a file with other columns moves it aside instead of mixing two layouts.
#include "test_support.hpp"
#include "train/metrics_log.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

using ssld::host::csv_number;
using ssld::host::MetricsLog;
using ssld::test::TempDir;

TEST(MetricsLog, CsvNumbersKeepEveryDigitWithoutExponents) {
  EXPECT_EQ(csv_number(1234567.25), "1234567.25");  // a long run's seconds, once 1.23457e+06
  EXPECT_EQ(csv_number(3), "3");
  EXPECT_EQ(csv_number(0.1), "0.1");
  EXPECT_EQ(csv_number(1e-7), "0.0000001");
  EXPECT_EQ(csv_number(-2.5e10), "-25000000000");
  for (double value : {0.1 + 0.2, 88.60000000000001, 1.0 / 3.0, 6.02214076e23})
    EXPECT_EQ(std::strtod(csv_number(value).c_str(), nullptr), value) << csv_number(value);
  EXPECT_EQ(csv_number(std::nan("")), "nan");
}

TEST(MetricsLog, AResumedRunContinuesItsCsvOrMovesAsideOneWithOtherColumns) {
  TempDir dir;
  { MetricsLog(dir.path()).epoch({{"epoch", 1}, {"top1", 50.5}}); }
  { MetricsLog(dir.path()).epoch({{"epoch", 2}, {"top1", 60.25}}); }
  EXPECT_EQ(ssld::test::read_file(dir / "metrics_epochs.csv"), "epoch,top1\n1,50.5\n2,60.25\n");

  { MetricsLog(dir.path()).epoch({{"epoch", 3}, {"top1", 61}, {"ema_top1", 62}}); }
  EXPECT_EQ(ssld::test::read_file(dir / "metrics_epochs.before_resume.1.csv"), "epoch,top1\n1,50.5\n2,60.25\n");
  EXPECT_EQ(ssld::test::read_file(dir / "metrics_epochs.csv"), "epoch,top1,ema_top1\n3,61,62\n");
}
