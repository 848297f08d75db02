// Dataset plugins and the options every dataset shares (subset, drop_labels, bad images),
// on real Fashion-MNIST files and on generated image folders.
#include "core/errors.hpp"
#include "data/loader.hpp"
#include "plugin_host.hpp"

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

using ssld::test::PluginHost;

namespace {

const std::string kFmnist = "/usr/share/datasets/fashion-mnist/";

std::string idx_source(const std::string& split, const std::string& extra = "") {
  return "[[data.train.sources]]\ntype = \"idx\"\nimages = \"" + kFmnist + split + "-images-idx3-ubyte.gz\"\nlabels = \"" +
         kFmnist + split + "-labels-idx1-ubyte.gz\"\n" + extra;
}

std::vector<int64_t> first_labels(const ssld::Dataset& dataset, int64_t count) {
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < count; ++i) labels.push_back(dataset.label_of(i));
  return labels;
}

}  // namespace

TEST(IdxDataset, ReadsFashionMnistTrainAndTest) {
  PluginHost host;
  auto train = host.pipeline(idx_source("train"));
  ASSERT_TRUE(train);
  const auto& images = *train->sources[0];
  EXPECT_EQ(images.size(), 60000);
  EXPECT_EQ(images.num_classes(), 10);
  EXPECT_EQ(first_labels(images, 10), (std::vector<int64_t>{9, 0, 0, 3, 0, 2, 7, 2, 5, 5}));
  const ssld::Sample sample = images.get(0);
  EXPECT_EQ(sample.image.sizes(), (std::vector<int64_t>{28, 28, 1}));
  EXPECT_EQ(sample.id, 0u);

  auto test = host.pipeline(idx_source("t10k"));
  ASSERT_TRUE(test);
  EXPECT_EQ(test->sources[0]->size(), 10000);
  EXPECT_EQ(first_labels(*test->sources[0], 10), (std::vector<int64_t>{9, 2, 1, 1, 6, 1, 4, 6, 5, 7}));
}

TEST(IdxDataset, RawFilesReadLikeGzippedOnes) {
  PluginHost host;
  const auto raw_images = host.dir() / "t10k-images-idx3-ubyte";
  const auto raw_labels = host.dir() / "t10k-labels-idx1-ubyte";
  ASSERT_EQ(std::system(("gzip -dc " + kFmnist + "t10k-images-idx3-ubyte.gz > " + raw_images.string()).c_str()), 0);
  ASSERT_EQ(std::system(("gzip -dc " + kFmnist + "t10k-labels-idx1-ubyte.gz > " + raw_labels.string()).c_str()), 0);
  auto raw = host.pipeline("[[data.train.sources]]\ntype = \"idx\"\nimages = \"t10k-images-idx3-ubyte\"\n"
                           "labels = \"t10k-labels-idx1-ubyte\"\n");
  auto gzipped = host.pipeline(idx_source("t10k"));
  ASSERT_TRUE(raw && gzipped);
  for (int64_t i : {0, 1234, 9999}) {
    EXPECT_TRUE(raw->sources[0]->get(i).image.equal(gzipped->sources[0]->get(i).image));
    EXPECT_EQ(raw->sources[0]->label_of(i), gzipped->sources[0]->label_of(i));
  }
}

TEST(IdxDataset, MismatchedLabelsAndBadFilesAreReported) {
  PluginHost host;
  const auto problems = host.pipeline_problems("[[data.train.sources]]\ntype = \"idx\"\nimages = \"" + kFmnist +
                                               "train-images-idx3-ubyte.gz\"\nlabels = \"" + kFmnist +
                                               "t10k-labels-idx1-ubyte.gz\"\n");
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("has 10000 labels for 60000 images"), std::string::npos) << problems[0];
  host.dir().write("junk.idx", "not an idx file at all");
  const auto junk = host.pipeline_problems("[[data.train.sources]]\ntype = \"idx\"\nimages = \"junk.idx\"\n");
  ASSERT_EQ(junk.size(), 1u);
  EXPECT_NE(junk[0].find("junk.idx' is not an IDX file"), std::string::npos) << junk[0];

  // Read by the header, never past what it describes: a device, a lying header, missing data.
  auto problem_of = [&](const std::string& images) {
    const auto found = host.pipeline_problems("[[data.train.sources]]\ntype = \"idx\"\nimages = \"" + images + "\"\n");
    return found.empty() ? std::string("(no problem)") : found[0];
  };
  EXPECT_NE(problem_of("/dev/zero").find("not a regular file"), std::string::npos);
  host.dir().write("huge.idx", std::string("\0\0\x08\x03", 4) + std::string(12, '\xff'));
  EXPECT_NE(problem_of("huge.idx").find("more than 16 GiB"), std::string::npos) << problem_of("huge.idx");
  // Sizes whose product overflows before a zero size brings it back (found by the idx fuzz target).
  host.dir().write("wraps.idx", std::string("\0\0\x08\x03", 4) + std::string(8, '\xff') + std::string(4, '\0'));
  EXPECT_NE(problem_of("wraps.idx").find("sizes overflow"), std::string::npos) << problem_of("wraps.idx");
  // A header of zero images, or of images without pixels (found by the idx fuzz target).
  host.dir().write("empty.idx", std::string("\0\0\x08\x03\0\0\0\0\0\0\0\x1c\0\0\0\x1c", 16));
  EXPECT_NE(problem_of("empty.idx").find("holds no images (0 of 28x28 pixels)"), std::string::npos)
      << problem_of("empty.idx");
  host.dir().write("flat.idx", std::string("\0\0\x08\x03\0\0\0\x02\0\0\0\0\0\0\0\x1c", 16));
  EXPECT_NE(problem_of("flat.idx").find("holds no images (2 of 0x28 pixels)"), std::string::npos)
      << problem_of("flat.idx");
  host.dir().write("short.idx", std::string("\0\0\x08\x03\0\0\0\x02\0\0\0\x1c\0\0\0\x1c", 16) + std::string(100, 'x'));
  EXPECT_NE(problem_of("short.idx").find("holds 116 bytes, but its header describes 1584"), std::string::npos)
      << problem_of("short.idx");
}

