// Datasets of encoded image files, read as bytes (the host decodes them with OpenCV):
//   image_folder: ImageNet layout, one sub-folder per class (sorted by name), or with
//                 labeled = false any folder tree of images without classes;
//   file_list:    PaddleClas-style list files, "relative/path [label]" per line.
// A sample's id hashes its path relative to the root, so it is stable across machines.
#include <ssld/data.hpp>
#include <ssld/plugin.hpp>
#include <ssld/rng.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

namespace {
namespace fs = std::filesystem;

struct ImageFile {
  std::string relative;  // to the root
  int64_t label = -1;
};

constexpr uintmax_t kMaxImageFileBytes = uintmax_t{1} << 30;

// The shared part of both datasets: a root folder and a list of files under it.
class ImageFiles : public ssld::Dataset {
 public:
  int64_t size() const override { return static_cast<int64_t>(files_.size()); }
  ssld::Sample get(int64_t index) const override {
    const ImageFile& file = files_.at(static_cast<size_t>(index));
    ssld::Sample sample;
    sample.origin = (root_ / file.relative).string();
    sample.label = file.label;
    sample.id = ssld::Rng::purpose_of(file.relative);
    // Only regular files of a sane size are read: a listed FIFO or device would hang or grow
    // without bound. What fails here is a bad image (on_bad_image decides), not a crash.
    std::error_code error;
    if (!fs::is_regular_file(sample.origin, error)) throw ssld::Error("'" + sample.origin + "' is not a regular file");
    const uintmax_t bytes = fs::file_size(sample.origin, error);
    if (error || bytes > kMaxImageFileBytes)
      throw ssld::Error("'" + sample.origin + "' is " + std::to_string(bytes) + " bytes, more than an image file may have");
    std::ifstream in(sample.origin, std::ios::binary);
    if (!in) throw ssld::Error("cannot open '" + sample.origin + "'");
    sample.encoded.resize(static_cast<size_t>(bytes));
    in.read(reinterpret_cast<char*>(sample.encoded.data()), static_cast<std::streamsize>(bytes));
    sample.encoded.resize(static_cast<size_t>(in.gcount()));
    return sample;
  }
  int64_t label_of(int64_t index) const override { return files_.at(static_cast<size_t>(index)).label; }
  int64_t num_classes() const override { return num_classes_; }
  std::vector<std::string> class_names() const override { return class_names_; }
  std::string identity() const override {
    uint64_t hash = ssld::Rng::purpose_of(root_.string());
    for (const auto& file : files_) hash = ssld::Rng::purpose_of(std::to_string(hash) + file.relative);
    return "files:" + root_.string() + ":" + std::to_string(files_.size()) + ":" + std::to_string(hash);
  }

 protected:
  fs::path root_;
  std::vector<ImageFile> files_;
  std::vector<std::string> class_names_;
  int64_t num_classes_ = 0;
};

bool has_extension(const fs::path& path, const std::vector<std::string>& extensions) {
  std::string extension = path.extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(), [](unsigned char c) { return std::tolower(c); });
  return std::find(extensions.begin(), extensions.end(), extension) != extensions.end();
}

std::vector<std::string> sorted_images_under(const fs::path& folder, const fs::path& root,
                                             const std::vector<std::string>& extensions) {
  std::vector<std::string> found;
  for (const auto& entry : fs::recursive_directory_iterator(folder, fs::directory_options::follow_directory_symlink))
    if (entry.is_regular_file() && has_extension(entry.path(), extensions))
      found.push_back(fs::relative(entry.path(), root).generic_string());
  std::sort(found.begin(), found.end());
  return found;
}

class ImageFolder : public ImageFiles {
 public:
  ImageFolder(const ssld::Options& options, const ssld::Context& context) {
    root_ = options.get_string("root");
    if (!fs::is_directory(root_)) throw ssld::option_error(options, "root", "'" + root_.string() + "' is not a folder");
    const auto extensions = options.get_string_list("extensions");
    if (options.get_bool("labeled")) {
      std::vector<std::string> classes;
      for (const auto& entry : fs::directory_iterator(root_))
        if (entry.is_directory()) classes.push_back(entry.path().filename().string());
      std::sort(classes.begin(), classes.end());
      if (classes.empty())
        throw ssld::option_error(options, "root", "'" + root_.string() +
                                                      "' has no class sub-folders; use labeled = false for a flat folder");
      for (size_t label = 0; label < classes.size(); ++label)
        for (auto& relative : sorted_images_under(root_ / classes[label], root_, extensions))
          files_.push_back(ImageFile{std::move(relative), static_cast<int64_t>(label)});
      class_names_ = classes;
      num_classes_ = static_cast<int64_t>(classes.size());
    } else {
      for (auto& relative : sorted_images_under(root_, root_, extensions)) files_.push_back(ImageFile{std::move(relative), -1});
    }
    if (files_.empty()) throw ssld::option_error(options, "root", "no images under '" + root_.string() + "'");
    context.log(ssld::LogLevel::Debug, std::to_string(files_.size()) + " images in " + root_.string());
  }
};

class FileList : public ImageFiles {
 public:
  FileList(const ssld::Options& options, const ssld::Context&) {
    root_ = options.get_string("root");
    const auto lists = options.get_string_list("lists");
    if (lists.empty()) throw ssld::option_error(options, "lists", "name at least one list file");
    for (const auto& list : lists) {
      std::ifstream in(list);
      if (!in) throw ssld::option_error(options, "lists", "cannot open list file '" + list + "'");
      std::string line;
      for (int line_number = 1; std::getline(in, line); ++line_number) {
        std::istringstream fields(line);
        ImageFile file;
        std::string label;
        if (!(fields >> file.relative) || file.relative[0] == '#') continue;
        if (fields >> label) {
          try {
            size_t used = 0;
            file.label = std::stoll(label, &used);
            if (used != label.size() || file.label < 0) throw std::invalid_argument(label);
          } catch (const std::exception&) {
            throw ssld::Error(list + ":" + std::to_string(line_number) + ": '" + label +
                              "' is not a class index (a non-negative integer)");
          }
          num_classes_ = std::max(num_classes_, file.label + 1);
        }
        files_.push_back(std::move(file));
      }
    }
    if (files_.empty()) throw ssld::option_error(options, "lists", "the list files name no image");
  }
};

}  // namespace

SSLD_PLUGIN("image_files_dataset", "0.1.0", registry) {
  const std::vector<std::string> extensions = {".jpg", ".jpeg", ".png", ".bmp", ".webp"};
  ssld::add_component<ssld::Dataset, ImageFolder>(
      registry, "image_folder",
      "Image files in an ImageNet-style folder (one sub-folder per class, sorted), or unlabeled with labeled = false.",
      ssld::Schema()
          .require(ssld::OptionType::Path, "root", "the folder")
          .add_bool("labeled", true, "sub-folders are classes; false: every image under root, unlabeled")
          .add_string_list("extensions", extensions, "file extensions to take (lower case)"));
  ssld::add_component<ssld::Dataset, FileList>(
      registry, "file_list",
      "PaddleClas-style list files: 'relative/path [label]' per line; a line without a label is unlabeled.",
      ssld::Schema()
          .require(ssld::OptionType::PathList, "lists", "list files, combined in order")
          .require(ssld::OptionType::Path, "root", "folder the listed paths are relative to"));
}
