"""Predictors: next-symbol probabilities computed position by position, the same way for coder and decoder.

A predictor is fed the symbols of a batch of streams one position at a time (`start`, then `update`)
and answers with next-symbol probabilities for every stream; the range coder (`copystudy.compression.coding`)
asks it while encoding and while decoding, so the probabilities are bitwise equal by construction.

`LMPredictor` is such a predictor for a byte-level GPT-2 `CausalLM`: a float32 numpy re-run of its
forward pass with a key/value cache (one small step per byte instead of a full window, which is what
makes decoding affordable on a CPU), conditioning on the same windows as `CausalLM.probs` (length
`context`, stride `context // 2`), so its code lengths match `CausalLM.bits` to float32 precision. It
holds numpy arrays only (this module needs no torch), so it pickles cheaply to the coder's workers.
`TokenPredictor` does the same for any causal LM (a pretrained one with its tokenizer: streams are
token ids) through the model's own torch forward pass and key/value cache; `predictor_for` picks one.
"""

from __future__ import annotations

import numpy as np

from copystudy.compression.windows import window_start

UNIFORM = np.full(256, 1 / 256)


class TablePredictor:
    """Fixed probability tables, one [n_b, 256] array per stream (tests; any arbitrary tables)."""

    def __init__(self, tables: list[np.ndarray]):
        self.tables = [np.asarray(t, dtype=np.float64) for t in tables]
        self.t = 0

    def _row(self) -> np.ndarray:
        return np.stack([t[self.t] if self.t < len(t) else UNIFORM for t in self.tables])

    def start(self, batch_size: int) -> np.ndarray:
        if batch_size != len(self.tables):
            raise ValueError(f"TablePredictor holds {len(self.tables)} tables, asked for {batch_size}")
        self.t = 0
        return self._row()

    def update(self, symbols: np.ndarray) -> np.ndarray:
        self.t += 1
        return self._row()


def _normalize(x: np.ndarray, eps) -> np.ndarray:
    """Layer norm without its affine part (folded into the next matrix by LMPredictor)."""
    d = x - np.add.reduce(x, axis=-1, keepdims=True) * x.dtype.type(1 / x.shape[-1])
    var = np.add.reduce(d * d, axis=-1, keepdims=True) * x.dtype.type(1 / x.shape[-1])
    var += eps
    np.sqrt(var, out=var)
    d /= var
    return d


