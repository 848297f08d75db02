#include "weights/torch_file.hpp"

#include "core/atomic_file.hpp"

#include <ssld/error.hpp>

#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>

#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <variant>

namespace ssld::host {

namespace {

// The Python values a torch.save pickle builds, as far as a state dict needs them.
struct PyValue;
using PyRef = std::shared_ptr<PyValue>;
struct PyGlobal {
  std::string module, name;
};
struct PyOpaque {
  std::string what;  // "argparse.Namespace": an object we do not rebuild
};
using PyList = std::vector<PyRef>;
using PyDict = std::vector<std::pair<PyRef, PyRef>>;  // insertion order, like Python's dicts
struct PyTuple {
  std::vector<PyRef> items;
};
struct PyValue {
  std::variant<std::monostate, bool, int64_t, double, std::string, PyTuple, PyList, PyDict, at::Tensor, PyGlobal,
               PyOpaque>
      value;
  ~PyValue();
};

// A pickle can nest containers as deep as it has bytes; destroying them recursively would
// exhaust the stack. Children are moved to one worklist that the outermost destructor drains.
PyValue::~PyValue() {
  static thread_local std::vector<PyRef>* pending = nullptr;
  std::vector<PyRef> children;
  if (auto* list = std::get_if<PyList>(&value)) children = std::move(*list);
  else if (auto* tuple = std::get_if<PyTuple>(&value)) children = std::move(tuple->items);
  else if (auto* dict = std::get_if<PyDict>(&value))
    for (auto& [key, item] : *dict) children.push_back(std::move(key)), children.push_back(std::move(item));
  if (children.empty()) return;
  if (pending != nullptr) {
    for (auto& child : children) pending->push_back(std::move(child));
    return;
  }
  pending = &children;
  while (!children.empty()) {
    PyRef last = std::move(children.back());
    children.pop_back();
    last.reset();  // may append its own children to `children`
  }
  pending = nullptr;
}

PyRef make(decltype(PyValue::value) value) { return std::make_shared<PyValue>(PyValue{std::move(value)}); }

at::ScalarType storage_dtype(const std::string& name) {
  static const std::map<std::string, at::ScalarType> types = {
      {"FloatStorage", at::kFloat},  {"DoubleStorage", at::kDouble}, {"HalfStorage", at::kHalf},
      {"BFloat16Storage", at::kBFloat16}, {"LongStorage", at::kLong}, {"IntStorage", at::kInt},
      {"ShortStorage", at::kShort},  {"CharStorage", at::kChar},     {"ByteStorage", at::kByte},
      {"BoolStorage", at::kBool}};
  auto found = types.find(name);
  if (found == types.end()) throw Error("unsupported storage type torch." + name);
  return found->second;
}

// A pickle machine for the opcodes of protocols 2-5 that torch.save emits.
class Unpickler {
 public:
  Unpickler(const char* data, size_t size, caffe2::serialize::PyTorchStreamReader& archive, std::string source)
      : data_(data), size_(size), archive_(archive), source_(std::move(source)) {}

