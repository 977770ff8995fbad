// libtpdiff_sentencepiece: a C interface over libsentencepiece, loaded by
// sentencepiece_model.cc with dlopen(RTLD_LOCAL | RTLD_DEEPBIND).
//
// Debian's libsentencepiece.so.0 carries its own copy of protobuf-lite and exports it. Linked
// into a process that also has libprotobuf.so (every gRPC binary), one copy's symbols
// interpose the other's and the process crashes in protobuf's static initialisers. Loaded
// locally with deep binding, libsentencepiece resolves protobuf to its own copy and stays
// out of the global scope.

#include <sentencepiece_processor.h>

#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

extern "C" {

__attribute__((visibility("default"))) void* tpdiff_spm_load(const char* data, size_t size,
                                                              char* error, size_t error_size) {
  auto* processor = new sentencepiece::SentencePieceProcessor();
  const sentencepiece::util::Status status =
      processor->LoadFromSerializedProto(std::string(data, size));
  if (!status.ok()) {
    const std::string message = status.ToString();
    if (error_size > 0) {
      std::strncpy(error, message.c_str(), error_size - 1);
      error[error_size - 1] = '\0';
    }
    delete processor;
    return nullptr;
  }
  return processor;
}

__attribute__((visibility("default"))) void tpdiff_spm_free(void* model) {
  delete static_cast<sentencepiece::SentencePieceProcessor*>(model);
}

// Writes up to `capacity` ids; returns how many the text has (may exceed capacity).
__attribute__((visibility("default"))) size_t tpdiff_spm_encode(const void* model,
                                                                 const char* text, size_t size,
                                                                 int* ids, size_t capacity) {
  const auto* processor = static_cast<const sentencepiece::SentencePieceProcessor*>(model);
  const std::vector<int> out = processor->EncodeAsIds(std::string(text, size));
  for (size_t i = 0; i < out.size() && i < capacity; ++i) ids[i] = out[i];
  return out.size();
}

__attribute__((visibility("default"))) int tpdiff_spm_eos_id(const void* model) {
  return static_cast<const sentencepiece::SentencePieceProcessor*>(model)->eos_id();
}

__attribute__((visibility("default"))) int tpdiff_spm_pad_id(const void* model) {
  return static_cast<const sentencepiece::SentencePieceProcessor*>(model)->pad_id();
}

__attribute__((visibility("default"))) int tpdiff_spm_piece_size(const void* model) {
  return static_cast<const sentencepiece::SentencePieceProcessor*>(model)->GetPieceSize();
}

}  // extern "C"
