// A process of this crate as a rank of a `torch.distributed` job: the process group that
// `torch.distributed.init_process_group("gloo", init_method="env://")` builds, and the gradient
// averaging that `torch.nn.parallel.DistributedDataParallel` does, both from the c10d engine
// inside the linked libtorch (src/dist/ is the Rust side). Nothing here is a collective of our
// own: the store is c10d's TCPStore, the collectives Gloo's, the bucketing and averaging
// c10d::Reducer's, so a Rust rank and a Python rank can share one job and compute the same bits.
//
// Every step below mirrors PyTorch 2.13's Python source; `DC` is
// torch/distributed/distributed_c10d.py, `RV` torch/distributed/rendezvous.py, `DP`
// torch/nn/parallel/distributed.py, `U` torch/distributed/utils.py.
//
// Built only where Gloo's headers are found (build.rs: ProcessGroupGloo.hpp includes them and
// the wheel ships none; Debian's libgloo-dev provides them). Compiled with USE_C10D_GLOO.
//
// The tensor handles are tch's (at::Tensor*). Each function returns NULL, or a malloc'ed error
// message (the text of c10::Error without its C++ backtrace).

#include <ATen/ATen.h>
#include <c10/util/Logging.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/comm.hpp>
#include <torch/csrc/distributed/c10d/logger.hpp>
#include <torch/csrc/distributed/c10d/reducer.hpp>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace {

using c10::intrusive_ptr;
using c10::make_intrusive;

char *error(const std::exception &e) {
  if (auto *c10_error = dynamic_cast<const c10::Error *>(&e)) {
    return strdup(c10_error->what_without_backtrace());
  }
  std::string text = e.what();
  return strdup(text.substr(0, text.find('\n')).c_str());
}

std::vector<at::Tensor> tensors(at::Tensor **handles, int count) {
  std::vector<at::Tensor> out;
  out.reserve(count);
  for (int i = 0; i < count; ++i) {
    out.push_back(*handles[i]);
  }
  return out;
}

}  // namespace

// The default process group of a job: its store and its Gloo backend.
struct LstmTchGroup {
  int rank = 0;
  int world_size = 1;
  intrusive_ptr<c10d::Store> store;
  intrusive_ptr<c10d::ProcessGroup> group;
};

// DistributedDataParallel's state for one model: its Reducer (buckets, autograd hooks) and the
// Logger Python attaches to it.
struct LstmTchDdp {
  std::shared_ptr<c10d::Reducer> reducer;
  std::shared_ptr<c10d::Logger> logger;
};

