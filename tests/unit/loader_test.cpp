// The loader: batches bit-identical for any number of threads and after a resume, worker
// errors reaching the consumer with the sample's path, early stops and stuck reads that end
// instead of hanging, and the device half (normalize, mixup) on the CPU device.
#include "core/errors.hpp"
#include "data/device_batch.hpp"
#include "data/loader.hpp"
#include "plugin_host.hpp"

#include <ATen/TensorOperators.h>
#include <ATen/ops/full.h>

#include <gtest/gtest.h>

#include <chrono>

using namespace ssld::host;
using ssld::test::PluginHost;

namespace {

// Fashion-MNIST, labeled + unlabeled, with every kind of random per-sample augmentation.
const std::string kAugmented = R"(
[data.train]
batch_size = 64
sampler = { type = "mixed", fractions = [0.25, 0.75] }
[[data.train.sources]]
type = "idx"
images = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
labels = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"
subset = { range = [0, 1000] }
grayscale_to_rgb = true
[[data.train.sources]]
type = "idx"
images = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
subset = { range = [1000, 4000] }
grayscale_to_rgb = true
[[data.train.augment]]
type = "random_resized_crop"
size = [24]
scale = [0.5, 1.0]
[[data.train.augment]]
type = "hflip"
[[data.train.augment]]
type = "color_jitter"
brightness = 0.4
contrast = 0.4
saturation = 0.4
hue = 0.1
[[data.train.augment]]
type = "randaugment"
[[data.train.augment]]
type = "random_erasing"
p = 0.5
[[data.train.batch_augment]]
type = "normalize"
mean = [0.5, 0.5, 0.5]
std = [0.25, 0.25, 0.25]
[[data.train.batch_augment]]
type = "mixup"
alpha = 0.4
)";

std::vector<HostBatch> epoch_batches(const DataPipeline& pipeline, int threads, int64_t epoch, int64_t first_step = 0,
                                     int64_t max_batches = 1000) {
  LoaderSettings settings = pipeline.loader;
  settings.threads = threads;
  Loader loader(*pipeline.samples, *pipeline.sampler, settings);
  loader.start(epoch, first_step);
  std::vector<HostBatch> batches;
  while (static_cast<int64_t>(batches.size()) < max_batches) {
    auto batch = loader.next();
    if (!batch) break;
    batches.push_back(std::move(*batch));
  }
  return batches;
}

void expect_identical(const std::vector<HostBatch>& a, const std::vector<HostBatch>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].step, b[i].step);
    EXPECT_TRUE(a[i].images.equal(b[i].images)) << "batch " << i << " differs";
    EXPECT_TRUE(a[i].labels.equal(b[i].labels)) << "batch " << i;
    EXPECT_TRUE(a[i].ids.equal(b[i].ids)) << "batch " << i;
  }
}

}  // namespace

TEST(Loader, BatchesAreBitIdenticalForOneTwoAndEightThreads) {
  PluginHost host;
  auto pipeline = host.pipeline(kAugmented);
  ASSERT_TRUE(pipeline);
  const auto one = epoch_batches(*pipeline, 1, 0, 0, 12);
  ASSERT_EQ(one.size(), 12u);
  EXPECT_EQ(one[0].images.sizes(), (std::vector<int64_t>{64, 3, 24, 24}));
  EXPECT_EQ(one[0].images.scalar_type(), at::kByte);
  EXPECT_EQ((one[0].labels >= 0).sum().item<int64_t>(), 16);  // the labeled quarter
  expect_identical(one, epoch_batches(*pipeline, 2, 0, 0, 12));
  expect_identical(one, epoch_batches(*pipeline, 8, 0, 0, 12));
  EXPECT_FALSE(one[0].images.equal(epoch_batches(*pipeline, 2, 1, 0, 1)[0].images));  // another epoch differs
}

TEST(Loader, ResumingAtAStepGivesTheSameBatches) {
  PluginHost host;
  auto pipeline = host.pipeline(kAugmented);
  const auto full = epoch_batches(*pipeline, 2, 3, 0, 10);
  auto resumed_pipeline = host.pipeline(kAugmented);  // a new process would rebuild everything
  const auto resumed = epoch_batches(*resumed_pipeline, 2, 3, 6, 4);
  expect_identical(std::vector<HostBatch>(full.begin() + 6, full.end()), resumed);
}

TEST(Loader, EpochEndsAfterTheLastStep) {
  PluginHost host;
  auto pipeline = host.pipeline("[data.train]\nbatch_size = 10\nsampler = { type = \"sequential\" }\n"
                                "[[data.train.sources]]\ntype = \"stalling\"\nsize = 25\n");
  const auto batches = epoch_batches(*pipeline, 2, 0);
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[2].images.size(0), 5);
  EXPECT_EQ(batches[2].ids[4].item<int64_t>(), 24);
  EXPECT_EQ(batches[1].images[3][0][0][0].item<int>(), 13);  // sample 13 is filled with 13
}

