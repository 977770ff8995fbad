#include "tpdiff/train/clip_files.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tpdiff/model/safetensors.h"
#include "tpdiff/train/eval.h"
#include "tpdiff/train/eval_command.h"

namespace tpdiff::train {
namespace {

namespace fs = std::filesystem;

fs::path TempDir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("tpdiff_clip_files_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

TEST(ClipFilesTest, RenderedClipsRoundTripWithTheirCaptions) {
  const fs::path dir = TempDir("render");
  ClipSpec spec;
  ASSERT_TRUE(RenderClipsToFile(spec, 3, 7, (dir / "clips.safetensors").string()).ok());
  const auto contents = model::ReadSafetensors((dir / "clips.safetensors").string());
  ASSERT_TRUE(contents.ok()) << contents.status();
  const ClipBatch expected = RenderClipBatch(spec, 3, 7);
  EXPECT_TRUE(torch::equal(contents->tensors.at("video"), expected.video));
  EXPECT_EQ(nlohmann::json::parse(contents->metadata.at("captions")).get<std::vector<std::string>>(),
            expected.captions);
  const auto videos = ReadVideosFile((dir / "clips.safetensors").string());
  ASSERT_TRUE(videos.ok());
  ASSERT_EQ(videos->size(), 3u);
  EXPECT_TRUE(torch::equal((*videos)[2], expected.video[2]));

  spec.frames = 6;
  EXPECT_EQ(RenderClipsToFile(spec, 3, 7, (dir / "bad.safetensors").string()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RenderClipsToFile(ClipSpec{}, 0, 7, (dir / "bad.safetensors").string()).message(),
            "count: 0 is outside 1..100000");
}

// Scoring the clips rendered from the captions themselves is (nearly) all adherent, and a
// wrong caption is not: the videos path scores with the same detector as sampling does.
TEST(ClipFilesTest, EvalScoresGivenVideos) {
  const fs::path dir = TempDir("score");
  const std::string captions[] = {"a red circle moving right",
                                  "a fast blue square moving up on a gray background",
                                  "a green triangle moving down-left"};
  std::ostringstream prompts;
  std::vector<torch::Tensor> rendered;
  for (int i = 0; i < 3; ++i) {
    prompts << captions[i] << "\t" << i << "\n";
    const auto scene = ParseCaption(captions[i]);
    ASSERT_TRUE(scene.ok());
    rendered.push_back(*RenderScene(*scene, ClipSpec{}, i));
  }
  // The last video shows another caption's clip.
  rendered[2] = rendered[0];
  ASSERT_TRUE(model::WriteSafetensors((dir / "videos.safetensors").string(),
                                      {{"video", torch::stack(rendered)}})
                  .ok());
  {
    std::ofstream f(dir / "prompts.txt");
    f << prompts.str();
  }
  EvalCommand command;
  command.videos_file = (dir / "videos.safetensors").string();
  command.prompts_file = (dir / "prompts.txt").string();
  command.out_dir = (dir / "out").string();
  command.sampler = "tpdiff";
  std::ostringstream out, progress;
  ASSERT_TRUE(RunEvalCommand(command, out, progress).ok()) << out.str();
  EXPECT_NE(out.str().find("adherence 0.667"), std::string::npos) << out.str();
  EXPECT_TRUE(fs::exists(dir / "out" / "results.json"));
  EXPECT_TRUE(fs::exists(dir / "out" / "0002" / "00.png"));

  rendered.pop_back();
  EXPECT_EQ(ScoreVideos(rendered, *ParsePromptList(prompts.str(), 0), EvalRunInfo{},
                        (dir / "out2").string(), 1)
                .status()
                .message(),
            "videos: 2 videos for 3 prompts");
}

}  // namespace
}  // namespace tpdiff::train
