#include "tpdiff/model/safetensors.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "tpdiff/core/torch_status.h"

namespace tpdiff::model {
namespace {

// The format is little-endian; every platform this project targets (x86-64, aarch64) is too,
// so tensor bytes are copied as they are.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors I/O assumes little endian");

// Headers beyond this are certainly corrupt (the reference implementation uses 100 MB).
constexpr uint64_t kMaxHeaderBytes = 100u << 20;

struct DtypeInfo {
  const char* name;
  torch::ScalarType type;
  int64_t bytes;
};

constexpr DtypeInfo kDtypes[] = {
    {"F32", torch::kFloat, 4},     {"F64", torch::kDouble, 8}, {"F16", torch::kHalf, 2},
    {"BF16", torch::kBFloat16, 2}, {"I64", torch::kLong, 8},   {"I32", torch::kInt, 4},
    {"U8", torch::kByte, 1},       {"BOOL", torch::kBool, 1},
};

const DtypeInfo* FindDtype(torch::ScalarType type) {
  for (const auto& d : kDtypes) {
    if (d.type == type) return &d;
  }
  return nullptr;
}

const DtypeInfo* FindDtype(const std::string& name) {
  for (const auto& d : kDtypes) {
    if (name == d.name) return &d;
  }
  return nullptr;
}

absl::Status Corrupt(const std::string& what) {
  return absl::DataLossError(absl::StrCat("safetensors: ", what));
}

}  // namespace

absl::StatusOr<std::string> SerializeSafetensors(
    const NamedTensors& tensors, const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  std::vector<torch::Tensor> cpu;
  cpu.reserve(tensors.size());
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name.empty() || name == "__metadata__") {
      return absl::InvalidArgumentError(
          absl::StrCat("safetensors: invalid tensor name \"", name, "\""));
    }
    if (!names.insert(name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("safetensors: duplicate tensor name \"", name, "\""));
    }
    if (!tensor.defined()) {
      return absl::InvalidArgumentError(
          absl::StrCat("safetensors: tensor \"", name, "\" is undefined"));
    }
    const DtypeInfo* dtype = FindDtype(tensor.scalar_type());
    if (dtype == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("safetensors: tensor \"", name, "\" has unsupported dtype ",
                       std::string(c10::toString(tensor.scalar_type()))));
    }
    // Named, because C++17 lambdas cannot capture structured bindings (clang rejects it).
    const torch::Tensor& source = tensor;
    auto c = core::TorchCall("safetensors: copy to CPU",
                       [&] { return source.detach().to(torch::kCPU).contiguous(); });
    if (!c.ok()) return c.status();
    const uint64_t nbytes = static_cast<uint64_t>(c->numel()) * dtype->bytes;
    header[name] = {{"dtype", dtype->name},
                    {"shape", std::vector<int64_t>(c->sizes().begin(), c->sizes().end())},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    cpu.push_back(*std::move(c));
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string json = header.dump();
  // Pad with spaces so the data section starts 8-byte aligned (as the reference writer does).
  json.append((8 - json.size() % 8) % 8, ' ');
  std::string out;
  out.reserve(8 + json.size() + offset);
  const uint64_t n = json.size();
  char len[8];
  std::memcpy(len, &n, 8);
  out.append(len, 8);
  out.append(json);
  for (const torch::Tensor& t : cpu) {
    out.append(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
  }
  return out;
}

absl::StatusOr<SafetensorsContents> ParseSafetensors(const std::string& bytes) {
  if (bytes.size() < 8)
    return Corrupt(absl::StrCat("file of ", bytes.size(), " bytes is too short"));
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  if (header_len > kMaxHeaderBytes || header_len > bytes.size() - 8) {
    return Corrupt(
        absl::StrCat("header length ", header_len, " exceeds the file size ", bytes.size()));
  }
  const nlohmann::json header =
      nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + header_len, nullptr,
                            /*allow_exceptions=*/false);
  if (header.is_discarded()) return Corrupt("header is not valid JSON");
  if (!header.is_object()) return Corrupt("header is not a JSON object");
  const uint64_t data_size = bytes.size() - 8 - header_len;
  const char* data = bytes.data() + 8 + header_len;
  SafetensorsContents out;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const nlohmann::json& entry = it.value();
    if (name == "__metadata__") {
      if (!entry.is_object()) return Corrupt("__metadata__ is not an object");
      for (auto m = entry.begin(); m != entry.end(); ++m) {
        if (!m.value().is_string())
          return Corrupt(absl::StrCat("__metadata__.", m.key(), " is not a string"));
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = absl::StrCat("tensor \"", name, "\": ");
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") ||
        !entry.contains("data_offsets")) {
      return Corrupt(where + "needs dtype, shape and data_offsets");
    }
    if (!entry["dtype"].is_string()) return Corrupt(where + "dtype is not a string");
    const DtypeInfo* dtype = FindDtype(entry["dtype"].get<std::string>());
    if (dtype == nullptr)
      return Corrupt(where + "unsupported dtype " + entry["dtype"].get<std::string>());
    if (!entry["shape"].is_array()) return Corrupt(where + "shape is not an array");
    std::vector<int64_t> shape;
    uint64_t numel = 1;
    for (const auto& dim : entry["shape"]) {
      if (!dim.is_number_unsigned())
        return Corrupt(where + "shape has a non-integer or negative entry");
      const uint64_t v = dim.get<uint64_t>();
      if (v > (1ull << 40) || (v != 0 && numel > (1ull << 40) / v))
        return Corrupt(where + "shape too large");
      numel *= v;
      shape.push_back(static_cast<int64_t>(v));
    }
    const nlohmann::json& off = entry["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
        !off[1].is_number_unsigned()) {
      return Corrupt(where + "data_offsets must be two non-negative integers");
    }
    const uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    if (begin > end || end > data_size) {
      return Corrupt(absl::StrCat(where, "data_offsets [", begin, ", ", end,
                                  "] outside the data section of ", data_size, " bytes"));
    }
    if (end - begin != numel * static_cast<uint64_t>(dtype->bytes)) {
      return Corrupt(absl::StrCat(where, "data_offsets span ", end - begin,
                                  " bytes but shape and dtype need ", numel * dtype->bytes));
    }
    ranges.emplace_back(begin, end);
    auto t = core::TorchCall("safetensors: allocate", [&] {
      torch::Tensor t = torch::empty(shape, torch::TensorOptions().dtype(dtype->type));
      if (end > begin) std::memcpy(t.data_ptr(), data + begin, end - begin);
      return t;
    });
    if (!t.ok()) return t.status();
    out.tensors[name] = *std::move(t);
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].first < ranges[i - 1].second) return Corrupt("tensor data ranges overlap");
  }
  return out;
}

absl::Status WriteSafetensors(const std::string& path, const NamedTensors& tensors,
                              const std::map<std::string, std::string>& metadata) {
  auto bytes = SerializeSafetensors(tensors, metadata);
  if (!bytes.ok()) return bytes.status();
  return WriteStringToFileAtomic(path, *bytes);
}

absl::StatusOr<SafetensorsContents> ReadSafetensors(const std::string& path) {
  auto bytes = ReadFileToString(path);
  if (!bytes.ok()) return bytes.status();
  auto parsed = ParseSafetensors(*bytes);
  if (!parsed.ok()) {
    return absl::Status(parsed.status().code(),
                        absl::StrCat(path, ": ", parsed.status().message()));
  }
  return parsed;
}

}  // namespace tpdiff::model