// Joins the job as `rank` of `world_size`: the TCPStore at addr:port (a client when
// `agent_store`, as torchrun's workers are; otherwise rank 0 hosts it, as env:// does), then the
// group, as DC builds its default group. `timeout_ms` bounds the store's connect and waits and
// every Gloo operation (Python's default: 30 minutes).
//
// torchrun's agent keeps one store for every attempt of a job, so the keys a failed attempt
// wrote (each rank's Gloo address) are still there when the restarted workers meet: one that
// reads a dead peer's address before the new peer overwrites it fails to connect, or waits on
// whatever now listens there. PyTorch 2.13's env:// assumes a new store per attempt
// (RV:188-189) and races so; torch 1.x gave each attempt its own prefix, which is what a
// restarted attempt (`restart_count` > 0) does here: `/worker/attempt_N`. A first attempt keeps
// Python's keys exactly, so Python and Rust ranks can share it.
extern "C" char *lstm_tch_dist_join(const char *addr, int port, int rank, int world_size,
                                    int agent_store, int restart_count, int64_t timeout_ms,
                                    LstmTchGroup **out) {
  try {
    // Honour TORCH_CPP_LOG_LEVEL as `import torch` does. Unset, only fatal messages: c10d logs
    // every connect retry and peer failure with a C++ backtrace, and the error this returns
    // already says what went wrong, in one line.
    static std::once_flag logging;
    std::call_once(logging, [] {
      setenv("TORCH_CPP_LOG_LEVEL", "FATAL", /*overwrite=*/0);
      c10::initLogging();
    });
    const std::chrono::milliseconds timeout(timeout_ms);
    c10d::TCPStoreOptions options;
    options.port = static_cast<std::uint16_t>(port);
    options.numWorkers = static_cast<std::size_t>(world_size);  // RV:162-207
    options.waitWorkers = true;
    options.timeout = timeout;
    options.isServer = !agent_store && rank == 0;  // RV:190 (agent: client), RV:199
    options.multiTenant = !agent_store;            // RV:205
    auto tcp = make_intrusive<c10d::TCPStore>(std::string(addr), options);
    tcp->setTimeout(timeout);  // DC:1893

    auto group = std::make_unique<LstmTchGroup>();
    group->rank = rank;
    group->world_size = world_size;
    group->store = tcp;
    intrusive_ptr<c10d::Store> attempt_store = tcp;
    if (agent_store && restart_count > 0) {
      attempt_store = make_intrusive<c10d::PrefixStore>("/worker/attempt_" + std::to_string(restart_count), tcp);
    }
    auto default_store = make_intrusive<c10d::PrefixStore>("default_pg", attempt_store);  // DC:1897
    const std::string name = "0";  // the first group's name
    auto group_store = make_intrusive<c10d::PrefixStore>(name + "/", default_store);  // DC:2060
    group->group = make_intrusive<c10d::ProcessGroup>(group_store, rank, world_size);  // DC:2063
    group->group->setDefaultBackend(c10d::ProcessGroup::BackendType::GLOO);  // DC:2082
    auto backend_store = make_intrusive<c10d::PrefixStore>("cpu/", group_store);  // DC:2101
    // The binding DC:2169 calls: GLOO_SOCKET_IFNAME's interfaces, or the default device.
    auto gloo_options = c10d::ProcessGroupGloo::Options::create_default(timeout);
    gloo_options->global_ranks_in_group = {};  // DC:2176-2177
    gloo_options->group_name = name;
    auto gloo = make_intrusive<c10d::ProcessGroupGloo>(backend_store, rank, world_size, gloo_options);
    gloo->setSequenceNumberForGroup();  // DC:2267
    intrusive_ptr<c10d::Backend> backend = gloo;
    for (auto device : {c10::DeviceType::CPU, c10::DeviceType::CUDA}) {  // DC:2318
      group->group->setBackend(device, c10d::ProcessGroup::BackendType::GLOO, backend);
    }
    group->group->setGroupName(name);  // DC:2330-2331
    group->group->setGroupDesc("default_pg");
    *out = group.release();
    return nullptr;
  } catch (const std::exception &e) {
    return error(e);
  }
}

// Leaves the group as destroy_process_group() does (DC: pg.shutdown(), then the last reference
// goes): the backend stops its work and closes its connections before it is freed.
extern "C" void lstm_tch_dist_free(LstmTchGroup *group) {
  try {
    group->group->shutdown();
  } catch (const std::exception &) {
    // A peer already gone: nothing left to stop.
  }
  delete group;
}

// Sums `tensor` over the ranks, in place (dist.all_reduce).
extern "C" char *lstm_tch_dist_all_reduce_sum(LstmTchGroup *group, at::Tensor *tensor) {
  try {
    std::vector<at::Tensor> one{*tensor};
    group->group->allreduce(one)->wait();
    return nullptr;
  } catch (const std::exception &e) {
    return error(e);
  }
}

// Overwrites `tensors` with rank `root`'s (DDP's _sync_module_states: 250 MiB buffers, U:326).
extern "C" char *lstm_tch_dist_broadcast(LstmTchGroup *group, at::Tensor **handles, int count,
                                         int root) {
  try {
    c10d::broadcast_coalesced(group->group, tensors(handles, count), 250 * 1024 * 1024, root);
    return nullptr;
  } catch (const std::exception &e) {
    return error(e);
  }
}

