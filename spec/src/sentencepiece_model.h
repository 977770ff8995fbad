#ifndef TPDIFF_SPEC_SRC_SENTENCEPIECE_MODEL_H_
#define TPDIFF_SPEC_SRC_SENTENCEPIECE_MODEL_H_

// SentencePiece models through libtpdiff_sentencepiece (sentencepiece_module.cc), which is
// loaded on first use with dlopen so that libsentencepiece's private protobuf copy never meets
// the process's libprotobuf (see that file).

#include <memory>
#include <string>
#include <vector>

namespace tpdiff::spec::internal {

// A loaded SentencePiece model. Immutable after Load; EncodeAsIds is const and thread-safe.
class SentencePieceModel {
 public:
  ~SentencePieceModel();
  SentencePieceModel(const SentencePieceModel&) = delete;
  SentencePieceModel& operator=(const SentencePieceModel&) = delete;

  // Null with *error set when the module cannot be loaded or `serialized` is not a
  // SentencePiece model proto.
  static std::unique_ptr<SentencePieceModel> Load(const std::string& serialized,
                                                  std::string* error);

  std::vector<int> EncodeAsIds(const std::string& text) const;
  int eos_id() const;  // -1 when the model has none
  int pad_id() const;  // -1 when the model has none
  int piece_size() const;

 private:
  explicit SentencePieceModel(void* handle) : handle_(handle) {}
  void* handle_;
};

}  // namespace tpdiff::spec::internal

#endif  // TPDIFF_SPEC_SRC_SENTENCEPIECE_MODEL_H_
