// Readers of bytes ssld did not write (torch.save files, safetensors, TOML, teacher-cache files,
// images): each malformed case found by hand or by a fuzzer is refused with an ssld::Error or
// ConfigError that names the file, never a crash, a hang or an "unexpected failure".
#include "config/config_loader.hpp"
#include "config/diagnostics.hpp"
#include "config/toml_options.hpp"
#include "core/atomic_file.hpp"
#include "core/bounded_input.hpp"
#include "core/errors.hpp"
#include "data/image_decode.hpp"
#include "mine/mine_report.hpp"
#include "stage/config_schema.hpp"
#include "teacher_cache/soft_label_store.hpp"
#include "test_support.hpp"
#include "train/mixed_precision.hpp"
#include "train/train_settings.hpp"
#include "weights/safetensors.hpp"
#include "weights/torch_file.hpp"

#include <ssld/error.hpp>

#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>

#include <gtest/gtest.h>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <limits>
#include <thread>

namespace {

using ssld::host::ConfigError;
using ssld::test::error_of;
using ssld::test::TempDir;

// --- torch.save files: a zip of data.pkl and data/<key> records, crafted opcode by opcode ----

std::string long1(int64_t value) {
  std::string out = "\x8a\x08";
  for (int i = 0; i < 8; ++i) out += static_cast<char>((static_cast<uint64_t>(value) >> (8 * i)) & 0xFF);
  return out;
}
std::string unicode(const std::string& text) {
  std::string out = "X";
  const uint32_t size = static_cast<uint32_t>(text.size());
  for (int i = 0; i < 4; ++i) out += static_cast<char>((size >> (8 * i)) & 0xFF);
  return out + text;
}
std::string int_tuple(const std::vector<int64_t>& values) {
  std::string out = "(";
  for (const int64_t value : values) out += long1(value);
  return out + "t";
}

// {"w": _rebuild_tensor_v2(storage(FloatStorage, "0", numel), offset, sizes, strides)}
std::string tensor_dict_pickle(int64_t numel, int64_t offset, const std::vector<int64_t>& sizes,
                               const std::vector<int64_t>& strides) {
  std::string p = "\x80\x02}";
  p += unicode("w");
  p += "ctorch._utils\n_rebuild_tensor_v2\n(";
  p += "(" + unicode("storage") + "ctorch\nFloatStorage\n" + unicode("0") + unicode("cpu") + long1(numel) + "tQ";
  p += long1(offset) + int_tuple(sizes) + int_tuple(strides) + "tRs.";
  return p;
}

std::string write_torch_archive(const TempDir& dir, const std::string& name, const std::string& pickle,
                                const std::string& storage) {
  const std::string path = (dir / name).string();
  caffe2::serialize::PyTorchStreamWriter writer(path);
  writer.writeRecord("data.pkl", pickle.data(), pickle.size());
  writer.writeRecord("data/0", storage.data(), storage.size());
  writer.writeEndOfFile();
  return path;
}

std::string torch_error(const std::string& path) {
  return error_of<ssld::Error>([&] { ssld::host::read_torch_file(path); });
}

TEST(TorchFileInput, AWellFormedCraftedFileReads) {
  TempDir dir;
  const std::string storage(4 * 6, '\0');
  const auto path = write_torch_archive(dir, "ok.pth", tensor_dict_pickle(6, 0, {2, 3}, {3, 1}), storage);
  const auto tensors = ssld::host::read_torch_file(path);
  ASSERT_EQ(tensors.size(), 1u);
  EXPECT_EQ(tensors[0].second.sizes(), at::IntArrayRef({2, 3}));
}

TEST(TorchFileInput, StorageSizesMustMatchTheirElementCount) {
  TempDir dir;
  // 7 bytes for float elements, 1 byte for one float, and 6 elements claimed over 8 bytes.
  EXPECT_NE(torch_error(write_torch_archive(dir, "a.pth", tensor_dict_pickle(1, 0, {1}, {1}), std::string(7, 'x')))
                .find("holds 7 bytes, not the 4"),
            std::string::npos);
  EXPECT_NE(torch_error(write_torch_archive(dir, "b.pth", tensor_dict_pickle(1, 0, {1}, {1}), std::string(1, 'x')))
                .find("holds 1 bytes"),
            std::string::npos);
  EXPECT_NE(torch_error(write_torch_archive(dir, "c.pth", tensor_dict_pickle(6, 0, {6}, {1}), std::string(8, 'x')))
                .find("6 FloatStorage elements"),
            std::string::npos);
  EXPECT_NE(torch_error(write_torch_archive(dir, "d.pth", tensor_dict_pickle(-1, 0, {1}, {1}), std::string(4, 'x')))
                .find("claims -1 elements"),
            std::string::npos);
}

TEST(TorchFileInput, ViewsMustStayInsideTheirStorage) {
  TempDir dir;
  const std::string storage(16, '\0');  // 4 floats
  EXPECT_NE(torch_error(write_torch_archive(dir, "a.pth", tensor_dict_pickle(4, std::numeric_limits<int64_t>::max(), {2}, {1}), storage))
                .find("overflow"),
            std::string::npos);
  EXPECT_NE(torch_error(write_torch_archive(dir, "b.pth", tensor_dict_pickle(4, 3, {2}, {1}), storage))
                .find("reaches element 4 of a storage of 4"),
            std::string::npos);
  EXPECT_NE(torch_error(write_torch_archive(dir, "c.pth", tensor_dict_pickle(4, -1, {1}, {1}), storage))
                .find("negative storage offset"),
            std::string::npos);
  EXPECT_NE(torch_error(write_torch_archive(dir, "d.pth", tensor_dict_pickle(4, 0, {2, 2}, {1}), storage))
                .find("2 sizes and 1 strides"),
            std::string::npos);
  EXPECT_NE(torch_error(write_torch_archive(dir, "e.pth", tensor_dict_pickle(4, 0, {int64_t{1} << 40, 1 << 30}, {0, 0}),
                                            storage))
                .find("overflow"),
            std::string::npos);
}

TEST(TorchFileInput, DeepNestingAndMarkMisuseAreErrorsNotCrashes) {
  TempDir dir;
  const std::string storage(4, '\0');
  // 200,000 nested lists: ]]]]... then APPEND each into the one below.
  std::string deep = "\x80\x02";
  for (int i = 0; i < 200000; ++i) deep += "]";
  for (int i = 0; i < 199999; ++i) deep += "a";
  deep += ".";
  EXPECT_NE(torch_error(write_torch_archive(dir, "deep.pth", deep, storage)).find("holds no dict"), std::string::npos);
  // MARK, then POP below it, then a tuple to the mark.
  EXPECT_NE(torch_error(write_torch_archive(dir, "mark.pth", "\x80\x02NN(00t.", storage)).find("MARK"), std::string::npos);
}

// --- safetensors ------------------------------------------------------------------------------

std::string safetensors_bytes(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  const uint64_t length = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((length >> (8 * i)) & 0xFF);
  return out + header + data;
}

std::string safetensors_error(const TempDir& dir, const std::string& header, const std::string& data) {
  const auto path = dir.write("x.safetensors", safetensors_bytes(header, data));
  return error_of<ssld::Error>([&] { ssld::host::read_safetensors(path.string()); });
}

TEST(SafetensorsInput, MalformedHeadersAreNamedErrors) {
  TempDir dir;
  const std::string data(8, '\0');
  EXPECT_NE(safetensors_error(dir, "[1, 2]", data).find("not an object"), std::string::npos);
  EXPECT_NE(safetensors_error(dir, R"({"__metadata__": 5})", data).find("__metadata__ is a number"), std::string::npos);
  EXPECT_NE(safetensors_error(dir, R"({"w": {"dtype": "F32", "shape": [2]}})", data).find("data_offsets"),
            std::string::npos);
  EXPECT_NE(safetensors_error(dir, R"({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", data)
                .find("non-negative"),
            std::string::npos);
  EXPECT_NE(safetensors_error(dir, R"({"w": {"dtype": "F32", "shape": [1099511627776], "data_offsets": [0, 8]}})", data)
                .find("byte range"),
            std::string::npos);
  EXPECT_NE(safetensors_error(dir, R"({"w": {"dtype": "F32", "shape": [2],
                                   "data_offsets": [18446744073709551608, 18446744073709551616]}})",
                              data)
                .find("non-negative integers"),
            std::string::npos);
  EXPECT_NE(safetensors_error(dir, R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [18446744073709551608, 0]}})",
                              data)
                .find("byte range"),
            std::string::npos);
  EXPECT_NE(safetensors_error(dir, R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                       "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
                              data)
                .find("overlaps"),
            std::string::npos);
  EXPECT_NE(safetensors_error(dir, R"({"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},
                                       "b": {"dtype": "F32", "shape": [1], "data_offsets": [1, 5]}})",
                              std::string(5, '\0'))
                .find("not aligned"),
            std::string::npos);
  EXPECT_NE(safetensors_error(dir, std::string(200, '[') + std::string(200, ']'), data).find("nested deeper"),
            std::string::npos);
  const auto huge = dir.write("y.safetensors", std::string("\xff\xff\xff\xff\xff\xff\xff\x7f", 8) + "{}");
  EXPECT_NE(error_of<ssld::Error>([&] { ssld::host::read_safetensors(huge.string()); }).find("header length"),
            std::string::npos);
}

