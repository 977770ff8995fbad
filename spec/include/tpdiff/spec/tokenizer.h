#ifndef TPDIFF_SPEC_TOKENIZER_H_
#define TPDIFF_SPEC_TOKENIZER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tpdiff::spec {

namespace internal {
class SentencePieceModel;
}  // namespace internal

enum class TokenizerKind { kWords, kSentencePiece };
absl::string_view TokenizerKindName(TokenizerKind kind);  // "words" | "sentencepiece"
// INVALID_ARGUMENT "<field>: \"x\" is not \"words\" or \"sentencepiece\"".
absl::StatusOr<TokenizerKind> ParseTokenizerKind(absl::string_view name, absl::string_view field);

// A prompt as the text encoder takes it: max_tokens ids and their mask (1 = real token).
struct EncodedPrompt {
  std::vector<int64_t> ids;
  std::vector<int64_t> mask;
};

// The tokenizer of a package; one value type for both kinds, so the front and the worker
// validate and encode prompts with the same code. Immutable, cheap to copy, thread-safe.
//
// - words: lower-case words over a fixed vocabulary. Id 0 is padding (and the empty,
//   unconditional caption); word i of the vocabulary has id i + 1. No EOS; mask = ids != 0.
// - sentencepiece: SentencePiece EncodeAsIds(prompt) (text passed as is) followed by the
//   model's EOS id, padded with its pad id (0 when it has none); mask 1 for the ids and EOS.
class Tokenizer {
 public:
  // The words tokenizer's length in v1 packages, and the default of a manifest's max_tokens.
  static constexpr int kMaxTokens = 32;
  // The largest max_tokens a manifest may ask for.
  static constexpr int kMaxModelTokens = 512;

  static absl::StatusOr<Tokenizer> FromWords(std::vector<std::string> words,
                                             int max_tokens = kMaxTokens);
  // One word per line; blank lines ignored.
  static absl::StatusOr<Tokenizer> FromVocabularyText(absl::string_view text,
                                                      int max_tokens = kMaxTokens);
  // A serialized SentencePiece model (the .model file). INVALID_ARGUMENT for a file
  // libsentencepiece rejects or a model without an EOS id.
  static absl::StatusOr<Tokenizer> FromSentencePiece(std::string serialized_model,
                                                     int max_tokens);

  TokenizerKind kind() const { return kind_; }
  int max_tokens() const { return max_tokens_; }

  // The words of a prompt: lower-cased, split on whitespace and the punctuation , . ; : ! ?
  // The one splitting rule of the words tokenizer for encoding and for validating requests.
  static std::vector<std::string> SplitWords(absl::string_view prompt);
  // Words tokenizer: the words of `words` not in the vocabulary, each once, in order of
  // appearance. Empty for sentencepiece (every text encodes).
  std::vector<std::string> UnknownWords(const std::vector<std::string>& words) const;

  // The length rule of both kinds, errors naming `field`:
  // words: "<field>: <n> words exceeds the maximum of <max_tokens>";
  // sentencepiece: "<field>: <n> tokens exceeds the model's maximum of <max_tokens>" (n
  // counts the EOS).
  absl::Status CheckLength(absl::string_view field, absl::string_view prompt) const;

  // INVALID_ARGUMENT "prompt: words not in the vocabulary: ..." listing every unknown word,
  // or CheckLength's error for "prompt". Returns exactly max_tokens ids, padded.
  absl::StatusOr<std::vector<int64_t>> Encode(absl::string_view prompt) const;
  // Encode with the mask.
  absl::StatusOr<EncodedPrompt> EncodeWithMask(absl::string_view prompt) const;

  // Words tokenizer: the vocabulary (empty for sentencepiece).
  const std::vector<std::string>& words() const { return words_; }
  // One word per line, the format FromVocabularyText reads.
  std::string ToVocabularyText() const;
  // The serialized SentencePiece model (empty for words).
  const std::string& sentencepiece_model() const;
  // Ids 0..vocab_size()-1: the words with padding, or the SentencePiece pieces.
  int vocab_size() const;
  int pad_id() const { return pad_id_; }
  int eos_id() const { return eos_id_; }  // -1 for words

 private:
  Tokenizer() = default;
  absl::StatusOr<std::vector<int64_t>> RawIds(absl::string_view prompt) const;
  // CheckLength's error for a prompt of n words / tokens.
  absl::Status LengthStatus(absl::string_view field, size_t n) const;

  TokenizerKind kind_ = TokenizerKind::kWords;
  int max_tokens_ = kMaxTokens;
  std::vector<std::string> words_;
  std::unordered_map<std::string, int64_t> ids_;
  std::shared_ptr<const std::string> serialized_;  // shared: a model can be megabytes
  std::shared_ptr<const internal::SentencePieceModel> spm_;
  int pad_id_ = 0;
  int eos_id_ = -1;
};

// The vocabulary of the procedural captioned-shape clips (colors, shapes, motions, speeds):
// the bundled model's vocabulary and the default for new packages.
std::vector<std::string> ShapesVocabulary();

}  // namespace tpdiff::spec

#endif  // TPDIFF_SPEC_TOKENIZER_H_