  PyRef run() {
    while (true) {
      const uint8_t op = byte();
      switch (op) {
        case 0x80: byte(); break;                 // PROTO
        case 0x95: read(8); break;                // FRAME
        case '.': return pop();                   // STOP
        case '(': marks_.push_back(stack_.size()); break;
        case ')': push(make(PyTuple{})); break;
        case ']': push(make(PyList{})); break;
        case '}': push(make(PyDict{})); break;
        case 0x8f: push(make(PyList{})); break;  // EMPTY_SET: a list will do
        case 'N': push(make(std::monostate{})); break;
        case 0x88: push(make(true)); break;
        case 0x89: push(make(false)); break;
        case 'J': push(make(static_cast<int64_t>(little<int32_t>()))); break;
        case 'K': push(make(static_cast<int64_t>(little<uint8_t>()))); break;
        case 'M': push(make(static_cast<int64_t>(little<uint16_t>()))); break;
        case 0x8a: push(make(long1())); break;
        case 'G': push(make(big_double())); break;
        case 'X': push(make(read(little<uint32_t>()))); break;
        case 0x8c: push(make(read(little<uint8_t>()))); break;
        case 0x8d: push(make(read(static_cast<size_t>(little<uint64_t>())))); break;
        case 'T': case 'B': push(make(read(little<uint32_t>()))); break;
        case 'U': case 'C': push(make(read(little<uint8_t>()))); break;
        case 0x8e: push(make(read(static_cast<size_t>(little<uint64_t>())))); break;
        case 't': push(make(PyTuple{pop_to_mark()})); break;
        case 0x85: { auto a = pop(); push(make(PyTuple{{a}})); break; }
        case 0x86: { auto b = pop(), a = pop(); push(make(PyTuple{{a, b}})); break; }
        case 0x87: { auto c = pop(), b = pop(), a = pop(); push(make(PyTuple{{a, b, c}})); break; }
        case 'l': push(make(PyList(pop_to_mark()))); break;
        case 'a': { auto item = pop(); as<PyList>(top(), "APPEND").push_back(item); break; }
        case 'e': case 0x90: {
          auto items = pop_to_mark();
          auto& list = as<PyList>(top(), "APPENDS");
          list.insert(list.end(), items.begin(), items.end());
          break;
        }
        case 's': { auto value = pop(), key = pop(); as<PyDict>(top(), "SETITEM").emplace_back(key, value); break; }
        case 'u': {
          auto items = pop_to_mark();
          auto& dict = as<PyDict>(top(), "SETITEMS");
          for (size_t i = 0; i + 1 < items.size(); i += 2) dict.emplace_back(items[i], items[i + 1]);
          break;
        }
        case 'd': {
          auto items = pop_to_mark();
          PyDict dict;
          for (size_t i = 0; i + 1 < items.size(); i += 2) dict.emplace_back(items[i], items[i + 1]);
          push(make(std::move(dict)));
          break;
        }
        case 'c': {
          std::string module = line(), name = line();
          push(make(PyGlobal{module, name}));
          break;
        }
        case 0x93: {
          auto name = pop(), module = pop();
          push(make(PyGlobal{as<std::string>(module, "STACK_GLOBAL"), as<std::string>(name, "STACK_GLOBAL")}));
          break;
        }
        case 'R': { auto args = pop(), callable = pop(); push(reduce(callable, args)); break; }
        case 0x81: { pop(); auto cls = pop(); push(make(PyOpaque{describe(cls)})); break; }  // NEWOBJ
        case 'b': pop(); break;  // BUILD: object state (an OrderedDict's _metadata); not needed
        case 'Q': push(persistent(pop())); break;
        case 'q': memo_[little<uint8_t>()] = top(); break;
        case 'r': memo_[little<uint32_t>()] = top(); break;
        case 0x94: memo_[memo_.size()] = top(); break;
        case 'h': push(memo(little<uint8_t>())); break;
        case 'j': push(memo(little<uint32_t>())); break;
        case '0': pop(); break;
        case '1': pop_to_mark(); break;
        case '2': push(top()); break;
        default: {
          char hex[8];
          std::snprintf(hex, sizeof(hex), "0x%02x", op);
          fail(std::string("unsupported pickle opcode ") + hex);
        }
      }
    }
  }

