// libFuzzer target: spec::Tokenizer — a vocabulary file and a prompt, both from the fuzz bytes
// (split at the first NUL byte; no NUL = the input is a prompt for the bundled vocabulary).
//
// Checks: Encode returns exactly kMaxTokens ids inside [0, vocab_size) with padding only at
// the end; an accepted vocabulary survives ToVocabularyText; every vocabulary word encodes to
// its own id; errors are INVALID_ARGUMENT.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "tpdiff/spec/tokenizer.h"

namespace {

using tpdiff::spec::Tokenizer;

[[noreturn]] void Fail(const char* what, absl::string_view input) {
  std::fprintf(stderr, "tokenizer_fuzzer: %s\ninput (%zu bytes): %.*s\n", what, input.size(),
               static_cast<int>(input.size()), input.data());
  std::abort();
}

void CheckEncode(const Tokenizer& tokenizer, absl::string_view prompt, absl::string_view input) {
  absl::StatusOr<std::vector<int64_t>> ids = tokenizer.Encode(prompt);
  if (!ids.ok()) {
    if (ids.status().code() != absl::StatusCode::kInvalidArgument) Fail("Encode: wrong code", input);
    return;
  }
  if (ids->size() != static_cast<size_t>(Tokenizer::kMaxTokens)) Fail("Encode: wrong length", input);
  bool padding = false;
  for (int64_t id : *ids) {
    if (id < 0 || id >= tokenizer.vocab_size()) Fail("Encode: id out of range", input);
    if (id == 0) padding = true;
    else if (padding) Fail("Encode: a word after padding", input);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Tokenizer* shapes =
      new Tokenizer(*Tokenizer::FromWords(tpdiff::spec::ShapesVocabulary()));
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  if (nul == absl::string_view::npos) {
    CheckEncode(*shapes, input, input);
    return 0;
  }
  const absl::string_view vocabulary_text = input.substr(0, nul);
  const absl::string_view prompt = input.substr(nul + 1);
  absl::StatusOr<Tokenizer> tokenizer = Tokenizer::FromVocabularyText(vocabulary_text);
  if (!tokenizer.ok()) {
    if (tokenizer.status().code() != absl::StatusCode::kInvalidArgument) Fail("vocabulary: wrong code", input);
    return 0;
  }
  absl::StatusOr<Tokenizer> again = Tokenizer::FromVocabularyText(tokenizer->ToVocabularyText());
  if (!again.ok() || again->words() != tokenizer->words()) Fail("vocabulary round trip", input);
  for (size_t i = 0; i < tokenizer->words().size(); ++i) {
    absl::StatusOr<std::vector<int64_t>> ids = tokenizer->Encode(tokenizer->words()[i]);
    if (!ids.ok() || (*ids)[0] != static_cast<int64_t>(i) + 1 || (*ids)[1] != 0) {
      Fail("a vocabulary word does not encode to its own id", input);
    }
  }
  CheckEncode(*tokenizer, prompt, input);
  return 0;
}
