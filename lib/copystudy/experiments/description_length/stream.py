"""Notebook 02: the prequential code as a real compressed stream, and its decoder (which retrains every
block model from the bytes it has decoded)."""

from __future__ import annotations

from functools import partial

from copystudy.experiments.description_length.steps import CodeLengths


def start_prequential_stream(cl: CodeLengths, data: bytes, train, seed: int):
    """The prequential code as a real compressed stream, and its decoding, handed to the cluster as
    one task (it is sequential: block k's model needs blocks < k decoded); collect it with
    `finish_prequential_stream`. Without a cluster it runs there.

    Block 0 is range-coded with the uniform code; block k >= 1 was range-coded, in its prefix task, by
    the model trained on data[:b_k]. The decoder receives the words and the block lengths only: it
    decodes block 0, trains model 1 on it with the same recipe and seed, decodes block 1 with it,
    and so on, so it must reproduce every model bit for bit (one thread, as every task runs) to get
    the data back."""
    from copystudy.compression import coding, online_coding
    from copystudy.common import parallel

    b = cl.boundaries
    first = online_coding.encode_block(None, b"", data[:b[1]])[0]
    ideal = float(cl.runs[(cl.runs.seed == seed) & (cl.runs.train_bytes == b[-1])]["prequential_bits"].iloc[0])
    code = coding.Coded([first, *cl.stream], [y - x for x, y in zip(b, b[1:])], ideal)
    summary = {"prequential_stream_seed": int(seed), "prequential_coded_bits": int(code.coded_bits),
               "prequential_ideal_bits_stream_seed": ideal, "prequential_coded_overhead_pct": code.overhead_pct}
    done = cl.runs.loc[cl.runs.seed == seed].get("stream_roundtrip_exact")
    if done is not None and done.notna().all():  # a warm chain decoded its own stream in its task
        return {**summary, "prequential_roundtrip_exact": bool(done.all())}, None
    return summary, parallel.submit_tasks(partial(_decodes_exactly, code, train, bytes(data), cl.warm), [seed],
                                          desc="decode the prequential stream, retraining every block model")


def _decodes_exactly(code, train, data: bytes, warm: bool, seed: int) -> bool:
    """The decoder (a task): rebuild every block model from the decoded bytes; True if data comes back."""
    from copystudy.compression import online_coding
    from copystudy.models.training import progress

    try:
        decoded = online_coding.decode(code, online_coding.PrequentialLearner(train, seed, warm),
                                       progress=lambda items: progress(items, desc=f"prequential decoder, seed {seed}"))
    except online_coding.DecodeError:
        return False
    return decoded == data


def finish_prequential_stream(started) -> dict:
    """The coded stream's size beside the ideal prequential code length of the same seed, and whether
    the decoder gave the text back."""
    summary, pending = started
    return summary if pending is None else {**summary, "prequential_roundtrip_exact": bool(pending.result()[0])}