 private:
  [[noreturn]] void fail(const std::string& message) const {
    throw Error("cannot read '" + source_ + "' as a torch.save file: " + message + " (at byte " +
                std::to_string(position_) + ")");
  }
  uint8_t byte() {
    if (position_ >= size_) fail("the pickle ends early");
    return static_cast<uint8_t>(data_[position_++]);
  }
  std::string read(size_t count) {
    if (count > size_ - position_) fail("the pickle ends early");
    std::string out(data_ + position_, count);
    position_ += count;
    return out;
  }
  template <class T>
  T little() {
    const std::string bytes = read(sizeof(T));
    T value;
    std::memcpy(&value, bytes.data(), sizeof(T));  // x86 and ARM are little-endian
    return value;
  }
  double big_double() {
    std::string bytes = read(8);
    std::reverse(bytes.begin(), bytes.end());
    double value;
    std::memcpy(&value, bytes.data(), 8);
    return value;
  }
  int64_t long1() {
    const std::string bytes = read(little<uint8_t>());
    if (bytes.size() > 8) fail("an integer wider than 64 bits");
    int64_t value = 0;
    for (size_t i = 0; i < bytes.size(); ++i) value |= static_cast<int64_t>(static_cast<uint8_t>(bytes[i])) << (8 * i);
    if (!bytes.empty() && bytes.size() < 8 && (bytes.back() & 0x80)) value -= int64_t{1} << (8 * bytes.size());
    return value;
  }
  std::string line() {
    std::string out;
    for (char c = static_cast<char>(byte()); c != '\n'; c = static_cast<char>(byte())) out += c;
    return out;
  }
  void push(PyRef value) { stack_.push_back(std::move(value)); }
  PyRef& top() {
    if (stack_.empty()) fail("stack underflow");
    return stack_.back();
  }
  PyRef pop() {
    PyRef value = top();
    stack_.pop_back();
    return value;
  }
  std::vector<PyRef> pop_to_mark() {
    if (marks_.empty()) fail("no MARK");
    const size_t mark = marks_.back();
    marks_.pop_back();
    if (mark > stack_.size()) fail("a MARK below values that were popped");
    std::vector<PyRef> items(stack_.begin() + static_cast<std::ptrdiff_t>(mark), stack_.end());
    stack_.resize(mark);
    return items;
  }
  PyRef memo(size_t index) {
    auto found = memo_.find(index);
    if (found == memo_.end()) fail("unknown memo entry");
    return found->second;
  }
  template <class T>
  T& as(const PyRef& value, const char* what) {
    if (auto* typed = std::get_if<T>(&value->value)) return *typed;
    fail(std::string("unexpected value for ") + what);
  }
  static std::string describe(const PyRef& value) {
    if (auto* global = std::get_if<PyGlobal>(&value->value)) return global->module + "." + global->name;
    return "object";
  }

  // Calls the few functions a state dict needs; anything else becomes an opaque value.
  PyRef reduce(const PyRef& callable, const PyRef& args) {
    const auto* global = std::get_if<PyGlobal>(&callable->value);
    const std::string name = global ? global->module + "." + global->name : "";
    if (name == "collections.OrderedDict") return make(PyDict{});
    const auto* tuple = std::get_if<PyTuple>(&args->value);
    if (name == "torch._utils._rebuild_tensor_v2" && tuple && tuple->items.size() >= 4) {
      const at::Tensor storage = as<at::Tensor>(tuple->items[0], "a tensor's storage");
      const int64_t offset = as<int64_t>(tuple->items[1], "a tensor's offset");
      std::vector<int64_t> sizes, strides;
      for (const auto& v : as<PyTuple>(tuple->items[2], "a tensor's size").items) sizes.push_back(as<int64_t>(v, "size"));
      for (const auto& v : as<PyTuple>(tuple->items[3], "a tensor's stride").items)
        strides.push_back(as<int64_t>(v, "stride"));
      check_view(sizes, strides, offset, storage.numel());
      return make(storage.as_strided(sizes, strides, offset).clone());
    }
    // _rebuild_parameter(tensor, ...); restore_type_tag(dict, "Dict[str, Tensor]") from libtorch's pickler.
    if ((name == "torch._utils._rebuild_parameter" || name == "torch.jit._pickle.restore_type_tag") && tuple &&
        !tuple->items.empty())
      return tuple->items[0];
    return make(PyOpaque{name.empty() ? "object" : name});
  }

