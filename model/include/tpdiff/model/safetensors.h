#ifndef TPDIFF_MODEL_SAFETENSORS_H_
#define TPDIFF_MODEL_SAFETENSORS_H_

// A reader/writer of the safetensors format, independent of LibTorch's own serialisation so
// weights written by any LibTorch/PyTorch version (or by Python's safetensors) load in any
// other. Layout: u64 little-endian header length N, N bytes of JSON
//   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"key": "value"}}
// then the raw little-endian tensor bytes; offsets are relative to the end of the header.
// Supported dtypes: F32, F64, F16, BF16, I64, I32, U8, BOOL. Stateless free functions.

#include <torch/types.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tpdiff/spec/files.h"

namespace tpdiff::model {

struct SafetensorsContents {
  std::map<std::string, torch::Tensor> tensors;  // CPU, contiguous
  std::map<std::string, std::string> metadata;
};

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// Serialises tensors (any device; copied to CPU) into the file format. INVALID_ARGUMENT for an
// unsupported dtype, an empty or duplicate name, or the reserved name "__metadata__".
absl::StatusOr<std::string> SerializeSafetensors(
    const NamedTensors& tensors, const std::map<std::string, std::string>& metadata = {});
// Parses file bytes. DATA_LOSS for anything malformed: truncated file, header length past the
// end, invalid JSON, unknown dtype, shape/offset mismatch, offsets out of bounds or overlapping.
absl::StatusOr<SafetensorsContents> ParseSafetensors(const std::string& bytes);

// Writes atomically (temporary file + rename), so an interrupted checkpoint never leaves a
// truncated file under `path`. INTERNAL on I/O failure.
absl::Status WriteSafetensors(const std::string& path, const NamedTensors& tensors,
                              const std::map<std::string, std::string>& metadata = {});
// NOT_FOUND if the file does not exist; DATA_LOSS (naming the path) if malformed.
absl::StatusOr<SafetensorsContents> ReadSafetensors(const std::string& path);

// The package and checkpoint code read and write small files with the spec library's helpers.
using spec::ReadFileToString;
using spec::WriteStringToFileAtomic;

}  // namespace tpdiff::model

#endif  // TPDIFF_MODEL_SAFETENSORS_H_
