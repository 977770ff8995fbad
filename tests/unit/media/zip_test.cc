#include "tpdiff/media/zip.h"

#include <gtest/gtest.h>

namespace tpdiff::media {
namespace {

uint32_t Le32(const std::string& s, size_t pos) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data() + pos);
  return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24);
}

ZipArchive Sample() {
  ZipArchive a;
  a.entries = {{"hello.txt", "hello"}, {"empty", ""}, {"bin", std::string("\0\xff\x01", 3)}};
  a.comment = "fps=4";
  return a;
}

TEST(ZipTest, RoundTripsEntriesAndComment) {
  auto zip = WriteStoredZip(Sample());
  ASSERT_TRUE(zip.ok()) << zip.status();
  auto back = ReadStoredZip(*zip);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->entries.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(back->entries[i].name, Sample().entries[i].name);
    EXPECT_EQ(back->entries[i].data, Sample().entries[i].data);
  }
  EXPECT_EQ(back->comment, "fps=4");
  EXPECT_EQ(*WriteStoredZip(Sample()), *zip) << "output must be reproducible";
}

TEST(ZipTest, LocalHeaderFollowsTheSpec) {
  auto zip = WriteStoredZip(Sample());
  ASSERT_TRUE(zip.ok());
  EXPECT_EQ(zip->substr(0, 4), std::string("PK\x03\x04", 4));
  EXPECT_EQ(Le32(*zip, 14), 0x3610a686u);  // CRC-32 of "hello", the IEEE polynomial
  EXPECT_EQ(Le32(*zip, 18), 5u);           // compressed size (stored)
  EXPECT_EQ(Le32(*zip, 22), 5u);           // uncompressed size
  EXPECT_EQ(zip->substr(30, 9), "hello.txt");
  EXPECT_EQ(zip->substr(39, 5), "hello");
}

TEST(ZipTest, EmptyArchive) {
  auto zip = WriteStoredZip({});
  ASSERT_TRUE(zip.ok());
  EXPECT_EQ(zip->size(), 22u);
  auto back = ReadStoredZip(*zip);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(back->entries.empty());
}

TEST(ZipTest, RejectsCorruptionTruncationAndCompression) {
  const std::string zip = *WriteStoredZip(Sample());

  std::string corrupt = zip;
  corrupt[39] = 'j';  // "hello" -> "jello"
  EXPECT_EQ(ReadStoredZip(corrupt).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(ReadStoredZip(corrupt).status().message().find("CRC"), absl::string_view::npos);

  EXPECT_EQ(ReadStoredZip(zip.substr(0, zip.size() - 30)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadStoredZip("PK").status().code(), absl::StatusCode::kInvalidArgument);

  std::string deflated = zip;
  const size_t central = Le32(zip, zip.size() - 22 - 5 + 16);  // EOCD central offset
  deflated[central + 10] = 8;                                  // method: deflate
  auto s = ReadStoredZip(deflated).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("stored"), absl::string_view::npos) << s;
}

TEST(ZipTest, RejectsEmptyNames) {
  ZipArchive a;
  a.entries = {{"", "x"}};
  EXPECT_EQ(WriteStoredZip(a).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tpdiff::media
