#include "tpdiff/common/flags.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace tpdiff::common {
namespace {

TEST(FlagNamesTest, DashesInFlagNamesBecomeUnderscores) {
  std::vector<std::string> raw = {"tpdiff", "--previews-dir=a-b", "--after-seq", "3", "x-y",
                                  "--",     "--keep-me"};
  std::vector<char*> argv;
  for (auto& s : raw) argv.push_back(s.data());
  std::vector<std::string> storage;
  std::vector<char*> out = NormalizeFlagNames(static_cast<int>(argv.size()), argv.data(), storage);
  ASSERT_EQ(out.size(), raw.size() + 1);
  EXPECT_STREQ(out[1], "--previews_dir=a-b");
  EXPECT_STREQ(out[2], "--after_seq");
  EXPECT_STREQ(out[4], "x-y");
  EXPECT_STREQ(out[6], "--keep-me");
  EXPECT_EQ(out.back(), nullptr);
}

TEST(HelpUsageConfigTest, NamesFilesRelativeToTheSourceRoot) {
  EXPECT_EQ(SourceRelativePath("/src/tpdiff/server/main.cc", "/src/tpdiff/"), "server/main.cc");
  EXPECT_EQ(SourceRelativePath("./absl/flags/parse.cc", "/src/tpdiff/"), "absl/flags/parse.cc");
  EXPECT_EQ(SourceRelativePath("/elsewhere/x.cc", "/src/tpdiff/"), "/elsewhere/x.cc");
  EXPECT_EQ(SourceRelativePath("worker/main.cc", ""), "worker/main.cc");
  const absl::FlagsUsageConfig config = HelpUsageConfig("/src/tpdiff/", "tpdiff 1.0");
  EXPECT_EQ(config.normalize_filename("/src/tpdiff/worker/main.cc"), "worker/main.cc");
  EXPECT_EQ(config.version_string(), "tpdiff 1.0\n");
}

TEST(HelpUsageConfigTest, HelpListsThisProjectsFlagsOnly) {
  const absl::FlagsUsageConfig config = HelpUsageConfig("/src/tpdiff/", "v");
  for (const char* ours : {"server/main.cc", "worker/main.cc", "client/main.cc",
                           "train/eval_main.cc", "/src/tpdiff/bench/model_bench.cc"}) {
    EXPECT_TRUE(config.contains_help_flags(ours)) << ours;
    EXPECT_TRUE(config.contains_helpshort_flags(ours)) << ours;
  }
  for (const char* theirs : {"absl/flags/parse.cc", "./absl/flags/parse.cc", "/usr/x.cc"}) {
    EXPECT_FALSE(config.contains_help_flags(theirs)) << theirs;
  }
}

TEST(HelpUsageConfigTest, TheCompiledSourceRootHoldsThisLibrary) {
  const std::string root = CompiledSourceRoot();
  ASSERT_FALSE(root.empty());
  EXPECT_EQ(root.back(), '/');
  EXPECT_EQ(SourceRelativePath(root + "common/src/flags.cc", root), "common/src/flags.cc");
}

}  // namespace
}  // namespace tpdiff::common