TEST(SafetensorsInput, AFlippedByteInATensorOrTheMetadataIsRefused) {
  TempDir dir;
  const auto path = (dir / "w.safetensors").string();
  ssld::host::write_safetensors(path, {{"a", at::arange(64, at::kFloat)}, {"b", at::ones({3}, at::kLong)}},
                                {{"epoch", "3"}});
  const auto file = ssld::host::read_safetensors(path);
  EXPECT_EQ(file.metadata.at("epoch"), "3");
  EXPECT_EQ(file.metadata.count("ssld.checksums"), 0u);  // the reader's business only
  const std::string bytes = ssld::test::read_file(path);
  std::string flipped = bytes;
  flipped[bytes.size() - 30] ^= 0x01;  // inside tensor "a"
  std::ofstream(path, std::ios::binary | std::ios::trunc) << flipped;
  const std::string error = error_of<ssld::Error>([&] { ssld::host::read_safetensors(path); });
  EXPECT_NE(error.find("tensor 'a' does not match its checksum"), std::string::npos) << error;

  std::string metadata_flipped = bytes;
  const auto epoch = metadata_flipped.find("\"epoch\":\"3\"");
  ASSERT_NE(epoch, std::string::npos);
  metadata_flipped[epoch + 9] = '4';
  std::ofstream(path, std::ios::binary | std::ios::trunc) << metadata_flipped;
  EXPECT_NE(error_of<ssld::Error>([&] { ssld::host::read_safetensors(path); }).find("metadata does not match"),
            std::string::npos);
}

