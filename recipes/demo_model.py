"""Train the bundled demo model from nothing: synthetic Kyrgyz speech -> small UniSpeech -> evaluation -> bundle.

    python recipes/demo_model.py [--work runs/demo] [--max-updates 1500] [--continue-updates 1500 ...] [--bf16]
                                 [--device cuda]
        [--rhvoice DIR] [--festvox-ru DIR|fetch] [--festival] [--mbrola VOICES] [--mbrola-train VOICES]
        [--mbrola-tuning VOICES] [--klettres DIR|fetch] [--klettres-train LANGUAGES] [--extra-data MANIFEST ...]
        [--real-updates 3000]
        [--init MODEL]
        [--data-only]

Every step resumes: re-run the same command after an interruption and it continues where it stopped.
Steps: split the sentences (the 227 sentences of data/ky/val.text never reach training), synthesise
train / valid / test sets with espeak-ng, train from scratch with `unispeech finetune` (stage 1, its own
tri-stage schedule), continue from the previous stage's best model with a second, lower schedule (stages
2, 3, ...: warm restarts, so that a finished stage is extended without redoing it; each with its own seed),
evaluate with `unispeech evaluate`, then copy the model into unispeech/assets/default-model.

With real-voice sources (`--rhvoice`, `--festvox-ru`, `--festival`, `--mbrola-train`, `--klettres-train`,
`--extra-data`) a last stage continues on espeak-ng's training set mixed with augmented copies of those voices
(`real_voice_sets`), and every source's held-out utterances are evaluated (`--mbrola` voices, and `--klettres`
languages not in `--klettres-train`, make test sets only; `--mbrola-tuning` voices a validation set of unseen
voices for the phone LM's weights only). `--init MODEL` starts that stage from MODEL instead of training stages
1, 2, ...
`--data-only` makes every set and stops (to train elsewhere, or to pair two trainings on the same data).
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from demo_card import UNSEEN_TEST_SETS, bundle

from unispeech.corpora import KLETTRES_LANGUAGES

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "ky"
CONFIG = ROOT / "recipes" / "demo_config.json"
RECIPE = ROOT / "recipes" / "demo_recipe.toml"
RECIPE_STAGE2 = ROOT / "recipes" / "demo_recipe_stage2.toml"
RECIPE_REAL = ROOT / "recipes" / "demo_recipe_real.toml"
VALID_SENTENCES = 150
TUNING_SENTENCES = 80  # validation sentences said by each --mbrola-tuning voice


def run(cmd: list[str]) -> float:
    """Run a step, echoing it; -> its wall seconds."""
    print("$", " ".join(cmd), flush=True)
    started = time.time()
    subprocess.run(cmd, check=True)
    return time.time() - started


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
    parser.add_argument("--extra-data", nargs="*", default=[], help="more labelled manifests (.jsonl) to train on")
    parser.add_argument("--real-copies", type=int, default=3, help="augmented copies of each real-voice clip")
    parser.add_argument("--real-updates", type=int, default=3000, help="updates of the real-voice stage")
    parser.add_argument("--real-recipe", default=str(RECIPE_REAL), help="the real-voice stage's recipe (TOML)")
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
    real = (
        args.rhvoice or args.festvox_ru or args.festival or args.mbrola_train or args.klettres_train or args.extra_data
    )
    sources = "--rhvoice, --festvox-ru, --festival, --mbrola-train, --klettres-train or --extra-data"
    if args.init and not real:
        parser.error(f"--init starts the real-voice stage: give {sources} too")
    if (args.mbrola or args.mbrola_tuning or args.klettres) and not real:
        parser.error(
            f"--mbrola, --mbrola-tuning and --klettres make sets beside the real-voice stage: give {sources} too"
        )
    mbrola_roles = [set(v.split(",")) for v in (args.mbrola, args.mbrola_train, args.mbrola_tuning) if v]
    if sum(map(len, mbrola_roles)) != len(set().union(*mbrola_roles)):
        parser.error("an MBROLA voice is a test voice (--mbrola), a training one or a tuning one: not two of them")
    if args.klettres_train and not (args.klettres and set(args.klettres_train.split(",")) < set(KLETTRES_LANGUAGES)):
        parser.error(f"--klettres-train takes some of {','.join(KLETTRES_LANGUAGES)} (not all), with --klettres")
    if args.deepen and not args.init:
        parser.error("--deepen grows the --init model: give --init too")
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
        out = work / "model-real"
        init, seed = Path(args.init) if args.init else trained[-1], args.real_seed or len(trained) + 1
        if args.deepen:
            init = deepened(init, args.deepen, work)
        recipe = Path(args.real_recipe)
        train_stage(init, recipe, out, args.real_updates, work, flags, seed, sets["train"], sets["valid"])
        trained.append(out)
    lm = phone_lm(trained[-1], work, args.lm_order) if args.lm_order else None
    final = stored_in_float16(trained[-1]) if args.storage == "float16" else trained[-1]
    results = {name: evaluate(final, manifest, work) for name, manifest in tests.items()}
    greedy = {name: evaluate(final, m, work, greedy=True)["per"] for name, m in tests.items()} if lm else {}
    before = (
        {name: evaluate(Path(args.init), m, work, greedy=True)["per"] for name, m in tests.items()} if args.init else {}
    )
    summary = {
        "per": results,
        "per_greedy": greedy,
        "per_init": before,
        "phone_lm": lm,
        "command": " ".join(["python", "recipes/demo_model.py"] + sys.argv[1:]),
        "stages": [str(d.relative_to(work)) for d in trained],
        "model": str(final.relative_to(work)),
        "storage": args.storage,
        "init": args.init,
        "init_commit": args.init_commit,
        "deepen": args.deepen,
        "left_out": left_out,
        "voice_change": bool(real) and args.voice_change,
        "real_recipe": str(Path(args.real_recipe).resolve().relative_to(ROOT)) if real else None,
        "cpu": cpu_description() if args.device == "cpu" else machine_description(args.device),
    }
    (work / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    if not args.skip_bundle:
        bundle(work)


def synthesize_espeak_sets(work: Path, copies: int) -> None:
    from unispeech.data import sentence_splits
    from unispeech.synth import TRAIN_VARIANTS, UNSEEN_VARIANT, synthesize_corpus

    splits = sentence_splits(DATA, VALID_SENTENCES)
    sets = {
        "train": (splits["train"], TRAIN_VARIANTS, copies, 1),
        "valid": (splits["valid"], TRAIN_VARIANTS, 1, 2),
        "test": (splits["test"], TRAIN_VARIANTS, 1, 3),
        "test-unseen-voice": (splits["test"], (UNSEEN_VARIANT,), 1, 4),
    }
    for name, (sentences, variants, n, seed) in sets.items():
        synthesize_corpus(sentences, work / name, variants=variants, copies=n, seed=seed)


def real_voice_sets(work: Path, args) -> dict:
    """Held-out splits of every real-voice source, augmented copies of their training parts, and the mixed
    training / validation manifests (espeak-ng's sets plus those). RHVoice's test utterances are those whose
    sentences no espeak-ng training set has (data/ky/val.text and the espeak-ng validation sentences)."""
    from unispeech import corpora
    from unispeech.augment import PRAAT_REQUIREMENT, augment_corpus, other_voices_set
    from unispeech.data import merge_manifests, sentence_splits, write_manifest
    from unispeech.g2p import CAPITALS_WORD, phonemize

    if args.voice_change or args.rhvoice:
        ensure_installed("parselmouth", PRAAT_REQUIREMENT)
    splits = sentence_splits(DATA, VALID_SENTENCES)
    unseen = set(splits["test"]) | set(splits["valid"])
    parts: dict[str, dict[str, list[dict]]] = {}
    left_out: dict[str, int] = {}
    if args.rhvoice:
        # abbreviations (УКМК, ТИЗОсунда): how the voice says them is not in the text, so no G2P labels them
        every = corpora.rhvoice_rows(args.rhvoice)
        rows = [r for r in every if not CAPITALS_WORD.search(r["text"])]
        left_out["rhvoice abbreviations"] = len(every) - len(rows)
        for row, phones in zip(rows, phonemize([r["text"] for r in rows])):
            row["phones"] = " ".join(phones)
        rows = [r for r in rows if r["phones"]]
        test = [r for r in rows if r["text"] in unseen]
        rest = [r for r in rows if r["text"] not in unseen]
        valid = sorted(rest, key=lambda r: r["voice"])[::36]  # both voices, in metadata order within each
        held = {r["id"] for r in valid}
        parts["rhvoice"] = {"test": test, "valid": valid, "train": [r for r in rest if r["id"] not in held]}
    if args.festvox_ru:
        folder = Path(args.festvox_ru)
        rows = corpora.festvox_ru_rows(
            corpora.fetch_festvox_ru(work / "festvox-ru") if folder.name == "fetch" else folder
        )
        parts["festvox-ru"] = {"test": rows[::10], "valid": rows[5::30], "train": [r for i, r in enumerate(rows)
                               if i % 10 and i % 30 != 5]}  # fmt: skip
    if (
        args.klettres
    ):  # real speakers of other languages, isolated letters and syllables: one test set, less those trained on
        folder = args.klettres
        if folder == "fetch":
            folder = corpora.fetch_deb(corpora.KLETTRES_PACKAGE, work / "klettres-data", corpora.KLETTRES_DIR, "cs")
        rows, left_out["klettres unlabelled"] = corpora.klettres_rows(folder)
        trained = set(args.klettres_train.split(",")) if args.klettres_train else set()
        test = [{**r, "test_set": "klettres"} for r in rows if r["language"] not in trained]
        parts["klettres"] = {"test": test, "valid": [], "train": [r for r in rows if r["language"] in trained]}
    if args.festival:
        voices = args.festival_voices.split(",") if args.festival_voices else None
        parts["festival"] = festival_sets(work, splits, args.festival_sentences, voices)
    if args.mbrola or args.mbrola_train or args.mbrola_tuning:
        trained, tuning = (v.split(",") if v else [] for v in (args.mbrola_train, args.mbrola_tuning))
        voices = (args.mbrola.split(",") if args.mbrola else []) + trained + tuning
        parts["mbrola"] = mbrola_sets(work, splits, voices, trained, args.mbrola_sentences, tuning)
    train = [work / "train" / "manifest.jsonl"] + [Path(m) for m in args.extra_data]
    valid = [work / "valid" / "manifest.jsonl"]
    tests = {}
    for corpus, split in parts.items():
        if split["train"]:  # (a source of test sets only has none)
            out = work / f"train-{corpus}"
            train.append(augment_corpus(split["train"], out, args.real_copies, 11, voices=args.voice_change))
            valid.append(write_manifest(split["valid"], work / f"valid-{corpus}" / "manifest.jsonl"))
        if split.get("tuning"):
            write_manifest(split.pop("tuning"), work / "valid-unseen-voices" / "manifest.jsonl")
        for voice in sorted({r.get("test_set", r["voice"]) for r in split["test"]}):
            rows = [r for r in split["test"] if r.get("test_set", r["voice"]) == voice]
            tests[f"test-{voice}"] = write_manifest(rows, work / f"test-{voice}" / "manifest.jsonl")
    if "rhvoice" in parts:  # the same held-out recordings in simulated unseen voices (pitch, formants)
        tests["test-rhvoice-other-voices"] = other_voices_set(
            parts["rhvoice"]["test"], work / "test-rhvoice-other-voices", 13
        )
    return {
        "train": merge_manifests(train, work / "train-mixed" / "manifest.jsonl"),
        "valid": merge_manifests(valid, work / "valid-mixed" / "manifest.jsonl"),
        "tests": tests,
        "left_out": left_out,
    }


def festival_sets(
    work: Path, splits: dict[str, list[str]], per_voice: int, trained: list[str] | None = None
) -> dict[str, list[dict]]:
    """Festival's voices (unispeech/festival.py) reading Kyrgyz: each `trained` voice (default: those not in
    HELD_OUT_VOICES) its own `per_voice` of espeak-ng's training sentences, 8 validation ones and 20 held-out
    ones (one test set for all of them); each other voice the same 120 held-out sentences and nothing else (a
    test set per language: UNSEEN_TEST_SETS). Each voice's reading is made once per set of sentences
    (`work/festival`)."""
    import random

    from unispeech.festival import HELD_OUT_VOICES, LABELLING, VOICES, install, request, speak

    trained = trained or [v for v in VOICES if v not in HELD_OUT_VOICES]
    unknown = sorted(set(trained) - set(VOICES))
    if unknown:
        raise SystemExit(f"--festival-voices: unknown {', '.join(unknown)} (known: {', '.join(VOICES)})")
    install(list(VOICES))
    rng = random.Random(17)
    # 200 per voice first, then validation and test: so those two are the same whatever `per_voice` is
    first = rng.sample(splits["train"], 200 * len(trained))
    valid, test = rng.sample(splits["valid"], 8 * len(trained)), rng.sample(splits["test"], 120)
    more = max(per_voice - 200, 0)
    taken = set(first)
    extra = random.Random(18).sample([s for s in splits["train"] if s not in taken], more * len(trained))
    asked = {voice: {"test": test} for voice in VOICES if voice not in trained}
    for n, voice in enumerate(trained):
        train = first[n * 200 : (n + 1) * 200][:per_voice] + extra[n * more : (n + 1) * more]
        asked[voice] = {"train": train, "valid": valid[n * 8 : (n + 1) * 8], "test": test[n * 20 : (n + 1) * 20]}
    parts: dict[str, list[dict]] = {"train": [], "valid": [], "test": []}
    for voice, sets in asked.items():
        for split, sentences in sets.items():
            out = work / "festival" / f"{voice}-{split}"
            requests = [request(text, voice) for text in sentences]
            make = functools.partial(speak, sentences, voice, out)
            rows = reading(out, sentences, requests, make, split, LABELLING)
            test_set = "festival-seen-voices" if voice in trained else UNSEEN_TEST_SETS[VOICES[voice].language]
            parts[split] += [{**r, "test_set": test_set} if split == "test" else r for r in rows]
    return parts


def mbrola_sets(
    work: Path,
    splits: dict[str, list[str]],
    voices: list[str],
    trained: list[str],
    per_voice: int,
    tuning: list[str] = (),
) -> dict[str, list[dict]]:
    """MBROLA's voices (unispeech/mbrola.py) saying Kyrgyz: each `trained` voice its own `per_voice` of the
    training sentences, 8 validation and 20 held-out ones (test set `mbrola-seen-voices`); each `tuning` voice
    the same TUNING_SENTENCES validation sentences (the "tuning" split: the phone LM's unseen voices); every other
    voice the same 120 held-out sentences, a test set per language (`mbrola-LANGUAGE`). The draws are slices of
    one shuffle, so a voice added at the end keeps the others' sentences."""
    import random

    from unispeech.mbrola import LABELLING, VOICES, fetch, pho, speak

    unknown = sorted(set(voices) - set(VOICES))
    if unknown:
        raise SystemExit(f"--mbrola: unknown {', '.join(unknown)} (known: {', '.join(VOICES)})")
    root = fetch(voices, work / "mbrola")
    held_out = random.Random(19).sample(splits["test"], 120)
    rng = random.Random(23)
    shuffled = {split: rng.sample(splits[split], len(splits[split])) for split in ("train", "valid", "test")}
    tuned_on = random.Random(29).sample(splits["valid"], min(TUNING_SENTENCES, len(splits["valid"])))
    asked = {voice: {"test": held_out} for voice in voices if voice not in trained and voice not in tuning}
    asked |= {voice: {"tuning": tuned_on} for voice in tuning}
    for n, voice in enumerate(trained):
        counts = {"train": per_voice, "valid": 8, "test": 20}
        asked[voice] = {split: shuffled[split][n * k : (n + 1) * k] for split, k in counts.items()}
    parts: dict[str, list[dict]] = {"train": [], "valid": [], "test": [], "tuning": []}
    for voice, sets in asked.items():
        language = VOICES[voice].language.name.lower()
        name = "mbrola-seen-voices" if voice in trained else f"mbrola-{language}"
        for split, sentences in sets.items():
            out = work / "mbrola-readings" / (voice if split == "test" and voice not in trained else f"{voice}-{split}")
            requests = [pho(text, voice)[0] for text in sentences]
            make = functools.partial(speak, sentences, voice, root, out)
            rows = reading(out, sentences, requests, make, split, LABELLING)
            parts[split] += [{**r, "test_set": name} if split == "test" else r for r in rows]
    return parts


def reading(out: Path, sentences: list[str], requests: list[str], make, split: str, labelling: int) -> list[dict]:
    """A voice's reading of `sentences` (`out`/manifest.jsonl), made by `make()` only when it was not made from
    the same sentences and requests (what the voice was asked: a spelling or phones) and labelled by the same
    rules (`labelling`, the voice module's LABELLING), which sentences.json beside it keeps. A small
    validation or test set of which the voice said nothing (every sentence needed a diphone it lacks:
    suo_fi_lj says ~1 in 3) is an empty set, not the end of the recipe."""
    from unispeech.data import write_manifest
    from unispeech.festival import FestivalError
    from unispeech.mbrola import MbrolaError

    manifest, made_of = out / "manifest.jsonl", out / "sentences.json"
    wanted = {"sentences": sentences, "asked": requests, "labelling": labelling}
    if not (manifest.is_file() and made_of.is_file() and _same(json.loads(made_of.read_text("utf-8")), wanted)):
        try:
            rows = make()
        except (FestivalError, MbrolaError) as e:
            if split == "train":
                raise
            print(f"{out.name}: none of {len(sentences)} said in full ({e}); an empty set", flush=True)
            rows = []
        write_manifest(rows, manifest)
        made_of.write_text(json.dumps(wanted, ensure_ascii=False), encoding="utf-8")
    return [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]


def _same(made_of: dict | list, wanted: dict) -> bool:
    """Whether a reading was made from the wanted sentences, requests and labelling (readings made before the
    requests were kept, a bare list of sentences, are taken on their sentences alone; those made before the
    labelling was kept, on labelling 1)."""
    if isinstance(made_of, list):
        return made_of == wanted["sentences"] and wanted["labelling"] == 1
    return {"labelling": 1, **made_of} == wanted


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


def write_whole_folder(out: Path, write) -> None:
    """`write(folder)` into a scratch folder, then put it in `out`'s place: an interrupted run leaves no
    half-written model folder that the next run would take as done."""
    scratch = out.with_name(out.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    write(scratch)
    shutil.rmtree(out, ignore_errors=True)
    scratch.rename(out)


def ensure_installed(module: str, requirement: str) -> None:
    """Install a training-time extra (pyproject's `train` extra) the recipe needs, if it is missing."""
    try:
        __import__(module)
    except ImportError:
        run([sys.executable, "-m", "pip", "install", requirement])


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
