#include "tpdiff/model/safetensors.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>

namespace tpdiff::model {
namespace {

std::string WithHeader(const std::string& json, const std::string& data) {
  std::string out(8, '\0');
  const uint64_t n = json.size();
  std::memcpy(out.data(), &n, 8);
  return out + json + data;
}

TEST(SafetensorsTest, RoundTripsTensorsOfEveryDtypeAndMetadata) {
  const NamedTensors in = {
      {"w", torch::randn({3, 4})},
      {"b", torch::arange(5, torch::kLong)},
      {"d", torch::randn({2}, torch::kDouble)},
      {"h", torch::randn({2, 2}).to(torch::kHalf)},
      {"bf", torch::randn({3}).to(torch::kBFloat16)},
      {"i", torch::arange(3, torch::kInt)},
      {"u8", torch::arange(7, torch::kByte)},
      {"mask", torch::tensor({true, false})},
      {"scalar", torch::tensor(2.5f)},
      {"empty", torch::zeros({0, 3})},
      {"strided", torch::randn({4, 4}).t()},  // non-contiguous input
  };
  auto bytes = SerializeSafetensors(in, {{"step", "12"}});
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes->data(), 8);
  EXPECT_EQ(header_len % 8, 0u);  // data section 8-byte aligned
  auto out = ParseSafetensors(*bytes);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->metadata.at("step"), "12");
  ASSERT_EQ(out->tensors.size(), in.size());
  for (const auto& [name, t] : in) {
    const torch::Tensor& got = out->tensors.at(name);
    EXPECT_EQ(got.scalar_type(), t.scalar_type()) << name;
    EXPECT_EQ(got.sizes(), t.sizes()) << name;
    EXPECT_TRUE(torch::equal(got, t)) << name;
  }
}

TEST(SafetensorsTest, ReadsHandWrittenFileFromTheFormatDescription) {
  // Two F32 tensors written by hand, as any other writer (e.g. Python's safetensors) would.
  const float a[2] = {1.5f, -2.0f};
  const float b[3] = {0.25f, 4.0f, 8.0f};
  std::string data(reinterpret_cast<const char*>(a), 8);
  data.append(reinterpret_cast<const char*>(b), 12);
  const std::string json = R"({"b":{"dtype":"F32","shape":[3,1],"data_offsets":[8,20]},)"
                           R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  auto out = ParseSafetensors(WithHeader(json, data));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(torch::equal(out->tensors.at("a"), torch::tensor({1.5f, -2.0f})));
  EXPECT_TRUE(torch::equal(out->tensors.at("b"), torch::tensor({0.25f, 4.0f, 8.0f}).view({3, 1})));
}

TEST(SafetensorsTest, CorruptFilesAreDataLoss) {
  const std::string four(16, '\0');
  struct Case {
    std::string bytes;
    std::string message;
  } cases[] = {
      {"abc", "too short"},
      {WithHeader("{}", "") + std::string(0, ' '), ""},  // valid: no tensors
      {std::string("\xff\xff\xff\xff\x00\x00\x00\x00", 8) + "{}", "exceeds the file size"},
      {WithHeader("{not json", ""), "not valid JSON"},
      {WithHeader("[1,2]", ""), "not a JSON object"},
      {WithHeader(R"({"a":{"dtype":"Q7","shape":[1],"data_offsets":[0,4]}})", four),
       "unsupported dtype Q7"},
      {WithHeader(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", four), "need 8"},
      {WithHeader(R"({"a":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}})", four),
       "outside the data section"},
      {WithHeader(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", four), "negative"},
      {WithHeader(R"({"a":{"dtype":"F32","shape":[1]}})", four),
       "needs dtype, shape and data_offsets"},
      {WithHeader(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                  R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                  four),
       "overlap"},
  };
  for (const Case& c : cases) {
    auto out = ParseSafetensors(c.bytes);
    if (c.message.empty()) {
      EXPECT_TRUE(out.ok()) << out.status();
      continue;
    }
    EXPECT_EQ(out.status().code(), absl::StatusCode::kDataLoss) << c.message;
    EXPECT_NE(out.status().message().find(c.message), std::string::npos)
        << "want \"" << c.message << "\" in: " << out.status();
  }
}

TEST(SafetensorsTest, WriterRejectsBadNames) {
  EXPECT_EQ(SerializeSafetensors({{"", torch::zeros({1})}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      SerializeSafetensors({{"x", torch::zeros({1})}, {"x", torch::zeros({1})}}).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SerializeSafetensors({{"__metadata__", torch::zeros({1})}}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SafetensorsTest, FileRoundTripAndMissingFile) {
  const std::string path = ::testing::TempDir() + "/tpdiff_safetensors_test.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, {{"x", torch::ones({2, 3})}}).ok());
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  auto out = ReadSafetensors(path);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(torch::equal(out->tensors.at("x"), torch::ones({2, 3})));
  EXPECT_EQ(ReadSafetensors(path + ".missing").status().code(), absl::StatusCode::kNotFound);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace tpdiff::model
