"""The study's byte-level GPT-2 as an integer program (`fixed_point`), and the predictor that the file
compressor (`lmz`) codes with.

`IntegerGPT2.from_lm` derives the integer weights from a `CausalLM` with exactly specified steps only
(float32 -> float64, elementwise products, `math.fsum` for the folded biases, division, `rint`), so
every machine derives the same integers from the same weights. Two fingerprints name it:
`model_sha256` (the float weights and the config they came from: which model) and `program_sha256`
(the integers and the arithmetic's constants: what decoding computes).

`IntegerPredictor` feeds it one byte per stream at a time with a key/value cache, reading the same
windows as `CausalLM.probs` and `LMPredictor` (context, stride context // 2).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

import numpy as np

from copystudy.compression import fixed_point as fp
from copystudy.compression.windows import window_start

CONFIG_KEYS = ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head", "layer_norm_epsilon",
               "activation_function", "scale_attn_weights", "scale_attn_by_inverse_layer_idx",
               "reorder_and_upcast_attn", "tie_word_embeddings")


def model_sha256(lm) -> str:
    """SHA-256 of a byte-level model's weights (float32 bytes, by name) and the config that shapes its function."""
    cfg = lm.model.config
    h = hashlib.sha256(json.dumps({**{k: getattr(cfg, k, None) for k in CONFIG_KEYS}, "context": lm.context},
                                  sort_keys=True).encode())
    for name, tensor in sorted(lm.model.state_dict().items()):
        array = np.ascontiguousarray(tensor.detach().cpu().numpy().astype("<f4"))
        h.update(f"{name}:{array.shape}".encode())
        h.update(array.tobytes())
    return h.hexdigest()


def _fold(sd, ln: str, weight: np.ndarray, bias: np.ndarray):
    """(normalize(x) * g + b) @ W + c == normalize(x) @ (g[:, None] * W) + (b @ W + c); b @ W + c with
    math.fsum per column (exactly rounded, so no summation order can change it)."""
    g, b = sd[ln + ".weight"], sd[ln + ".bias"]
    folded_bias = np.array([math.fsum([*(b * weight[:, j]).tolist(), float(bias[j])]) for j in range(weight.shape[1])])
    return g[:, None] * weight, folded_bias


def _quantise(weight: np.ndarray, bias: np.ndarray) -> fp.Linear:
    """Integer weights of at most 15 bits per output column, the column's scale, the bias in units of 2**-FRAC."""
    peak = np.abs(weight).max(axis=0)
    scale = np.where(peak > 0, peak / fp.W_MAX, 1.0)
    w = np.clip(np.rint(weight / scale), -fp.W_MAX, fp.W_MAX)
    return fp.Linear(w, scale, _fixed(bias))


def _fixed(values: np.ndarray) -> np.ndarray:
    """Values as integers in units of 2**-FRAC, within the products' input bound."""
    return np.clip(np.rint(values * 2.0**fp.FRAC), -fp.ACT_LIMIT, fp.ACT_LIMIT)


