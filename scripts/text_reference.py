"""The lstm-tch sentiment classifier written as a PyTorch user would, to cross-check the Rust side.

nn.Embedding → nn.LSTM (or nn.GRU, or nn.RNN with tanh: `train --cell`) over
pack_padded_sequence → nn.Linear on the final hidden state (or the max or mean of the outputs),
trained with optim.Adam and nn.CrossEntropyLoss. It reads the vocabulary-encoded data that
`lstm-tch train --export-encoded FILE` writes (token ids and class indices per split, plus the
hyperparameters), so tokenization is not part of what is compared.

    # per-batch training losses, from the same seed (compare with the Rust --report):
    python scripts/text_reference.py train --encoded enc.json --threads 1 --report py.json
    # logits of a Rust checkpoint (model.safetensors + config.json) on one split:
    python scripts/text_reference.py logits --checkpoint runs/sentiment --encoded enc.json --split test

`--device cuda` runs either on the GPU (`model.to(device)`, PyTorch's defaults there). When the
export says `"bucket": true` (`train --bucket`), batches are length-bucketed as lstm-tch draws
them (`epoch_batches`). A model with `forget_bias` (`train --forget-bias B`) sets the LSTM's
forget-gate bias by hand after PyTorch's initialisation (`set_forget_bias`), drawing nothing.

`train --ddp`, under torchrun, trains as one rank of a DistributedDataParallel job, as
`lstm-tch train` does under torchrun: each epoch a DistributedSampler's shard (with `--bucket`,
bucketed as `rank_batches` says), the dev accuracy after each epoch, the best epoch's weights
kept. Every rank writes its losses; rank 0 writes every rank's and the best weights:

    torchrun --standalone --nproc-per-node 2 scripts/text_reference.py train --ddp \
        --encoded enc.json --threads 1 --report py.json --weights py.safetensors

An export with `"adam": "libtorch"` (`train --adam libtorch`) steps with `LibtorchAdam`, the
update of libtorch's C++ `torch::optim::Adam` in the same ATen calls.
"""

import argparse
import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.distributed as dist
import torch.optim as optim
from safetensors.torch import load_file, save_file
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


# The recurrent cells, by the name lstm-tch's --cell and checkpoints use. The module's attribute
# is that name too (self.lstm, self.gru, self.rnn), so its state_dict keys are lstm.weight_ih_l0,
# gru.weight_ih_l0, ... as in the Rust checkpoints; an LSTM keeps the keys it always had.
CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}  # nn.RNN's default nonlinearity: tanh


def set_forget_bias(lstm, value):
    """The forget gate's bias of every layer and direction of `lstm` set to `value`: PyTorch
    stacks the gates (input, forget, cell, output) in each bias, so rows h:2h of bias_ih become
    `value` and of bias_hh 0 (their sum is the gate's bias, as Keras's one bias with
    unit_forget_bias=True). Under no_grad, after the draws: nothing is drawn."""
    h = lstm.hidden_size
    with torch.no_grad():
        for name, p in lstm.named_parameters():
            if name.startswith("bias_ih"):
                p[h : 2 * h].fill_(value)
            elif name.startswith("bias_hh"):
                p[h : 2 * h].zero_()


class TextRNN(nn.Module):
    def __init__(self, vocab_size, embedding_dim, hidden_size, num_layers, num_classes, bidirectional=False,
                 dropout=0.0, embedding_dropout=0.0, pooling="last", output_dropout=0.0, cell="lstm",
                 forget_bias=None):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        self.embedding_dropout = nn.Dropout(embedding_dropout)
        self.cell = cell
        setattr(self, cell, CELLS[cell](embedding_dim, hidden_size, num_layers, batch_first=True,
                                        bidirectional=bidirectional, dropout=dropout))
        if forget_bias is not None:
            assert cell == "lstm", "only the LSTM has a forget gate"
            set_forget_bias(self.lstm, forget_bias)
        self.output_dropout = nn.Dropout(output_dropout)
        self.fc = nn.Linear(hidden_size * (2 if bidirectional else 1), num_classes)
        self.bidirectional = bidirectional
        self.pooling = pooling

    def forward(self, tokens, lengths):
        x = self.embedding_dropout(self.embedding(tokens))
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, hidden = getattr(self, self.cell)(packed)
        h_n = hidden[0] if self.cell == "lstm" else hidden  # the LSTM's is (h_n, c_n)
        if self.pooling == "last":
            h = torch.cat([h_n[-2], h_n[-1]], dim=1) if self.bidirectional else h_n[-1]
        elif self.pooling == "max":
            h = pad_packed_sequence(out, batch_first=True, padding_value=float("-inf"))[0].max(1).values
        else:
            padded = pad_packed_sequence(out, batch_first=True)[0]
            h = padded.sum(1) / lengths.to(padded.dtype).to(padded.device).unsqueeze(1)
        return self.fc(self.output_dropout(h))


# The Rust tokenizer (src/data/tokenizer.rs) in a regular expression: alphanumeric words with
# inner apostrophes, or any other single non-space character.
TOKEN = re.compile(r"[^\W_]+(?:['\u2019\u02bc][^\W_]+)*|[^\s]")


