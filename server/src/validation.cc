#include "tpdiff/server/validation.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tpdiff/spec/limits.h"
#include "tpdiff/spec/request.h"

namespace tpdiff::server {

absl::StatusOr<tpdiff::v1::GenerateRequest> ValidateAndFill(
    const tpdiff::v1::GenerateRequest& request, const ModelRegistry& models,
    uint64_t random_seed) {
  const std::string name = request.model().empty() ? models.DefaultModel() : request.model();
  absl::StatusOr<std::shared_ptr<const spec::ModelSpec>> model = models.FindSpec(name);
  if (!model.ok()) {
    const std::vector<std::string> names = models.Names();
    return absl::InvalidArgumentError(absl::StrCat(
        "model: unknown model \"", spec::EchoForMessage(name),
        "\"; known models: ", names.empty() ? "none" : absl::StrJoin(names, ", ")));
  }
  return spec::ValidateAndFill(request, (*model)->manifest, (*model)->tokenizer, random_seed);
}

}  // namespace tpdiff::server
