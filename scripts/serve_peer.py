"""The server a PyTorch user would write for an lstm-tch checkpoint: the peer of `lstm-tch serve`.

FastAPI on uvicorn (one worker, one process), PyTorch at `torch.set_num_threads(T)` and one
inter-op thread, the checkpoint rebuilt as scripts/text_reference.py rebuilds it (config.json,
model.safetensors, the vocabulary), and one forward pass per request, with no batching across
requests. The routes are the subset of `lstm-tch serve`'s that scripts/serve_bench.sh uses, with
the same bodies: `POST /predict {"inputs": "text" | ["t1", ...]}` → `[{"label", "score"}, ...]`
sorted by score (a list of those for a list), `GET /ready`, `GET /health`. The handler is a plain
`def`, as FastAPI's documentation advises for blocking work (it runs on the thread pool).
Access logs are off, as `lstm-tch serve` writes none.

    python scripts/serve_peer.py --checkpoint runs/sentiment --threads 1 --port 0
    # one text's forward pass timed in process (JSON), to compare with the server's latency:
    python scripts/serve_peer.py --checkpoint runs/sentiment --threads 1 --time-forward "not bad at all"

Needs scripts/requirements-serve.txt (fastapi, uvicorn) on top of scripts/requirements.txt.
Tokenizing: `lstm-tch`'s default `unicode` mode (UAX #29 words, each CJK ideograph or kana a
token, lower-cased) approximated with a regular expression: the same tokens on ordinary English
and Chinese text; UAX #29's rarer rules (`3.5` as one word, `_` inside words) differ. Truncation
(`--max-len`, `head`/`tail`/`head-tail`) as the checkpoint says.
"""

import argparse
import json
import re
import socket
import sys
import time
from pathlib import Path
from typing import List, Union

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import text_reference as tr  # noqa: E402

# CJK ideographs and kana (src/data/tokenizer/mod.rs, is_cjk): each one a token.
CJK = "\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f\U00030000-\U000323af" \
      "\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9d"
UNICODE_TOKEN = re.compile(rf"[{CJK}]|[^\W_{CJK}]+(?:['\u2019\u02bc][^\W_{CJK}]+)*|[^\s]")


class Classifier:
    """The checkpoint in eval mode, and text → ids as lstm-tch reads it."""

    def __init__(self, checkpoint):
        self.model, config = tr.load_checkpoint(checkpoint)
        self.labels = config["labels"]
        self.ids = {t: i for i, t in enumerate(config["vocab"])}
        tokenizer = config.get("tokenizer", {})
        self.mode, self.lowercase = tokenizer.get("mode", "v1-words"), tokenizer.get("lowercase", True)
        if self.mode not in ("unicode", "v1-words"):
            sys.exit(f"serve_peer: tokenizer mode {self.mode!r} is not implemented here (unicode only)")
        self.max_len, self.truncate = config["max_len"], config.get("truncate", "head")

    def encode(self, text):
        if self.mode == "v1-words":
            tokens = tr.tokenize(text, self.lowercase)
        else:
            tokens = [t.replace("\u2019", "'").replace("\u02bc", "'") for t in UNICODE_TOKEN.findall(text)]
            tokens = [t.lower() for t in tokens] if self.lowercase else tokens
        ids = [self.ids.get(t, 1) for t in tokens] or [1]
        n, m = len(ids), self.max_len
        if n <= m:
            return ids
        if self.truncate == "tail":
            return ids[n - m:]
        if self.truncate == "head-tail":
            head = m // 4
            return ids[:head] + ids[n - (m - head):]
        return ids[:m]

    def scores(self, texts, raw=False):
        """Per text, [(label, score)] sorted by score, highest first: one forward pass."""
        encoded = [self.encode(t) for t in texts]
        tokens, lengths, _ = tr.make_batch(encoded, [0] * len(encoded), list(range(len(encoded))))
        with torch.inference_mode():
            logits = self.model(tokens, lengths)
            values = logits if raw else torch.softmax(logits, dim=1)
        return [sorted(zip(self.labels, row), key=lambda p: -p[1]) for row in values.tolist()]


def make_app(classifier):
    from fastapi import FastAPI
    from pydantic import BaseModel

    class PredictRequest(BaseModel):
        inputs: Union[str, List[str]]
        raw_scores: bool = False

    app = FastAPI(title="lstm-tch peer (FastAPI + PyTorch)")

    @app.post("/predict")
    def predict(request: PredictRequest):
        texts = [request.inputs] if isinstance(request.inputs, str) else request.inputs
        answers = [[{"label": label, "score": score} for label, score in ranked]
                   for ranked in classifier.scores(texts, request.raw_scores)]
        return answers[0] if isinstance(request.inputs, str) else answers

    @app.get("/ready")
    @app.get("/health")
    def ready():
        return {"status": "ok"}

    return app


def time_forward(classifier, text, warmup, reps, pause_s):
    for _ in range(warmup):
        classifier.scores([text])
    times = []
    for _ in range(reps):
        if pause_s > 0:
            time.sleep(pause_s)  # untimed, as requests at a low rate come apart
        start = time.perf_counter()
        classifier.scores([text])
        times.append((time.perf_counter() - start) * 1e3)
    return times


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default="runs/sentiment")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (inter-op: 1)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8081, help="0: any free port (printed)")
    p.add_argument("--time-forward", metavar="TEXT", help="time one text's forward pass in process, print JSON")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--reps", type=int, default=200)
    p.add_argument("--pause-ms", type=float, default=0.0,
                   help="--time-forward: untimed sleep before each timed pass (100: ten a second)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    classifier = Classifier(args.checkpoint)
    if args.time_forward is not None:
        times = time_forward(classifier, args.time_forward, args.warmup, args.reps, args.pause_ms / 1e3)
        print(json.dumps({"workload": "predict", "threads": args.threads, "times_ms": times, "items": 1}))
        return
    classifier.scores(["warm up"])  # libtorch's first-call costs before the first request

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(2048)  # uvicorn's backlog: connections wait here until its loop accepts them
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(make_app(classifier), workers=1, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=30)
    server = uvicorn.Server(config)
    print(f"serve_peer: listening on http://{host}:{port} (checkpoint {args.checkpoint}, "
          f"torch {torch.__version__}, {args.threads} thread(s))", file=sys.stderr, flush=True)
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