def tokenize(text, lowercase=True):
    tokens = [t.replace("\u2019", "'").replace("\u02bc", "'") for t in TOKEN.findall(text)]
    return [t.lower() for t in tokens] if lowercase else tokens


def encode(tokens, ids, max_len):
    """Token ids (unknown: 1), at most max_len of them; an empty text is [<unk>]."""
    return [ids.get(t, 1) for t in tokens][:max_len] or [1]


def load_checkpoint(directory):
    """(model in eval mode, config) from a Rust checkpoint directory."""
    config = json.loads((Path(directory) / "config.json").read_text())
    model = TextRNN(**config["model"])
    model.load_state_dict(load_file(str(Path(directory) / "model.safetensors")), strict=True)
    return model.eval(), config


def make_batch(ids, labels, indices):
    """Token ids padded with 0 to the longest, lengths, labels."""
    longest = max(len(ids[i]) for i in indices)
    tokens = torch.zeros(len(indices), longest, dtype=torch.long)
    for row, i in enumerate(indices):
        tokens[row, : len(ids[i])] = torch.tensor(ids[i])
    lengths = torch.tensor([len(ids[i]) for i in indices])
    return tokens, lengths, torch.tensor([labels[i] for i in indices])


# `train --bucket`: batches per pool sorted by length (src/data/batcher.rs, BUCKET_POOL_BATCHES).
BUCKET_POOL_BATCHES = 100


def epoch_batches(ids, batch_size, bucket):
    """One epoch's batches of text indices, drawn exactly as lstm-tch draws them.

    torch.randperm over the texts; without bucketing, cut into batches. With it: cut into pools
    of BUCKET_POOL_BATCHES batches, each pool sorted by length (stable: ties keep the shuffled
    order) and cut into batches, then the batches ordered by a second torch.randperm."""
    order = torch.randperm(len(ids)).tolist()
    if not bucket:
        return [order[start : start + batch_size] for start in range(0, len(ids), batch_size)]
    pool, batches = batch_size * BUCKET_POOL_BATCHES, []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: len(ids[i]))
        batches += [chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size)]
    return [batches[k] for k in torch.randperm(len(batches)).tolist()]


def rank_batches(ids, batch_size, bucket, world_size, rank, seed, epoch):
    """Rank `rank`'s batches in `epoch` (from 0), as lstm-tch draws them under torchrun
    (src/dist/sampler.rs): a DistributedSampler's shard (randperm from a generator seeded with
    seed + epoch, padded to a multiple of the world size, every world_size-th from `rank`), cut
    into batches; with `bucket`, the shard bucketed as `epoch_batches` buckets, the batches
    ordered by a randperm drawn next from the sampler's generator."""
    generator = torch.Generator()
    generator.manual_seed(seed + epoch)
    order = torch.randperm(len(ids), generator=generator).tolist()
    total = -(-len(ids) // world_size) * world_size
    mine = [order[i % len(ids)] for i in range(rank, total, world_size)]
    if not bucket:
        return [mine[start : start + batch_size] for start in range(0, len(mine), batch_size)]
    pool, batches = batch_size * BUCKET_POOL_BATCHES, []
    for start in range(0, len(mine), pool):
        chunk = sorted(mine[start : start + pool], key=lambda i: len(ids[i]))
        batches += [chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size)]
    return [batches[k] for k in torch.randperm(len(batches), generator=generator).tolist()]


class LibtorchAdam:
    """libtorch's C++ torch::optim::Adam (torch/csrc/api/src/optim/adam.cpp, no weight decay,
    no amsgrad), the update `lstm-tch train --adam libtorch` runs, in the same ATen calls; its
    zero_grad zeroes the gradients, as tch's does."""

    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-8):
        self.params, self.lr, self.betas, self.eps, self.state = list(params), lr, betas, eps, {}

    def zero_grad(self):
        for p in self.params:
            if p.grad is not None:
                p.grad.detach_()
                p.grad.zero_()

    @torch.no_grad()
    def step(self):
        beta1, beta2 = self.betas
        for p in self.params:
            if p.grad is None:
                continue
            state = self.state.setdefault(p, {"step": 0, "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                                               "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)})
            state["step"] += 1
            bias_correction1 = 1 - math.pow(beta1, state["step"])
            bias_correction2 = 1 - math.pow(beta2, state["step"])
            state["exp_avg"].mul_(beta1).add_(p.grad, alpha=1 - beta1)
            state["exp_avg_sq"].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
            denom = (state["exp_avg_sq"].sqrt() / math.sqrt(bias_correction2)).add_(self.eps)
            p.addcdiv_(state["exp_avg"], denom, value=-(self.lr / bias_correction1))


def dev_accuracy(model, data, device, batch_size):
    """Accuracy on the dev split, in order, in batches of `batch_size` (as lstm-tch evaluates)."""
    ids, labels = data["dev"]["ids"], data["dev"]["labels"]
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(ids), batch_size):
            indices = list(range(start, min(start + batch_size, len(ids))))
            tokens, lengths, targets = make_batch(ids, labels, indices)
            correct += int((model(tokens.to(device), lengths).argmax(1).cpu() == targets).sum())
    model.train()
    return correct / len(ids)


