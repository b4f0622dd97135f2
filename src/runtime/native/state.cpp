// What a resumed training run needs from libtorch that tch does not expose (src/train/state.rs):
//
// - the state of a device's default random generator (torch.get_rng_state() on the CPU,
//   torch.cuda.get_rng_state() on CUDA), read and restored, so shuffling and dropout after a
//   resume draw exactly what the uninterrupted run drew;
// - the per-parameter state of libtorch's C++ torch::optim::Adam (its step count and moments),
//   read and restored, so `--adam libtorch` resumes with the same bits as well;
// - a permutation from a generator of its own (DistributedSampler's, src/dist/sampler.rs).
//
// The tensor handles are tch's (at::Tensor*); a tensor returned through an out-pointer is a new
// at::Tensor that tch::Tensor::from_ptr takes ownership of. Each function returns NULL, or a
// malloc'ed error message.

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <torch/optim/adam.h>
#include <torch/optim/optimizer.h>

#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <vector>

namespace {

at::Generator default_generator(int device_type, int device_index) {
  if (device_type == 0) {
    return at::detail::getDefaultCPUGenerator();
  }
  return at::globalContext().defaultGenerator(
      at::Device(at::DeviceType::CUDA, static_cast<c10::DeviceIndex>(device_index)));
}

// The parameters of a torch::optim::Optimizer built by tch (torch-sys's ato_adam and
// ato_add_parameters), in the order they were added.
std::vector<at::Tensor> parameters(torch::optim::Optimizer *optimizer) {
  std::vector<at::Tensor> params;
  for (auto &group : optimizer->param_groups()) {
    for (auto &p : group.params()) {
      params.push_back(p);
    }
  }
  return params;
}

}  // namespace

// device_type: 0 for the CPU, 1 for CUDA (device_index then names the device).
extern "C" char *lstm_tch_generator_state(int device_type, int device_index, at::Tensor **out) {
  try {
    at::Generator gen = default_generator(device_type, device_index);
    std::lock_guard<std::mutex> lock(gen.mutex());
    *out = new at::Tensor(gen.get_state());
    return nullptr;
  } catch (const std::exception &e) {
    return strdup(e.what());
  }
}

extern "C" char *lstm_tch_set_generator_state(int device_type, int device_index, const at::Tensor *state) {
  try {
    at::Generator gen = default_generator(device_type, device_index);
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(*state);
    return nullptr;
  } catch (const std::exception &e) {
    return strdup(e.what());
  }
}

// Reads torch::optim::Adam's state of its n parameters: steps[i], and new tensors in
// exp_avgs[i] / exp_avg_sqs[i] (copies), or steps[i] = 0 and NULL where a parameter has no state
// yet (it never had a gradient).
extern "C" char *lstm_tch_adam_get_state(void *optimizer, size_t n, int64_t *steps, at::Tensor **exp_avgs,
                                         at::Tensor **exp_avg_sqs) {
  try {
    auto *opt = static_cast<torch::optim::Optimizer *>(optimizer);
    std::vector<at::Tensor> params = parameters(opt);
    TORCH_CHECK(params.size() == n, "the optimizer has ", params.size(), " parameters, not ", n);
    auto &state = opt->state();
    for (size_t i = 0; i < n; ++i) {
      auto found = state.find(params[i].unsafeGetTensorImpl());
      if (found == state.end()) {
        steps[i] = 0;
        exp_avgs[i] = nullptr;
        exp_avg_sqs[i] = nullptr;
        continue;
      }
      auto &adam = static_cast<torch::optim::AdamParamState &>(*found->second);
      steps[i] = adam.step();
      exp_avgs[i] = new at::Tensor(adam.exp_avg().clone());
      exp_avg_sqs[i] = new at::Tensor(adam.exp_avg_sq().clone());
    }
    return nullptr;
  } catch (const std::exception &e) {
    return strdup(e.what());
  }
}

// Replaces torch::optim::Adam's state of its n parameters: a parameter with steps[i] == 0 gets
// none (as before its first gradient); the others a copy of exp_avgs[i] / exp_avg_sqs[i], on the
// parameter's device.
extern "C" char *lstm_tch_adam_set_state(void *optimizer, size_t n, const int64_t *steps,
                                         const at::Tensor *const *exp_avgs, const at::Tensor *const *exp_avg_sqs) {
  try {
    auto *opt = static_cast<torch::optim::Optimizer *>(optimizer);
    std::vector<at::Tensor> params = parameters(opt);
    TORCH_CHECK(params.size() == n, "the optimizer has ", params.size(), " parameters, not ", n);
    auto &state = opt->state();
    state.clear();
    for (size_t i = 0; i < n; ++i) {
      if (steps[i] == 0) {
        continue;
      }
      const at::Tensor &p = params[i];
      TORCH_CHECK(exp_avgs[i]->sizes() == p.sizes() && exp_avg_sqs[i]->sizes() == p.sizes(),
                  "Adam state of parameter ", i, " does not match its shape");
      auto adam = std::make_unique<torch::optim::AdamParamState>();
      adam->step(steps[i]);
      adam->exp_avg(exp_avgs[i]->to(p.options()).clone(at::MemoryFormat::Preserve));
      adam->exp_avg_sq(exp_avg_sqs[i]->to(p.options()).clone(at::MemoryFormat::Preserve));
      state[p.unsafeGetTensorImpl()] = std::move(adam);
    }
    return nullptr;
  } catch (const std::exception &e) {
    return strdup(e.what());
  }
}

// torch.randperm(ns[0], generator=g), torch.randperm(ns[1], generator=g), ... with g one fresh
// CPU torch.Generator seeded with `seed`: what DistributedSampler draws each epoch (seed + epoch),
// then the draws that follow it from the same generator, without touching the default one.
extern "C" char *lstm_tch_randperms_seeded(const int64_t *ns, size_t count, int64_t seed, at::Tensor **out) {
  try {
    auto generator = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(seed));
    std::vector<at::Tensor> perms;
    for (size_t i = 0; i < count; ++i) {
      perms.push_back(at::randperm(ns[i], generator, at::TensorOptions().dtype(at::kLong)));
    }
    for (size_t i = 0; i < count; ++i) {
      out[i] = new at::Tensor(std::move(perms[i]));
    }
    return nullptr;
  } catch (const std::exception &e) {
    return strdup(e.what());
  }
}
