#include "sentencepiece_model.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstddef>
#include <filesystem>
#include <mutex>

namespace tpdiff::spec::internal {
namespace {

constexpr char kModuleName[] = "libtpdiff_sentencepiece.so";

struct Module {
  void* (*load)(const char*, size_t, char*, size_t) = nullptr;
  void (*free)(void*) = nullptr;
  size_t (*encode)(const void*, const char*, size_t, int*, size_t) = nullptr;
  int (*eos_id)(const void*) = nullptr;
  int (*pad_id)(const void*) = nullptr;
  int (*piece_size)(const void*) = nullptr;
  std::string error;  // why the module is unusable; empty when it loaded
};

// Sanitizer runtimes refuse RTLD_DEEPBIND; there libsentencepiece binds to the process's
// libprotobuf where their symbols coincide.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr int kOpenFlags = RTLD_NOW | RTLD_LOCAL;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
constexpr int kOpenFlags = RTLD_NOW | RTLD_LOCAL;
#else
constexpr int kOpenFlags = RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND;
#endif
#else
constexpr int kOpenFlags = RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND;
#endif

// Beside the executable (installed images), then where the build put it, then the dynamic
// linker's search path.
void* OpenModule(std::string* error) {
  std::vector<std::string> candidates;
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) candidates.push_back((exe.parent_path() / kModuleName).string());
#ifdef TPDIFF_SENTENCEPIECE_MODULE
  candidates.push_back(TPDIFF_SENTENCEPIECE_MODULE);
#endif
  candidates.push_back(kModuleName);
  for (const std::string& path : candidates) {
    if (path.find('/') != std::string::npos && !std::filesystem::exists(path, ec)) continue;
    void* handle = dlopen(path.c_str(), kOpenFlags);
    if (handle != nullptr) return handle;
    const char* message = dlerror();
    *error = message != nullptr ? message : path;
  }
  if (error->empty()) *error = std::string(kModuleName) + ": not found";
  return nullptr;
}

template <typename Fn>
bool Resolve(void* handle, const char* name, Fn* fn, std::string* error) {
  *fn = reinterpret_cast<Fn>(dlsym(handle, name));
  if (*fn == nullptr) *error = std::string(kModuleName) + ": no symbol " + name;
  return *fn != nullptr;
}

const Module& GetModule() {
  static const Module* const module = [] {
    auto* m = new Module();
    void* handle = OpenModule(&m->error);
    if (handle == nullptr) return m;
    std::string error;
    if (!Resolve(handle, "tpdiff_spm_load", &m->load, &error) ||
        !Resolve(handle, "tpdiff_spm_free", &m->free, &error) ||
        !Resolve(handle, "tpdiff_spm_encode", &m->encode, &error) ||
        !Resolve(handle, "tpdiff_spm_eos_id", &m->eos_id, &error) ||
        !Resolve(handle, "tpdiff_spm_pad_id", &m->pad_id, &error) ||
        !Resolve(handle, "tpdiff_spm_piece_size", &m->piece_size, &error)) {
      m->error = error;
      m->load = nullptr;
    }
    return m;
  }();
  return *module;
}

}  // namespace

SentencePieceModel::~SentencePieceModel() { GetModule().free(handle_); }

std::unique_ptr<SentencePieceModel> SentencePieceModel::Load(const std::string& serialized,
                                                             std::string* error) {
  const Module& module = GetModule();
  if (module.load == nullptr) {
    *error = "SentencePiece is unavailable: " + module.error;
    return nullptr;
  }
  char message[512] = {0};
  void* handle = module.load(serialized.data(), serialized.size(), message, sizeof(message));
  if (handle == nullptr) {
    *error = message;
    return nullptr;
  }
  return std::unique_ptr<SentencePieceModel>(new SentencePieceModel(handle));
}

std::vector<int> SentencePieceModel::EncodeAsIds(const std::string& text) const {
  std::vector<int> ids(64);
  size_t n = GetModule().encode(handle_, text.data(), text.size(), ids.data(), ids.size());
  if (n > ids.size()) {
    ids.resize(n);
    n = GetModule().encode(handle_, text.data(), text.size(), ids.data(), ids.size());
  }
  ids.resize(n);
  return ids;
}

int SentencePieceModel::eos_id() const { return GetModule().eos_id(handle_); }
int SentencePieceModel::pad_id() const { return GetModule().pad_id(handle_); }
int SentencePieceModel::piece_size() const { return GetModule().piece_size(handle_); }

}  // namespace tpdiff::spec::internal
