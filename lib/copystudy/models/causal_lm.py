"""Causal language models for the text experiments: a byte-level GPT-2 built from a config, or any
pretrained `AutoModelForCausalLM` with its tokenizer (GPT-2, Pythia, ...) from a folder or hub id.

Byte-level models (vocabulary 256) need no tokenizer and their code lengths are bits per byte. With a
tokenizer, code lengths are summed over tokens and divided by the bytes of the original text
(`bits_per_byte`), so rates stay comparable with gzip.
Probabilities of long inputs come from fixed-shape windows, so that `next_probs` (one byte at a
time, as an arithmetic decoder needs) is bitwise equal to `probs` (all bytes at once, as the encoder
computes them): the same tensor shapes give the same floating-point results.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel
from transformers.utils import logging as hf_logging

from copystudy.models import loading
from copystudy.models.training import set_seed, train
from copystudy.compression.windows import window_spans, window_start

WRAPPER_FILE = "copystudy.json"


def as_bytes(data: bytes | list[bytes] | dict) -> bytes:
    """Bytes from bytes, a list of documents, or a dict of documents (joined in key order)."""
    if isinstance(data, dict):
        return b"".join(data[k] for k in sorted(data))
    if isinstance(data, (list, tuple)):
        return b"".join(data)
    return bytes(data)


class CausalLM:
    """A causal LM over bytes or tokens: train it, ask it for code lengths, generate from it, save it.

    Implements `copystudy.models.base.TextModel`; `byte_level` and `pretrained` are its capability flags."""

    modality = "text"

    def __init__(self, model, tokenizer=None, context: int | None = None, name_or_path: str | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name_or_path = name_or_path
        limit = getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings", None)
        self.context = int(min(context or limit or 1024, limit or 10**9))
        self.context -= self.context % 2
        self.device = next(model.parameters()).device

    @classmethod
    def from_pretrained(cls, name_or_path: str, dtype: str = "float32", device: str = "auto",
                        trust_remote_code: bool = False, context: int | None = None) -> "CausalLM":
        """Any causal LM with its tokenizer, from a local folder or a hub id (offline: from the cache)."""
        where = loading.resolve(name_or_path)
        dev = loading.pick_device(device)
        loading.check_fits(loading.weight_bytes(where), dev, 1.2, f"model {name_or_path}")
        hf_logging.disable_progress_bar()
        local = os.path.isdir(where)
        try:
            tokenizer = AutoTokenizer.from_pretrained(where, trust_remote_code=trust_remote_code,
                                                      local_files_only=local)
            model = AutoModelForCausalLM.from_pretrained(where, dtype=loading.torch_dtype(dtype),
                                                         trust_remote_code=trust_remote_code, local_files_only=local)
        except (OSError, ValueError) as exc:
            raise ValueError(f"model.name_or_path {name_or_path!r}: could not load a causal LM with its "
                             f"tokenizer ({exc})") from exc
        return cls(model.to(dev), tokenizer, context, name_or_path)

    @property
    def byte_level(self) -> bool:
        """Bytes are its tokens (vocabulary 256, no tokenizer): code lengths are bits per byte."""
        return self.tokenizer is None

    @property
    def pretrained(self) -> bool:
        """Its weights came from name_or_path (with its tokenizer), not from a config."""
        return self.name_or_path is not None

    def clone(self) -> "CausalLM":
        """An independent copy (to train without touching this one); the tokenizer is shared."""
        import copy

        return CausalLM(copy.deepcopy(self.model), self.tokenizer, self.context, self.name_or_path)

    @property
    def name(self) -> str:
        """A short label: "byte LM", or the pretrained model's name."""
        if self.name_or_path is None:
            return "byte LM" if self.tokenizer is None else "LM"
        return Path(str(self.name_or_path).rstrip("/")).name

    @property
    def vocab_size(self) -> int:
        return int(self.model.get_output_embeddings().weight.shape[0])

    def tokens(self, data: bytes) -> np.ndarray:
        """Token ids of `data`: its bytes for a byte-level model, else the tokenizer's ids of the UTF-8 text."""
        data = as_bytes(data)
        if self.tokenizer is None:
            return np.frombuffer(data, dtype=np.uint8).astype(np.int64)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError("a model with a tokenizer codes UTF-8 text; this input is not valid UTF-8") from exc
        return np.asarray(self.tokenizer(text, add_special_tokens=False)["input_ids"], dtype=np.int64)

    def detokenize(self, ids) -> bytes:
        ids = [int(i) for i in ids]
        if self.tokenizer is None:
            return bytes(ids)
        return self.tokenizer.decode(ids, clean_up_tokenization_spaces=False).encode("utf-8")

    @classmethod
    def from_config(cls, n_layer: int = 2, n_head: int = 2, n_embd: int = 64, context: int = 256,
                    dropout: float = 0.0, seed: int = 0, device: str = "cpu", vocab_size: int = 256) -> "CausalLM":
        """A fresh byte-level GPT-2 with the given shape, initialised from `seed` (on the CPU unless
        `device` says otherwise: "auto" takes a GPU when there is one). A vocab_size below 256 makes a
        model of symbols 0..vocab_size-1 (the capacity study's random tokens)."""
        if not 2 <= vocab_size <= 256:
            raise ValueError(f"vocab_size must be in [2, 256], got {vocab_size}")
        if n_embd % n_head:
            raise ValueError(f"n_embd ({n_embd}) must be divisible by n_head ({n_head})")
        if context < 2 or context % 2:
            raise ValueError(f"context must be an even number >= 2, got {context}")
        set_seed(seed)
        config = GPT2Config(vocab_size=vocab_size, n_positions=context, n_embd=n_embd, n_layer=n_layer,
                            activation_function="gelu_pytorch_tanh",  # gelu_new as one fused kernel: a step 66 -> 56 ms
                            n_head=n_head, resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout,
                            bos_token_id=None, eos_token_id=None, pad_token_id=None)
        return cls(GPT2LMHeadModel(config).to(loading.pick_device(device)))

    @property
    def n_params(self) -> int:
        """Number of parameters (tied embeddings counted once)."""
        return sum(p.numel() for p in self.model.parameters())

    # ---- training -------------------------------------------------------------------------------
    def fit(self, data, steps: int, batch_size: int = 32, lr: float = 1e-3, seed: int = 0,
            progress_bar: bool = True, desc: str = "train LM", stop=None, schedule="cosine") -> list[float]:
        """Train on random windows of context+1 bytes of `data`; returns the loss per step (nats/byte).

        stop(step) -> bool, when given, may end training early; schedule: the learning-rate schedule
        (see training.train)."""
        tokens = torch.from_numpy(self.tokens(data))
        span = min(self.context, len(tokens) - 1)
        if span < 1:
            raise ValueError("fit needs at least two tokens of data")
        n_bytes = sum(p.numel() * p.element_size() for p in self.model.parameters())
        loading.check_fits(n_bytes, self.device, 4.0, "training (weights, gradients, AdamW state)")
        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)

        def batch_loss(step: int) -> torch.Tensor:
            starts = torch.randint(0, len(tokens) - span, (batch_size,), generator=gen)
            batch = torch.stack([tokens[s:s + span + 1] for s in starts.tolist()]).to(self.device)
            logits = self.model(input_ids=batch[:, :-1]).logits.float()
            return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))

        return train(self.model, batch_loss, steps, lr, desc=desc, progress_bar=progress_bar, stop=stop,
                     schedule=schedule)

    # ---- probabilities --------------------------------------------------------------------------
    @torch.no_grad()
    def window_probs(self, windows: np.ndarray) -> np.ndarray:
        """Next-byte probabilities (float64 [B, context, 256]) for byte windows [B, context]."""
        ids = torch.from_numpy(np.asarray(windows, dtype=np.int64)).to(self.device)
        logits = self.model(input_ids=ids).logits
        return torch.softmax(logits.double(), dim=-1).cpu().numpy()

    def _window(self, data: np.ndarray, start: int) -> np.ndarray:
        """The `context` symbols of data from `start`, zero-padded at the end (a fixed shape)."""
        window = np.zeros(self.context, dtype=data.dtype)
        piece = data[start:start + self.context]
        window[:len(piece)] = piece
        return window

    def _byte_level(self, what: str) -> None:
        if self.tokenizer is not None:
            raise ValueError(f"{what} gives per-byte tables of a byte-level model; this model has a tokenizer "
                             "(use bits / total_bits / bits_per_byte)")

    def probs(self, data: bytes) -> np.ndarray:
        """p(b_i | b_<i) for every byte, float64 [len(data), 256]; row 0 is uniform (no context)."""
        self._byte_level("probs")
        arr = np.frombuffer(bytes(data), dtype=np.uint8)
        out = np.full((len(arr), 256), 1 / 256)
        if len(arr) < 2:
            return out
        for start, first, last in window_spans(len(arr), self.context):
            p = self.window_probs(self._window(arr, start)[None])[0]
            out[first:last + 1] = p[first - start - 1:last - start]
        return out

    def next_probs(self, prefix: bytes) -> np.ndarray:
        """p(next byte | prefix), float64 [256]; bitwise equal to probs(prefix + x)[len(prefix)]."""
        self._byte_level("next_probs")
        position = len(prefix)
        if position == 0:
            return np.full(256, 1 / 256)
        start = window_start(position, self.context)
        arr = np.frombuffer(bytes(prefix), dtype=np.uint8)
        return self.window_probs(self._window(arr, start)[None])[0, position - start - 1]

    @torch.no_grad()
    def token_bits(self, ids: np.ndarray) -> np.ndarray:
        """-log2 p(t_i | t_<i) for token ids, with the windows of `probs`; the first costs log2(vocab)."""
        ids = np.asarray(ids, dtype=np.int64)
        out = np.full(len(ids), np.log2(self.vocab_size))
        for start, first, last in window_spans(len(ids), self.context):
            window = torch.from_numpy(self._window(ids, start)[None]).to(self.device)
            logits = self.model(input_ids=window).logits[0].double()
            logp = torch.log_softmax(logits, dim=-1).cpu().numpy()
            rows = np.arange(first - start - 1, last - start)
            out[first:last + 1] = -logp[rows, ids[first:last + 1]] / np.log(2)
        return out

    def batched_bits(self, data: bytes, batch_size: int = 32) -> np.ndarray:
        """-log2 p(b_i | b_<i) per byte with the windows of `probs`, `batch_size` windows per forward pass.

        Faster than `bits` where only code lengths are needed (no coding); the floats may differ from
        it in the last digits, because the batch changes the tensor shapes.
        """
        self._byte_level("batched_bits")
        arr = np.frombuffer(bytes(data), dtype=np.uint8)
        out = np.full(len(arr), 8.0)
        spans = window_spans(len(arr), self.context)
        for i in range(0, len(spans), batch_size):
            group = spans[i:i + batch_size]
            probs = self.window_probs(np.stack([self._window(arr, start) for start, _, _ in group]))
            for j, (start, first, last) in enumerate(group):
                pos = np.arange(first, last + 1)
                out[pos] = -np.log2(probs[j, pos - start - 1, arr[pos]])
        return out

    def bits(self, data: bytes) -> np.ndarray:
        """Code length of each byte, -log2 p(b_i | b_<i) (the first byte costs 8 bits).

        With a tokenizer: the code length of each token of the text (see bits_per_byte).
        """
        if self.tokenizer is not None:
            return self.token_bits(self.tokens(data))
        arr = np.frombuffer(bytes(data), dtype=np.uint8)
        if len(arr) == 0:
            return np.zeros(0)
        p = self.probs(data)[np.arange(len(arr)), arr]
        return -np.log2(p)

    def total_bits(self, data: bytes) -> float:
        """Ideal code length of `data` in bits."""
        return float(self.bits(data).sum())

    def bits_per_byte(self, data: bytes) -> float:
        """Code length per byte of the original text, comparable across tokenizers and with gzip."""
        data = as_bytes(data)
        return self.total_bits(data) / max(1, len(data))

    # ---- generation -----------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, prefix: bytes | list[bytes], n: int) -> bytes | list[bytes]:
        """Greedy continuation of n bytes; a list of equal-length prefixes is decoded as one batch.

        With a tokenizer: n tokens are generated and their text is cut to n bytes.
        """
        single = isinstance(prefix, (bytes, bytearray))
        prefixes = [bytes(prefix)] if single else [bytes(p) for p in prefix]
        if self.tokenizer is not None:
            out = [self._generate_tokens(p, n) for p in prefixes]
            return out[0] if single else out
        if len({len(p) for p in prefixes}) != 1 or len(prefixes[0]) == 0:
            raise ValueError("generate needs non-empty prefixes of equal length")
        ids = torch.tensor([list(p) for p in prefixes], dtype=torch.int64, device=self.device)
        for _ in range(n):
            logits = self.model(input_ids=ids[:, -self.context:]).logits[:, -1]
            ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], dim=1)
        out = [bytes(row[-n:].tolist()) if n else b"" for row in ids.cpu()]
        return out[0] if single else out

    def _generate_tokens(self, prefix: bytes, n: int) -> bytes:
        ids = torch.from_numpy(self.tokens(prefix))[None].to(self.device)
        start = ids.shape[1]
        for _ in range(n):
            logits = self.model(input_ids=ids[:, -self.context:]).logits[:, -1]
            ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], dim=1)
        return self.detokenize(ids[0, start:].tolist())[:n]

    # ---- persistence ----------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Weights as safetensors plus the GPT-2 config, loadable with CausalLM.load."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        hf_logging.disable_progress_bar()
        self.model.save_pretrained(directory, safe_serialization=True)
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(directory)
        wrapper = {"family": "causal_lm", "tokenizer": "bytes" if self.tokenizer is None else "pretrained",
                   "context": self.context, "name_or_path": self.name_or_path}
        (directory / WRAPPER_FILE).write_text(json.dumps(wrapper))
        return directory

    def save_reference(self, directory: str | Path) -> Path:
        """For a pretrained model used as it is: only where it comes from (no copy of its weights);
        `load` loads it again from there."""
        if self.name_or_path is None:
            raise ValueError("save_reference is for pretrained models; use save")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        wrapper = {"family": "causal_lm", "tokenizer": "pretrained", "context": self.context,
                   "name_or_path": str(self.name_or_path), "reference_only": True}
        (directory / WRAPPER_FILE).write_text(json.dumps(wrapper))
        return directory

    @classmethod
    def load(cls, directory: str | Path, device: str = "cpu") -> "CausalLM":
        """A model saved by `save` (a local folder; byte-level or with its tokenizer) or `save_reference`."""
        directory = Path(directory)
        wrapper_file = directory / WRAPPER_FILE
        wrapper = json.loads(wrapper_file.read_text()) if wrapper_file.exists() else {"tokenizer": "bytes"}
        if wrapper.get("reference_only"):
            return cls.from_pretrained(wrapper["name_or_path"], device=device, context=wrapper.get("context"))
        if not (directory / "config.json").exists():
            raise FileNotFoundError(f"{directory} holds no saved model (config.json missing)")
        if wrapper.get("tokenizer") == "pretrained":
            lm = cls.from_pretrained(str(directory), device=device, context=wrapper.get("context"))
            lm.name_or_path = wrapper.get("name_or_path") or str(directory)
            return lm
        hf_logging.disable_progress_bar()
        model = GPT2LMHeadModel.from_pretrained(directory, local_files_only=True)
        return cls(model.to(loading.pick_device(device)))
