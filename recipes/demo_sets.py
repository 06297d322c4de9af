"""The demo model's data sets (recipes/demo_model.py): espeak-ng's synthetic Kyrgyz, and every real-voice source's
held-out splits, augmented training copies and the mixed training / validation manifests."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from demo_descriptions import UNSEEN_TEST_SETS

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "ky"
VALID_SENTENCES = 150
TUNING_SENTENCES = 80  # validation sentences said by each --mbrola-tuning voice
NOT_AUGMENTED = {"rhvoice-voices"}  # sources whose training clips enter the mix as made (each its own voice already)


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
    training / validation manifests (espeak-ng's sets plus those)."""
    from unispeech.augment import PRAAT_REQUIREMENT, augment_corpus, other_voices_set
    from unispeech.data import merge_manifests, write_manifest

    if args.voice_change or args.rhvoice:
        ensure_installed("parselmouth", PRAAT_REQUIREMENT)
    parts, left_out = source_parts(work, args)
    train = [work / "train" / "manifest.jsonl"] + [Path(m) for m in args.extra_data]
    valid = [work / "valid" / "manifest.jsonl"]
    tests = {}
    for corpus, split in parts.items():
        if corpus in NOT_AUGMENTED:
            train.append(write_manifest(split["train"], work / f"train-{corpus}" / "manifest.jsonl"))
        elif split["train"]:  # (a source of test sets only has none)
            copies = augment_corpus(
                split["train"],
                work / f"train-{corpus}",
                args.real_copies,
                11,
                voices=args.voice_change,
                formant_ratios=args.formant_ratios,
            )
            train.append(copies)
            valid.append(write_manifest(split["valid"], work / f"valid-{corpus}" / "manifest.jsonl"))
        if split.get("tuning"):
            write_manifest(split.pop("tuning"), work / "valid-unseen-voices" / "manifest.jsonl")
        for voice in sorted({r.get("test_set", r["voice"]) for r in split["test"]}):
            rows = [r for r in split["test"] if r.get("test_set", r["voice"]) == voice]
            tests[f"test-{voice}"] = write_manifest(rows, work / f"test-{voice}" / "manifest.jsonl")
    for corpus, times in repeats(args.real_repeat).items():  # weighted up: their copies again
        if not parts.get(corpus, {}).get("train"):
            raise SystemExit(f"--real-repeat {corpus}: not a real-voice source trained on here ({', '.join(parts)})")
        train += [work / f"train-{corpus}" / "manifest.jsonl"] * (times - 1)
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


def source_parts(work: Path, args) -> tuple[dict[str, dict[str, list[dict]]], dict[str, int]]:
    """Each real-voice source asked for, read and split into test / valid / train rows (train empty for a source
    of test sets only), and how many of each source's recordings were left out, and why."""
    from unispeech import corpora
    from unispeech.data import sentence_splits

    splits = sentence_splits(DATA, VALID_SENTENCES)
    parts: dict[str, dict[str, list[dict]]] = {}
    left_out: dict[str, int] = {}
    if args.rhvoice:
        parts["rhvoice"], left_out["rhvoice abbreviations"] = rhvoice_parts(args.rhvoice, splits)
    if args.festvox_ru:
        folder = corpora.fetch_festvox_ru(work / "festvox-ru") if args.festvox_ru == "fetch" else args.festvox_ru
        parts["festvox-ru"] = every_tenth_line(corpora.festvox_ru_rows(folder), None, trained=True)
    if args.klettres:  # real speakers of other languages: one test set of those not trained on
        folder = corpora.fetch_klettres(work / "klettres-data") if args.klettres == "fetch" else args.klettres
        rows, left_out["klettres unlabelled"] = corpora.klettres_rows(folder)
        trained = set(args.klettres_train.split(",")) if args.klettres_train else set()
        test = [{**r, "test_set": "klettres"} for r in rows if r["language"] not in trained]
        parts["klettres"] = {"test": test, "valid": [], "train": [r for r in rows if r["language"] in trained]}
    if args.fillets:  # actors speaking sentences: unseen speakers, or the trained ones' held-out levels
        folder = corpora.fetch_fillets(work / "fillets-data") if args.fillets == "fetch" else args.fillets
        rows, left_out["fillets unlabelled"] = corpora.fillets_rows(folder)
        parts["fillets"] = speaker_splits(rows, set(args.fillets_train.split(",")) if args.fillets_train else set())
    if args.asterisk:  # professional speakers saying telephone prompts, as Fish Fillets' actors
        ensure_installed("G722", corpora.G722_REQUIREMENT)
        folder = corpora.fetch_asterisk(work / "asterisk-data") if args.asterisk == "fetch" else args.asterisk
        rows, left_out["asterisk unlabelled"] = corpora.asterisk_rows(folder, work / "asterisk-wav")
        trained = set(args.asterisk_train.split(",")) if args.asterisk_train else set()
        parts["asterisk"] = speaker_splits(rows, trained, "unseen-prompts")
    if args.fotaq:  # actors speaking English dialogue: every tenth line a test set, unseen speakers unless trained on
        from unispeech import fotaq

        folder = fotaq.fetch_fotaq(work / "fotaq-data") if args.fotaq == "fetch" else args.fotaq
        rows, left_out["fotaq unlabelled"] = fotaq.fotaq_rows(folder, work / "fotaq-wav")
        name = "fotaq-unseen-lines" if args.fotaq_train else "fotaq"
        parts["fotaq"] = every_tenth_line(rows, name, trained=bool(args.fotaq_train))
    if args.festival:
        voices = args.festival_voices.split(",") if args.festival_voices else None
        parts["festival"] = festival_sets(work, splits, args.festival_sentences, voices)
    if args.mbrola or args.mbrola_train or args.mbrola_tuning:
        trained, tuning = (v.split(",") if v else [] for v in (args.mbrola_train, args.mbrola_tuning))
        voices = (args.mbrola.split(",") if args.mbrola else []) + trained + tuning
        parts["mbrola"] = mbrola_sets(work, splits, voices, trained, args.mbrola_sentences, tuning)
    if args.rhvoice_voices:  # after the sources whose sentences they read
        from demo_rhvoice import rhvoice_voice_parts

        parts["rhvoice-voices"] = rhvoice_voice_parts(work, args.rhvoice_voices.split(","), parts, args.rhvoice_engine)
    return parts, left_out