def _twice_gelu_new(x: np.ndarray) -> np.ndarray:
    """2 * gelu_new(x), in place (the 1/2 is folded into the next matrix)."""
    c = x.dtype.type(np.sqrt(2.0 / np.pi))  # in x's precision: a float64 constant would promote float32 x
    u = x * x
    u *= c * x.dtype.type(0.044715)
    u += c
    u *= x
    np.tanh(u, out=u)
    u += 1
    u *= x
    return u


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - np.maximum.reduce(logits, axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= np.add.reduce(z, axis=-1, keepdims=True)
    return z


class LMPredictor:
    """Next-byte probabilities of a CausalLM for a batch of streams, one byte at a time.

    Position t is predicted from the same window as `CausalLM.probs` uses: bytes [s, t) with
    s = 0 while t <= context, then windows of stride context // 2 (the cache is refilled when s moves).
    Byte 0 of every stream gets the uniform distribution (8 bits), as in `CausalLM.bits`.

    One step is about 60 numpy operations on small arrays, so it is made cheap by doing less: float32
    like the torch model (twice the speed of float64 on these matrices), every linear layer one 2-D
    product over the batch, the layer norms' scales and shifts, the attention scale and GELU's 1/2
    folded into the matrices that follow them (in float64, then rounded once). Encoder and decoder run
    the same operations on the same shapes, so their probabilities are still bitwise equal.
    """

    dtype = np.float32

    def __init__(self, lm):
        cfg = lm.model.config
        expected = {"scale_attn_weights": True,
                    "scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False}
        for key, value in expected.items():
            if getattr(cfg, key) != value:
                raise ValueError(f"LMPredictor supports GPT-2 with {key}={value!r}, got {getattr(cfg, key)!r}")
        if cfg.activation_function not in ("gelu_new", "gelu_pytorch_tanh"):  # one function, two kernels
            raise ValueError(f"LMPredictor supports GPT-2 with the tanh GELU, got {cfg.activation_function!r}")
        sd = {k: v.detach().double().cpu().numpy() for k, v in lm.model.state_dict().items()}
        self.context, self.stride = lm.context, lm.context // 2
        self.n_head, self.eps = cfg.n_head, self.dtype(cfg.layer_norm_epsilon)
        e = sd["transformer.wte.weight"].shape[1]

        def cast(x):
            return np.ascontiguousarray(x, dtype=self.dtype)

        def fold(ln, weight, bias):  # (normalize(x) * w + b) @ W + c == normalize(x) @ W' + c'
            return cast(sd[ln + ".weight"][:, None] * weight), cast(sd[ln + ".bias"] @ weight + bias)

        self.wte, self.wpe = cast(sd["transformer.wte.weight"]), cast(sd["transformer.wpe.weight"])
        head = sd.get("lm_head.weight", sd["transformer.wte.weight"]).T
        self.head, self.head_bias = fold("transformer.ln_f", head, 0.0)
        q_scale = np.ones(3 * e)
        q_scale[:e] = 1 / np.sqrt(e // self.n_head)  # the attention's 1/sqrt(head size), on the queries
        self.layers = []
        for i in range(cfg.n_layer):
            p = f"transformer.h.{i}."
            attn, attn_bias = fold(p + "ln_1", sd[p + "attn.c_attn.weight"] * q_scale,
                                   sd[p + "attn.c_attn.bias"] * q_scale)
            fc, fc_bias = fold(p + "ln_2", sd[p + "mlp.c_fc.weight"], sd[p + "mlp.c_fc.bias"])
            self.layers.append((attn, attn_bias, cast(sd[p + "attn.c_proj.weight"]), cast(sd[p + "attn.c_proj.bias"]),
                                fc, fc_bias, cast(sd[p + "mlp.c_proj.weight"] / 2), cast(sd[p + "mlp.c_proj.bias"])))

    def start(self, batch_size: int) -> np.ndarray:
        self.batch, self.history, self.window = batch_size, [], None
        return np.tile(UNIFORM, (batch_size, 1))

    def update(self, symbols: np.ndarray) -> np.ndarray:
        """Feed byte t-1 of every stream; return p(byte t | window) float64 [B, 256]."""
        self.history.append(np.asarray(symbols, dtype=np.int64).reshape(self.batch))
        t = len(self.history)
        s = window_start(t, self.context)
        if s != self.window:  # a new window: empty the cache and feed its bytes so far in one pass
            self.window, self.n = s, 0
            e, h = self.wte.shape[1], self.n_head
            self.keys = [np.zeros((self.batch, h, self.context, e // h), self.dtype) for _ in self.layers]
            self.values = [np.zeros((self.batch, h, self.context, e // h), self.dtype) for _ in self.layers]
            logits = self._forward(np.stack(self.history[s:t], axis=1))
        else:
            logits = self._forward(self.history[t - 1][:, None])
        return _softmax(logits).astype(np.float64)

    def _forward(self, tokens: np.ndarray) -> np.ndarray:
        """GPT-2 on tokens [B, L] at cache positions n..n+L-1; logits of the last position [B, 256]."""
        (B, L), n, H, last = tokens.shape, self.n, self.n_head, len(self.layers) - 1
        x = (self.wte[tokens] + self.wpe[n:n + L]).reshape(B * L, -1)  # [B*L, E]
        mask = np.triu(np.full((L, n + L), -np.inf, self.dtype), k=n + 1) if L > 1 else None
        for i, (layer, K, V) in enumerate(zip(self.layers, self.keys, self.values)):
            attn, attn_bias, proj, proj_bias, fc, fc_bias, fc_proj, fc_proj_bias = layer
            qkv = (_normalize(x, self.eps) @ attn + attn_bias).reshape(B, L, 3, H, -1)
            q, k, v = qkv.transpose(2, 0, 3, 1, 4)  # each [B, H, L, hd]
            K[:, :, n:n + L], V[:, :, n:n + L] = k, v
            scores = q @ K[:, :, :n + L].transpose(0, 1, 3, 2)  # [B, H, L, n+L]
            if mask is not None:
                scores += mask
            y = (_softmax(scores) @ V[:, :, :n + L]).transpose(0, 2, 1, 3).reshape(B * L, -1)
            x = x + y @ proj + proj_bias
            if i == last:  # the last layer's MLP is needed at the last position only
                x = x.reshape(B, L, -1)[:, -1]
            m = _twice_gelu_new(_normalize(x, self.eps) @ fc + fc_bias)
            x = x + m @ fc_proj + fc_proj_bias
        self.n += L
        return _normalize(x, self.eps) @ self.head + self.head_bias


class TokenPredictor:
    """Next-token probabilities of any CausalLM for a batch of token streams, through its torch forward
    pass with the model's own key/value cache; the same windows as `CausalLM.token_bits`.

    Encoder and decoder run the very same calls on the same shapes, so their probabilities are bitwise
    equal; token 0 of every stream gets the uniform distribution over the vocabulary.
    """

    def __init__(self, lm):
        self.model, self.context, self.device = lm.model, lm.context, lm.device
        self.vocab_size = lm.vocab_size

    def start(self, batch_size: int) -> np.ndarray:
        self.batch, self.history, self.window, self.past = batch_size, [], None, None
        return np.full((batch_size, self.vocab_size), 1 / self.vocab_size)

    def update(self, symbols: np.ndarray) -> np.ndarray:
        """Feed token t-1 of every stream; return p(token t | window) float64 [B, vocab]."""
        import torch

        self.history.append(torch.as_tensor(np.asarray(symbols, dtype=np.int64).reshape(self.batch)))
        t = len(self.history)
        s = window_start(t, self.context)
        with torch.no_grad():
            if s != self.window:  # a new window: its tokens so far in one pass, a fresh cache
                self.window = s
                out = self._forward(torch.stack(self.history[s:t], 1).to(self.device))
            else:
                out = self._forward(self.history[-1][:, None].to(self.device), past_key_values=self.past)
            self.past = out.past_key_values
            return torch.softmax(out.logits[:, -1].double(), dim=-1).cpu().numpy()

    def _forward(self, ids, **kwargs):
        """The model on ids with its cache, computing logits of the last position only where it can
        (a window of a 50K-token vocabulary would otherwise need [B, context, vocab] logits)."""
        try:
            return self.model(input_ids=ids, use_cache=True, logits_to_keep=1, **kwargs)
        except TypeError:  # a model class without logits_to_keep
            return self.model(input_ids=ids, use_cache=True, **kwargs)


def predictor_for(lm):
    """The predictor that codes with `lm`: the float64 numpy GPT-2 for byte-level GPT-2 models (fast on
    a CPU), else the model's own forward pass over its tokens."""
    if lm.byte_level:
        try:
            return LMPredictor(lm)
        except (ValueError, KeyError, AttributeError):  # a byte-level model that is not a plain GPT-2
            pass
    return TokenPredictor(lm)
