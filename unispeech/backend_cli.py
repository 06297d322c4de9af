"""What runs a model, on the command line: the options every model command shares (which model, backend,
precision, adaptation) and the recognizer they load, and the subcommands `export` (the ONNX form) and `info`
(what `auto` would choose)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .adapt import AdaptOptions, TogetherOptions, check_trainable
from .precision import BACKENDS, DTYPE_CHOICES
from .train.recipe import natural_int, positive_float, positive_int


def cmd_export(args: argparse.Namespace) -> int:
    from .beam import folder_decoder, save_folder_decoder
    from .checkpoint import load_folder, resolve_folder
    from .export import export_onnx

    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise ValueError(f"--out {args.out}: exists and is not a folder")
    folder = resolve_folder(args.model)
    model, vocab, audio = load_folder(folder)
    dtypes = ("float32", "int8") if args.int8 else ("float32",)
    paths = export_onnx(model, vocab, audio, args.out, dtypes=dtypes, source=args.model or "bundled demo model")
    own = folder_decoder(folder)  # the model's own decoding (phone LM) travels with it
    if own is not None:
        save_folder_decoder(args.out, own.options, own.lm)
    for dtype, path in paths.items():
        print(f"{dtype}: {path}")
    return 0


def cmd_adapt(args: argparse.Namespace) -> int:
    from . import adapted_to, load_model
    from .adapt import save_adapted
    from .bulk import read_input_list

    if bool(args.files) == bool(args.input):
        raise ValueError("give the voice's audio FILEs, or --input LIST")
    out = Path(args.out)
    if (out / "config.json").exists() or (out.exists() and not out.is_dir()):
        raise ValueError(f"--out {out}: already holds a model or a file; choose a new folder (nothing is overwritten)")
    paths = list(args.files) or read_input_list(args.input)
    options = _options(TogetherOptions, args.adapt_steps, args.adapt_lr)
    recognizer = adapted_to(load_model(args.model, dtype="float32", backend="torch"), paths, options, progress=True)
    if not recognizer.runner.used:
        raise ValueError(f"none of the {len(paths)} inputs was heard as speech (or could be read): nothing to adapt to")
    save_adapted(recognizer, out)
    print(f"{args.model or 'bundled demo model'}, {recognizer.runner.note} -> {out}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    import platform

    import torch

    from .precision import choose_backend, cpu_class, cpu_flags, resolve_device

    flags = " ".join(sorted(cpu_flags())) or "none of avx2/avx512/amx"
    print(f"cpu: {platform.processor() or platform.machine()}, {cpu_class(cpu_flags())} class ({flags})")
    print(f"threads: {torch.get_num_threads()}; torch {torch.__version__}; onnxruntime {_version('onnxruntime')}")
    device = resolve_device(args.device)
    for models, with_lm in (("models decoded greedily", False), ("models with a phone LM (the bundled one)", True)):
        choice = choose_backend(args.backend, args.dtype, device, with_lm=with_lm)
        print(f"would run, for {models}: {choice.backend} {choice.dtype} ({choice.reason})")
    return 0


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def add_export(sub) -> None:
    p = sub.add_parser(
        "export",
        help="write a model as ONNX (float32, and int8 with --int8) for onnxruntime",
        description="Export a CTC model to ONNX: input_values + input_lengths (raw audio, normalised in the "
        "graph) -> logits, logprobs, logits_len; the vocabulary, sampling rate, normalisation and frame stride "
        "in its metadata, vocab.txt and tokens.txt beside it. The float32 graph is checked against the model "
        "(max logit difference <= 1e-4).",
    )
    p.add_argument("model", nargs="?", help="model folder or hub id (default: the bundled demo model)")
    p.add_argument("--format", choices=("onnx",), default="onnx", help="export format (default: onnx)")
    p.add_argument("--int8", action="store_true", help="also write model.int8.onnx (int8 matmuls)")
    p.add_argument("--out", required=True, help="folder to write (model.onnx, config.json, vocab.json, tokens.txt)")
    p.set_defaults(func=cmd_export)


def add_adapt(sub) -> None:
    p = sub.add_parser(
        "adapt",
        help="adapt a model to a voice from its recordings (no transcripts) and save it",
        description="Adapt the model once to recordings of one speaker or one recording setting, with no "
        "transcript (as --adapt-together does for one run), and save the adapted model as a folder that every "
        "command reads with --model: a few minutes of your voice, then `unispeech serve --model FOLDER`.",
    )
    p.add_argument("files", nargs="*", metavar="FILE", help="audio files of the voice")
    p.add_argument("--input", help="a list of audio files (one per line) or a TSV/JSONL manifest")
    p.add_argument("--model", help="model folder or hub id to adapt (default: the bundled demo model)")
    p.add_argument("--out", required=True, help="the new model folder (float32 weights, the model's own decoding)")
    p.add_argument("--adapt-steps", type=positive_int, help=f"(default: {TogetherOptions.steps})")
    p.add_argument("--adapt-lr", type=positive_float, help=f"(default: {TogetherOptions.lr:g})")
    p.set_defaults(func=cmd_adapt)


def add_info(sub) -> None:
    p = sub.add_parser("info", help="this machine's CPU class and what --backend/--dtype auto would run")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--dtype", default="auto", help="as for transcribe (default: auto)")
    p.add_argument("--backend", default="auto", choices=BACKENDS, help="as for transcribe (default: auto)")
    p.set_defaults(func=cmd_info)


def add_model_options(p: argparse.ArgumentParser, together: bool = False) -> None:
    p.add_argument("--model", help="model folder or Hugging Face hub id (default: the bundled demo model)")
    p.add_argument("--batch-size", type=positive_int, default=8, help="utterances per forward pass (default: 8)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument(
        "--dtype",
        default="auto",
        choices=DTYPE_CHOICES,
        help="precision; auto: chosen per machine (see `unispeech info`); mixed: bfloat16 transformer layers, "
        "the rest float32; int8: onnxruntime (default: auto)",
    )
    p.add_argument(
        "--backend",
        default="auto",
        choices=BACKENDS,
        help="what runs the model: torch, or its ONNX export in onnxruntime (made once, cached) (default: auto)",
    )
    p.add_argument("--verbose", "-v", action="store_true", help="say which backend and precision run, and why")
    p.add_argument("--threads", type=natural_int, default=0, help="CPU threads (default: torch's choice)")
    add_adapt_options(p, together)


def add_adapt_options(p: argparse.ArgumentParser, together: bool = False) -> None:
    p.add_argument(
        "--adapt",
        action="store_true",
        help="adapt the model to each utterance before decoding it (SUTA): for voices unlike the model's training "
        "speech; torch float32, ~25x slower",
    )
    if together:
        p.add_argument(
            "--adapt-together",
            action="store_true",
            help="adapt the model once to all the audio given (one speaker, one recording), then decode all of it: "
            "better than --adapt where the audio shares a voice, and far cheaper; torch float32",
        )
    steps = f"{AdaptOptions.steps}, together {TogetherOptions.steps}" if together else AdaptOptions.steps
    p.add_argument(
        "--adapt-steps", type=positive_int, help=f"with --adapt{'(-together)' * together} (default: {steps})"
    )
    p.add_argument("--adapt-lr", type=positive_float, help=f"likewise (default: {AdaptOptions.lr:g})")


def adapt_options(args: argparse.Namespace) -> AdaptOptions | None:
    """AdaptOptions for --adapt, TogetherOptions for --adapt-together, None for neither."""
    steps, lr = getattr(args, "adapt_steps", None), getattr(args, "adapt_lr", None)
    each, together = getattr(args, "adapt", False), getattr(args, "adapt_together", False)
    if each and together:
        raise ValueError("--adapt adapts to each utterance, --adapt-together to all of them at once: give one")
    if not (each or together):
        if steps or lr:
            flags = "--adapt or --adapt-together" if hasattr(args, "adapt_together") else "--adapt"
            raise ValueError(f"--adapt-steps and --adapt-lr set how {flags} adapts: give {flags} too")
        return None
    return _options(TogetherOptions if together else AdaptOptions, steps, lr)


def _options(kind: type[AdaptOptions], steps: int | None, lr: float | None) -> AdaptOptions:
    """`kind` with the flags given, its own defaults for those not."""
    return kind(steps=steps or kind.steps, lr=lr or kind.lr)


def load_recognizer(args: argparse.Namespace, decoder=None, audio: list | None = None):
    """The recognizer the options ask for; with --adapt-together, adapted to `audio` (the run's inputs)."""
    from . import adapted_to, load_model

    options = adapt_options(args)
    together = isinstance(options, TogetherOptions)
    if together and getattr(args, "engine", "local") == "ray":
        raise ValueError("--adapt-together adapts in this process: it cannot run with --engine ray")
    if together:
        check_trainable(args.backend, args.dtype)  # before anything is loaded
    recognizer = load_model(
        args.model,
        device=args.device,
        dtype="float32" if together else args.dtype,
        decoder=decoder,
        backend="torch" if together else args.backend,
        adapt=None if together else options,
    )
    if together:
        first_rank = os.environ.get("RANK", "0") == "0"  # torchrun's ranks each adapt alike: one bar
        recognizer = adapted_to(recognizer, audio or [], options, progress=first_rank)
    if getattr(args, "verbose", False):
        print(f"unispeech: running {recognizer.describe()}: {recognizer.choice}", file=sys.stderr)
        print(f"unispeech: decoding with {recognizer.decoder.describe()}", file=sys.stderr)
    return recognizer


def model_spec(args: argparse.Namespace, decoder=None):
    """The recognizer as a Ray actor loads it: the same model, precision and decoder, one thread each."""
    from .bulk import ModelSpec

    return ModelSpec(
        args.model, args.dtype, args.device, decoder, args.threads or 1, args.backend, adapt=adapt_options(args)
    )