TEST(SafetensorsInput, WhatSsldWritesIsAlignedWhateverTheOrderOfDtypes) {
  TempDir dir;
  const auto path = (dir / "mixed.safetensors").string();
  ssld::host::write_safetensors(path, {{"mask", at::ones({3}, at::kBool)},
                                       {"ids", at::arange(5, at::kInt)},
                                       {"half", at::ones({1}, at::kHalf)},
                                       {"w", at::arange(3, at::kDouble)}});
  const auto file = ssld::host::read_safetensors(path);
  ASSERT_EQ(file.tensors.size(), 4u);
  for (const auto& [name, tensor] : file.tensors)
    if (name == "ids") EXPECT_TRUE(tensor.equal(at::arange(5, at::kInt)));
}

TEST(SafetensorsInput, NotARegularFileIsRefusedBeforeReading) {
  EXPECT_NE(error_of<ssld::Error>([&] { ssld::host::read_safetensors("/dev/zero"); }).find("not a regular file"),
            std::string::npos);
}

// --- TOML configs and --set -----------------------------------------------------------------

std::string config_error(const TempDir& dir, const std::string& text, const std::vector<std::string>& overrides = {}) {
  const auto path = dir.write("c.toml", text);
  return error_of<ConfigError>([&] { ssld::host::load_config(path, overrides); });
}

