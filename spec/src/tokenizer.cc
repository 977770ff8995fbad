#include "tpdiff/spec/tokenizer.h"

#include <algorithm>
#include <cctype>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "sentencepiece_model.h"

namespace tpdiff::spec {
namespace {

std::string Lower(absl::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Prompts are free text; punctuation between words separates them like whitespace.
bool IsSeparator(char c) {
  return std::isspace(static_cast<unsigned char>(c)) || c == ',' || c == '.' || c == ';' ||
         c == ':' || c == '!' || c == '?';
}

absl::Status CheckMaxTokens(int max_tokens) {
  if (max_tokens < 1 || max_tokens > Tokenizer::kMaxModelTokens) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer.max_tokens: ", max_tokens,
                                                   " outside [1, ", Tokenizer::kMaxModelTokens,
                                                   "]"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::string_view TokenizerKindName(TokenizerKind kind) {
  return kind == TokenizerKind::kWords ? "words" : "sentencepiece";
}

absl::StatusOr<TokenizerKind> ParseTokenizerKind(absl::string_view name, absl::string_view field) {
  if (name == "words") return TokenizerKind::kWords;
  if (name == "sentencepiece") return TokenizerKind::kSentencePiece;
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": \"", name, "\" is not \"words\" or \"sentencepiece\""));
}

absl::StatusOr<Tokenizer> Tokenizer::FromWords(std::vector<std::string> words, int max_tokens) {
  if (absl::Status s = CheckMaxTokens(max_tokens); !s.ok()) return s;
  if (words.empty()) return absl::InvalidArgumentError("vocabulary: empty");
  std::unordered_map<std::string, int> seen;
  for (size_t i = 0; i < words.size(); ++i) {
    const std::string& w = words[i];
    if (w.empty())
      return absl::InvalidArgumentError(absl::StrCat("vocabulary: word ", i + 1, " is empty"));
    for (char c : w) {
      if (IsSeparator(c) || std::isupper(static_cast<unsigned char>(c))) {
        return absl::InvalidArgumentError(
            absl::StrCat("vocabulary: word ", i + 1, " \"", w,
                         "\" must be lower case without whitespace or punctuation separators"));
      }
    }
    if (!seen.emplace(w, static_cast<int>(i)).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "vocabulary: word \"", w, "\" appears twice (words ", seen[w] + 1, " and ", i + 1, ")"));
    }
  }
  Tokenizer t;
  t.max_tokens_ = max_tokens;
  t.words_ = std::move(words);
  for (size_t i = 0; i < t.words_.size(); ++i) t.ids_[t.words_[i]] = static_cast<int64_t>(i) + 1;
  return t;
}

absl::StatusOr<Tokenizer> Tokenizer::FromVocabularyText(absl::string_view text, int max_tokens) {
  std::vector<std::string> words;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) {
      line.remove_suffix(1);
    }
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.front()))) {
      line.remove_prefix(1);
    }
    if (!line.empty()) words.emplace_back(line);
  }
  return FromWords(std::move(words), max_tokens);
}

absl::StatusOr<Tokenizer> Tokenizer::FromSentencePiece(std::string serialized_model,
                                                       int max_tokens) {
  if (absl::Status s = CheckMaxTokens(max_tokens); !s.ok()) return s;
  std::string error;
  std::unique_ptr<internal::SentencePieceModel> model =
      internal::SentencePieceModel::Load(serialized_model, &error);
  if (model == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer.file: not a SentencePiece model (", error, ")"));
  }
  if (model->eos_id() < 0) {
    return absl::InvalidArgumentError(
        "tokenizer.file: the SentencePiece model has no EOS id (every prompt ends with EOS)");
  }
  Tokenizer t;
  t.kind_ = TokenizerKind::kSentencePiece;
  t.max_tokens_ = max_tokens;
  t.eos_id_ = model->eos_id();
  t.pad_id_ = std::max(model->pad_id(), 0);
  t.spm_ = std::move(model);
  t.serialized_ = std::make_shared<const std::string>(std::move(serialized_model));
  return t;
}

std::vector<std::string> Tokenizer::SplitWords(absl::string_view prompt) {
  const std::string lower = Lower(prompt);
  std::vector<std::string> words;
  size_t i = 0;
  while (i < lower.size()) {
    while (i < lower.size() && IsSeparator(lower[i])) ++i;
    size_t j = i;
    while (j < lower.size() && !IsSeparator(lower[j])) ++j;
    if (j > i) words.push_back(lower.substr(i, j - i));
    i = j;
  }
  return words;
}

