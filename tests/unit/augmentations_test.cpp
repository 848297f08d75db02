// Per-sample augmentations on known images: output shapes and contents, their randomness
// coming only from the Rng they are handed.
#include "plugin_host.hpp"

#include <ATen/TensorOperators.h>
#include <ATen/ops/full.h>

#include <ATen/ops/arange.h>

#include <gtest/gtest.h>

using ssld::test::PluginHost;

namespace {

// An image whose pixel (y, x, c) is (y * 16 + x) * 3 + c, modulo 256.
at::Tensor ramp(int64_t height, int64_t width, int64_t channels = 3) {
  return at::arange(height * width * channels, at::kLong).remainder(256).to(at::kByte).view({height, width, channels});
}

class Augmentations : public ::testing::Test {
 protected:
  // The augmentation an [[data.train.augment]] table describes.
  const ssld::Augmentation& make(const std::string& table) {
    pipelines_.push_back(host_.pipeline("[[data.train.sources]]\ntype = \"stalling\"\n[[data.train.augment]]\n" + table));
    return *pipelines_.back()->augmentations.at(0).augmentation;
  }

  PluginHost host_;
  std::vector<std::unique_ptr<ssld::host::DataPipeline>> pipelines_;
};

ssld::Rng rng(uint64_t sample) { return ssld::Rng(0, 0, sample, 1); }

}  // namespace

TEST_F(Augmentations, HflipMirrorsColumns) {
  auto r = rng(0);
  const at::Tensor image = ramp(4, 6);
  EXPECT_TRUE(make("type = \"hflip\"\np = 1.0\n").apply(image, r).equal(image.flip({1})));
  EXPECT_TRUE(make("type = \"hflip\"\np = 0.0\n").apply(image, r).equal(image));
}

TEST_F(Augmentations, CropsAndResizesHaveTheRequestedShapes) {
  const at::Tensor image = ramp(30, 40);
  auto r = rng(1);
  EXPECT_EQ(make("type = \"random_resized_crop\"\nsize = [16, 12]\n").apply(image, r).sizes(),
            (std::vector<int64_t>{16, 12, 3}));
  EXPECT_EQ(make("type = \"resize\"\nsize = [15]\n").apply(image, r).sizes(), (std::vector<int64_t>{15, 20, 3}));
  EXPECT_EQ(make("type = \"resize\"\nsize = [10, 11]\n").apply(image, r).sizes(), (std::vector<int64_t>{10, 11, 3}));
  const at::Tensor center = make("type = \"center_crop\"\nsize = [10]\n").apply(image, r);
  EXPECT_TRUE(center.equal(image.slice(0, 10, 20).slice(1, 15, 25)));
  // A crop bigger than the image is zero-padded around the centered content.
  const at::Tensor padded = make("type = \"center_crop\"\nsize = [34, 40]\n").apply(image, r);
  EXPECT_EQ(padded[0].sum().item<int64_t>(), 0);
  EXPECT_TRUE(padded.slice(0, 2, 32).equal(image));
}

TEST_F(Augmentations, RandomCropStaysInsideThePaddedImage) {
  at::Tensor image = at::full({28, 28, 1}, 100, at::kByte);
  image[0][0][0] = 0;  // a marker: where it lands tells the crop's offset
  const auto& crop = make("type = \"random_crop\"\nsize = [28]\npadding = 4\nfill = 255\n");
  std::set<int64_t> offsets;
  for (uint64_t sample = 0; sample < 200; ++sample) {
    auto r = rng(sample);
    const at::Tensor out = crop.apply(image, r);
    ASSERT_EQ(out.sizes(), image.sizes());
    const auto zero = (out == 0).nonzero();
    if (zero.size(0) > 0) offsets.insert(zero[0][0].item<int64_t>() * 100 + zero[0][1].item<int64_t>());
  }
  EXPECT_GT(offsets.size(), 10u);  // many different crops...
  for (int64_t offset : offsets) {  // ...all within the 4-pixel padding
    EXPECT_LE(offset / 100, 4);
    EXPECT_LE(offset % 100, 4);
  }
}

TEST_F(Augmentations, SameStreamSameOutputOtherStreamOtherOutput) {
  const at::Tensor image = ramp(32, 32);
  for (const std::string table :
       {"type = \"random_resized_crop\"\nsize = [20]\n", "type = \"color_jitter\"\nbrightness = 0.5\nhue = 0.2\n",
        "type = \"randaugment\"\n", "type = \"random_erasing\"\np = 1.0\n"}) {
    const auto& augmentation = make(table);
    auto a = rng(7), b = rng(7);
    const at::Tensor first = augmentation.apply(image, a);
    EXPECT_TRUE(first.equal(augmentation.apply(image, b))) << table;
    bool differs = false;
    for (uint64_t sample = 8; sample < 16 && !differs; ++sample) {
      auto other = rng(sample);
      differs = !first.equal(augmentation.apply(image, other));
    }
    EXPECT_TRUE(differs) << table;
    EXPECT_TRUE(image.equal(ramp(32, 32))) << table << " modified its input";
  }
}

TEST_F(Augmentations, ColorJitterBrightnessScalesWithinItsRange) {
  const at::Tensor gray = at::full({4, 4, 1}, 100, at::kByte);
  const auto& jitter = make("type = \"color_jitter\"\nbrightness = 0.5\n");
  for (uint64_t sample = 0; sample < 50; ++sample) {
    auto r = rng(sample);
    const int value = jitter.apply(gray, r)[0][0][0].item<int>();
    EXPECT_GE(value, 50);
    EXPECT_LE(value, 150);
  }
}

TEST_F(Augmentations, BadOptionsAreReportedAtTheirLine) {
  const auto problems = host_.pipeline_problems(
      "[[data.train.sources]]\ntype = \"stalling\"\n[[data.train.augment]]\ntype = \"random_resized_crop\"\n"
      "size = [0]\n[[data.train.augment]]\ntype = \"color_jitter\"\nhue = 0.9\n");
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_NE(problems[0].find("config.toml:5:8 (augmentation 'random_resized_crop', option 'size')"), std::string::npos)
      << problems[0];
  EXPECT_NE(problems[1].find("hue must lie in [0, 0.5]"), std::string::npos) << problems[1];
}