  // A tensor's view of its storage must stay inside it: every size, stride and the offset
  // non-negative, and the last element's index (overflow-checked) below the storage's length.
  void check_view(const std::vector<int64_t>& sizes, const std::vector<int64_t>& strides, int64_t offset,
                  int64_t storage_elements) const {
    if (sizes.size() != strides.size()) fail("a tensor with " + std::to_string(sizes.size()) + " sizes and " +
                                             std::to_string(strides.size()) + " strides");
    if (sizes.size() > 64) fail("a tensor with " + std::to_string(sizes.size()) + " dimensions");
    if (offset < 0) fail("a negative storage offset");
    int64_t last = offset, elements = 1;
    for (size_t d = 0; d < sizes.size(); ++d) {
      if (sizes[d] < 0 || strides[d] < 0) fail("a negative size or stride");
      int64_t reach = 0;
      if (__builtin_mul_overflow(sizes[d], elements, &elements) ||
          (sizes[d] > 0 && (__builtin_mul_overflow(sizes[d] - 1, strides[d], &reach) ||
                            __builtin_add_overflow(last, reach, &last))))
        fail("a tensor whose size or strides overflow");
    }
    if (elements > 0 && last >= storage_elements)
      fail("a tensor that reaches element " + std::to_string(last) + " of a storage of " +
           std::to_string(storage_elements));
  }

  // ('storage', torch.FloatStorage, key, location, numel): the bytes are the record data/<key>.
  PyRef persistent(const PyRef& id) {
    const auto& items = as<PyTuple>(id, "a persistent id").items;
    if (items.size() < 5 || as<std::string>(items[0], "a persistent id") != "storage") fail("unknown persistent id");
    const auto& type = as<PyGlobal>(items[1], "a storage type");
    const at::ScalarType dtype = storage_dtype(type.name);
    const std::string key = as<std::string>(items[2], "a storage key");
    if (auto cached = storages_.find(key); cached != storages_.end()) return make(cached->second);
    const int64_t numel = as<int64_t>(items[4], "a storage's element count");
    const std::string record = "data/" + key;
    if (!archive_.hasRecord(record)) fail("the storage record '" + record + "' is missing from the archive");
    const size_t element_size = c10::elementSize(dtype);
    size_t expected = 0;
    if (numel < 0 || __builtin_mul_overflow(static_cast<size_t>(numel), element_size, &expected))
      fail("storage '" + key + "' claims " + std::to_string(numel) + " elements");
    auto [bytes, size] = archive_.getRecord(record);
    if (size != expected)
      fail("storage '" + key + "' holds " + std::to_string(size) + " bytes, not the " + std::to_string(expected) +
           " of its " + std::to_string(numel) + " " + type.name + " elements (a damaged or truncated file)");
    at::Tensor storage = at::empty({numel}, at::TensorOptions().dtype(dtype));
    if (size > 0) std::memcpy(storage.data_ptr(), bytes.get(), size);
    storages_[key] = storage;
    return make(storage);
  }

  const char* data_;
  size_t size_;
  size_t position_ = 0;
  caffe2::serialize::PyTorchStreamReader& archive_;
  std::string source_;
  std::vector<PyRef> stack_;
  std::vector<size_t> marks_;
  std::map<size_t, PyRef> memo_;
  std::map<std::string, at::Tensor> storages_;
};

// The dict's tensor entries, or nothing when it holds anything but tensors and plain values.
std::optional<NamedTensors> tensors_of(const PyDict& dict) {
  NamedTensors tensors;
  for (const auto& [key, value] : dict) {
    const auto* name = std::get_if<std::string>(&key->value);
    if (name == nullptr) return std::nullopt;
    if (const auto* tensor = std::get_if<at::Tensor>(&value->value)) tensors.emplace_back(*name, *tensor);
    else if (std::holds_alternative<PyDict>(value->value) || std::holds_alternative<PyOpaque>(value->value))
      return std::nullopt;  // a checkpoint: its state dict is nested
  }
  if (tensors.empty()) return std::nullopt;
  return tensors;
}

}  // namespace

bool looks_like_torch_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  return in.gcount() == 4 && std::memcmp(magic, "PK\x03\x04", 4) == 0;
}

