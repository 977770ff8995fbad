#include "tpdiff/spec/tokenizer.h"

#include <algorithm>
#include <cctype>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

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

}  // namespace

Tokenizer::Tokenizer(std::vector<std::string> words) : words_(std::move(words)) {
  for (size_t i = 0; i < words_.size(); ++i) ids_[words_[i]] = static_cast<int64_t>(i) + 1;
}

absl::StatusOr<Tokenizer> Tokenizer::FromWords(std::vector<std::string> words) {
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
  return Tokenizer(std::move(words));
}

absl::StatusOr<Tokenizer> Tokenizer::FromVocabularyText(absl::string_view text) {
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
  return FromWords(std::move(words));
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
  for (const std::string& word : words) {
    if (ids_.count(word) == 0 && std::find(unknown.begin(), unknown.end(), word) == unknown.end()) {
      unknown.push_back(word);
    }
  }
  return unknown;
}

absl::StatusOr<std::vector<int64_t>> Tokenizer::Encode(absl::string_view prompt) const {
  const std::vector<std::string> words = SplitWords(prompt);
  const std::vector<std::string> unknown = UnknownWords(words);
  if (!unknown.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt: words not in the vocabulary: ", absl::StrJoin(unknown, ", ")));
  }
  if (words.size() > static_cast<size_t>(kMaxTokens)) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt: ", words.size(), " words exceeds the maximum of ", kMaxTokens));
  }
  std::vector<int64_t> ids;
  ids.reserve(kMaxTokens);
  for (const std::string& word : words) ids.push_back(ids_.at(word));
  ids.resize(kMaxTokens, 0);
  return ids;
}

std::string Tokenizer::ToVocabularyText() const {
  return absl::StrCat(absl::StrJoin(words_, "\n"), "\n");
}

std::vector<std::string> ShapesVocabulary() {
  return {"a",     "slow",    "fast",   "red",       "green",    "blue",      "yellow",
          "white", "magenta", "circle", "square",    "triangle", "moving",    "left",
          "right", "up",      "down",   "up-left",   "up-right", "down-left", "down-right",
          "and",   "on",      "gray",   "background"};
}

}  // namespace tpdiff::spec
