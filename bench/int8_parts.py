"""Which matmuls' int8 rounding changes phones: each row exports the model to ONNX with the named modules'
matmuls kept in float32 (export.Int8Options.keep_float) and the rest int8, and counts the evaluation
utterances whose phones stay identical to torch float32's (the 99 % rule behind `auto`), decoded as the model
decodes (its own phone LM if it ships one) or greedily with --decoder greedy.

    python bench/int8_parts.py [--model FOLDER] [--data MANIFEST ...] [--decoder greedy]
                               [ROW ...]

A ROW is a "+"-joined list of module-name fragments as they appear in the state dict ("lm_head",
"feature_extractor", "feature_projection", "encoder.layers.5.", "attention", "feed_forward"); the default
rows are the export's own keep set, then that set plus one part at a time.
"""

import argparse
import tempfile
from pathlib import Path

from precision_agreement import add_data_arguments, utterance_sets

from unispeech import load_model
from unispeech.beam import folder_decoder
from unispeech.checkpoint import load_folder
from unispeech.decoding import GreedyDecoder
from unispeech.export import Int8Options, export_onnx
from unispeech.metrics import phone_error_rate

BASE = Int8Options().keep_float


def default_rows(layers: int) -> list[tuple[str, ...]]:
    parts = ["feature_projection", "attention", "feed_forward", "intermediate_dense", "output_dense"]
    parts += [f"encoder.layers.{i}." for i in range(layers)]
    return [BASE] + [BASE + (p,) for p in parts]


def int8_phones(folder: Path, keep: tuple[str, ...], paths: list, work: Path, decoder) -> list[str]:
    model, vocab, audio = load_folder(folder)
    out = work / "+".join(keep).replace("/", "_")
    export_onnx(model, vocab, audio, out, dtypes=("float32", "int8"), int8=Int8Options(keep_float=keep))
    recognizer = load_model(out, backend="onnxruntime", dtype="int8", decoder=decoder)
    return [r.phones for r in recognizer.transcribe_many(paths, batch_size=16)]


def main() -> None:
    p = argparse.ArgumentParser()
    add_data_arguments(p)
    p.add_argument("rows", nargs="*", help='"+"-joined module fragments kept in float32 (default: a sweep)')
    a = p.parse_args()
    utterances = [u for rows in utterance_sets(a.data) for u in rows]
    paths, refs = [u.audio for u in utterances], [u.phones for u in utterances]
    decoder = (a.decoder == "auto" and folder_decoder(a.model)) or GreedyDecoder()
    fp32_model = load_model(a.model, backend="torch", dtype="float32", decoder=decoder)
    fp32 = [r.phones for r in fp32_model.transcribe_many(paths)]
    layers = load_folder(Path(a.model))[0].config.num_hidden_layers
    rows = [tuple(r.split("+")) for r in a.rows] or default_rows(layers)
    per32 = phone_error_rate(refs, fp32).per
    print(f"{len(utterances)} utterances, decoding: {decoder.describe()}, PER torch float32 {100 * per32:.2f} %\n")
    print("| kept in float32 | identical phones | PER change |")
    print("|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for keep in rows:
            out = int8_phones(Path(a.model), keep, paths, Path(tmp), decoder)
            same = sum(x == y for x, y in zip(fp32, out)) / len(utterances)
            change = phone_error_rate(refs, out).per - per32
            print(f"| {', '.join(keep)} | {100 * same:.1f} % | {100 * change:+.2f} |", flush=True)


if __name__ == "__main__":
    main()
