// Per-sample augmentations on known images: output shapes and contents, their randomness
// coming only from the Rng they are handed.
#include "plugin_host.hpp"
#include "data/image_decode.hpp"
#include "weights/torch_file.hpp"

#include <ATen/TensorOperators.h>
#include <ATen/ops/full.h>

#include <ATen/ops/arange.h>

#include <gtest/gtest.h>

#include <iostream>
#include <map>
#include <set>
#include <sstream>

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

  // Images to compare with PIL on: noise (the hardest case), a smooth RGB gradient with sharp
  // edges, and real ones: three Fashion-MNIST items (one channel), one tiled to 133 x 140, and a
  // photograph (grace_hopper.jpg from Debian's python-matplotlib-data, public domain), whole
  // (600 x 512) and a 90 x 100 crop of its face.
  std::vector<at::Tensor> test_images() {
    std::vector<at::Tensor> images;
    at::manual_seed(5);
    images.push_back(at::randint(0, 256, {37, 53, 3}, at::kLong).to(at::kByte));
    const at::Tensor y = at::arange(61, at::kFloat).view({61, 1, 1}), x = at::arange(90, at::kFloat).view({1, 90, 1});
    const at::Tensor channel = at::arange(3, at::kFloat).view({1, 1, 3});
    images.push_back(
        ((y * 3 + x * 2 + channel * 40).remainder(256) * ((x.floor_divide(9) + y.floor_divide(7)).remainder(2) * 0.5 + 0.5))
            .clamp(0, 255)
            .to(at::kByte));
    auto fmnist = host_.pipeline(
        "[data.val]\nbatch_size = 4\n[[data.val.sources]]\ntype = \"idx\"\nimages = "
        "\"/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz\"\nsubset = { range = [0, 3] }\n",
        "val");
    EXPECT_TRUE(fmnist);
    for (int64_t i = 0; i < 3; ++i) images.push_back(fmnist->samples->prepare(ssld::SampleRef{0, i, 0}).image.contiguous());
    images.push_back(images[2].repeat({5, 5, 1}).slice(0, 0, 133).contiguous());
    const std::string photo = ssld::test::read_file("/usr/share/matplotlib/mpl-data/sample_data/grace_hopper.jpg");
    EXPECT_FALSE(photo.empty()) << "grace_hopper.jpg missing: scripts/setup.sh installs python-matplotlib-data";
    images.push_back(ssld::host::decode_image(std::vector<uint8_t>(photo.begin(), photo.end())));
    images.push_back(images.back().slice(0, 60, 150).slice(1, 200, 300).contiguous());
    return images;
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
  // A fill outside a pixel's range and an operation timm does not have are refused, not clamped or skipped.
  const auto more = host_.pipeline_problems(
      "[[data.train.sources]]\ntype = \"stalling\"\n[[data.train.augment]]\ntype = \"random_crop\"\nsize = [8]\n"
      "fill = 300\n[[data.train.augment]]\ntype = \"randaugment\"\nops = [\"Rotate\", \"Shear\"]\n");
  ASSERT_EQ(more.size(), 2u);
  EXPECT_NE(more[0].find("fill must lie in [0, 255]"), std::string::npos) << more[0];
  EXPECT_NE(more[1].find("unknown operation 'Shear' (known: AutoContrast,"), std::string::npos) << more[1];
}

