// The Fashion-MNIST data tables the training tests run on (the Debian package's IDX files):
// a slice of the training set and of the test set, normalized as the demo does.
#pragma once

#include <cstdint>
#include <string>

namespace ssld::test {

struct FmnistSubset {
  int64_t train_images = 2000;
  int64_t train_batch = 64;
  bool train_labels = true;
  bool hflip = false;          // a per-sample augmentation on the training images
  int64_t val_images = 1000;   // 0: no [data.val]
  int64_t val_batch = 250;
};

// The [run] and [data] tables of a test run: named `name`, in ./runs, on one CPU thread.
inline std::string one_thread_run_tables(const std::string& name) {
  return "[run]\nname = \"" + name + "\"\noutput_dir = \"runs\"\ndevice = \"cpu\"\nthreads = 1\n[data]\nthreads = 1\n";
}

inline std::string fmnist_data_tables(const FmnistSubset& subset) {
  const std::string folder = "/usr/share/datasets/fashion-mnist/";
  const std::string normalize = "type = \"normalize\"\nmean = [0.286]\nstd = [0.353]\n";
  std::string text = "[data.train]\nbatch_size = " + std::to_string(subset.train_batch) +
                     "\n[[data.train.sources]]\ntype = \"idx\"\nimages = \"" + folder + "train-images-idx3-ubyte.gz\"\n";
  if (subset.train_labels) text += "labels = \"" + folder + "train-labels-idx1-ubyte.gz\"\n";
  text += "subset = { range = [0, " + std::to_string(subset.train_images) + "] }\n";
  if (subset.hflip) text += "[[data.train.augment]]\ntype = \"hflip\"\n";
  text += "[[data.train.batch_augment]]\n" + normalize;
  if (subset.val_images > 0)
    text += "[data.val]\nbatch_size = " + std::to_string(subset.val_batch) + "\n[[data.val.sources]]\ntype = \"idx\"\n" +
            "images = \"" + folder + "t10k-images-idx3-ubyte.gz\"\nlabels = \"" + folder + "t10k-labels-idx1-ubyte.gz\"\n" +
            "subset = { range = [0, " + std::to_string(subset.val_images) + "] }\n[[data.val.batch_augment]]\n" + normalize;
  return text;
}

}  // namespace ssld::test
