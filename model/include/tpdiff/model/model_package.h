#ifndef TPDIFF_MODEL_MODEL_PACKAGE_H_
#define TPDIFF_MODEL_MODEL_PACKAGE_H_

// Model packages: a folder models/<name>/ with model.json (the manifest), a weights file and
// a vocabulary file. The manifest and the vocabulary are read by the spec library
// (tpdiff/spec/manifest.h), the same code the front uses; this file loads the weights. Kind
// "builtin" is this project's network (network.h) with safetensors weights; kind
// "torchscript" is a user's exported module with the same forward contract:
//   forward(x: [B,C,T,H,W] float, t: [B] float, stage: [B] int64, tokens: [B,L] int64)
//     -> [B,C,T,H,W] float

#include <torch/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tpdiff/core/denoiser.h"
#include "tpdiff/model/latent_modules.h"
#include "tpdiff/spec/manifest.h"
#include "tpdiff/spec/network_config.h"
#include "tpdiff/spec/tokenizer.h"

namespace tpdiff::model {

// A loaded package: the weights, the manifest and the tokenizer, loaded once and shared by
// every thread that samples from it (the worker's slots). Each sampling thread makes its own
// NewDenoiser(): the denoiser holds that thread's per-call state (NetworkDenoiser's prepared
// caption and stage) and reads the shared weights.
//
// Ownership: a denoiser shares ownership of the weights, so it may outlive the LoadedModel.
//
// Thread safety: a LoadedModel never changes after loading; every method is const and may be
// called from any thread. One denoiser is for one thread at a time; any number of denoisers
// of one model may predict at once, because a forward pass only reads the model:
//  - builtin: the network runs in eval mode without autograd. Its forward reads parameters
//    and allocates fresh tensors; it has no buffers (no normalisation statistics to update),
//    no lazily built tensors and no member written after construction, and the CPU kernels
//    (cpu_attention.h, cpu_modulation.h) keep their scratch on the calling thread's stack.
//  - torchscript: torch::jit::Module::forward without autograd. The interpreter keeps a
//    call's values in that call's own frame; the graph executor builds its optimised plan
//    under its own lock. A module whose forward assigns to its own attributes (self.x = ...)
//    breaks this and is outside the forward contract above.
// Nothing may write the weights while denoisers predict.
class LoadedModel {
 public:
  virtual ~LoadedModel() = default;
  virtual const spec::ModelManifest& manifest() const = 0;
  virtual const spec::Tokenizer& tokenizer() const = 0;
  virtual torch::Device device() const = 0;
  // A denoiser over the shared weights with its own caches; cheap (no weights are copied).
  // Latent packages: a LatentDenoiser (latent_job.h), fed the job's text by the sampler.
  virtual std::unique_ptr<core::Denoiser> NewDenoiser() const = 0;
  // Kind "latent": the text encoder, denoiser and VAE decoder (shared, read-only); null for
  // the other kinds.
  virtual std::shared_ptr<const LatentModules> latent_modules() const { return nullptr; }
};

// Loads models/<name>/ onto `device`: spec::ReadModelPackageSpec, then the weights. NOT_FOUND
// for a missing folder or file, INVALID_ARGUMENT for a bad manifest, vocabulary or weights
// file or a TorchScript module with the wrong signature. Latent packages also fail the
// load-time checks of LatentModules::Load (INVALID_ARGUMENT / FAILED_PRECONDITION naming the
// module, its input and the expected shape).
absl::StatusOr<std::unique_ptr<LoadedModel>> LoadModelPackage(const std::string& dir,
                                                              torch::Device device);

class TpdiffNetImpl;  // network.h

// Writes a builtin package: <dir>/model.json, <dir>/<weights_file> (the network's parameters
// as float32 safetensors) and <dir>/<vocabulary_file>, creating <dir>. The manifest's kind and
// network_config_json are taken from `network`; empty file names default to
// "weights.safetensors" and "vocab.txt". Files are replaced atomically one by one.
absl::Status WriteModelPackage(const std::string& dir, const spec::ModelManifest& manifest,
                               const spec::Tokenizer& tokenizer, const TpdiffNetImpl& network);

// A builtin manifest for the procedural shapes data: 16 frames of 32x32 at 8 fps, 3 stages of
// 10 steps, flow matching, guidance 3.
spec::ModelManifest DefaultBuiltinManifest(const std::string& name);

// Writes a package with a randomly initialised network (deterministic in `seed`, with the
// zero-initialised output layers also randomised so predictions depend on every input) and
// ShapesVocabulary(): for tests and for developing the service before a trained model exists.
// config.vocab_size is set to the vocabulary's size.
absl::Status CreateRandomBuiltinPackage(const std::string& dir, const std::string& name,
                                        spec::NetworkConfig config, uint64_t seed);

}  // namespace tpdiff::model

#endif  // TPDIFF_MODEL_MODEL_PACKAGE_H_