// resize, center_crop and random_resized_crop's resize give torchvision 0.14's pixels on PIL
// images (what a teacher trained with torchvision saw), for every filter, at factors from 0.25
// to 4, on generated images and Fashion-MNIST items: the bound is a mean absolute
// difference of at most 0.5 and no pixel off by more than 2; PIL's own fixed-point arithmetic
// makes them equal here.
TEST_F(Augmentations, ResizeAndCenterCropMatchTorchvisionOnPilImages) {
  ssld::NamedTensors inputs;
  const std::vector<at::Tensor> images = test_images();
  for (size_t i = 0; i < images.size(); ++i) inputs.emplace_back("image." + std::to_string(i), images[i]);

  const std::vector<std::string> filters = {"nearest", "bilinear", "bicubic", "box", "hamming", "lanczos"};
  struct Job {
    size_t image;
    int64_t height, width;
    size_t filter;  // index into filters; center crops: SIZE_MAX
  };
  std::vector<Job> jobs;
  for (size_t i = 0; i < images.size(); ++i)
    for (size_t f = 0; f < filters.size(); ++f)
      for (double factor : {0.25, 0.3, 0.5, 0.77, 1.0, 1.5, 2.0, 3.3, 4.0}) {
        const int64_t h = std::max<int64_t>(1, std::llround(images[i].size(0) * factor));
        const int64_t w = std::max<int64_t>(1, std::llround(images[i].size(1) * factor * 0.9 + 1));
        if (h * w <= 300 * 300) jobs.push_back({i, h, w, f});
      }
  for (size_t i = 0; i < images.size(); ++i)
    for (auto [h, w] : std::vector<std::pair<int64_t, int64_t>>{{10, 11}, {25, 24}, {27, 27}, {40, 61}, {150, 151}})
      jobs.push_back({i, h, w, SIZE_MAX});
  for (size_t j = 0; j < jobs.size(); ++j) {
    const Job& job = jobs[j];
    const bool crop = job.filter == SIZE_MAX;
    inputs.emplace_back("job." + std::to_string(j),
                        at::tensor({static_cast<int64_t>(job.image), job.height, job.width,
                                    crop ? int64_t{0} : static_cast<int64_t>(job.filter), int64_t{crop ? 1 : 0}},
                                   at::kLong));
  }
  ssld::test::TempDir dir;
  ssld::host::write_torch_file((dir / "in.pth").string(), inputs);
  const auto run = ssld::test::run_program("/usr/bin/python3",
                                           {SSLD_SOURCE_DIR "/tests/unit/fixtures/pil_resize_reference.py",
                                            (dir / "in.pth").string(), (dir / "out.pth").string()});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const ssld::NamedTensors reference = ssld::host::read_torch_file((dir / "out.pth").string());
  std::map<std::string, at::Tensor> want(reference.begin(), reference.end());

  auto r = rng(0);
  std::map<std::string, std::pair<double, int64_t>> worst;  // per filter: mean and max difference
  std::map<std::string, const ssld::Augmentation*> made;
  for (size_t j = 0; j < jobs.size(); ++j) {
    const Job& job = jobs[j];
    const std::string size = "[" + std::to_string(job.height) + ", " + std::to_string(job.width) + "]";
    const std::string name = job.filter == SIZE_MAX ? "center_crop" : filters[job.filter];
    const std::string table = job.filter == SIZE_MAX
                                  ? "type = \"center_crop\"\nsize = " + size + "\n"
                                  : "type = \"resize\"\nsize = " + size + "\ninterpolation = \"" + name + "\"\n";
    const ssld::Augmentation*& augmentation = made[table];
    if (augmentation == nullptr) augmentation = &make(table);
    const at::Tensor got = augmentation->apply(images[job.image], r);
    const at::Tensor& expected = want.at("out." + std::to_string(j));
    ASSERT_EQ(got.sizes(), expected.sizes()) << table;
    const at::Tensor difference = (got.to(at::kInt) - expected.to(at::kInt)).abs();
    const double mean = difference.to(at::kDouble).mean().item<double>();
    const int64_t max = difference.max().item<int64_t>();
    EXPECT_LE(mean, 0.5) << table << " of image " << job.image;
    EXPECT_LE(max, 2) << table << " of image " << job.image;
    auto& [worst_mean, worst_max] = worst[name];
    worst_mean = std::max(worst_mean, mean);
    worst_max = std::max(worst_max, max);
  }
  for (const auto& [name, numbers] : worst)
    std::cout << name << ": worst mean |difference| " << numbers.first << ", worst max " << numbers.second << "\n";
  EXPECT_EQ(worst.size(), filters.size() + 1);
}

