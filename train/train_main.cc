// tpdiff-train: trains the built-in text-to-video network on procedural captioned clips and
// writes a model package. Wiring only: the flags and the logic are in tpdiff::train
// (train_command.h).

#include <iostream>

#include "tpdiff/common/flags.h"
#include "tpdiff/model/cpu_runtime.h"
#include "tpdiff/train/train_command.h"

int main(int argc, char** argv) {
  tpdiff::model::ReexecWithPassiveOpenMpWait(argv);
  tpdiff::common::ParseCommandLine(argc, argv,
                                   "Trains the TPDiff built-in video model. Example:\n"
                                   "  tpdiff-train --minutes 90 --out models/tpdiff-shapes");
  return tpdiff::train::RunTrainCommand(std::cout, std::cerr);
}