NamedTensors read_torch_file(const std::string& path) {
  if (!looks_like_torch_file(path))
    throw Error("'" + path + "' is not a torch.save file (zip format, PyTorch >= 1.6); re-save it with "
                "torch.save(state_dict, path) from a recent PyTorch, or convert it to safetensors");
  PyRef root;
  try {
    caffe2::serialize::PyTorchStreamReader archive(path);
    auto [bytes, size] = archive.getRecord("data.pkl");
    root = Unpickler(static_cast<const char*>(bytes.get()), size, archive, path).run();
  } catch (const c10::Error& error) {
    throw Error("cannot read '" + path + "' as a torch.save file: " + error.what_without_backtrace());
  } catch (const std::bad_alloc&) {
    throw Error("cannot read '" + path + "' as a torch.save file: a record claims more memory than there is (a "
                "damaged file?)");
  }
  const auto* dict = std::get_if<PyDict>(&root->value);
  if (dict == nullptr) throw Error("'" + path + "' holds no dict (torch.save of a whole model is not supported: save its state_dict())");
  std::optional<NamedTensors> tensors = tensors_of(*dict);
  std::string keys;
  if (!tensors) {
    for (const char* wanted : {"state_dict", "model", "model_state_dict", "module"}) {
      for (const auto& [key, value] : *dict) {
        const auto* name = std::get_if<std::string>(&key->value);
        const auto* nested = std::get_if<PyDict>(&value->value);
        if (name && *name == wanted && nested) tensors = tensors_of(*nested);
        if (tensors) break;
      }
      if (tensors) break;
    }
  }
  if (!tensors) {
    for (const auto& [key, value] : *dict)
      if (const auto* name = std::get_if<std::string>(&key->value)) keys += (keys.empty() ? "" : ", ") + *name;
    throw Error("'" + path + "' holds no state dict: its top-level keys are " + (keys.empty() ? "none" : keys) +
                "; expected tensors, or a dict of them under 'state_dict', 'model', 'model_state_dict' or 'module'");
  }
  const bool data_parallel = std::all_of(tensors->begin(), tensors->end(),
                                         [](const auto& entry) { return entry.first.rfind("module.", 0) == 0; });
  if (data_parallel)
    for (auto& entry : *tensors) entry.first = entry.first.substr(7);
  return *tensors;
}

namespace {

// The storage class torch.save names for a dtype (torch._storage_classes, which
// torch.load(weights_only=True) accepts).
const char* storage_class(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat: return "FloatStorage";
    case at::kDouble: return "DoubleStorage";
    case at::kHalf: return "HalfStorage";
    case at::kBFloat16: return "BFloat16Storage";
    case at::kLong: return "LongStorage";
    case at::kInt: return "IntStorage";
    case at::kShort: return "ShortStorage";
    case at::kChar: return "CharStorage";
    case at::kByte: return "ByteStorage";
    case at::kBool: return "BoolStorage";
    case at::kComplexFloat: return "ComplexFloatStorage";
    case at::kComplexDouble: return "ComplexDoubleStorage";
    default: return nullptr;
  }
}