TEST(ConfigInput, DeepNestingIsRefusedWithItsLine) {
  TempDir dir;
  EXPECT_NE(config_error(dir, "a = " + std::string(10000, '[') + std::string(10000, ']')).find("nest deeper"),
            std::string::npos);
  std::string tables = "a = ";
  for (int i = 0; i < 7000; ++i) tables += "{b = ";
  tables += "1" + std::string(7000, '}');
  EXPECT_NE(config_error(dir, "x = 1\n" + tables).find("c.toml:2"), std::string::npos);
  std::string dotted = "t";
  for (int i = 0; i < 100000; ++i) dotted += ".t";
  EXPECT_NE(config_error(dir, dotted + " = 1").find("dotted keys"), std::string::npos);
  EXPECT_NE(config_error(dir, "[" + dotted + "]").find("dotted keys"), std::string::npos);
  EXPECT_NE(config_error(dir, "x = 1", {dotted + "=1"}).find("key path of"), std::string::npos);
  // Brackets and dots inside strings and comments do not count.
  EXPECT_EQ(config_error(dir, "a = \"" + std::string(100, '[') + "\" # " + std::string(100, '.') + "\nb = '...'"),
            "(no error)");
}

TEST(ConfigInput, AnInlineTableOverrideIsATable) {
  TempDir dir;
  const auto path = dir.write("c.toml", "[[stage]]\nname = \"a\"\n[stage.train]\nepochs = 3\n");
  const auto root = ssld::host::load_config(path, {"stage.0.train={epochs=1}"});
  ASSERT_TRUE(root.at("stage").as_array()[0].at("train").is_table());
  EXPECT_EQ(root.at("stage").as_array()[0].at("train").at("epochs").as_integer(), 1);
}

std::string train_problems(const std::string& train_table) {
  TempDir dir;
  const auto path = dir.write("c.toml", "[train]\n" + train_table + "\n");
  const auto root = ssld::host::load_config(path);
  ssld::host::Diagnostics diagnostics;
  ssld::host::validate_options(root.at("train"), ssld::host::train_table_schema(), "[train]", {}, diagnostics);
  if (diagnostics.empty()) ssld::host::read_train_settings(root, diagnostics);
  std::string text;
  for (const auto& item : diagnostics.items()) text += item.message + "\n";
  return text;
}

TEST(ConfigInput, NumbersAreCheckedForWhatTheyMean) {
  EXPECT_NE(train_problems("lr = nan").find("finite"), std::string::npos);
  EXPECT_NE(train_problems("momentum = nan").find("finite"), std::string::npos);
  EXPECT_NE(train_problems("weight_decay = -inf").find("finite"), std::string::npos);
  EXPECT_NE(train_problems("betas = [0.9, nan]").find("number"), std::string::npos);
  EXPECT_NE(train_problems("lr = -0.1").find("lr: must be positive"), std::string::npos);
  EXPECT_NE(train_problems("warmup_epochs = -0.1").find("warmup_epochs"), std::string::npos);
  EXPECT_NE(train_problems("momentum = 1.5").find("momentum"), std::string::npos);
  EXPECT_NE(train_problems("weight_decay = -1e-4").find("weight_decay"), std::string::npos);
  EXPECT_EQ(train_problems("lr = 0.05\nmomentum = 0.9\nwarmup_epochs = 0.5"), "");
}

TEST(ConfigInput, IntegersBeyond64BitsAreRefusedNotSaturated) {
  TempDir dir;
  const auto path = dir.write("c.toml", "[run]\nseed = 18446744073709551616\n");
  ssld::host::Diagnostics diagnostics;
  ssld::host::validate_host_tables(ssld::host::load_config(path), diagnostics);
  ASSERT_EQ(diagnostics.items().size(), 1u);
  EXPECT_NE(diagnostics.items()[0].message.find("saturates"), std::string::npos) << diagnostics.items()[0].message;
}

TEST(ConfigInput, AFileThatIsNotUtf8IsRefusedBeforeToml11ReadsPastIt) {  // found by the config fuzz target
  TempDir dir;
  // A literal-string key holding an overlong sequence: toml11 read past its buffer on it.
  EXPECT_NE(config_error(dir, std::string("'# SS\xc1LD for.4), PaddleClas' pud\x19""a")).find("not valid UTF-8"),
            std::string::npos);
  EXPECT_NE(config_error(dir, "a = 1\nname = \"\xff\"\n").find("c.toml:2"), std::string::npos);  // the line
  EXPECT_EQ(config_error(dir, "name = \"gr\xc3\xbc\xc3\x9f \xe2\x9c\x93 \xf0\x9f\x98\x80\"\n"), "(no error)");
}