TEST(Loader, AWorkersErrorReachesTheConsumerWithTheSample) {
  PluginHost host;
  auto pipeline = host.pipeline("[data.train]\nbatch_size = 10\nsampler = { type = \"sequential\" }\n"
                                "[[data.train.sources]]\ntype = \"stalling\"\nsize = 50\nthrow_index = 27\n"
                                "on_bad_image = \"fail\"\n");
  Loader loader(*pipeline->samples, *pipeline->sampler, LoaderSettings{4, 2, 30, false});
  loader.start(0);
  EXPECT_TRUE(loader.next());
  EXPECT_TRUE(loader.next());
  try {
    loader.next();
    FAIL() << "no error";
  } catch (const DataError& error) {
    EXPECT_NE(std::string(error.what()).find("data.train.sources[0] (stalling)#27 cannot be read: simulated read failure"), std::string::npos)
        << error.what();
  }
}

TEST(Loader, StoppingEarlyWithAFullQueueDoesNotHang) {
  PluginHost host;
  auto pipeline = host.pipeline(kAugmented);
  const auto start = std::chrono::steady_clock::now();
  for (int round = 0; round < 3; ++round) {
    Loader loader(*pipeline->samples, *pipeline->sampler, LoaderSettings{2, 2, 30, false});
    loader.start(0);
    ASSERT_TRUE(loader.next());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let the queue fill up
    loader.start(1);                                             // restart mid-epoch
    ASSERT_TRUE(loader.next());
  }  // destructor stops with batches still queued
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 20.0);
}

TEST(Loader, AStuckReadFailsWithATimeoutInsteadOfHanging) {
  PluginHost host;
  auto pipeline = host.pipeline("[data]\nread_timeout_s = 0.5\n[data.train]\nbatch_size = 4\n"
                                "sampler = { type = \"sequential\" }\n[[data.train.sources]]\ntype = \"stalling\"\n"
                                "size = 8\nstall_index = 1\nstall_seconds = 2.5\n");
  EXPECT_DOUBLE_EQ(pipeline->loader.read_timeout_s, 0.5);
  const auto start = std::chrono::steady_clock::now();
  {
    Loader loader(*pipeline->samples, *pipeline->sampler, pipeline->loader);
    loader.start(0);
    try {
      loader.next();
      FAIL() << "no error";
    } catch (const DataError& error) {
      EXPECT_NE(std::string(error.what()).find("no batch arrived within 0.5"), std::string::npos) << error.what();
    }
  }
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 2.0);
  std::this_thread::sleep_for(std::chrono::seconds(3));  // let the stuck read finish before the dataset goes
}

TEST(Loader, ImagesOfDifferentSizesCannotFormABatch) {
  PluginHost host;
  host.dir().write("a.pgm", "P5\n4 4\n255\n" + std::string(16, '\x10'));
  host.dir().write("b.pgm", "P5\n6 4\n255\n" + std::string(24, '\x20'));
  host.dir().write("list.txt", "a.pgm 0\nb.pgm 1\n");
  auto built = host.pipeline("[data.train]\nbatch_size = 2\nsampler = { type = \"sequential\" }\n"
                             "[[data.train.sources]]\ntype = \"file_list\"\nlists = [\"list.txt\"]\nroot = \".\"\n");
  ASSERT_TRUE(built);
  tbb::task_arena arena(1);
  try {
    assemble_batch(*built->samples, built->sampler->batch(0, 0), false, arena);
    FAIL() << "no error";
  } catch (const DataError& error) {
    EXPECT_NE(std::string(error.what()).find("a batch mixes image sizes 4x4x3 and 4x6x3"), std::string::npos)
        << error.what();
  }
}

TEST(DeviceBatch, NormalizeAndMixupRunOnTheDeviceDeterministically) {
  PluginHost host;
  auto pipeline = host.pipeline(kAugmented);
  const auto batches = epoch_batches(*pipeline, 2, 0, 0, 1);
  const HostBatch& host_batch = batches[0];
  const ssld::Batch a = to_device(host_batch, *pipeline, c10::Device(c10::kCPU), 0);
  const ssld::Batch b = to_device(host_batch, *pipeline, c10::Device(c10::kCPU), 0);
  ASSERT_TRUE(a.mix_index.defined());
  EXPECT_TRUE(a.images.equal(b.images));
  EXPECT_EQ(a.images.scalar_type(), at::kFloat);
  EXPECT_EQ(a.mix_index[0].item<int64_t>(), 63);
  const double lambda = a.mix_lambda[0].item<double>();
  const at::Tensor normalized = (host_batch.images.to(at::kFloat) / 255.0 - 0.5) / 0.25;
  const at::Tensor expected = normalized * lambda + normalized.flip(0) * (1 - lambda);
  EXPECT_LT((a.images - expected).abs().max().item<double>(), 1e-4);
  EXPECT_TRUE(a.label_mask.equal(host_batch.labels >= 0));
}
