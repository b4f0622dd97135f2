"""Time of one Gloo all-reduce of a float32 buffer, the size of a model's gradient, as DDP runs it.

Run under torchrun: every rank all-reduces (SUM) buffers of the given sizes, a few warm-up rounds
then `--repeat` timed ones, and rank 0 prints the median per size. The engine is the one
`lstm-tch train` drives (c10d's ProcessGroupGloo in the same libtorch), so the times carry over.

    OMP_NUM_THREADS=1 torchrun --standalone --nproc-per-node 2 scripts/allreduce_bench.py --floats 600834,2022914
"""

import argparse
import statistics
import time

import torch
import torch.distributed as dist


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--floats", default="600834,2022914", help="comma-separated buffer sizes, in float32s")
    p.add_argument("--repeat", type=int, default=50)
    args = p.parse_args()
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    for n in [int(x) for x in args.floats.split(",")]:
        buffer = torch.ones(n)
        times = []
        for i in range(args.repeat + 5):
            dist.barrier()
            start = time.perf_counter()
            dist.all_reduce(buffer)
            if i >= 5:
                times.append(time.perf_counter() - start)
        if dist.get_rank() == 0:
            print(f"{n} floats ({4 * n / 1e6:.1f} MB) on {dist.get_world_size()} ranks: "
                  f"median {1000 * statistics.median(times):.2f} ms, min {1000 * min(times):.2f} ms", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