// A pickle (protocol 2) of only what torch.save emits for a state dict and what
// torch.load(weights_only=True) allows: collections.OrderedDict, torch._utils._rebuild_tensor_v2
// and storage classes, strings, ints, tuples, booleans, and persistent ids of storages.
class StateDictPickler {
 public:
  void begin() { bytes_ += "\x80\x02"; }  // PROTO 2
  void global(const char* module, const char* name) {
    bytes_ += 'c';
    bytes_ += module;
    bytes_ += '\n';
    bytes_ += name;
    bytes_ += '\n';
  }
  void mark() { bytes_ += '('; }
  void tuple() { bytes_ += 't'; }
  void empty_tuple() { bytes_ += ')'; }
  void reduce() { bytes_ += 'R'; }
  void boolean(bool value) { bytes_ += value ? '\x88' : '\x89'; }
  void persistent_id() { bytes_ += 'Q'; }
  void set_items() { bytes_ += 'u'; }
  void stop() { bytes_ += '.'; }
  void string(const std::string& text) {
    bytes_ += 'X';
    append_le(static_cast<uint32_t>(text.size()), 4);
    bytes_ += text;
  }
  void integer(int64_t value) {
    if (value >= 0 && value < 256) {
      bytes_ += 'K';
      append_le(static_cast<uint64_t>(value), 1);
    } else if (value >= 0 && value < 65536) {
      bytes_ += 'M';
      append_le(static_cast<uint64_t>(value), 2);
    } else if (value >= INT32_MIN && value <= INT32_MAX) {
      bytes_ += 'J';
      append_le(static_cast<uint32_t>(static_cast<int32_t>(value)), 4);
    } else {
      bytes_ += "\x8a\x08";  // LONG1, 8 bytes of two's complement
      append_le(static_cast<uint64_t>(value), 8);
    }
  }
  void integers(at::IntArrayRef values) {
    mark();
    for (const int64_t value : values) integer(value);
    tuple();
  }
  void ordered_dict() {
    global("collections", "OrderedDict");
    empty_tuple();
    reduce();
  }
  const std::string& bytes() const { return bytes_; }

 private:
  void append_le(uint64_t value, int count) {
    for (int i = 0; i < count; ++i) bytes_ += static_cast<char>((value >> (8 * i)) & 0xff);
  }
  std::string bytes_;
};

}  // namespace

void write_torch_file(const std::string& path, const NamedTensors& tensors) {
  std::vector<at::Tensor> storages;
  StateDictPickler pickle;
  pickle.begin();
  pickle.ordered_dict();  // what model.state_dict() returns
  pickle.mark();
  for (const auto& [name, value] : tensors) {
    const at::Tensor tensor = value.detach().to(at::kCPU).contiguous();
    const char* storage = storage_class(tensor.scalar_type());
    if (!storage)
      throw Error("cannot write '" + name + "' (" + std::string(c10::toString(tensor.scalar_type())) + ") to '" + path +
                  "': torch.save files here hold float, integer, bool and complex tensors");
    pickle.string(name);
    // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks)
    pickle.global("torch._utils", "_rebuild_tensor_v2");
    pickle.mark();
    pickle.mark();  // the persistent id: ("storage", storage class, key, location, numel)
    pickle.string("storage");
    pickle.global("torch", storage);
    pickle.string(std::to_string(storages.size()));
    pickle.string("cpu");
    pickle.integer(tensor.numel());
    pickle.tuple();
    pickle.persistent_id();
    pickle.integer(0);
    pickle.integers(tensor.sizes());
    pickle.integers(tensor.strides());
    pickle.boolean(false);
    pickle.ordered_dict();
    pickle.tuple();
    pickle.reduce();
    storages.push_back(tensor);
  }
  pickle.set_items();
  pickle.stop();

  std::string archive;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* data, size_t size) {
    archive.append(static_cast<const char*>(data), size);
    return size;
  });
  writer.writeRecord("data.pkl", pickle.bytes().data(), pickle.bytes().size());
  writer.writeRecord("byteorder", "little", 6);  // read by torch >= 2.1; the data is this machine's (x86, arm: little)
  for (size_t i = 0; i < storages.size(); ++i)
    writer.writeRecord("data/" + std::to_string(i), storages[i].data_ptr(),
                       static_cast<size_t>(storages[i].numel()) * storages[i].element_size());
  writer.writeEndOfFile();
  write_file_atomically(path, archive);
}

}  // namespace ssld::host
