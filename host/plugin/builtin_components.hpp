// The built-in components the host itself names, with the options it writes. They are part of
// the contract between the host and the plugins shipped in plugins/: stage references become a
// `checkpoint` teacher, `--dry-run` puts a `synthetic` dataset in place of every dataset and
// reads the channel count from a `normalize`, and pipelines without a [sampler] get `random`
// (data.train) or `sequential` (data.val, `ssld mine`'s candidates). A plugin that replaces one
// of them keeps its name and these options. tests/e2e/cli_test.cpp checks the built-in plugins
// register every one of them.
#pragma once

namespace ssld::host::builtin {

// plugins/teachers/checkpoint: a student architecture (its [student] table) with its weights.
struct CheckpointTeacher {
  const char* type;
  const char* student;  // option: the architecture's table
  const char* weights;  // option: the weights file
};
inline constexpr CheckpointTeacher kCheckpointTeacher{"checkpoint", "student", "weights"};

// plugins/datasets/synthetic: generated images; the rest are its options.
struct SyntheticDataset {
  const char* type;
  const char* count, *size, *channels, *num_classes;
};
inline constexpr SyntheticDataset kSyntheticDataset{"synthetic", "count", "size", "channels", "num_classes"};

// plugins/augment/batch: normalize's `mean` has one value per channel.
struct NormalizeAugmentation {
  const char* type;
  const char* mean;
};
inline constexpr NormalizeAugmentation kNormalize{"normalize", "mean"};

// plugins/samplers/standard: the default samplers.
inline constexpr const char* kRandomSampler = "random";
inline constexpr const char* kSequentialSampler = "sequential";

}  // namespace ssld::host::builtin
