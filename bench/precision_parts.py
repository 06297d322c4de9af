"""Which part's bf16 rounding changes the phones? Each run puts some parts of the fp32 model in bf16 (the
residual stream stays fp32) and counts the evaluation utterances whose phones stay identical to fp32.

    python bench/precision_parts.py cnn proj pos attn ffn attn+ffn proj+pos+attn+ffn cnn1-2 cnn3-6

Parts: cnn (whole feature encoder), cnn1-2 / cnn3-6 (some of its conv layers), proj (feature projection),
pos (positional conv), attn, ffn (all transformer layers). Model, data and --decoder as
bench/precision_agreement.py (by default its three draws of the demo model's held-out sentences).
"""

import argparse
from pathlib import Path

import torch
from precision_agreement import add_data_arguments, utterance_sets

from unispeech import GreedyDecoder, load_model
from unispeech.metrics import phone_error_rate


def cast_inputs(module, args):
    dtype = next(module.parameters()).dtype
    return tuple(a.to(dtype) if torch.is_tensor(a) and a.is_floating_point() else a for a in args)


def transcribe(model_dir: str, paths: list[Path], parts: list[str], greedy: bool) -> list[list[str]]:
    recognizer = load_model(model_dir, dtype="float32", decoder=GreedyDecoder() if greedy else None)
    m = recognizer.model.backbone
    conv = list(m.feature_extractor.conv_layers)
    groups = {
        "cnn": [m.feature_extractor],
        "cnn1-2": conv[1:3],
        "cnn3-6": conv[3:],
        "proj": [m.feature_projection],
        "pos": [m.encoder.pos_conv_embed],
        "attn": [layer.attention for layer in m.encoder.layers],
        "ffn": [layer.feed_forward for layer in m.encoder.layers],
    }
    unknown = set(parts) - set(groups)
    if unknown:
        raise SystemExit(f"unknown parts {sorted(unknown)}; choose from {sorted(groups)}")
    for name, modules in groups.items():
        for module in modules:
            if name in parts:
                module.to(torch.bfloat16)
            module.register_forward_pre_hook(cast_inputs)
    return [r.phones for r in recognizer.transcribe_many(paths, batch_size=16)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("variants", nargs="+", help="parts joined by +, e.g. attn+ffn")
    add_data_arguments(p)
    a = p.parse_args()
    utterances = [u for rows in utterance_sets(a.data) for u in rows]
    paths, refs = [u.audio for u in utterances], [u.phones for u in utterances]
    greedy = a.decoder == "greedy"
    reference = transcribe(a.model, paths, [], greedy)
    print(f"fp32: PER {100 * phone_error_rate(refs, reference).per:.2f} % over {len(utterances)} utterances")
    for variant in a.variants:
        out = transcribe(a.model, paths, variant.split("+"), greedy)
        same = sum(x == y for x, y in zip(reference, out))
        print(
            f"{variant:24s} in bf16: identical phones {100 * same / len(utterances):.2f} % ({same}), "
            f"PER {100 * phone_error_rate(refs, out).per:.2f} %",
            flush=True,
        )


if __name__ == "__main__":
    main()
