"""Train the bundled demo model from nothing: synthetic Kyrgyz speech -> small UniSpeech -> evaluation -> bundle.

    python recipes/demo_model.py [--work runs/demo] [--max-updates 1500] [--continue-updates 1500 ...] [--bf16]
                                 [--device cuda]
        [--rhvoice DIR] [--festvox-ru DIR|fetch] [--festival] [--mbrola VOICES] [--mbrola-train VOICES]
        [--mbrola-tuning VOICES] [--klettres DIR|fetch] [--klettres-train LANGUAGES] [--fillets DIR|fetch]
        [--fillets-train LANGUAGES] [--asterisk DIR|fetch] [--asterisk-train LANGUAGES] [--fotaq DIR|fetch]
        [--fotaq-train] [--rhvoice-voices VOICES] [--rhvoice-engine DIR] [--extra-data MANIFEST ...]
        [--real-updates 3000] [--init MODEL] [--real-repeat SOURCE[=N],...] [--real-stage NAME]
        [--formant-ratios LO,HI] [--data-only]

Every step resumes: re-run the same command after an interruption and it continues where it stopped.
Steps: split the sentences (the 227 sentences of data/ky/val.text never reach training), synthesise
train / valid / test sets with espeak-ng, train from scratch with `unispeech finetune` (stage 1, its own
tri-stage schedule), continue from the previous stage's best model with a second, lower schedule (stages
2, 3, ...: warm restarts, so that a finished stage is extended without redoing it; each with its own seed),
evaluate with `unispeech evaluate`, then copy the model into unispeech/assets/default-model.

With real-voice sources (`--rhvoice`, `--festvox-ru`, `--festival`, `--mbrola-train`, `--klettres-train`,
`--fillets-train`, `--asterisk-train`, `--fotaq-train`, `--rhvoice-voices`, `--extra-data`) a last stage continues on
espeak-ng's training set mixed with augmented copies of those voices (`demo_sets.real_voice_sets`; RHVoice's other
voices as made, `recipes/demo_rhvoice.py`), and every source's held-out
utterances are evaluated (`--mbrola` voices, `--klettres`, `--fillets` and `--asterisk` languages not trained on, and
`--fotaq` without `--fotaq-train`, make test sets only; `--mbrola-tuning` voices a validation set of unseen voices for
the phone LM's weights only). `--init MODEL` starts that stage from MODEL instead of training stages 1, 2, ...;
`--real-stage NAME` trains it into another folder than model-real (a further stage beside the ones there),
`--real-repeat festvox-ru,klettres` puts those sources' copies twice into its training mix (`fillets=8`: eight
times).
`--data-only` makes every set and stops (to train elsewhere, or to pair two trainings on the same data).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from demo_card import bundle
from demo_rhvoice import VOICES as RHVOICE_VOICES
from demo_sets import real_voice_sets, repeats, run, synthesize_espeak_sets, write_whole_folder

from unispeech.augment import FORMANT_RATIOS
from unispeech.corpora import ASTERISK_LANGUAGES, FILLETS_LANGUAGES, KLETTRES_LANGUAGES

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "recipes" / "demo_config.json"
RECIPE = ROOT / "recipes" / "demo_recipe.toml"
RECIPE_STAGE2 = ROOT / "recipes" / "demo_recipe_stage2.toml"
RECIPE_REAL = ROOT / "recipes" / "demo_recipe_real.toml"


def formant_range(text: str) -> tuple[float, float]:
    """`--formant-ratios 0.85,1.25` -> (0.85, 1.25): a range around 1 within 0.5-2."""
    try:
        low, high = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give two numbers, LO,HI (e.g. 0.85,1.25)") from None
    if not 0.5 <= low <= 1.0 <= high <= 2.0:
        raise argparse.ArgumentTypeError(f"{text!r}: need 0.5 <= LO <= 1 <= HI <= 2")
    return low, high


def arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default=str(ROOT / "runs" / "demo"))
    parser.add_argument("--copies", type=int, default=2, help="voices per training sentence")
    parser.add_argument("--max-updates", type=int, default=1500, help="stage 1 updates (from scratch)")
    parser.add_argument(
        "--continue-updates",
        type=int,
        nargs="*",
        default=[1500],
        help="updates of stages 2, 3, ... (each from the previous stage's best model); none = stage 1 only",
    )
    parser.add_argument("--rhvoice", help="the ky-rhvoice folder (metadata.tsv + audio/): RHVoice's Kyrgyz voices")
    parser.add_argument("--festvox-ru", help="festvox-ru's msu_ru_nsh_clunits folder, or 'fetch' (apt-get download)")
    parser.add_argument(
        "--klettres",
        help="KLettres' usr/share/klettres folder, or 'fetch' (apt-get download klettres-data): real speakers of "
        "16 languages saying letters and syllables, a test set (less the --klettres-train languages)",
    )
    parser.add_argument("--klettres-train", help="comma-separated KLettres languages to train on (e.g. da,de,uk)")
    parser.add_argument(
        "--fillets",
        help="Fish Fillets' usr/share/games/fillets-ng folder, or 'fetch' (apt-get download fillets-ng-data, -cs, "
        "-nl): actors speaking the game's Czech and Dutch dialogue, a test set per language not in --fillets-train",
    )
    parser.add_argument(
        "--fillets-train",
        help="comma-separated Fish Fillets languages (cs, nl) to train on; every fifth level of each stays a test set",
    )
    parser.add_argument(
        "--asterisk",
        help="Asterisk's core sounds' usr/share folder, or 'fetch' (apt-get download asterisk-core-sounds-LANG, "
        "-LANG-g722, asterisk-prompt-es-co and -fr-armelle): professional speakers saying telephone prompts in en, es, "
        "fr, it, ru, es-co, fr-armelle (two older speakers), a test set per speaker not in --asterisk-train",
    )
    parser.add_argument(
        "--asterisk-train",
        help="comma-separated Asterisk languages to train on; every fifth family of prompts of each stays a test set",
    )
    parser.add_argument(
        "--fotaq",
        help="Flight of the Amazon Queen's game folder (holding queen.1c), or 'fetch' (apt-get download "
        "flight-of-the-amazon-queen): actors voicing about thirty characters in English, every tenth line a test set",
    )
    parser.add_argument(
        "--fotaq-train",
        action="store_true",
        help="train on --fotaq's other lines (its test set is then the trained speakers' unseen lines)",
    )
    parser.add_argument(
        "--festival",
        action="store_true",
        help="Kyrgyz sentences read by Festival's voices of real speakers (unispeech/festival.py; apt-get install)",
    )
    parser.add_argument("--festival-sentences", type=int, default=200, help="training sentences per Festival voice")
    parser.add_argument(
        "--festival-voices",
        help="comma-separated Festival voices to train on (default: the five Czech and Finnish ones; the others, "
        "unispeech/festival.py's VOICES, are test sets of unseen voices)",
    )
    parser.add_argument(
        "--mbrola",
        help="comma-separated MBROLA voices (unispeech/mbrola.py's VOICES, e.g. tr1,tr2) that say held-out sentences "
        "only: test sets of unseen real speakers (apt-get download from Debian's contrib and non-free)",
    )
    parser.add_argument("--mbrola-train", help="comma-separated MBROLA voices to train on (e.g. de6,de7,pl1)")
    parser.add_argument(
        "--mbrola-tuning",
        help="comma-separated MBROLA voices, never trained on nor tested, that say validation sentences: the set "
        "valid-unseen-voices, on which (with the other validation sets) the phone LM's weights are chosen",
    )
    parser.add_argument("--mbrola-sentences", type=int, default=400, help="training sentences per MBROLA voice")
    parser.add_argument(
        "--rhvoice-voices",
        help="comma-separated RHVoice voices of real speakers to train on (recipes/demo_rhvoice.py): "
        + ", ".join(f"{name} ({voice.speaks}; --{voice.reads}'s sentences)" for name, voice in RHVOICE_VOICES.items())
        + "; their held-out sentences a test set per voice",
    )
    parser.add_argument(
        "--rhvoice-engine",
        help="for --rhvoice-voices: a built RHVoice engine (a folder with lib/libRHVoice.so) or RHVoice's source "
        "tree to build; default: its source downloaded from GitHub and built in --work",
    )
    parser.add_argument("--extra-data", nargs="*", default=[], help="more labelled manifests (.jsonl) to train on")
    parser.add_argument("--real-copies", type=int, default=3, help="augmented copies of each real-voice clip")
    parser.add_argument("--real-updates", type=int, default=3000, help="updates of the real-voice stage")
    parser.add_argument("--real-recipe", default=str(RECIPE_REAL), help="the real-voice stage's recipe (TOML)")
    parser.add_argument(
        "--real-repeat",
        help="comma-separated real-voice sources (e.g. festvox-ru,klettres,fillets=8) whose augmented copies enter "
        "the training mix twice (or N times): more of the real recordings in every batch",
    )
    parser.add_argument(
        "--real-stage",
        default="model-real",
        help="the real-voice stage's folder in --work (default: model-real); another name trains a further stage "
        "(from --init) beside the ones already there",
    )
    parser.add_argument("--init", help="start the real-voice stage from this model instead of stages 1, 2, ...")
    parser.add_argument("--real-seed", type=int, help="the real-voice stage's seed (default: its stage number)")
    parser.add_argument("--init-commit", help="the commit whose bundled model --init is (named in the card)")
    parser.add_argument(
        "--deepen", type=int, help="with --init: first grow it to this many transformer layers (identity layers)"
    )
    parser.add_argument(
        "--no-voice-change",
        dest="voice_change",
        action="store_false",
        help="real-voice copies without pitch and formant changes (as until v5)",
    )
    parser.add_argument(
        "--formant-ratios",
        type=formant_range,
        default=FORMANT_RATIOS,
        metavar="LO,HI",
        help=f"the real-voice copies' formant scaling range (default: {FORMANT_RATIOS[0]},{FORMANT_RATIOS[1]})",
    )
    parser.add_argument(
        "--lm-order", type=int, default=4, help="the model's own phone LM (recipes/demo_lm.py); 0: greedy only"
    )
    parser.add_argument(
        "--storage",
        choices=("float16", "float32"),
        default="float16",
        help="the type the bundled weights are stored in (float16: half the package; they load back exactly); "
        "the held-out figures are measured on the stored weights",
    )
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--device", default="cpu", help="where training runs: cpu or cuda (default: cpu)")
    parser.add_argument("--skip-bundle", action="store_true", help="do not copy the result into the package")
    parser.add_argument(
        "--data-only",
        action="store_true",
        help="make every training, validation and test set, print their manifests, and stop (no training)",
    )
    return parser


def main() -> None:
    parser = arguments()
    args = parser.parse_args()
    real = checked(parser, args)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    flags = (["--bf16"] if args.bf16 else []) + (["--device", args.device] if args.device != "cpu" else [])
    synthesize_espeak_sets(work, args.copies)
    sets = real_voice_sets(work, args) if real else {"tests": {}, "left_out": {}}
    tests = {
        "test": work / "test" / "manifest.jsonl",
        "test-unseen-voice": work / "test-unseen-voice" / "manifest.jsonl",
    } | sets.pop("tests")
    left_out = sets.pop("left_out")
    if args.data_only:
        print(json.dumps({name: str(m) for name, m in (sets | tests).items()}, indent=2))
        return
    trained: list[Path] = []
    if not args.init:
        train_stage(CONFIG, RECIPE, stage_dir(work, 1), args.max_updates, work, flags)
        trained.append(stage_dir(work, 1))
        for stage, updates in enumerate([n for n in args.continue_updates if n], start=2):
            train_stage(trained[-1], RECIPE_STAGE2, stage_dir(work, stage), updates, work, flags, seed=stage)
            trained.append(stage_dir(work, stage))
    if real:
        out = work / args.real_stage
        init, seed = Path(args.init) if args.init else trained[-1], args.real_seed or len(trained) + 1
        if args.deepen:
            init = deepened(init, args.deepen, work)
        recipe = Path(args.real_recipe)
        train_stage(init, recipe, out, args.real_updates, work, flags, seed, sets["train"], sets["valid"])
        trained.append(out)
    lm = phone_lm(trained[-1], work, args.lm_order) if args.lm_order else None
    final = stored_in_float16(trained[-1]) if args.storage == "float16" else trained[-1]
    results = {name: evaluate(final, manifest, work) for name, manifest in tests.items()}
    greedy = {name: evaluate(final, m, work, greedy=True) for name, m in tests.items()} if lm else {}
    before = (
        {name: evaluate(Path(args.init), m, work, greedy=True)["per"] for name, m in tests.items()} if args.init else {}
    )
    summary = {
        "per": results,
        "per_greedy": {name: report["per"] for name, report in greedy.items()},
        "phones_right_greedy": {
            name: report["correct"] / report["reference_phones"] for name, report in (greedy or results).items()
        },
        "per_init": before,
        "phone_lm": lm,
        "command": " ".join(["python", "recipes/demo_model.py"] + sys.argv[1:]),
        "stages": [str(d.relative_to(work)) for d in trained],
        "model": str(final.relative_to(work)),
    } | settings(args, real, left_out)
    (work / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    if not args.skip_bundle:
        bundle(work)


def checked(parser: argparse.ArgumentParser, args: argparse.Namespace) -> bool:
    """Stops with a usage error on flags that do not go together, before any data is made; says whether there is
    a real-voice stage."""
    real = (
        args.rhvoice
        or args.festvox_ru
        or args.festival
        or args.mbrola_train
        or args.klettres_train
        or args.fillets_train
        or args.asterisk_train
        or args.fotaq_train
        or args.rhvoice_voices
        or args.extra_data
    )
    sources = (
        "--rhvoice, --festvox-ru, --festival, --mbrola-train, --klettres-train, --fillets-train, --asterisk-train, "
        "--fotaq-train, --rhvoice-voices or --extra-data"
    )
    if args.init and not real:
        parser.error(f"--init starts the real-voice stage: give {sources} too")
    if (args.mbrola or args.mbrola_tuning or args.klettres or args.fillets or args.asterisk or args.fotaq) and not real:
        parser.error(
            f"--mbrola, --mbrola-tuning, --klettres, --fillets, --asterisk and --fotaq make sets beside the real-voice "
            f"stage: give {sources} too"
        )
    mbrola_roles = [set(v.split(",")) for v in (args.mbrola, args.mbrola_train, args.mbrola_tuning) if v]
    if sum(map(len, mbrola_roles)) != len(set().union(*mbrola_roles)):
        parser.error("an MBROLA voice is a test voice (--mbrola), a training one or a tuning one: not two of them")
    if args.klettres_train and not (args.klettres and set(args.klettres_train.split(",")) < set(KLETTRES_LANGUAGES)):
        parser.error(f"--klettres-train takes some of {','.join(KLETTRES_LANGUAGES)} (not all), with --klettres")
    if args.fillets_train and not (args.fillets and set(args.fillets_train.split(",")) <= set(FILLETS_LANGUAGES)):
        parser.error(f"--fillets-train takes some of {','.join(FILLETS_LANGUAGES)}, with --fillets")
    if args.asterisk_train and not (args.asterisk and set(args.asterisk_train.split(",")) <= set(ASTERISK_LANGUAGES)):
        parser.error(f"--asterisk-train takes some of {','.join(ASTERISK_LANGUAGES)}, with --asterisk")
    if args.fotaq_train and not args.fotaq:
        parser.error("--fotaq-train trains on --fotaq's lines: give --fotaq too")
    for voice in args.rhvoice_voices.split(",") if args.rhvoice_voices else []:
        if voice not in RHVOICE_VOICES:
            parser.error(f"--rhvoice-voices {voice}: not one of {','.join(RHVOICE_VOICES)}")
        source = RHVOICE_VOICES[voice].reads
        if not getattr(args, source.replace("-", "_")):
            parser.error(f"--rhvoice-voices {voice} reads --{source}'s sentences: give --{source} too")
    repeats(args.real_repeat)  # a malformed weight stops here, not after hours of data making
    if args.deepen and not args.init:
        parser.error("--deepen grows the --init model: give --init too")
    return bool(real)


def settings(args: argparse.Namespace, real: bool, left_out: dict[str, int]) -> dict:
    """What the summary (and so the card) says of how the model was made, beside its figures."""
    return {
        "storage": args.storage,
        "init": args.init,
        "init_commit": args.init_commit,
        "deepen": args.deepen,
        "left_out": left_out,
        "voice_change": bool(real) and args.voice_change,
        "formant_ratios": list(args.formant_ratios),
        "real_recipe": str(Path(args.real_recipe).resolve().relative_to(ROOT)) if real else None,
        "real_stage": args.real_stage if real else None,
        "real_repeat": args.real_repeat,
        "cpu": cpu_description() if args.device == "cpu" else machine_description(args.device),
    }


def deepened(init: Path, layers: int, work: Path) -> Path:
    """`init` grown to `layers` transformer layers that compute what its own layers did
    (`unispeech.model.deepen`), written once as a model folder."""
    from unispeech.checkpoint import load_folder, save_folder
    from unispeech.model import deepen

    out = work / f"{init.name}-deepened-{layers}"
    if not out.is_dir():
        model, vocab, audio = load_folder(init)
        write_whole_folder(out, lambda tmp: save_folder(tmp, deepen(model, layers), vocab, audio))
    return out


def stored_in_float16(model: Path) -> Path:
    """`model` (with its decoding files) as the package stores it: weights in float16, made once."""
    import torch

    from unispeech.beam import DECODING_FILE, PHONE_LM_FILE
    from unispeech.checkpoint import load_folder, save_folder

    out = model.with_name(f"{model.name}-float16")
    weights = out / "model.safetensors"
    if not weights.is_file() or weights.stat().st_mtime < (model / "model.safetensors").stat().st_mtime:
        net, vocab, audio = load_folder(model)
        write_whole_folder(out, lambda tmp: save_folder(tmp, net, vocab, audio, storage=torch.float16))
    for name in (DECODING_FILE, PHONE_LM_FILE):
        if (model / name).is_file():
            shutil.copy2(model / name, out / name)
    return out


def evaluate(model: Path, manifest: Path, work: Path, greedy: bool = False) -> dict:
    """`unispeech evaluate` of `model` on `manifest` with the model's own decoding (its phone LM where it has
    one) or greedy, unless that report is newer than its inputs."""
    from unispeech.beam import DECODING_FILE

    has_lm = (model / DECODING_FILE).is_file()
    out = work / f"eval-{model.name}-{manifest.parent.name}{('-greedy' if greedy else '-lm') if has_lm else ''}"
    report = out / "report.json"
    inputs = [model / "model.safetensors", manifest] + ([model / DECODING_FILE] if has_lm and not greedy else [])
    if not report.is_file() or report.stat().st_mtime < max(p.stat().st_mtime for p in inputs):
        if report.is_file():  # stale: made with other weights or decoding, which evaluate will not resume
            shutil.rmtree(out)
        cmd = [sys.executable, "-m", "unispeech", "evaluate", "--model", str(model), "--data", str(manifest)]
        run(cmd + ["--out", str(out)] + (["--decoder", "greedy"] if greedy else []))
    return json.loads(report.read_text())["summary"]


def phone_lm(model: Path, work: Path, order: int) -> dict:
    """The model's own phone LM and beam weights (recipes/demo_lm.py), made once per trained model and set of
    tuning sets."""
    from demo_lm import add_phone_lm, tuning_sets

    from unispeech.beam import DECODING_FILE

    record = work / f"phone-lm-{model.name}.json"
    made = model / DECODING_FILE
    if record.is_file() and made.is_file() and made.stat().st_mtime >= (model / "model.safetensors").stat().st_mtime:
        chosen = json.loads(record.read_text())
        if list(chosen["tuned_on"]) == tuning_sets(work):
            return chosen
    chosen = add_phone_lm(model, work, order)
    record.write_text(json.dumps(chosen, indent=2))
    return chosen


def cpu_description() -> str:
    """The CPU as the model card names it: its class and the extensions that matter for speed here."""
    import torch

    from unispeech.precision import CPU_FEATURES, cpu_class, cpu_flags

    flags = cpu_flags()
    features = " ".join(f for f in CPU_FEATURES if f in flags) or "no AVX2"
    return f"CPU class {cpu_class(flags)} ({features}), {torch.get_num_threads()} threads"


def machine_description(device: str) -> str:
    """A GPU as the model card names it (training ran there; the CPU only fed it)."""
    import torch

    return f"{torch.cuda.get_device_name(torch.device(device))} ({device})"


def stage_dir(work: Path, stage: int) -> Path:
    """Where stage `stage` (1 = from scratch) writes its model."""
    return work / ("model" if stage == 1 else f"model-stage{stage}")


def train_stage(
    init: Path,
    recipe: Path,
    out: Path,
    updates: int,
    work: Path,
    flags: list[str],
    seed: int | None = None,
    train: Path | None = None,
    valid: Path | None = None,
) -> None:
    if (out / "checkpoints" / f"checkpoint-{updates:07d}.pt").is_file() and (out / "model.safetensors").is_file():
        print(f"{out}: trained to {updates} updates already", flush=True)  # a resume would load its audio for nothing
        return
    resume = ["--resume"] if any((out / "checkpoints").glob("checkpoint-*.pt")) else []
    train, valid = train or work / "train" / "manifest.jsonl", valid or work / "valid" / "manifest.jsonl"
    cmd = [sys.executable, "-m", "unispeech", "finetune", "--init", str(init), "--recipe", str(recipe)]
    cmd += ["--train", str(train), "--valid", str(valid), "--out", str(out), "--max-updates", str(updates)]
    run(cmd + flags + (["--seed", str(seed)] if seed is not None else []) + resume)


if __name__ == "__main__":
    main()
