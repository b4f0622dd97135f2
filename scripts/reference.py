"""The article's PyTorch script, as published, made runnable side by side with the Rust port.

The model and training code are the article's (../shared/docs/article.md). Added only: argparse
for the same flags as `examples/article.rs` (but `--adam`: this *is* torch.optim.Adam),
`torch.manual_seed`, `torch.set_num_threads`, the device, Adam's `foreach` (`--foreach auto` is
PyTorch's default, `foreach=None`), and the same JSON report. One line of the model changed: h0/c0 are created on the input's device (the article's CPU-only zeros
fail on a GPU); on the CPU the numbers are the same.

    python scripts/reference.py [--seed 0] [--report run.json]     # prints tensor([0, 1])
"""

import argparse
import json
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim


class LSTMModel(nn.Module):
    def __init__(self, input_size, hidden_size, num_layers, output_size):
        super(LSTMModel, self).__init__()
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True)
        self.fc = nn.Linear(hidden_size, output_size)

    def forward(self, x):
        # The one change: `device=x.device` (the article creates these on the CPU).
        h0 = torch.zeros(self.num_layers, x.size(0), self.hidden_size, device=x.device)
        c0 = torch.zeros(self.num_layers, x.size(0), self.hidden_size, device=x.device)
        out, (_, _) = self.lstm(x, (h0, c0))
        out = self.fc(out[:, -1, :])
        return out


# torch.optim.Adam's `foreach` argument: None (the default) is multi-tensor on CUDA only.
FOREACH = {"auto": None, "on": True, "off": False}


def parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--seq-len", type=int, default=5)
    p.add_argument("--input-size", type=int, default=1)
    p.add_argument("--hidden-size", type=int, default=64)
    p.add_argument("--num-layers", type=int, default=1)
    p.add_argument("--output-size", type=int, default=2)
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--device", default="cpu")
    p.add_argument("--foreach", choices=list(FOREACH), default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--report", default=None)
    return p


def f32_list(t):
    """Flattened float32 values, each as the shortest decimal that parses back to it."""
    return [float(str(v)) for v in t.detach().cpu().float().flatten().numpy()]


def state_dict(model):
    return {name: f32_list(t) for name, t in model.state_dict().items()}


def run(args, out=sys.stdout):
    """The article's script with `args`' values; returns the report (a dict)."""
    torch.manual_seed(args.seed)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    # prepare data
    inputs = new_inputs = torch.randn(args.batch_size, args.seq_len, args.input_size, dtype=torch.float)
    labels = torch.tensor([i % args.output_size for i in range(args.batch_size)])
    inputs, labels = inputs.to(device), labels.to(device)
    new_inputs = inputs

    # hyperparameters
    input_size = args.input_size
    hidden_size = args.hidden_size
    num_layers = args.num_layers
    output_size = args.output_size
    num_epochs = args.epochs

    model = LSTMModel(input_size, hidden_size, num_layers, output_size)
    initial_parameters = state_dict(model)
    model.to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.Adam(model.parameters(), lr=args.lr, foreach=FOREACH[args.foreach])

    # train
    losses = []
    for epoch in range(num_epochs):
        outputs = model(inputs)
        loss = criterion(outputs, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())

    # predict with the trained model
    outputs = model(new_inputs)
    predicted = torch.argmax(outputs, dim=1)
    print(predicted, file=out)

    return {
        "config": vars(args),
        "inputs": f32_list(inputs),
        "labels": labels.tolist(),
        "initial_parameters": initial_parameters,
        "final_parameters": state_dict(model),
        "losses": [float(str(np.float32(v))) for v in losses],
        "logits": f32_list(outputs),
        "predictions": predicted.tolist(),
    }


def main():
    args = parser().parse_args()
    report = run(args)
    if args.report:
        with open(args.report, "w") as f:
            json.dump(report, f)
            f.write("\n")


if __name__ == "__main__":
    main()
