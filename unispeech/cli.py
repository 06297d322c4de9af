"""Command line: thin subcommands over the public functions. Flags are spelled like their keyword arguments."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from .backend_cli import (
    adapt_options,
    add_adapt,
    add_adapt_options,
    add_export,
    add_info,
    add_model_options,
    load_recognizer,
    model_spec,
)
from .decoding import GreedyDecoder
from .lm import MAX_ORDER
from .reports_cli import add_compare_reports
from .train.commands import add_finetune, add_pretrain
from .train.recipe import natural_int, positive_float, positive_int


def write_output(text: str, output: str | None) -> None:
    """To stdout, or atomically to a file (temp file + rename), so an existing file is never half-written."""
    from .files import atomic_write

    if output is None or output == "-":
        sys.stdout.write(text)
    else:
        atomic_write(output, text)


def cmd_transcribe(args: argparse.Namespace) -> int:
    from . import AudioError
    from .formats import format_results

    if bool(args.files) == bool(args.input) or bool(args.input) != bool(args.output_dir):
        raise ValueError("give audio FILEs, or --input LIST with --output-dir DIR (many files, resumable)")
    if args.input:
        return transcribe_job(args)
    recognizer = load_recognizer(args, decoder=_decoder(args), audio=args.files)
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


def transcribe_job(args: argparse.Namespace) -> int:
    from .bulk import read_input_list, run_job

    paths = read_input_list(args.input, split=args.split, audio_dir=args.audio_dir)
    if not paths:
        raise ValueError(f"--input {args.input}: no audio paths in it")
    recognizer = load_recognizer(args, decoder=_decoder(args), audio=paths)
    job = run_job(
        recognizer,
        paths,
        args.output_dir,
        batch_size=args.batch_size,
        engine=args.engine,
        ray_address=args.ray_address,
        ray_actors=args.ray_actors,
        spec=model_spec(args, recognizer.decoder),  # the decoder as resolved: Ray actors read no phone LM again
    )
    if job.transcripts is None:  # a torchrun rank other than 0: its share is written, rank 0 merged
        return 0
    errors = sum("error" in json.loads(line) for line in job.transcripts.read_text(encoding="utf-8").splitlines())
    print(
        f"unispeech: {len(paths)} inputs ({job.transcribed} transcribed now, {job.already_done} done before, "
        f"{errors} with an error) -> {job.transcripts}",
        file=sys.stderr,
    )
    return 1 if errors else 0


def _decoder(args: argparse.Namespace):
    """None for `auto` (load_model takes the model folder's own decoding, else greedy)."""
    if args.decoder != "beam":
        if args.lm:
            raise ValueError("--lm needs --decoder beam")
        return GreedyDecoder() if args.decoder == "greedy" else None
    from .beam import BeamOptions, BeamSearchDecoder
    from .lm import PhoneLM

    lm = PhoneLM.load(args.lm) if args.lm else None
    options = BeamOptions(beam_width=args.beam_width, lm_weight=args.lm_weight, insertion_bonus=args.insertion_bonus)
    return BeamSearchDecoder(options, lm)


def cmd_phonemize(args: argparse.Namespace) -> int:
    from .g2p import phonemize

    texts = list(args.text)
    if args.file:
        texts += Path(args.file).read_text(encoding="utf-8").splitlines()
    if not texts:
        raise ValueError("give text to phonemize, or --file")
    if not any(t.strip() for t in texts):
        raise ValueError("nothing to phonemize: the text is empty")
    lines = phonemize(texts, language=args.language, word_boundaries=args.word_boundaries)
    write_output("".join(" ".join(phones) + "\n" for phones in lines), args.output)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .data import load_dataset
    from .evaluate import evaluate

    utterances, skipped = load_dataset(args.data, split=args.split, audio_dir=args.audio_dir)
    if args.limit:
        utterances = utterances[: args.limit]
    if not utterances:
        raise ValueError(f"{args.data}: no usable utterances ({len(skipped)} skipped)")
    recognizer = load_recognizer(args, decoder=_decoder(args), audio=[str(u.audio) for u in utterances])
    report = evaluate(
        recognizer,
        utterances,
        args.out,
        skipped=skipped,
        batch_size=args.batch_size,
        progress=True,
        meta={
            "model": args.model or "bundled demo model",
            "runs": recognizer.describe(),
            "decoding": recognizer.decoder.describe(),
            "data": str(args.data),
            "split": args.split,
        },
        engine=args.engine,
        ray_address=args.ray_address,
        spec=model_spec(args, recognizer.decoder),
    )
    if report is None:  # a torchrun rank other than 0
        return 0
    s = report["summary"]
    per = "n/a" if s["per"] is None else f"{100 * s['per']:.2f} %"
    print(
        f"PER {per} over {s['utterances']} utterances ({s['reference_phones']} phones, {s['correct']} right; "
        f"S {s['substitutions']} D {s['deletions']} I {s['insertions']}); {s['skipped']} skipped. "
        f"Report: {Path(args.out) / 'report.md'}"
    )
    if not s["utterances"] and report["skipped"]:
        first = report["skipped"][0]
        raise ValueError(f"no utterance could be scored; the first skipped, {first['id']}: {first['reason']}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .server import ServerLimits, serve

    serve(
        args.model,
        adapt=adapt_options(args),
        host=args.host,
        port=args.port,
        limits=ServerLimits(
            max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
            max_seconds=args.max_seconds,
            timeout_seconds=args.timeout,
            max_voices=args.max_voices,
            max_voices_per_client=args.max_voices_per_client,
        ),
    )
    return 0


def cmd_align(args: argparse.Namespace) -> int:
    from .align import align, align_manifest, alignment_text

    if bool(args.audio) == bool(args.manifest) or (args.audio and not args.text):
        raise ValueError("give AUDIO with --text, or --manifest with --out-dir")
    if args.manifest and not args.out_dir:
        raise ValueError("--manifest needs --out-dir (one output file per utterance)")
    recognizer = load_recognizer(args)
    if args.audio:
        result = align(recognizer, args.audio, text=args.text, language=args.language)
        write_output(alignment_text(args.audio, args.text, result, args.format), args.output)
        return 0
    aligned, failed = align_manifest(recognizer, args.manifest, args.out_dir, args.format, args.language)
    print(f"aligned {aligned} of {aligned + failed} utterances into {args.out_dir}", file=sys.stderr)
    return 1 if failed else 0


def cmd_score(args: argparse.Namespace) -> int:
    from .scoring import format_score, score

    result = score(load_recognizer(args), args.audio, args.text, language=args.language)
    write_output(format_score(args.audio, result, args.format), args.output)
    return 0


def cmd_lm_build(args: argparse.Namespace) -> int:
    from .data import read_sentences
    from .g2p import phonemize
    from .lm import build_lm

    sentences = [s for name in args.text for s in read_sentences(Path(name))]
    lm = build_lm(phonemize(sentences, language=args.language), order=args.order)
    lm.save(args.out)
    print(
        f"{args.out}: {args.order}-gram phone LM from {len(sentences)} sentences, "
        f"{sum(1 for g in lm.probs if len(g) == args.order)} {args.order}-grams"
    )
    return 0


def one_to(high: int, what: str):
    """An argparse type: an integer 1..high, refused as "<what> is 1-<high>, not <text>"."""

    def parse(text: str) -> int:
        value = positive_int(text)
        if value > high:
            raise argparse.ArgumentTypeError(f"{what} is 1-{high}, not {text}")
        return value

    return parse


def add_engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: this process (or torchrun's ranks); ray: a Ray Data pipeline (pip install "
        "'unispeech[ray]') (default: local)",
    )
    p.add_argument("--ray-address", help="with --engine ray: a running cluster (default: a new local instance)")
    p.add_argument("--ray-actors", type=positive_int, help="with --engine ray: model replicas (default: CPUs)")


def add_transcribe(sub) -> None:
    p = sub.add_parser(
        "transcribe",
        help="audio files -> phones with timestamps",
        description="Transcribe audio files (wav, flac, ogg, mp3; any rate and channel count) to "
        "phones. Long files are processed in overlapping chunks.",
    )
    p.add_argument("files", nargs="*", metavar="FILE", help="audio files")
    p.add_argument(
        "--input",
        help="many files: a list (one path per line), a TSV/JSONL manifest or a Common Voice "
        "folder; results stream to --output-dir, resumable; under torchrun each rank takes a share",
    )
    p.add_argument("--output-dir", help="with --input: parts/, then transcripts.jsonl (one line per input, in order)")
    p.add_argument("--split", default="test", help="Common Voice split for --input (default: test)")
    p.add_argument("--audio-dir", help="where the clips of an --input manifest are (default: beside it)")
    add_engine_options(p)
    add_model_options(p, together=True)
    p.add_argument(
        "--format",
        choices=("txt", "json", "jsonl", "tsv", "ctm", "textgrid"),
        default="txt",
        help="txt: phones per file; json/jsonl: phones, text, per-phone times and confidences; "
        "tsv: one row per phone; ctm; textgrid: Praat (one file) (default: txt)",
    )
    p.add_argument("--output", help="write to this file instead of stdout")
    add_decoding_options(p)
    p.set_defaults(func=cmd_transcribe)


def add_decoding_options(p) -> None:
    p.add_argument(
        "--decoder",
        choices=("auto", "greedy", "beam"),
        default="auto",
        help="CTC decoding; auto: the model's own (the bundled model: beam search with its phone LM), "
        "else greedy (default: auto)",
    )
    p.add_argument("--lm", help="phone n-gram LM (ARPA, from `unispeech lm build`) for --decoder beam")
    p.add_argument("--lm-weight", type=float, default=0.5, help="LM weight in beam search (default: 0.5)")
    p.add_argument("--insertion-bonus", type=float, default=0.0, help="score added per phone (default: 0)")
    p.add_argument("--beam-width", type=positive_int, default=8, help="hypotheses kept per frame (default: 8)")


def add_phonemize(sub) -> None:
    p = sub.add_parser(
        "phonemize",
        help="Kyrgyz text -> the checkpoint's phones",
        description="Convert text to phones with espeak-ng (bundled through espeakng-loader). "
        "For Kyrgyz the phones are the 39 of the UniSpeech checkpoint.",
    )
    p.add_argument("text", nargs="*", help="sentences (one output line each)")
    p.add_argument("--file", help="read sentences from this file, one per line")
    p.add_argument("--language", default="ky", help="espeak-ng language (default: ky)")
    p.add_argument("--word-boundaries", action="store_true", help="put | between words")
    p.add_argument("--output", help="write to this file instead of stdout")
    p.set_defaults(func=cmd_phonemize)


def add_evaluate(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="phone error rate on a dataset, with a report",
        description="Transcribe a dataset and score it against phones (given, or from the "
        "sentences by G2P). Writes report.json, report.md and plots to --out; "
        "re-running with the same --out resumes.",
    )
    add_model_options(p, together=True)
    p.add_argument(
        "--data",
        required=True,
        help="Common Voice language folder (cv-corpus-*/ky), a .tsv/.jsonl "
        "manifest, or a UniSpeech split (name.text / name.phone)",
    )
    p.add_argument("--split", default="test", help="Common Voice split: test, dev, train, validated (default: test)")
    p.add_argument("--audio-dir", help="where the clips are (default: clips/ beside the data)")
    p.add_argument("--limit", type=natural_int, default=0, help="evaluate only the first N utterances")
    p.add_argument("--out", default="eval-report", help="report folder (default: eval-report)")
    add_decoding_options(p)
    add_engine_options(p)
    p.set_defaults(func=cmd_evaluate)


def add_serve(sub) -> None:
    p = sub.add_parser(
        "serve",
        help="HTTP API and web page",
        description="Serve the model over HTTP: POST /v1/transcribe, /v1/phonemize, /v1/compare, /v1/score, "
        "/v1/voices (the model adapted to a speaker's recordings, for later requests' `voice`), GET /health, "
        "OpenAPI at /openapi.json, and a web page at /.",
    )
    p.add_argument("--model", help="model folder or Hugging Face hub id (default: the bundled demo model)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=one_to(65535, "a port"), default=8000, help="port (default: 8000)")
    p.add_argument(
        "--max-upload-mb", type=positive_float, default=25.0, help="largest upload accepted (default: 25 MB)"
    )
    p.add_argument("--max-seconds", type=positive_float, default=600.0, help="longest audio accepted (default: 600 s)")
    p.add_argument("--timeout", type=positive_float, default=120.0, help="request timeout in seconds (default: 120)")
    p.add_argument("--threads", type=natural_int, default=0, help="CPU threads for inference (default: torch's choice)")
    p.add_argument(
        "--max-voices",
        type=natural_int,
        default=4,
        help="voices (POST /v1/voices) held at once, the least recently used forgotten first; each is a float32 copy "
        "of the model (29 MB for the bundled one, 1.3 GB for UniSpeech-Large); 0: adapt to none (default: 4)",
    )
    p.add_argument(
        "--max-voices-per-client",
        type=natural_int,
        default=2,
        help="of those, at most this many made by one client address (its own least recently used goes first), so "
        "that one client cannot push out the others' voices; behind a proxy every client has the proxy's address: "
        "0 then (no limit but --max-voices) (default: 2)",
    )
    add_adapt_options(p)
    p.set_defaults(func=cmd_serve)


def add_align(sub) -> None:
    p = sub.add_parser(
        "align",
        help="forced alignment of a known sentence: phone and word times",
        description="Align the phones of a known Kyrgyz sentence (via G2P) to the audio with CTC "
        "Viterbi; phones and words with start/end times and scores.",
    )
    p.add_argument("audio", nargs="?", help="audio file (or use --manifest)")
    p.add_argument("--text", help="the sentence that was spoken")
    p.add_argument(
        "--manifest",
        help="batch form: a manifest / Common Voice TSV / split files with audio and text "
        "(or phones); writes one file per utterance into --out-dir",
    )
    p.add_argument("--out-dir", help="output folder for --manifest")
    add_model_options(p)
    p.add_argument("--language", default="ky", help="G2P language (default: ky)")
    p.add_argument(
        "--format", choices=("json", "tsv", "ctm", "textgrid"), default="json", help="output format (default: json)"
    )
    p.add_argument("--output", help="write to this file instead of stdout")
    p.set_defaults(func=cmd_align)


def add_score(sub) -> None:
    p = sub.add_parser(
        "score",
        help="pronunciation scores of a known sentence: per phone, word and utterance (0-1)",
        description="Goodness of pronunciation from the CTC posteriors: each expected phone's posterior "
        "against every phone that could stand in its place and its deletion; words and the utterance "
        "average their phones. Verdicts ok / substituted (with what was heard) / deleted; inserted phones.",
    )
    p.add_argument("audio", help="audio file")
    p.add_argument("--text", required=True, help="the sentence that should have been said")
    add_model_options(p)
    p.add_argument("--language", default="ky", help="G2P language (default: ky)")
    p.add_argument(
        "--format", choices=("json", "tsv", "textgrid"), default="json", help="output format (default: json)"
    )
    p.add_argument("--output", help="write to this file instead of stdout")
    p.set_defaults(func=cmd_score)


def add_lm(sub) -> None:
    p = sub.add_parser("lm", help="phone language models").add_subparsers(dest="lm_command", required=True)
    b = p.add_parser("build", help="build a phone n-gram LM (ARPA) from text through our G2P")
    b.add_argument("--text", nargs="+", required=True, help="text files: one sentence per line (or id TAB sentence)")
    b.add_argument(
        "--order",
        type=one_to(MAX_ORDER, "an n-gram order"),
        default=3,
        help=f"n-gram order, 1-{MAX_ORDER} (default: 3)",
    )
    b.add_argument("--language", default="ky", help="G2P language (default: ky)")
    b.add_argument("--out", required=True, help="ARPA file to write")
    b.set_defaults(func=cmd_lm_build)


class Parser(argparse.ArgumentParser):
    """Bad usage in one line (the subcommand's --help has the rest), exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = Parser(prog="unispeech", description="Speech to phones with UniSpeech CTC models.")
    parser.add_argument("--version", action="version", version=f"unispeech {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        add_transcribe,
        add_phonemize,
        add_evaluate,
        add_compare_reports,
        add_finetune,
        add_pretrain,
        add_serve,
        add_align,
        add_score,
        add_adapt,
        add_lm,
        add_export,
        add_info,
    ):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    warnings.formatwarning = lambda message, *_, **__: f"unispeech: warning: {message}\n"
    args = build_parser().parse_args(argv)
    if getattr(args, "threads", 0):
        import torch

        torch.set_num_threads(args.threads)
    try:
        code = args.func(args)
    except KeyboardInterrupt:
        print("unispeech: interrupted", file=sys.stderr)
        code = 130
    except (ValueError, RuntimeError, OSError) as e:
        print(f"unispeech: error: {_message(e)}", file=sys.stderr)
        code = 2
    sys.exit(code)


def _message(error: Exception) -> str:
    """One line; an OSError as "path: reason" (not "[Errno 2] ...", which tells a user nothing more)."""
    if isinstance(error, FileExistsError) and error.filename and Path(error.filename).is_file():
        return f"{error.filename}: is a file, where a folder is needed"  # mkdir(exist_ok=True) on a file
    if isinstance(error, OSError) and error.strerror:
        return f"{error.filename}: {error.strerror}" if error.filename else error.strerror
    return str(error)