def f32_list(values):
    return [float(str(np.float32(v))) for v in values]


def train(args):
    """Trains on each --encoded in turn (with --ddp, in one process group: a job of several runs
    pays torch's import and the rendezvous once), writing each --report and --weights."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.ddp:
        dist.init_process_group("gloo")
    elif len(args.encoded) > 1:
        sys.exit("several --encoded need --ddp")
    reports, weights = args.report or [None] * len(args.encoded), args.weights or [None] * len(args.encoded)
    if len(reports) != len(args.encoded) or len(weights) != len(args.encoded):
        sys.exit("give as many --report (and --weights) as --encoded")
    for encoded, report, best_weights in zip(args.encoded, reports, weights):
        train_one(args, json.loads(Path(encoded).read_text()), report, best_weights)
    if args.ddp:
        dist.barrier()  # every rank done before any leaves: none closes its connections mid-teardown
        dist.destroy_process_group()


def train_one(args, data, report_path, weights_path):
    rank, world_size = (dist.get_rank(), dist.get_world_size()) if args.ddp else (0, 1)
    torch.manual_seed(data["seed"])
    device = torch.device(args.device)
    model = TextRNN(**data["model"]).to(device)
    net = torch.nn.parallel.DistributedDataParallel(model) if args.ddp else model
    weight = data.get("class_weights")
    criterion = nn.CrossEntropyLoss(weight=None if weight is None else torch.tensor(weight, dtype=torch.float32, device=device))
    if data.get("adam", "pytorch") == "libtorch":
        optimizer = LibtorchAdam(model.parameters(), lr=data["lr"])
    else:
        optimizer = optim.Adam(model.parameters(), lr=data["lr"])
    ids, labels, bs = data["train"]["ids"], data["train"]["labels"], data["batch_size"]
    bucket = data.get("bucket", False)

    epochs, rank_losses, accuracies, best, best_accuracy = [], [], [], None, None
    for epoch in range(data["epochs"]):
        model.train()
        losses = []
        if args.ddp:
            batches = rank_batches(ids, bs, bucket, world_size, rank, data["seed"], epoch)
        else:
            batches = epoch_batches(ids, bs, bucket)
        for indices in batches:
            tokens, lengths, targets = make_batch(ids, labels, indices)
            loss = criterion(net(tokens.to(device), lengths), targets.to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        epochs.append(f32_list(losses))
        if args.ddp:
            everyone = [None] * world_size
            dist.all_gather_object(everyone, f32_list(losses))
            rank_losses.append([list(batch) for batch in zip(*everyone)])
        if data.get("dev") and args.ddp:
            accuracy = dev_accuracy(model, data, device, max(bs, 256))
            accuracies.append(accuracy)
            if best_accuracy is None or accuracy > best_accuracy:
                best_accuracy = accuracy
                best = {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}
        print(f"rank {rank} epoch {epoch + 1}: mean loss {np.mean(losses):.4f}", file=sys.stderr)
    if args.ddp and best is None:
        best = {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}
    report = {"batch_losses": epochs}
    if args.ddp:
        report.update(rank_losses=rank_losses, dev_accuracy=accuracies)
    if rank == 0 and weights_path:
        save_file(best, weights_path)
    if report_path and rank == 0:
        Path(report_path).write_text(json.dumps(report) + "\n")
    elif rank == 0:
        print(json.dumps(report))


def logits(args):
    data = json.loads(Path(args.encoded).read_text())
    if args.threads:
        torch.set_num_threads(args.threads)
    model, _ = load_checkpoint(args.checkpoint)
    device = torch.device(args.device)
    model.to(device)
    ids = data[args.split]["ids"]
    out = []
    with torch.no_grad():
        for start in range(0, len(ids), args.batch_size):
            indices = list(range(start, min(start + args.batch_size, len(ids))))
            tokens, lengths, _ = make_batch(ids, [0] * len(ids), indices)
            out.append(model(tokens.to(device), lengths).cpu())
    print(json.dumps({"logits": f32_list(torch.cat(out).flatten().numpy())}))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train from the exported data; print per-batch losses")
    t.add_argument("--encoded", required=True, action="append", help="with --ddp, repeatable: runs in turn")
    t.add_argument("--threads", type=int)
    t.add_argument("--device", default="cpu")
    t.add_argument("--report", action="append")
    t.add_argument("--ddp", action="store_true", help="one rank of a DistributedDataParallel job (under torchrun)")
    t.add_argument("--weights", action="append", help="with --ddp: write the best epoch's weights (safetensors) here")
    t.set_defaults(run=train)
    g = sub.add_parser("logits", help="logits of a Rust checkpoint on one split")
    g.add_argument("--checkpoint", required=True)
    g.add_argument("--encoded", required=True)
    g.add_argument("--split", default="test", choices=["train", "dev", "test"])
    g.add_argument("--batch-size", type=int, default=256)
    g.add_argument("--threads", type=int)
    g.add_argument("--device", default="cpu")
    g.set_defaults(run=logits)
    args = p.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
