#ifndef TPDIFF_TRAIN_TRAIN_COMMAND_H_
#define TPDIFF_TRAIN_TRAIN_COMMAND_H_

#include <ostream>

namespace tpdiff::train {

// tpdiff-train after its command line was parsed (common::ParseCommandLine): reads the flags
// defined with it (train/src/train_command.cc), then trains (progress on `err`) or, with
// --bench, prints the cost measurements on `out`. Returns the process exit code: 0, 2 for a
// bad flag (the message names it), 1 for any other failure.
int RunTrainCommand(std::ostream& out, std::ostream& err);

}  // namespace tpdiff::train

#endif  // TPDIFF_TRAIN_TRAIN_COMMAND_H_