// randaugment's rotate, shear and translate give the pixels of timm's PIL calls (Image.rotate and
// Image.transform(AFFINE), which torchvision 0.14's RandAugment also runs on PIL images) for
// each filter, fill and several magnitudes, on the same images as above (the photograph as its
// crop only, which keeps the test a few seconds long).
TEST_F(Augmentations, RandAugmentGeometricOperationsMatchPilPixelForPixel) {
  ssld::NamedTensors inputs;
  const std::vector<at::Tensor> images = test_images();
  for (size_t i = 0; i < images.size(); ++i) inputs.emplace_back("image." + std::to_string(i), images[i]);
  const std::vector<std::string> ops = {"Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel"};
  const std::vector<std::string> filters = {"nearest", "bilinear", "bicubic"};
  struct Job {
    size_t image, op, filter;
    double magnitude;
    int64_t fill;
  };
  std::vector<Job> jobs;
  for (size_t i = 0; i < images.size(); ++i)
    for (size_t op = 0; op < ops.size() && images[i].numel() < 200000; ++op)
      for (size_t f = 0; f < filters.size(); ++f)
        for (double magnitude : {1.0, 4.5, 9.0, 10.0}) jobs.push_back({i, op, f, magnitude, (i + op + f) % 2 ? 128 : 7});
  for (size_t j = 0; j < jobs.size(); ++j)
    inputs.emplace_back("job." + std::to_string(j),
                        at::tensor({static_cast<double>(jobs[j].image), static_cast<double>(jobs[j].op),
                                    jobs[j].magnitude, static_cast<double>(jobs[j].filter),
                                    static_cast<double>(jobs[j].fill)},
                                   at::kDouble));
  ssld::test::TempDir dir;
  ssld::host::write_torch_file((dir / "in.pth").string(), inputs);
  const auto run = ssld::test::run_program("/usr/bin/python3",
                                           {SSLD_SOURCE_DIR "/tests/unit/fixtures/pil_affine_reference.py",
                                            (dir / "in.pth").string(), (dir / "out.pth").string()});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const ssld::NamedTensors reference = ssld::host::read_torch_file((dir / "out.pth").string());
  std::map<std::string, at::Tensor> want(reference.begin(), reference.end());

  std::map<std::string, int64_t> worst;  // per filter: the largest difference from PIL
  size_t both_signs = 0;
  for (size_t j = 0; j < jobs.size(); ++j) {
    const Job& job = jobs[j];
    std::ostringstream table;
    table << "type = \"randaugment\"\nnum_ops = 1\np = 1.0\nmagnitude_std = 0.0\nmagnitude = " << job.magnitude
          << "\nops = [\"" << ops[job.op] << "\"]\ninterpolation = \"" << filters[job.filter]
          << "\"\nfill = " << job.fill << "\n";
    const ssld::Augmentation& augmentation = make(table.str());
    std::set<std::string> signs;
    for (uint64_t sample = 0; sample < 8; ++sample) {  // the sign is drawn: both must turn up
      auto r = rng(sample);
      const at::Tensor got = augmentation.apply(images[job.image], r);
      int64_t best = INT64_MAX;
      std::string sign;
      for (const char* suffix : {"plus", "minus"}) {
        const at::Tensor& expected = want.at("out." + std::to_string(j) + "." + suffix);
        ASSERT_EQ(got.sizes(), expected.sizes()) << table.str();
        const int64_t max = (got.to(at::kInt) - expected.to(at::kInt)).abs().max().item<int64_t>();
        if (max < best) best = max, sign = suffix;
      }
      EXPECT_EQ(best, 0) << table.str() << "of image " << job.image;
      worst[filters[job.filter]] = std::max(worst[filters[job.filter]], best);
      signs.insert(sign);
    }
    both_signs += signs.size() == 2;
  }
  for (const auto& [name, max] : worst) std::cout << name << ": worst max |difference| from PIL " << max << "\n";
  EXPECT_GT(both_signs, jobs.size() / 2);
}
