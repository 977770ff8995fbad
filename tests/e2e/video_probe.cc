// tpdiff-video-probe FILE...: prints "FILE frames WxH fps" for each clip FFmpeg decodes, so the
// end-to-end test checks the real output without needing ffprobe. Exit 1 if one does not decode.
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>

#include "tpdiff/media/decoder.h"

int main(int argc, char** argv) {
  int status = 0;
  for (int i = 1; i < argc; ++i) {
    std::ifstream in(argv[i], std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), {});
    absl::StatusOr<tpdiff::media::Video> video = tpdiff::media::DecodeVideo(bytes);
    if (!video.ok()) {
      std::cerr << argv[i] << ": " << video.status() << "\n";
      status = 1;
      continue;
    }
    std::cout << argv[i] << " " << video->frames << " " << video->width << "x" << video->height
              << " " << video->fps << "\n";
  }
  return status;
}