@dataclass
class IntegerGPT2:
    """A byte-level GPT-2 in integers: embeddings (units 2**-FRAC), per layer the (attention, projection,
    MLP in, MLP out) products with the layer norms' affine parts, the attention scale folded in."""

    context: int
    n_head: int
    eps: int  # layer norm epsilon in units of 2**-2FRAC
    wte: object
    wpe: object
    layers: list
    head: fp.Linear
    model_sha256: str

    @classmethod
    def from_lm(cls, lm) -> "IntegerGPT2":
        """The integer program of a byte-level GPT-2 `CausalLM` (ValueError for any other model)."""
        cfg = lm.model.config
        if lm.tokenizer is not None or getattr(cfg, "model_type", None) != "gpt2":
            raise ValueError("the integer coder supports byte-level GPT-2 models (the study's CausalLM.from_config)")
        expected = {"scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
                    "reorder_and_upcast_attn": False}
        for key, value in expected.items():
            if getattr(cfg, key) != value:
                raise ValueError(f"the integer coder supports GPT-2 with {key}={value!r}, got {getattr(cfg, key)!r}")
        if cfg.activation_function not in ("gelu_new", "gelu_pytorch_tanh"):
            raise ValueError(f"the integer coder supports GPT-2 with the tanh GELU, got {cfg.activation_function!r}")
        e, h = cfg.n_embd, cfg.n_head
        if e > 2**12 or lm.context > 2**16:  # keeps every sum of every product below 2**53
            raise ValueError(f"the integer coder supports n_embd <= 4096 and context <= 65536, got {e}, {lm.context}")
        sd = {k: v.detach().cpu().numpy().astype(np.float64) for k, v in lm.model.state_dict().items()}
        q_scale = np.ones(3 * e)
        q_scale[:e] = 1.0 / math.sqrt(e // h)  # the attention's 1/sqrt(head size), on the queries
        layers = []
        for i in range(cfg.n_layer):
            p = f"transformer.h.{i}."
            attn = _fold(sd, p + "ln_1", sd[p + "attn.c_attn.weight"] * q_scale, sd[p + "attn.c_attn.bias"] * q_scale)
            fc = _fold(sd, p + "ln_2", sd[p + "mlp.c_fc.weight"], sd[p + "mlp.c_fc.bias"])
            layers.append((_quantise(*attn), _quantise(sd[p + "attn.c_proj.weight"], sd[p + "attn.c_proj.bias"]),
                           _quantise(*fc), _quantise(sd[p + "mlp.c_proj.weight"], sd[p + "mlp.c_proj.bias"])))
        head = sd.get("lm_head.weight", sd["transformer.wte.weight"]).T
        return cls(lm.context, h, max(1, round(cfg.layer_norm_epsilon * 2.0 ** (2 * fp.FRAC))),
                   _fixed(sd["transformer.wte.weight"]), _fixed(sd["transformer.wpe.weight"]), layers,
                   _quantise(*_fold(sd, "transformer.ln_f", head, np.zeros(head.shape[1]))), model_sha256(lm))

    def arrays(self) -> list:
        """Every array of the program, in a fixed order."""
        return [self.wte, self.wpe, *(a for layer in [*self.layers, (self.head,)] for lin in layer
                                      for a in (lin.w, lin.scale, lin.bias))]

    @property
    def program_sha256(self) -> str:
        """SHA-256 of what decoding computes: the arithmetic's version and constants, the shapes, the tables
        and every integer weight and scale."""
        constants = [fp.VERSION, fp.FRAC, fp.W_MAX, fp.ACT_LIMIT, fp.PMF_TOTAL, self.context, self.n_head, self.eps]
        h = hashlib.sha256(json.dumps(constants).encode())
        for a in [*self.arrays(), fp.exp_table(16), fp.exp_table(24), fp.gelu_table()]:
            a = np.asarray(a)
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(np.ascontiguousarray(a.astype(a.dtype.newbyteorder("<"))).tobytes())
        return h.hexdigest()

    def on(self, ops) -> "IntegerGPT2":
        """The same program with its arrays in ops's library (numpy or torch)."""
        def conv(lin):
            return fp.Linear(ops.array(lin.w), ops.array(lin.scale), ops.array(lin.bias))

        return IntegerGPT2(self.context, self.n_head, self.eps, ops.array(self.wte), ops.array(self.wpe),
                           [tuple(conv(lin) for lin in layer) for layer in self.layers], conv(self.head),
                           self.model_sha256)


class IntegerPredictor:
    """Next-byte frequencies of an IntegerGPT2 for a batch of streams, one byte at a time (the windows of
    `LMPredictor`; byte 0 of every stream is uniform). Rows are float64 arrays of integers summing to
    `fixed_point.PMF_TOTAL`: constriction codes byte b with probability exactly (f_b + 1) / 2**24.

    Every stream's rows depend on that stream alone, never on the batch it is coded in."""

    exact_pmf = True  # the rows are the coder's own integer frequencies

    def __init__(self, model: IntegerGPT2, ops=fp.NUMPY):
        self.model, self.ops = model.on(ops) if ops is not fp.NUMPY else model, ops
        self.exp16, self.exp24, self.gelu = (ops.array(fp.exp_table(16)), ops.array(fp.exp_table(24)),
                                             ops.array(fp.gelu_table()))
        self.resid = fp.resid_limit(model.wte.shape[1])

    def __getstate__(self):  # to a worker: the model and the library's name (the tables are rebuilt there)
        return {"model": self.model, "ops": self.ops.name}

    def __setstate__(self, state):
        ops = fp.NUMPY if state["ops"] == "numpy" else fp.TorchOps()
        self.__init__(state["model"], ops)

    def start(self, batch_size: int) -> np.ndarray:
        self.batch, self.history, self.window = batch_size, [], None
        return np.full((batch_size, 256), float(fp.PMF_TOTAL // 256))

    def update(self, symbols: np.ndarray) -> np.ndarray:
        """Feed byte t-1 of every stream; return the frequencies of byte t [B, 256]."""
        self.history.append(np.asarray(symbols, dtype=np.int64).reshape(self.batch))
        t = len(self.history)
        s = window_start(t, self.model.context)
        if s != self.window:  # a new window: empty the cache and feed its bytes so far in one pass
            self.window, self.n = s, 0
            e, h = self.model.wte.shape[1], self.model.n_head
            shape, shape_t = (self.batch, h, self.model.context, e // h), (self.batch, h, e // h, self.model.context)
            self.keys = [self.ops.zeros(shape_t) for _ in self.model.layers]  # transposed: q @ K is one product
            self.values = [self.ops.zeros(shape) for _ in self.model.layers]
            tokens = np.stack(self.history[s:t], axis=1)
        else:
            tokens = self.history[t - 1][:, None]
        if self.ops is not fp.NUMPY:
            tokens = self.ops.torch.as_tensor(tokens)
        return self.ops.to_numpy(self._forward(tokens))

    def _forward(self, tokens):
        """The program on tokens [B, L] at cache positions n..n+L-1; frequencies of the next byte [B, 256]."""
        ops, m = self.ops, self.model
        (B, L), n, H, last = tokens.shape, self.n, m.n_head, len(m.layers) - 1
        end, rows = n + L, L  # the cache is filled up to end; rows: the positions still computed
        x = (m.wte[tokens] + m.wpe[n:end]).reshape(B * L, -1)
        mask = ops.arange(end)[None, :] > (ops.arange(L) + n)[:, None] if L > 1 else None  # causal
        for i, (layer, K, V) in enumerate(zip(m.layers, self.keys, self.values)):
            attn, proj, fc, fc_proj = layer
            qkv = attn(ops, fp.layer_norm(ops, x, m.eps)).reshape(B, rows, 3, H, -1)
            q, k, v = ops.permute(qkv, 2, 0, 3, 1, 4)  # each [B, H, rows, hd]
            K[:, :, :, n:end], V[:, :, n:end] = ops.permute(k, 0, 1, 3, 2), v
            if i == last and rows > 1:  # past the last layer's keys and values, only the last position matters
                q, mask, x, rows = q[:, :, -1:], None, x.reshape(B, rows, -1)[:, -1], 1
            y = fp.attention(ops, q, K[:, :, :, :end], V[:, :, :end], mask, self.exp16)
            x = ops.clip_(x + proj(ops, ops.permute(y, 0, 2, 1, 3).reshape(B * rows, -1), None), -self.resid, self.resid)
            u = fp.gelu(ops, fc(ops, fp.layer_norm(ops, x, m.eps)), self.gelu)
            x = ops.clip_(x + fc_proj(ops, u, None), -self.resid, self.resid)
        self.n = end
        return fp.frequencies(ops, m.head(ops, fp.layer_norm(ops, x, m.eps)), self.exp24)