def rhvoice_parts(folder: str, splits: dict[str, list[str]]) -> tuple[dict[str, list[dict]], int]:
    """RHVoice's recordings labelled by our G2P; the test set is those whose sentences no espeak-ng training set
    has (data/ky/val.text and the espeak-ng validation sentences). Also how many were left out as abbreviations."""
    from unispeech import corpora
    from unispeech.g2p import CAPITALS_WORD, phonemize

    unseen = set(splits["test"]) | set(splits["valid"])
    # abbreviations (УКМК, ТИЗОсунда): how the voice says them is not in the text, so no G2P labels them
    every = corpora.rhvoice_rows(folder)
    rows = [r for r in every if not CAPITALS_WORD.search(r["text"])]
    abbreviations = len(every) - len(rows)
    for row, phones in zip(rows, phonemize([r["text"] for r in rows])):
        row["phones"] = " ".join(phones)
    rows = [r for r in rows if r["phones"]]
    test = [r for r in rows if r["text"] in unseen]
    rest = [r for r in rows if r["text"] not in unseen]
    valid = sorted(rest, key=lambda r: r["voice"])[::36]  # both voices, in metadata order within each
    held = {r["id"] for r in valid}
    return {"test": test, "valid": valid, "train": [r for r in rest if r["id"] not in held]}, abbreviations


def every_tenth_line(rows: list[dict], test_set: str | None, trained: bool) -> dict[str, list[dict]]:
    """Every tenth row a test set (named `test_set`, else by voice); if trained on, every thirtieth from the sixth
    validates and the rest train."""
    test = [{**r, "test_set": test_set} for r in rows[::10]] if test_set else rows[::10]
    split = {"test": test, "valid": [], "train": []}
    if trained:
        split["valid"] = rows[5::30]
        split["train"] = [r for i, r in enumerate(rows) if i % 10 and i % 30 != 5]
    return split


def repeats(spec: str | None) -> dict[str, int]:
    """`--real-repeat festvox-ru,fillets=8`: how many times each named source's copies enter the training mix (a bare
    name: twice)."""
    times: dict[str, int] = {}
    for item in spec.split(",") if spec else []:
        corpus, equals, count = item.partition("=")
        count = count if equals else "2"
        if not count.isdigit() or int(count) < 2:
            raise SystemExit(f"--real-repeat {item}: give SOURCE or SOURCE=N with a whole N of 2 or more")
        times[corpus] = int(count)
    return times


def speaker_splits(rows: list[dict], trained: set[str], held_out: str = "unseen-levels") -> dict[str, list[dict]]:
    """A corpus of a few speakers per language (Fish Fillets' lines, Asterisk's prompts): a language not trained on
    is one test set of unseen speakers (`test-CORPUS-LANG`); a trained one keeps every fifth `level` (a room of the
    game, a family of prompts) out as `test-CORPUS-LANG-<held_out>` (the same speakers, lines never heard) and
    every 30th other line for validation."""
    split: dict[str, list[dict]] = {"test": [], "valid": [], "train": []}
    for corpus, lang in sorted({(r["corpus"], r["language"]) for r in rows}):
        ours = [r for r in rows if r["language"] == lang and r["corpus"] == corpus]
        if lang not in trained:
            split["test"] += [{**r, "test_set": f"{corpus}-{lang}"} for r in ours]
            continue
        held = set(sorted({r["level"] for r in ours})[::5])
        split["test"] += [{**r, "test_set": f"{corpus}-{lang}-{held_out}"} for r in ours if r["level"] in held]
        rest = [r for r in ours if r["level"] not in held]
        split["valid"] += rest[::30]
        split["train"] += [r for i, r in enumerate(rest) if i % 30]
    return split


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


def run(cmd: list[str], stdout=None) -> float:
    """Run a step, echoing it (to `stdout` with its output, default ours); -> its wall seconds."""
    print("$", " ".join(cmd), file=stdout or sys.stdout, flush=True)
    started = time.time()
    subprocess.run(cmd, check=True, stdout=stdout)
    return time.time() - started


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
