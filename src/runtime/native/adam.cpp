// One step of torch.optim.Adam (torch/optim/adam.py, with weight_decay=0, amsgrad=False,
// maximize=False, capturable=False) over many parameters, in either of PyTorch's two default
// implementations: lstm_tch_adam_step is _single_tensor_adam (PyTorch's default on the CPU),
// lstm_tch_adam_foreach_step is _multi_tensor_adam (foreach=True, its default on CUDA). Each
// makes exactly the ATen calls the Python code makes, in the same order, with the same scalars.
// Rust (src/train/optim/) computes the bias corrections as Python does and calls this once per step
// instead of crossing the FFI for each of ~7 ops per parameter; tch's addcmul_/addcdiv_ take no
// `value`, and tch has no _foreach_* ops at all.
//
// The handles are tch's tensors (at::Tensor*). Returns NULL, or a malloc'ed error message.

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/utils/grad_layout_contract.h>

#include <cstddef>
#include <cstring>
#include <exception>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

extern "C" char *lstm_tch_adam_step(at::Tensor *const *params, const at::Tensor *const *grads,
                                    at::Tensor *const *exp_avgs, at::Tensor *const *exp_avg_sqs,
                                    const double *step_sizes, const double *bias_correction2_sqrts,
                                    size_t n, double beta1, double beta2, double eps) {
  try {
    c10::NoGradGuard no_grad;
    for (size_t i = 0; i < n; ++i) {
      const at::Tensor &grad = *grads[i];
      if (!grad.defined()) {
        continue;
      }
      at::Tensor &exp_avg = *exp_avgs[i];
      at::Tensor &exp_avg_sq = *exp_avg_sqs[i];
      // exp_avg.lerp_(grad, 1 - beta1)
      exp_avg.lerp_(grad, 1 - beta1);
      // exp_avg_sq.mul_(beta2).addcmul_(grad, grad.conj(), value=1 - beta2)
      exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2);
      // denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
      at::Tensor denom = (exp_avg_sq.sqrt() / bias_correction2_sqrts[i]).add_(eps);
      // param.addcdiv_(exp_avg, denom, value=-step_size)
      params[i]->addcdiv_(exp_avg, denom, -step_sizes[i]);
    }
    return nullptr;
  } catch (const std::exception &e) {
    return strdup(e.what());
  }
}

// _multi_tensor_adam, capturable=False: the parameters with a gradient, grouped by device and
// dtype (Optimizer._group_tensors_by_device_and_dtype; order kept within a group), then per
// group:
//   torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
//   torch._foreach_mul_(exp_avg_sqs, beta2)
//   torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
//   exp_avg_sq_sqrt = torch._foreach_sqrt(exp_avg_sqs)
//   torch._foreach_div_(exp_avg_sq_sqrt, bias_correction2_sqrt)      # a list of Python floats
//   torch._foreach_add_(exp_avg_sq_sqrt, eps)
//   torch._foreach_addcdiv_(params, exp_avgs, exp_avg_sq_sqrt, step_size)  # [(lr / bc1) * -1]
// step_sizes[i] is lr / bias_correction1 (positive, as for the single-tensor path).
//
// PyTorch reads the gradients from .grad, where AccumulateGrad stores a gradient whose strides
// differ from its parameter's as a copy with the parameter's strides (the gradient layout
// contract); Rust passes the autograd engine's own results, so the same copy is made here. It
// changes no value, only which kernels run: on CUDA the _foreach_* ops take their fused fast
// path only when every tensor of a position has the same sizes and strides.
extern "C" char *lstm_tch_adam_foreach_step(at::Tensor *const *params, const at::Tensor *const *grads,
                                            at::Tensor *const *exp_avgs, at::Tensor *const *exp_avg_sqs,
                                            const double *step_sizes, const double *bias_correction2_sqrts,
                                            size_t n, double beta1, double beta2, double eps) {
  try {
    c10::NoGradGuard no_grad;
    struct Group {
      std::vector<at::Tensor> params, grads, exp_avgs, exp_avg_sqs;
      std::vector<at::Scalar> bias_correction2_sqrts, step_sizes;
    };
    std::vector<Group> groups;
    std::map<std::pair<std::string, int>, size_t> index;
    for (size_t i = 0; i < n; ++i) {
      const at::Tensor &grad = *grads[i];
      if (!grad.defined()) {
        continue;
      }
      const at::Tensor &param = *params[i];
      auto key = std::make_pair(param.device().str(), static_cast<int>(param.scalar_type()));
      auto found = index.find(key);
      if (found == index.end()) {
        found = index.emplace(key, groups.size()).first;
        groups.emplace_back();
      }
      Group &g = groups[found->second];
      g.params.push_back(param);
      g.grads.push_back(torch::autograd::utils::obeys_layout_contract(grad, param)
                            ? grad
                            : torch::autograd::utils::clone_obey_contract(grad, param));
      g.exp_avgs.push_back(*exp_avgs[i]);
      g.exp_avg_sqs.push_back(*exp_avg_sqs[i]);
      g.bias_correction2_sqrts.emplace_back(bias_correction2_sqrts[i]);
      g.step_sizes.emplace_back(step_sizes[i] * -1);
    }
    for (Group &g : groups) {
      at::_foreach_lerp_(g.exp_avgs, g.grads, at::Scalar(1 - beta1));
      at::_foreach_mul_(g.exp_avg_sqs, at::Scalar(beta2));
      at::_foreach_addcmul_(g.exp_avg_sqs, g.grads, g.grads, at::Scalar(1 - beta2));
      std::vector<at::Tensor> exp_avg_sq_sqrt = at::_foreach_sqrt(g.exp_avg_sqs);
      at::_foreach_div_(exp_avg_sq_sqrt, g.bias_correction2_sqrts);
      at::_foreach_add_(exp_avg_sq_sqrt, at::Scalar(eps));
      at::_foreach_addcdiv_(g.params, g.exp_avgs, exp_avg_sq_sqrt, g.step_sizes);
    }
    return nullptr;
  } catch (const std::exception &e) {
    return strdup(e.what());
  }
}

// `p.grad = None` for each of the n tensors: what optimizer.zero_grad() does by default, so that
// the next backward stores its gradient as it comes (AccumulateGrad, then DDP's Reducer, write a
// fresh .grad) rather than adding it to zeros.
extern "C" char *lstm_tch_clear_grads(at::Tensor *const *tensors, size_t n) {
  try {
    for (size_t i = 0; i < n; ++i) {
      tensors[i]->mutable_grad().reset();
    }
    return nullptr;
  } catch (const std::exception &e) {
    return strdup(e.what());
  }
}
