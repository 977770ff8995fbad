#ifndef TPDIFF_SPEC_TOKENIZER_H_
#define TPDIFF_SPEC_TOKENIZER_H_

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tpdiff::spec {

// Lower-case word tokenizer over a fixed vocabulary. Id 0 is padding (and the empty,
// unconditional caption); word i of the vocabulary has id i + 1. Immutable, thread-safe.
class Tokenizer {
 public:
  static constexpr int kMaxTokens = 32;

  static absl::StatusOr<Tokenizer> FromWords(std::vector<std::string> words);
  // One word per line; blank lines ignored.
  static absl::StatusOr<Tokenizer> FromVocabularyText(absl::string_view text);

  // The words of a prompt: lower-cased, split on whitespace and the punctuation , . ; : ! ?
  // The one splitting rule for encoding and for validating requests.
  static std::vector<std::string> SplitWords(absl::string_view prompt);
  // The words of `words` not in the vocabulary, each once, in order of appearance.
  std::vector<std::string> UnknownWords(const std::vector<std::string>& words) const;

  // INVALID_ARGUMENT "prompt: words not in the vocabulary: ..." listing every unknown word,
  // or "prompt: <n> words exceeds the maximum of 32". Returns exactly kMaxTokens ids, zero
  // padded.
  absl::StatusOr<std::vector<int64_t>> Encode(absl::string_view prompt) const;

  const std::vector<std::string>& words() const { return words_; }
  // One word per line, the format FromVocabularyText reads.
  std::string ToVocabularyText() const;
  int vocab_size() const { return static_cast<int>(words_.size()) + 1; }  // with padding

 private:
  explicit Tokenizer(std::vector<std::string> words);
  std::vector<std::string> words_;
  std::unordered_map<std::string, int64_t> ids_;
};

// The vocabulary of the procedural captioned-shape clips (colors, shapes, motions, speeds):
// the bundled model's vocabulary and the default for new packages.
std::vector<std::string> ShapesVocabulary();

}  // namespace tpdiff::spec

#endif  // TPDIFF_SPEC_TOKENIZER_H_
