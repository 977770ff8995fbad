// The SentencePiece tokenizer on a model trained here with Debian's spm_train, checked against
// Debian's spm_encode (the reference implementation of the same library version).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tpdiff/spec/files.h"
#include "tpdiff/spec/manifest.h"
#include "tpdiff/spec/tokenizer.h"

#ifndef TPDIFF_CORE_ONLY
#include "tpdiff/spec/model_info.h"
#include "tpdiff/spec/request.h"
#endif

namespace tpdiff::spec {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

class SentencePieceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (absl::Status s = Tokenizer::SentencePieceSupport(); !s.ok()) GTEST_SKIP() << s.message();
  }

  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::path(::testing::TempDir()) /
                        absl::StrCat("tpdiff_spm_test_", ::getpid()));
    fs::create_directories(*dir_);
    std::ofstream corpus(*dir_ / "corpus.txt");
    for (int i = 0; i < 40; ++i) {
      corpus << "a red circle moving left on a gray background, take " << i << "\n"
             << "the quick brown fox jumps over the lazy dog " << i << " times\n"
             << "Ein Würfel dreht sich langsam über dem Tisch\n";
    }
    corpus.close();
    // T5's special ids: pad 0, EOS 1, unknown 2, no BOS.
    Train("t5", "--pad_id=0 --eos_id=1 --unk_id=2 --bos_id=-1");
    // spm_train's defaults: no pad (ids are padded with 0 then), unk 0, BOS 1, EOS 2.
    Train("plain", "");
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(*dir_, ec);
    delete dir_;
  }

  static void Train(const std::string& name, const std::string& flags) {
    const std::string cmd =
        absl::StrCat("spm_train --input=", (*dir_ / "corpus.txt").string(), " --model_prefix=",
                     (*dir_ / name).string(), " --vocab_size=80 --minloglevel=2 ", flags,
                     " > /dev/null 2>&1");
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }

  static std::string ModelPath(const std::string& name) {
    return (*dir_ / (name + ".model")).string();
  }

  static Tokenizer Load(const std::string& name, int max_tokens) {
    absl::StatusOr<std::string> bytes = ReadFileToString(ModelPath(name));
    EXPECT_TRUE(bytes.ok()) << bytes.status();
    absl::StatusOr<Tokenizer> t = Tokenizer::FromSentencePiece(*bytes, max_tokens);
    EXPECT_TRUE(t.ok()) << t.status();
    return *t;
  }

  // spm_encode's ids for `text` (one line).
  static std::vector<int64_t> ReferenceIds(const std::string& name, const std::string& text) {
    const fs::path in = *dir_ / "in.txt", out = *dir_ / "out.txt";
    std::ofstream(in) << text << "\n";
    const std::string cmd = absl::StrCat("spm_encode --model=", ModelPath(name),
                                         " --output_format=id < ", in.string(), " > ",
                                         out.string());
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    std::ifstream f(out);
    std::string line;
    std::getline(f, line);
    std::vector<int64_t> ids;
    for (absl::string_view piece : absl::StrSplit(line, ' ', absl::SkipEmpty())) {
      ids.push_back(std::stoll(std::string(piece)));
    }
    return ids;
  }

  static fs::path* dir_;
};
fs::path* SentencePieceTest::dir_ = nullptr;

// The fixture skips where SentencePiece is unavailable; only sanitizer builds may be such a
// place, so a missing module cannot pass the default test run unnoticed.
TEST(SentencePieceSupportTest, AvailableOutsideSanitizerBuilds) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  EXPECT_THAT(std::string(Tokenizer::SentencePieceSupport().message()),
              HasSubstr("sanitizer builds"));
#else
  EXPECT_TRUE(Tokenizer::SentencePieceSupport().ok()) << Tokenizer::SentencePieceSupport();
#endif
}

