#include "tpdiff/spec/tokenizer.h"

#include <gtest/gtest.h>

namespace tpdiff::spec {
namespace {

Tokenizer Shapes() { return *Tokenizer::FromWords(ShapesVocabulary()); }

TEST(TokenizerTest, EncodesKnownWordsWithOneBasedIdsAndZeroPadding) {
  const Tokenizer tok = Shapes();
  EXPECT_EQ(tok.vocab_size(), 26);
  auto ids = tok.Encode("A red  circle moving up-left");
  ASSERT_TRUE(ids.ok()) << ids.status();
  ASSERT_EQ(ids->size(), static_cast<size_t>(Tokenizer::kMaxTokens));
  EXPECT_EQ((*ids)[0], 1);   // "a" is word 0
  EXPECT_EQ((*ids)[1], 4);   // "red"
  EXPECT_EQ((*ids)[2], 10);  // "circle"
  EXPECT_EQ((*ids)[3], 13);  // "moving"
  EXPECT_EQ((*ids)[4], 18);  // "up-left"
  for (int i = 5; i < Tokenizer::kMaxTokens; ++i) EXPECT_EQ((*ids)[i], 0);
}

TEST(TokenizerTest, EmptyPromptIsAllPadding) {
  auto ids = Shapes().Encode("  ");
  ASSERT_TRUE(ids.ok());
  for (int64_t id : *ids) EXPECT_EQ(id, 0);
}

TEST(TokenizerTest, PunctuationSeparatesWords) {
  auto a = Shapes().Encode("a red circle, moving left.");
  auto b = Shapes().Encode("a red circle moving left");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
}

TEST(TokenizerTest, SplitWordsIsEncodesSplit) {
  EXPECT_EQ(Tokenizer::SplitWords(" A red,circle;moving:up-left!fast?\tslow. "),
            (std::vector<std::string>{"a", "red", "circle", "moving", "up-left", "fast", "slow"}));
  EXPECT_TRUE(Tokenizer::SplitWords(" ,.;:!? \n").empty());
  EXPECT_EQ(Shapes().UnknownWords({"red", "purple", "red", "purple", "teal"}),
            (std::vector<std::string>{"purple", "teal"}));
}

TEST(TokenizerTest, ListsEveryUnknownWordOnce) {
  auto ids = Shapes().Encode("a purple circle moving sideways purple");
  ASSERT_EQ(ids.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ids.status().message(), "prompt: words not in the vocabulary: purple, sideways");
}

TEST(TokenizerTest, RejectsTooManyWords) {
  std::string prompt;
  for (int i = 0; i < Tokenizer::kMaxTokens + 1; ++i) prompt += "red ";
  auto ids = Shapes().Encode(prompt);
  ASSERT_EQ(ids.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ids.status().message(), "prompt: 33 words exceeds the maximum of 32");
}

TEST(TokenizerTest, VocabularyTextRoundTripsAndSkipsBlankLines) {
  auto tok = Tokenizer::FromVocabularyText("red\n\n  blue \r\ncircle\n");
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ(tok->words(), (std::vector<std::string>{"red", "blue", "circle"}));
  auto again = Tokenizer::FromVocabularyText(tok->ToVocabularyText());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->words(), tok->words());
}

TEST(TokenizerTest, RejectsBadVocabularies) {
  EXPECT_EQ(Tokenizer::FromWords({}).status().code(), absl::StatusCode::kInvalidArgument);
  auto dup = Tokenizer::FromWords({"red", "blue", "red"});
  EXPECT_NE(dup.status().message().find("\"red\" appears twice"), std::string::npos)
      << dup.status();
  auto upper = Tokenizer::FromWords({"Red"});
  EXPECT_NE(upper.status().message().find("lower case"), std::string::npos) << upper.status();
  EXPECT_FALSE(Tokenizer::FromWords({"two words"}).ok());
}

}  // namespace
}  // namespace tpdiff::spec
