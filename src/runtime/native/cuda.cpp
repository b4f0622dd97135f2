// libtorch's CUDA backend, loaded at start-up where it can work and nowhere else.
//
// Binaries link libtorch_cpu but not libtorch_cuda: on a machine without an NVIDIA driver the
// CUDA library and the CUDA runtime it pulls in can do nothing, yet cost ~0.16 s and ~390 MiB per
// process (measured on this project's machine). Instead, this constructor runs before main (after libtorch_cpu's own initialisers, as
// a linked libtorch_cuda's would) and, when the NVIDIA driver library can be loaded, dlopens
// libtorch_cuda from the directory of the libtorch_cpu this process runs on (so the two always
// match) with RTLD_GLOBAL, as the dynamic linker would have. Its static initialisers register the
// CUDA kernels and ATen's CUDA hooks exactly as at a linked start-up, before anything can ask for
// them: tch's Cuda::is_available, Device::cuda_if_available and every CUDA op behave as if
// libtorch_cuda were linked.
//
// LSTM_TCH_CUDA=off skips the load (a CPU job on a GPU machine); =on loads it without a driver
// (for tests: the backend loads and sees no device). build.rs links this object whole, so the
// constructor is in every binary that uses the crate.

#include <ATen/detail/CUDAHooksInterface.h>

#include <dlfcn.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

namespace {

// The outcome, for lstm_tch_cuda_state(). Plain globals: zero-initialised before any
// constructor runs, whatever the order of initialisation.
int g_state = 0;                // a LSTM_TCH_CUDA_* value
const char *g_detail = nullptr; // malloc'ed; what went wrong, or the library's path
const char *g_libtorch_dir = nullptr; // malloc'ed; where libtorch_cpu was loaded from

// Kept in sync with CudaSupport in src/runtime/device.rs.
enum : int {
  LSTM_TCH_CUDA_NOT_RUN = 0,   // the constructor did not run
  LSTM_TCH_CUDA_LOADED = 1,    // libtorch_cuda loaded, real hooks; detail: its path
  LSTM_TCH_CUDA_DISABLED = 2,  // LSTM_TCH_CUDA=off
  LSTM_TCH_CUDA_NO_DRIVER = 3, // no NVIDIA driver library (libcuda.so.1)
  LSTM_TCH_CUDA_NOT_BUILT = 4, // this libtorch has no libtorch_cuda; detail: the path looked at
  LSTM_TCH_CUDA_FAILED = 5,    // detail: why
};

void finish(int state, const std::string &detail) {
  g_state = state;
  g_detail = strdup(detail.c_str());
}

// The directory holding the libtorch_cpu loaded in this process, or "" when unknown.
std::string libtorch_dir() {
  Dl_info info;
  // A function defined in libtorch_cpu; dladdr names the object that holds it.
  if (dladdr(reinterpret_cast<void *>(&at::detail::getCUDAHooks), &info) == 0 || info.dli_fname == nullptr) {
    return "";
  }
  std::string file(info.dli_fname);
  const auto slash = file.rfind('/');
  return slash == std::string::npos ? std::string(".") : file.substr(0, slash);
}

__attribute__((constructor)) void load_cuda_at_start() {
  const std::string dir = libtorch_dir();
  g_libtorch_dir = dir.empty() ? nullptr : strdup(dir.c_str());
  const char *setting = std::getenv("LSTM_TCH_CUDA");
  const std::string mode = setting == nullptr || *setting == '\0' ? "auto" : setting;
  if (mode == "off" || mode == "0") {
    return finish(LSTM_TCH_CUDA_DISABLED, "LSTM_TCH_CUDA=" + mode);
  }
  if (mode != "auto" && mode != "on" && mode != "1") {
    return finish(LSTM_TCH_CUDA_FAILED, "LSTM_TCH_CUDA must be auto, on or off, not '" + mode + "'");
  }
#if defined(__APPLE__)
  if (mode == "auto") {
    return finish(LSTM_TCH_CUDA_NO_DRIVER, "macOS has no CUDA");
  }
  const char *library = "libtorch_cuda.dylib";
#else
  // The driver library the CUDA runtime itself dlopens; without it no CUDA call can succeed.
  if (mode == "auto" && dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL) == nullptr) {
    return finish(LSTM_TCH_CUDA_NO_DRIVER, "no NVIDIA driver (libcuda.so.1) on this machine");
  }
  const char *library = "libtorch_cuda.so";
#endif
  if (dir.empty()) {
    return finish(LSTM_TCH_CUDA_FAILED, "cannot find where libtorch_cpu was loaded from");
  }
  const std::string path = dir + "/" + library;
  if (access(path.c_str(), F_OK) != 0) {
    return finish(LSTM_TCH_CUDA_NOT_BUILT, path);
  }
  if (dlopen(path.c_str(), RTLD_LAZY | RTLD_GLOBAL) == nullptr) {
    const char *reason = dlerror();
    return finish(LSTM_TCH_CUDA_FAILED, reason != nullptr ? reason : "dlopen " + path + " failed");
  }
  try {
    // ATen creates its hooks object once, on first use: this is that first use, so it must
    // find the real hooks libtorch_cuda has just registered.
    if (!at::detail::getCUDAHooks().isBuilt()) {
      return finish(LSTM_TCH_CUDA_FAILED, path + " loaded but registered no CUDA hooks");
    }
  } catch (const std::exception &e) {
    return finish(LSTM_TCH_CUDA_FAILED, e.what());
  }
  finish(LSTM_TCH_CUDA_LOADED, path);
}

} // namespace

// The start-up load's outcome (a LSTM_TCH_CUDA_* value); `*detail` gets its text (or NULL),
// owned by this file.
extern "C" int lstm_tch_cuda_state(const char **detail) {
  *detail = g_detail;
  return g_state;
}

// The directory of the libtorch_cpu this process runs on, or NULL when unknown.
extern "C" const char *lstm_tch_libtorch_dir() { return g_libtorch_dir; }

// The CUDA runtime version libtorch_cuda was built with (e.g. 12080), or -1 when CUDA support is
// not loaded. Needs no GPU.
extern "C" int64_t lstm_tch_cuda_runtime_version() {
  if (g_state != LSTM_TCH_CUDA_LOADED) {
    return -1;
  }
  try {
    return at::detail::getCUDAHooks().versionCUDART();
  } catch (const std::exception &) {
    return -1;
  }
}