TEST_F(SentencePieceTest, IdsAreSpmEncodeFollowedByEosThenPadding) {
  const Tokenizer tok = Load("t5", 24);
  EXPECT_EQ(tok.kind(), TokenizerKind::kSentencePiece);
  EXPECT_EQ(tok.eos_id(), 1);
  EXPECT_EQ(tok.pad_id(), 0);
  EXPECT_EQ(tok.vocab_size(), 80);
  EXPECT_TRUE(tok.words().empty());
  for (const std::string& prompt :
       {std::string("a red fox"), std::string("A Red Fox, jumping!"),
        std::string("Würfel über dem Tisch"), std::string("zebra xylophone 42")}) {
    SCOPED_TRACE(prompt);
    const std::vector<int64_t> ref = ReferenceIds("t5", prompt);
    ASSERT_FALSE(ref.empty());
    absl::StatusOr<EncodedPrompt> enc = tok.EncodeWithMask(prompt);
    ASSERT_TRUE(enc.ok()) << enc.status();
    ASSERT_EQ(enc->ids.size(), 24u);
    ASSERT_EQ(enc->mask.size(), 24u);
    std::vector<int64_t> want = ref;
    want.push_back(1);  // EOS
    std::vector<int64_t> want_mask(want.size(), 1);
    want.resize(24, 0);
    want_mask.resize(24, 0);
    EXPECT_THAT(enc->ids, ElementsAreArray(want));
    EXPECT_THAT(enc->mask, ElementsAreArray(want_mask));
    EXPECT_EQ(*tok.Encode(prompt), enc->ids);
  }
  // Text is passed as is: SentencePiece does not lower-case, so case changes the ids.
  EXPECT_NE(*tok.Encode("a red fox"), *tok.Encode("A RED FOX"));
}

TEST_F(SentencePieceTest, EmptyPromptIsJustEos) {
  const Tokenizer tok = Load("t5", 8);
  absl::StatusOr<EncodedPrompt> enc = tok.EncodeWithMask("");
  ASSERT_TRUE(enc.ok()) << enc.status();
  EXPECT_THAT(enc->ids, ElementsAreArray({1, 0, 0, 0, 0, 0, 0, 0}));
  EXPECT_THAT(enc->mask, ElementsAreArray({1, 0, 0, 0, 0, 0, 0, 0}));
}

TEST_F(SentencePieceTest, ModelWithoutPadIdPadsWithZero) {
  const Tokenizer tok = Load("plain", 16);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.pad_id(), 0);
  absl::StatusOr<EncodedPrompt> enc = tok.EncodeWithMask("a red fox");
  ASSERT_TRUE(enc.ok());
  const std::vector<int64_t> ref = ReferenceIds("plain", "a red fox");
  EXPECT_EQ(enc->ids[ref.size()], 2);
  EXPECT_EQ(enc->ids[ref.size() + 1], 0);
  EXPECT_EQ(enc->mask[ref.size()], 1);
  EXPECT_EQ(enc->mask[ref.size() + 1], 0);
}

TEST_F(SentencePieceTest, TooManyTokensNamesTheCountAndTheMaximum) {
  const std::string prompt = "the quick brown fox jumps over the lazy dog";
  const size_t n = ReferenceIds("t5", prompt).size() + 1;
  const Tokenizer exact = Load("t5", static_cast<int>(n));
  EXPECT_TRUE(exact.Encode(prompt).ok());
  EXPECT_TRUE(exact.CheckLength("prompt", prompt).ok());
  const Tokenizer tight = Load("t5", static_cast<int>(n - 1));
  const std::string want = absl::StrCat("prompt: ", n, " tokens exceeds the model's maximum of ",
                                        n - 1);
  EXPECT_EQ(tight.Encode(prompt).status().message(), want);
  EXPECT_EQ(tight.CheckLength("prompt", prompt).message(), want);
  EXPECT_EQ(tight.CheckLength("negative_prompt", prompt).message(),
            absl::StrCat("negative_prompt: ", n, " tokens exceeds the model's maximum of ",
                         n - 1));
}

TEST_F(SentencePieceTest, RejectsWhatIsNotAModel) {
  absl::StatusOr<Tokenizer> t = Tokenizer::FromSentencePiece("not a model", 8);
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("tokenizer.file: not a SentencePiece"));
  absl::StatusOr<std::string> bytes = ReadFileToString(ModelPath("t5"));
  ASSERT_TRUE(bytes.ok());
  EXPECT_THAT(std::string(Tokenizer::FromSentencePiece(*bytes, 513).status().message()),
              HasSubstr("tokenizer.max_tokens: 513 outside [1, 512]"));
}

