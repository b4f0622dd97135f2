"""examples/ddp.rs in PyTorch: a few steps of DistributedDataParallel on the text classifier.

Every rank of a torchrun job builds `TextRNN` (scripts/text_reference.py's model, which the Rust
`TextClassifier` matches bit for bit) from its own seed, wraps it in DDP (rank 0's values
everywhere, gradients averaged across the ranks) and takes three SGD steps on its own batches;
it prints its loss per step as float32 bits, writes those lines to OUT_DIR/rank{R}.txt and its
final parameters, concatenated in module order, to OUT_DIR/rank{R}.bin. tests/suite/dist.rs compares this with the Rust example,
and runs one rank of each in one job.

    torchrun --standalone --nproc-per-node 2 scripts/ddp_steps.py OUT_DIR
"""

import struct
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from text_reference import TextRNN  # noqa: E402


def batch(rank, step):
    """Rank `rank`'s batch for `step`: 4 texts of 6 tokens (the last ones shorter), labels."""
    torch.manual_seed(1000 + 17 * step + rank)
    tokens = torch.randint(2, 50, (4, 6))
    labels = torch.randint(3, (4,))
    return tokens, torch.tensor([6, 5, 4, 6]), labels


def main():
    out = Path(sys.argv[1])
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(rank)  # other initial values per rank: DDP replaces them with rank 0's
    model = TextRNN(50, 8, 16, 1, 3, bidirectional=True, pooling="max")
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    params = list(model.parameters())
    losses = ""
    for step in range(3):
        tokens, lengths, labels = batch(rank, step)
        loss = F.cross_entropy(ddp(tokens, lengths), labels)
        loss.backward()
        bits = struct.unpack("<I", struct.pack("<f", loss.item()))[0]
        line = f"rank {rank} step {step} loss {bits:#010x}\n"
        print(line, end="", flush=True)
        losses += line
        with torch.no_grad():
            for p in params:
                p.sub_(p.grad * 0.1)
                p.grad.zero_()
    (out / f"rank{rank}.txt").write_text(losses)
    (out / f"rank{rank}.bin").write_bytes(b"".join(p.detach().contiguous().numpy().tobytes() for p in params))
    dist.barrier()  # every rank done before any leaves: none closes its connections mid-teardown
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