TEST(DatasetOptions, SubsetRangeFractionAndSeededSplit) {
  PluginHost host;
  auto range = host.pipeline(idx_source("train", "subset = { range = [100, 10100] }\n"));
  ASSERT_TRUE(range);
  EXPECT_EQ(range->sources[0]->size(), 10000);
  EXPECT_EQ(range->sources[0]->get(0).id, 100u);

  auto fraction = host.pipeline(idx_source("train", "subset = { fraction = [0.25, 0.5] }\n"));
  ASSERT_TRUE(fraction);
  EXPECT_EQ(fraction->sources[0]->size(), 15000);
  EXPECT_EQ(fraction->sources[0]->get(0).id, 15000u);

  // One seed, two complementary fractions: disjoint parts that together cover the dataset.
  auto part = [&](const std::string& span) {
    auto pipeline = host.pipeline("[data.train]\nbatch_size = 4\n[[data.train.sources]]\ntype = \"stalling\"\n"
                                  "size = 100\nsubset = { fraction = " +
                                  span + ", seed = 7 }\n");
    std::vector<uint64_t> ids;
    for (int64_t i = 0; i < pipeline->sources[0]->size(); ++i) ids.push_back(pipeline->sources[0]->get(i).id);
    return ids;
  };
  const auto first = part("[0.0, 0.8]"), second = part("[0.8, 1.0]");
  EXPECT_EQ(first.size(), 80u);
  EXPECT_EQ(second.size(), 20u);
  std::set<uint64_t> all(first.begin(), first.end());
  all.insert(second.begin(), second.end());
  EXPECT_EQ(all.size(), 100u);
  EXPECT_NE(first, std::vector<uint64_t>(all.begin(), std::next(all.begin(), 80)));  // shuffled, not a prefix
  EXPECT_EQ(part("[0.0, 0.8]"), first);                                            // and reproducible
}

TEST(DatasetOptions, SubsetMistakesAndDropLabels) {
  PluginHost host;
  const auto problems = host.pipeline_problems(idx_source("t10k", "subset = { range = [0, 20000] }\n"));
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("config.toml:5:10: data.train.sources[0] (idx): subset range must be"),
            std::string::npos) << problems[0];
  EXPECT_NE(problems[0].find("<= 10000"), std::string::npos) << problems[0];

  auto unlabeled = host.pipeline(idx_source("t10k", "drop_labels = true\n"));
  ASSERT_TRUE(unlabeled);
  EXPECT_EQ(unlabeled->sources[0]->label_of(0), -1);
  EXPECT_EQ(unlabeled->sources[0]->get(0).label, -1);
  EXPECT_EQ(unlabeled->sources[0]->num_classes(), 0);
}

TEST(ImageFolder, ClassesAreSortedSubfoldersAndUnlabeledTakesEverything) {
  PluginHost host;
  host.dir().write("images/zebra/1.jpg", "x");
  host.dir().write("images/ant/b.png", "x");
  host.dir().write("images/ant/a.JPG", "x");
  host.dir().write("images/ant/notes.txt", "not an image");
  auto labeled = host.pipeline("[data.train]\nbatch_size = 1\n[[data.train.sources]]\ntype = \"image_folder\"\nroot = \"images\"\n");
  ASSERT_TRUE(labeled);
  const auto& dataset = *labeled->sources[0];
  ASSERT_EQ(dataset.size(), 3);
  EXPECT_EQ(dataset.class_names(), (std::vector<std::string>{"ant", "zebra"}));
  EXPECT_EQ(first_labels(dataset, 3), (std::vector<int64_t>{0, 0, 1}));
  EXPECT_NE(dataset.get(0).origin.find("ant/a.JPG"), std::string::npos);
  EXPECT_EQ(dataset.get(0).id, ssld::Rng::purpose_of("ant/a.JPG"));

  auto flat = host.pipeline("[data.train]\nbatch_size = 1\n[[data.train.sources]]\ntype = \"image_folder\"\nroot = \"images\"\nlabeled = false\n");
  ASSERT_TRUE(flat);
  EXPECT_EQ(flat->sources[0]->size(), 3);
  EXPECT_EQ(flat->sources[0]->label_of(0), -1);
}