TEST_F(SentencePieceTest, CopiesShareTheModelAcrossThreads) {
  const Tokenizer tok = Load("t5", 32);
  const std::vector<int64_t> want = *tok.Encode("a red circle moving left");
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([copy = tok, &want, &mismatches] {
      for (int j = 0; j < 200; ++j) {
        if (*copy.Encode("a red circle moving left") != want) ++mismatches;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(mismatches.load(), 0);
}

// A latent package on disk with this tokenizer: what the front and the worker read.
TEST_F(SentencePieceTest, LatentPackageReadsItsTokenizer) {
  const fs::path pkg = *dir_ / "mini";
  fs::create_directories(pkg);
  fs::copy_file(ModelPath("t5"), pkg / "tokenizer.model", fs::copy_options::overwrite_existing);
  std::ofstream(pkg / "model.json") << R"({
    "name": "mini", "kind": "latent", "frames": 17, "height": 32, "width": 32, "stages": 3,
    "default_stage_steps": [2, 2, 2], "default_guidance_scale": 4,
    "schedule": {"type": "flow_matching", "shift": 3},
    "tokenizer": {"kind": "sentencepiece", "file": "tokenizer.model", "max_tokens": 12},
    "text_encoder": {"file": "te.pt", "dim": 16}, "denoiser": {"file": "dn.pt"},
    "vae": {"file": "vae.pt", "latent_channels": 4, "temporal_factor": 4, "spatial_factor": 8,
            "causal_first_frame": true}})";
  absl::StatusOr<ModelSpec> spec = ReadModelPackageSpec(pkg.string());
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->tokenizer.kind(), TokenizerKind::kSentencePiece);
  EXPECT_EQ(spec->tokenizer.max_tokens(), 12);

  fs::remove(pkg / "tokenizer.model");
  absl::Status missing = ReadModelPackageSpec(pkg.string()).status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.message()), HasSubstr(": tokenizer.file: "));
  std::ofstream(pkg / "tokenizer.model") << "garbage";
  EXPECT_THAT(std::string(ReadModelPackageSpec(pkg.string()).status().message()),
              HasSubstr("tokenizer.file: not a SentencePiece model"));

#ifndef TPDIFF_CORE_ONLY
  // A front that knows the model only from a worker's announcement validates alike.
  const tpdiff::v1::ModelInfo info = ToModelInfo(spec->manifest, spec->tokenizer);
  EXPECT_EQ(info.kind(), "latent");
  EXPECT_EQ(info.tokenizer_kind(), "sentencepiece");
  EXPECT_EQ(info.max_tokens(), 12u);
  EXPECT_TRUE(info.vocabulary().empty());
  EXPECT_FALSE(info.tokenizer_model().empty());
  EXPECT_EQ(info.latent().temporal_factor(), 4u);
  EXPECT_TRUE(info.latent().causal_first_frame());
  EXPECT_EQ(info.latent().prediction(), "flow_velocity");  // the flow schedule's default
  absl::StatusOr<ModelSpec> announced = ModelSpecFromInfo(info);
  ASSERT_TRUE(announced.ok()) << announced.status();
  EXPECT_EQ(*announced->tokenizer.Encode("a red fox"), *spec->tokenizer.Encode("a red fox"));

  for (const ModelSpec* s : {&*spec, &*announced}) {
    tpdiff::v1::GenerateRequest request;
    request.set_prompt("A red fox");
    absl::StatusOr<tpdiff::v1::GenerateRequest> ok =
        ValidateAndFill(request, s->manifest, s->tokenizer, 7);
    ASSERT_TRUE(ok.ok()) << ok.status();
    EXPECT_EQ(ok->num_frames(), 17u);
    request.set_num_frames(13);  // 1 + 4 * 3: N = 3 is not divisible by 4
    EXPECT_THAT(std::string(ValidateAndFill(request, s->manifest, s->tokenizer, 7)
                                .status()
                                .message()),
                HasSubstr("num_frames: 13 must be 1 + vae.temporal_factor (4) * N"));
    request.set_sampler(tpdiff::v1::SAMPLER_VANILLA);  // one stage: any N
    EXPECT_TRUE(ValidateAndFill(request, s->manifest, s->tokenizer, 7).ok());
    request.set_num_frames(0);
    request.set_sampler(tpdiff::v1::SAMPLER_TPDIFF);
    request.set_prompt("the quick brown fox jumps over the lazy dog and the quick brown fox");
    EXPECT_THAT(std::string(ValidateAndFill(request, s->manifest, s->tokenizer, 7)
                                .status()
                                .message()),
                HasSubstr("tokens exceeds the model's maximum of 12"));
    request.set_prompt("a red fox");
    request.set_negative_prompt("the quick brown fox jumps over the lazy dog and the dog");
    EXPECT_THAT(std::string(ValidateAndFill(request, s->manifest, s->tokenizer, 7)
                                .status()
                                .message()),
                HasSubstr("negative_prompt: "));
  }
#endif
}

}  // namespace
}  // namespace tpdiff::spec