TEST(ConfigInput, AnOverrideThatIsNotUtf8IsAConfigError) {  // found by the config fuzz target
  TempDir dir;
  EXPECT_NE(config_error(dir, "[train]\nepochs = 1\n", {"train.epochs=\xff"}).find("not valid UTF-8"),
            std::string::npos);
  EXPECT_NE(config_error(dir, "[train]\nepochs = 1\n", {"train.\xff=1"}).find("not valid UTF-8"), std::string::npos);
}

// --- state ssld reads back: loss scale, mining tally (found by the fuzz targets) -------------

TEST(StateInput, ALossScaleThatIsNotANumberIsAnError) {
  ssld::host::LossScaler scaler(true, 1024.0, 10);
  EXPECT_NE(error_of<ssld::Error>([&] { scaler.load_state({{"loss_scale", "abc"}}); }).find("not a positive number"),
            std::string::npos);
  EXPECT_NE(error_of<ssld::Error>([&] { scaler.load_state({{"loss_scale_good_steps", "-3"}}); }).find("not a count"),
            std::string::npos);
  scaler.load_state({{"loss_scale", "512"}, {"loss_scale_good_steps", "4"}});
  EXPECT_EQ(scaler.scale(), 512.0);
}

TEST(StateInput, AMiningTallyOfAnotherClassCountIsRefused) {
  ssld::host::MineTally tally(10, 20);
  nlohmann::json state = ssld::host::MineTally(10, 20).to_json();
  state["predicted_per_class"] = std::vector<int64_t>(3, 1);  // the miner would index it by class 0..9
  EXPECT_NE(error_of<ssld::Error>([&] { tally.load_json(state); }).find("3 classes"), std::string::npos);
}

TEST(StateInput, AFloatWhereAnIntegerBelongsIsAnErrorNotACast) {  // found by the mine_state fuzz target (UBSan)
  ssld::host::MineTally tally(10, 20);
  nlohmann::json state = ssld::host::MineTally(10, 20).to_json();
  state["seen"] = 3.33333e27;
  EXPECT_NE(error_of<ssld::Error>([&] { tally.load_json(state); }).find("expected an integer"), std::string::npos);
  EXPECT_EQ(ssld::host::json_int(nlohmann::json(-5)), -5);
  EXPECT_NE(error_of<ssld::Error>([] { ssld::host::json_uint(nlohmann::json(1e28)); }).find("non-negative integer"),
            std::string::npos);
}

// --- writes ---------------------------------------------------------------------------------

TEST(AtomicWrites, ConcurrentWritersOfOnePathNeverFailAndLeaveOneWholeFile) {
  TempDir dir;
  const auto path = dir / "key.json";
  std::vector<std::thread> writers;
  std::atomic<int> failures{0};
  for (int w = 0; w < 4; ++w)
    writers.emplace_back([&, w] {
      const std::string text(4096 + w, static_cast<char>('a' + w));
      for (int i = 0; i < 100; ++i) {
        try {
          ssld::host::write_file_atomically(path, text);
        } catch (const std::exception&) {
          ++failures;
        }
      }
    });
  for (auto& writer : writers) writer.join();
  EXPECT_EQ(failures.load(), 0);
  const std::string final_text = ssld::test::read_file(path);
  ASSERT_GE(final_text.size(), 4096u);
  EXPECT_EQ(final_text, std::string(final_text.size(), final_text[0]));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);  // no temporaries left
}

TEST(AtomicWrites, AFileSizeLimitIsAnErrorNamingTheFileAndTheOldFileSurvives) {
  TempDir dir;
  const auto path = dir / "last.safetensors";
  ssld::host::write_file_atomically(path, "old");
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    ::close(pipe_fds[0]);
    ssld::host::ignore_file_size_signal();
    struct rlimit limit {1024, 1024};
    ::setrlimit(RLIMIT_FSIZE, &limit);
    std::string message = "(no error)";
    try {
      ssld::host::write_file_atomically(path, std::string(1 << 20, 'x'));
    } catch (const ssld::Error& error) {
      message = error.what();
    }
    (void)!::write(pipe_fds[1], message.data(), message.size());
    ::_exit(0);
  }
  ::close(pipe_fds[1]);
  std::string message;
  char buffer[512];
  for (ssize_t got; (got = ::read(pipe_fds[0], buffer, sizeof(buffer))) > 0;) message.append(buffer, got);
  ::close(pipe_fds[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << "the child died by signal " << WTERMSIG(status);
  EXPECT_NE(message.find("cannot write '" + path.string() + "'"), std::string::npos) << message;
  EXPECT_NE(message.find("File too large"), std::string::npos) << message;
  EXPECT_EQ(ssld::test::read_file(path), "old");
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);
}