TEST(FileList, LabeledAndUnlabeledLinesAndBadLabels) {
  PluginHost host;
  host.dir().write("lists/a.txt", "# comment\nimg/1.jpg 3\nimg/2.jpg\n\n");
  host.dir().write("lists/b.txt", "img/3.jpg 0\n");
  auto listed = host.pipeline(
      "[data.train]\nbatch_size = 1\n[[data.train.sources]]\ntype = \"file_list\"\nlists = [\"lists/a.txt\", \"lists/b.txt\"]\nroot = \"data\"\n");
  ASSERT_TRUE(listed);
  EXPECT_EQ(first_labels(*listed->sources[0], 3), (std::vector<int64_t>{3, -1, 0}));
  EXPECT_EQ(listed->sources[0]->num_classes(), 4);

  host.dir().write("lists/bad.txt", "img/1.jpg 3\nimg/2.jpg cat\n");
  const auto problems = host.pipeline_problems(
      "[[data.train.sources]]\ntype = \"file_list\"\nlists = [\"lists/bad.txt\"]\nroot = \"data\"\n");
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("bad.txt:2: 'cat' is not a class index"), std::string::npos) << problems[0];
}

namespace {
// A folder of 10 good images (class "good") and the broken ones, for the bad-image policies.
std::string broken_folder(PluginHost& host, const std::string& policy, double max_bad_fraction = 0.5) {
  host.dir().write("broken/c/0_empty.jpg", "");
  host.dir().write("broken/c/1_text.jpg", std::string(100, 'x'));
  for (int i = 2; i < 10; ++i) {
    std::vector<uint8_t> png;
    cv::imencode(".png", cv::Mat(10, 12, CV_8UC3, cv::Scalar(50, 100, 200 + i)), png);
    host.dir().write("broken/c/" + std::to_string(i) + "_good.png", std::string(png.begin(), png.end()));
  }
  return "[data.train]\nbatch_size = 10\nsampler = { type = \"sequential\" }\n[[data.train.sources]]\n"
         "type = \"image_folder\"\nroot = \"broken\"\non_bad_image = \"" + policy + "\"\nmax_bad_fraction = " +
         std::to_string(max_bad_fraction) + "\n[[data.train.augment]]\ntype = \"resize\"\nsize = [8, 8]\n";
}

ssld::host::HostBatch first_batch(const ssld::host::DataPipeline& pipeline) {
  tbb::task_arena arena(2);
  return ssld::host::assemble_batch(*pipeline.samples, pipeline.sampler->batch(0, 0), false, arena);
}
}  // namespace

TEST(BadImages, FailStopsWithThePath) {
  PluginHost host;
  auto pipeline = host.pipeline(broken_folder(host, "fail"));
  ASSERT_TRUE(pipeline);
  try {
    first_batch(*pipeline);
    FAIL() << "no error";
  } catch (const ssld::host::DataError& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("broken/c/"), std::string::npos) << message;
    EXPECT_NE(message.find("on_bad_image = \"fail\""), std::string::npos) << message;
  }
}

TEST(BadImages, SkipShrinksTheBatchAndCountsEachOnce) {
  PluginHost host;
  auto pipeline = host.pipeline(broken_folder(host, "skip"));
  ASSERT_TRUE(pipeline);
  EXPECT_EQ(first_batch(*pipeline).images.size(0), 8);
  EXPECT_EQ(first_batch(*pipeline).images.size(0), 8);
  EXPECT_EQ(pipeline->samples->bad_images().count(), 2);
}

TEST(BadImages, ReplaceKeepsTheBatchSizeWithDeterministicSubstitutes) {
  PluginHost host;
  auto pipeline = host.pipeline(broken_folder(host, "replace"));
  ASSERT_TRUE(pipeline);
  const auto batch = first_batch(*pipeline);
  EXPECT_EQ(batch.images.size(0), 10);
  // Both bad files (indices 0 and 1) are replaced by the next good one, index 2.
  EXPECT_EQ(batch.ids[0].item<int64_t>(), batch.ids[2].item<int64_t>());
  EXPECT_EQ(batch.ids[1].item<int64_t>(), batch.ids[2].item<int64_t>());
  EXPECT_TRUE(first_batch(*pipeline).images.equal(batch.images));
}

TEST(BadImages, TooManyBadImagesStopTheRun) {
  PluginHost host;
  auto pipeline = host.pipeline(broken_folder(host, "replace", 0.1));
  ASSERT_TRUE(pipeline);
  try {
    first_batch(*pipeline);
    FAIL() << "no error";
  } catch (const ssld::host::DataError& error) {
    EXPECT_NE(std::string(error.what()).find("2 of the 10 images of data.train.sources[0] (image_folder) are bad"),
              std::string::npos) << error.what();
  }
}
