// One step of torch.optim.Adam's CPU update (torch/optim/adam.py, _single_tensor_adam, with
// weight_decay=0, amsgrad=False, maximize=False) over many parameters: exactly the ATen calls the
// Python code makes, in the same order, with the same scalars. Rust (src/optim.rs) computes the
// bias corrections as Python does and calls this once per step instead of crossing the FFI for
// each of ~7 ops per parameter; tch's addcmul_/addcdiv_ take no `value`, which this passes as
// PyTorch does.
//
// The handles are tch's tensors (at::Tensor*). Returns NULL, or a malloc'ed error message.

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cstddef>
#include <cstring>
#include <exception>

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