// --- teacher-cache epoch files ---------------------------------------------------------------

TEST(EpochFileInput, HeaderCountsAndRecordLengthsAreCheckedAgainstTheFile) {
  TempDir dir;
  const ssld::host::SoftLabelCodec codec("fp32", 4, 0);
  const auto path = dir / "epoch_00000.bin";
  {
    ssld::host::EpochWriter writer(path, 7, codec, 2);
    for (int step = 0; step < 2; ++step) writer.append(at::arange(3, at::kLong), codec.encode(at::zeros({3, 4})));
    writer.finish();
  }
  const std::string bytes = ssld::test::read_file(path);
  auto with_int64_at = [&](size_t offset, int64_t value) {
    std::string changed = bytes;
    std::memcpy(changed.data() + offset, &value, 8);
    std::ofstream(path, std::ios::binary | std::ios::trunc) << changed;
  };
  constexpr size_t kStepsOffset = 32, kFirstRecordLength = 48 + 8;
  for (const int64_t steps : {int64_t{-1}, int64_t{1} << 40, int64_t{3}}) {
    with_int64_at(kStepsOffset, steps);
    EXPECT_NE(error_of<ssld::Error>([&] { ssld::host::EpochReader(path, 7, codec); }).find("damaged header or index"),
              std::string::npos)
        << steps;
  }
  with_int64_at(kFirstRecordLength, int64_t{1} << 40);
  const ssld::host::EpochReader reader(path, 7, codec);
  EXPECT_NE(error_of<ssld::Error>([&] { reader.read(0); }).find("record header"), std::string::npos);
  EXPECT_NO_THROW(reader.read(1));
}

TEST(EpochFileInput, StrayFilesInAStoreFolderAreNotEpochs) {
  TempDir dir;
  const ssld::host::SoftLabelStore store(dir.path(), nlohmann::json{{"teacher", "t"}});
  store.write_key();
  const auto folder = store.epoch_path(0).parent_path();
  std::ofstream(folder / "epoch_xxxxx.bin") << "stray";
  std::ofstream(folder / "epoch_00003.bin.123.partial") << "stray";
  std::ofstream(folder / "epoch_00002.bin") << "";
  EXPECT_EQ(store.epochs(), std::vector<int64_t>{2});
}

// --- images ---------------------------------------------------------------------------------

TEST(ImageInput, AShortWebPHeaderIsNotReadPast) {  // found by the image_decode fuzz target (ASan)
  std::vector<uint8_t> webp = {'R', 'I', 'F', 'F', 22, 0, 0, 0, 'W', 'E', 'B', 'P', 'V', 'P', '8', 'X',
                               10, 0, 0, 0, 0, 0, 0, 0, 0x0F, 0, 0, 0x0F, 0, 0};  // 30 bytes: one short
  int64_t width = 0, height = 0;
  EXPECT_FALSE(ssld::host::image_size(webp, width, height));
  webp.push_back(0);
  ASSERT_TRUE(ssld::host::image_size(webp, width, height));
  EXPECT_EQ(width, 16);
  EXPECT_EQ(height, 16);
}

TEST(ImageInput, AnImageClaimingTooManyPixelsIsRefusedBeforeDecoding) {
  // A PNG signature and IHDR claiming 20000 x 20000: refused from the header alone.
  std::vector<uint8_t> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R',
                              0,    0,   0x4E, 0x20, 0, 0, 0x4E, 0x20, 8, 2, 0, 0, 0};
  const std::string error = error_of<ssld::host::DataError>([&] { ssld::host::decode_image(png); });
  EXPECT_NE(error.find("20000 x 20000 pixels, more than max_image_pixels = 89478485"), std::string::npos) << error;
  const std::string raised = error_of<ssld::host::DataError>([&] { ssld::host::decode_image(png, 0, int64_t{1} << 30); });
  EXPECT_EQ(raised.find("max_image_pixels"), std::string::npos) << raised;  // decoding is tried (and fails)
}

}  // namespace