std::vector<std::string> Tokenizer::UnknownWords(const std::vector<std::string>& words) const {
  std::vector<std::string> unknown;
  if (kind_ != TokenizerKind::kWords) return unknown;
  for (const std::string& word : words) {
    if (ids_.count(word) == 0 && std::find(unknown.begin(), unknown.end(), word) == unknown.end()) {
      unknown.push_back(word);
    }
  }
  return unknown;
}

// Unpadded ids: the vocabulary ids of the words, or SentencePiece's ids and EOS.
absl::StatusOr<std::vector<int64_t>> Tokenizer::RawIds(absl::string_view prompt) const {
  std::vector<int64_t> ids;
  if (kind_ == TokenizerKind::kSentencePiece) {
    for (int id : spm_->EncodeAsIds(std::string(prompt))) ids.push_back(id);
    ids.push_back(eos_id_);
    return ids;
  }
  const std::vector<std::string> words = SplitWords(prompt);
  const std::vector<std::string> unknown = UnknownWords(words);
  if (!unknown.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt: words not in the vocabulary: ", absl::StrJoin(unknown, ", ")));
  }
  for (const std::string& word : words) {
    auto it = ids_.find(word);
    ids.push_back(it->second);
  }
  return ids;
}

absl::Status Tokenizer::LengthStatus(absl::string_view field, size_t n) const {
  if (n <= static_cast<size_t>(max_tokens_)) return absl::OkStatus();
  if (kind_ == TokenizerKind::kWords) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", n, " words exceeds the maximum of ", max_tokens_));
  }
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": ", n, " tokens exceeds the model's maximum of ", max_tokens_));
}

absl::Status Tokenizer::CheckLength(absl::string_view field, absl::string_view prompt) const {
  const size_t n = kind_ == TokenizerKind::kWords
                       ? SplitWords(prompt).size()
                       : spm_->EncodeAsIds(std::string(prompt)).size() + 1;  // + EOS
  return LengthStatus(field, n);
}

absl::StatusOr<EncodedPrompt> Tokenizer::EncodeWithMask(absl::string_view prompt) const {
  absl::StatusOr<std::vector<int64_t>> ids = RawIds(prompt);
  if (!ids.ok()) return ids.status();
  if (absl::Status s = LengthStatus("prompt", ids->size()); !s.ok()) return s;
  EncodedPrompt out;
  out.ids = *std::move(ids);
  out.mask.assign(out.ids.size(), 1);
  if (kind_ == TokenizerKind::kWords) {
    // Id 0 is padding in the words vocabulary; the mask is what the ids say.
    for (size_t i = 0; i < out.ids.size(); ++i) out.mask[i] = out.ids[i] != 0 ? 1 : 0;
  }
  out.ids.resize(max_tokens_, pad_id_);
  out.mask.resize(max_tokens_, 0);
  return out;
}

absl::StatusOr<std::vector<int64_t>> Tokenizer::Encode(absl::string_view prompt) const {
  absl::StatusOr<EncodedPrompt> encoded = EncodeWithMask(prompt);
  if (!encoded.ok()) return encoded.status();
  return std::move(encoded->ids);
}

std::string Tokenizer::ToVocabularyText() const {
  if (words_.empty()) return "";
  return absl::StrCat(absl::StrJoin(words_, "\n"), "\n");
}

const std::string& Tokenizer::sentencepiece_model() const {
  static const std::string* const kEmpty = new std::string();
  return serialized_ ? *serialized_ : *kEmpty;
}

int Tokenizer::vocab_size() const {
  if (kind_ == TokenizerKind::kSentencePiece) return spm_->piece_size();
  return static_cast<int>(words_.size()) + 1;  // with padding
}

std::vector<std::string> ShapesVocabulary() {
  return {"a",     "slow",    "fast",   "red",       "green",    "blue",      "yellow",
          "white", "magenta", "circle", "square",    "triangle", "moving",    "left",
          "right", "up",      "down",   "up-left",   "up-right", "down-left", "down-right",
          "and",   "on",      "gray",   "background"};
}

}  // namespace tpdiff::spec