// Waits for every rank (dist.barrier).
extern "C" char *lstm_tch_dist_barrier(LstmTchGroup *group) {
  try {
    group->group->barrier()->wait();
    return nullptr;
  } catch (const std::exception &e) {
    return error(e);
  }
}

// DistributedDataParallel(module) over `params` (in the module's order), as DP's constructor
// runs: checks every rank has the same shapes, copies rank 0's values to every rank, assigns
// the buckets (25 MiB, a first of 1 MiB; `bucket_cap_bytes` > 0 sets both, as bucket_cap_mb
// does), reversed, and builds the Reducer, whose autograd hooks then average the gradients.
extern "C" char *lstm_tch_ddp_new(LstmTchGroup *group, at::Tensor **handles, int count,
                                  int64_t bucket_cap_bytes, LstmTchDdp **out) {
  try {
    const auto params = tensors(handles, count);
    const int64_t mib = 1024 * 1024;
    int64_t cap = 25 * mib;                                 // DP:1023, :86-117
    int64_t first_cap = c10d::kDefaultFirstBucketBytes;     // 1 MiB
    if (bucket_cap_bytes > 0) {
      cap = first_cap = bucket_cap_bytes;
    }
    c10d::verify_params_across_processes(group->group, params, std::nullopt);  // DP:1064
    std::vector<at::Tensor> states;  // DP:1066 -> U:326 (a text classifier has no buffers)
    for (const auto &p : params) {
      states.push_back(p.detach());
    }
    c10d::broadcast_coalesced(group->group, states, 250 * mib, 0);
    std::vector<bool> sparse(params.size(), false);
    // DP:154, :1422: the first iteration's one bucket (sys.maxsize), rebuilt after it.
    auto assignment = c10d::compute_bucket_assignment_by_size(
        params, {static_cast<std::size_t>(INT64_MAX)}, sparse);
    auto buckets = std::get<0>(assignment);
    std::reverse(buckets.begin(), buckets.end());  // DP:1439
    auto ddp = std::make_unique<LstmTchDdp>();
    ddp->reducer = std::make_shared<c10d::Reducer>(  // DP:1437-1459
        params, buckets, group->group, sparse, cap,
        /*find_unused_parameters=*/false, /*gradient_as_bucket_view=*/false,
        std::unordered_map<std::size_t, std::string>{}, first_cap,
        /*skip_all_reduce_unused_params=*/false, /*use_python_reducer=*/false,
        /*bucket_bytes_cap_list=*/std::vector<int64_t>{}, /*batched_grad_copy=*/false);
    ddp->logger = std::make_shared<c10d::Logger>(ddp->reducer);  // DP:1461-1473
    ddp->reducer->set_logger(ddp->logger);
    ddp->logger->set_construction_data_and_log("TextClassifier", {}, -1, true, false, false);
    *out = ddp.release();
    return nullptr;
  } catch (const std::exception &e) {
    return error(e);
  }
}

extern "C" void lstm_tch_ddp_free(LstmTchDdp *ddp) { delete ddp; }

// DP's _pre_forward (DP:1744-1775), before every training forward: the bucket rebuild after
// the first iteration broadcasts rank 0's bucket order inside the Reducer.
extern "C" char *lstm_tch_ddp_before_forward(LstmTchDdp *ddp) {
  try {
    ddp->logger->set_runtime_stats_and_log();
    ddp->reducer->prepare_for_forward();
    ddp->reducer->rebuild_buckets();
    return nullptr;
  } catch (const std::exception &e) {
    return error(e);
  }
}

// DP's _post_forward (DP:1839), after every training forward: the next backward averages.
extern "C" char *lstm_tch_ddp_after_forward(LstmTchDdp *ddp) {
  try {
    ddp->reducer->prepare_for_backward({});
    return nullptr;
  } catch (const std::exception &e) {
    return error(e);
  }
}
