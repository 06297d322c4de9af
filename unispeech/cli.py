"""Command line: thin subcommands over the public functions. Flags are spelled like their keyword arguments."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings
from pathlib import Path

DEFAULT_MODEL_DIR = Path(__file__).parent / "assets" / "default-model"


def default_model() -> str:
    """The bundled demo model's folder; says on stderr that it is the demo model."""
    from . import REAL_MODEL

    if not (DEFAULT_MODEL_DIR / "config.json").is_file():
        raise ValueError(f"no default model is bundled yet; pass --model, e.g. --model {REAL_MODEL} "
                         "(needs the Hugging Face hub) or --model /path/to/downloaded/folder")
    print(f"unispeech: using the bundled demo model (trained on synthetic speech); for real recordings "
          f"use --model {REAL_MODEL}", file=sys.stderr)
    return str(DEFAULT_MODEL_DIR)


def write_output(text: str, output: str | None) -> None:
    """To stdout, or atomically to a file (temp file + rename), so an existing file is never half-written."""
    if output is None or output == "-":
        sys.stdout.write(text)
        return
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def cmd_transcribe(args: argparse.Namespace) -> int:
    from . import AudioError, load_model
    from .formats import format_results

    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    recognizer = load_model(args.model or default_model(), device=args.device, dtype=args.dtype)
    ok, failed = [], 0
    results = recognizer.transcribe_many(args.files, batch_size=args.batch_size, progress=len(args.files) > 20)
    for path, result in zip(args.files, results):
        if isinstance(result, AudioError):
            print(f"unispeech: skipped {result}", file=sys.stderr)
            failed += 1
        else:
            ok.append((path, result))
    if ok:
        write_output(format_results(ok, args.format), args.output)
    if failed:
        print(f"unispeech: {failed} of {len(args.files)} files could not be transcribed", file=sys.stderr)
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="unispeech", description="Speech to phones with UniSpeech CTC models.")
    parser.add_argument("--version", action="version", version=f"unispeech {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("transcribe", help="audio files -> phones with timestamps",
                       description="Transcribe audio files (wav, flac, ogg, mp3; any rate and channel count) to "
                                   "phones. Long files are processed in overlapping chunks.")
    p.add_argument("files", nargs="+", metavar="FILE", help="audio files")
    p.add_argument("--model", help="model folder or Hugging Face hub id (default: the bundled demo model)")
    p.add_argument("--format", choices=("txt", "json", "jsonl", "tsv"), default="txt",
                   help="txt: phones per file; json/jsonl: phones, text, per-phone times and confidences; "
                        "tsv: one row per phone (default: txt)")
    p.add_argument("--output", help="write to this file instead of stdout")
    p.add_argument("--batch-size", type=int, default=8, help="utterances per forward pass (default: 8)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--dtype", default=None, choices=("float32", "bfloat16", "float16"),
                   help="compute precision (default: float32)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: torch's choice)")
    p.set_defaults(func=cmd_transcribe)
    return parser


def main(argv: list[str] | None = None) -> None:
    warnings.formatwarning = lambda message, *_, **__: f"unispeech: warning: {message}\n"
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
    except KeyboardInterrupt:
        print("unispeech: interrupted", file=sys.stderr)
        code = 130
    except (ValueError, RuntimeError, OSError) as e:
        print(f"unispeech: error: {e}", file=sys.stderr)
        code = 2
    sys.exit(code)
