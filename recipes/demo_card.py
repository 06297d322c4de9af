"""The demo model's bundle: copy the trained model into the package and write its model card from what the
recipe measured (recipes/demo_model.py writes `summary.json`; every figure on the card comes from there,
from the training logs and from the manifests)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from demo_card_data import data_table, festival_voices, manifest_rows, mbrola_voices, training_rows
from demo_descriptions import (
    LANGUAGE_NAMES,
    SPEAKER_CORPORA,
    TEST_SETS,
    UNSEEN_TEST_SETS,
    and_joined,
    number_word,
    real_speakers,
)
from demo_rhvoice import VOICES as RHVOICE_VOICES
from demo_rhvoice import engine_note, test_set_descriptions, trained_voices

from unispeech import mbrola
from unispeech.beam import DECODING_FILE, PHONE_LM_FILE
from unispeech.festival import VOICES
from unispeech.train.log import read_log

ROOT = Path(__file__).resolve().parents[1]
ASSET = ROOT / "unispeech" / "assets" / "default-model"
MODEL_FILES = (
    "config.json",
    "model.safetensors",
    "vocab.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "preprocessor_config.json",
)
DECODING_FILES = (DECODING_FILE, PHONE_LM_FILE)  # the model's own decoding, when it has one


def bundle(work: Path) -> None:
    """Copy the evaluated model (the last stage's, as stored: `summary["model"]`) into the package and write
    MODEL_CARD.md."""
    summary = json.loads((work / "summary.json").read_text())
    stages = [work / s for s in summary["stages"]]
    model_dir = work / summary.get("model", summary["stages"][-1])
    ASSET.mkdir(parents=True, exist_ok=True)
    for f in MODEL_FILES:
        shutil.copy2(model_dir / f, ASSET / f)
    for f in DECODING_FILES:
        if (model_dir / f).is_file():
            shutil.copy2(model_dir / f, ASSET / f)
        else:
            (ASSET / f).unlink(missing_ok=True)
    (ASSET / "MODEL_CARD.md").write_text(model_card(work, summary, stages), encoding="utf-8")
    print(f"bundled into {ASSET}")


def model_card(work: Path, summary: dict, stages: list[Path]) -> str:
    import torch
    from safetensors.torch import load_file

    config = json.loads((stages[-1] / "config.json").read_text())
    params = sum(t.numel() for t in load_file(stages[-1] / "model.safetensors").values())
    logs = [read_log(d) for d in stages]
    best = min((r for r in logs[-1] if r.get("valid_per") is not None), key=lambda r: r["valid_per"])
    stage_lines = [
        f"  - `{s.name}`: {max(r['step'] for r in log)} updates, {logged_seconds(log) / 60:.0f} min of wall time "
        f"(median {median_update_seconds(log):.2f} s an update; {_recipe_of(s, summary)})"
        for s, log in zip(stages, logs)
    ]
    storage = summary.get("storage", "float32")
    training = training_rows(work)
    trained = festival_voices(training)
    festival = bool(trained)
    held_out = [v for v in VOICES if v not in trained]
    unseen_mbrola = sorted(
        {
            r["voice"].removeprefix("mbrola-")
            for name in summary["per"]
            if name in MBROLA_SETS
            for r in manifest_rows(work / name)
        }
    )
    tuning = _tuning_voices(summary.get("phone_lm"))
    return MODEL_CARD.format(
        storage=storage
        + (" (half the package; loaded back exactly, then run as any model)" if storage == "float16" else ""),
        params=params / 1e6,
        hidden=config["hidden_size"],
        layers=config["num_hidden_layers"],
        heads=config["num_attention_heads"],
        ffn=config["intermediate_size"],
        conv=config["conv_dim"],
        data=data_table(training),
        start=starting_point(summary),
        stages="\n".join(stage_lines),
        best_step=best["step"],
        valid_per=100 * best["valid_per"],
        cpu=summary.get("cpu", "unknown CPU"),
        torch=torch.__version__,
        command=summary["command"].replace(" --skip-bundle", ""),  # what makes (and bundles) this model
        engine=engine_note(summary["command"]),
        results=result_rows(work, summary, trained),
        work=_shown(work),
        abbreviations=summary.get("left_out", {}).get("rhvoice abbreviations", "none counted"),
        festival_held_out=(f"; Festival's voices {', '.join(held_out)}" if festival else "")
        + (f"; MBROLA's voices {', '.join(unseen_mbrola)}" if unseen_mbrola else "")
        + (
            f"; MBROLA's {', '.join(tuning)}, the phone LM's unseen tuning voice{'s' * (len(tuning) > 1)}"
            if tuning
            else ""
        )
        + speaker_corpora_held_out(training),
        festival_voices=_listed_on(real_speakers_heard(training)),
        real_unseen=real_unseen_text(summary),
        voice_change=voice_change_text(summary),
        as_made="; RHVoice's other voices' clips as made" * bool(trained_voices(training)),
        batch_augmentation=batch_augmentation_text(summary),
        decoding=decoding_text(summary.get("phone_lm")),
    )


def real_speakers_heard(training: list[dict]) -> list[str]:
    """The card's first sentence goes on with these: the real speakers (of KLettres, Fish Fillets, Asterisk,
    Flight of the Amazon Queen, RHVoice's other voices, Festival, MBROLA) that the training rows hold, by source."""
    klettres = sorted({r["language"] for r in training if r.get("corpus") == "klettres"})
    fillets = sorted({r["language"] for r in training if r.get("corpus") == "fillets"})
    asterisk = sorted({r["language"] for r in training if r.get("corpus") == "asterisk"})
    characters = {r["voice"] for r in training if r.get("corpus") == "fotaq"}
    engine_voices = trained_voices(training)
    festival = festival_voices(training)
    said_by = mbrola_voices(training)
    return (
        [f"{real_speakers(len(klettres))} of other languages saying letters and syllables (KLettres: "
         f"{', '.join(klettres)})"] * bool(klettres)
        + [f"actors speaking {and_joined([LANGUAGE_NAMES[x] for x in fillets])} dialogue "
           "(Fish Fillets)"] * bool(fillets)
        + [f"professional speakers saying {and_joined([LANGUAGE_NAMES[x] for x in asterisk])} telephone prompts "
           "(Asterisk)"] * bool(asterisk)
        + [f"actors voicing {number_word(len(characters))} characters in English (Flight of the Amazon "
           "Queen)"] * bool(characters)
        + [f"RHVoice's voices of {number_word(len(engine_voices))} more real speaker{'s' * (len(engine_voices) != 1)}: "
           f"{and_joined([f'{v} ({RHVOICE_VOICES[v].speaks})' for v in engine_voices])}"] * bool(engine_voices)
        + [f"Festival's voices of {real_speakers(len(festival))} "
           f"({and_joined(sorted({LANGUAGE_NAMES[VOICES[v].language] for v in festival}))}) "
           "reading Kyrgyz"] * bool(festival)
        + [f"MBROLA's voices of {number_word(len(said_by))} more "
           f"({and_joined(sorted({mbrola.VOICES[v].language.name for v in said_by}))}) "
           "given its phones"] * bool(said_by)
    )  # fmt: skip


def speaker_corpora_held_out(training: list[dict]) -> str:
    """What the card's held-out line adds for Fish Fillets and Asterisk when trained on: a part of each trained
    language's lines, and its languages not trained on (their speakers unseen)."""
    trained = [c for c in SPEAKER_CORPORA if any(r.get("corpus") == c for r in training)]
    return "".join(
        f"; {SPEAKER_CORPORA[c][0]} {SPEAKER_CORPORA[c][2]} in each language trained on, and all of its others"
        for c in trained
    )


def real_unseen_text(summary: dict) -> str:
    """The paragraph under the card's table on the real speakers that no training row holds, saying sentences
    (Fish Fillets' and Asterisk's languages not trained on): the share of their phones it gets right, greedy."""
    shares = []
    for name, right in summary.get("phones_right_greedy", {}).items():
        corpus, _, language = name.removeprefix("test-").partition("-")
        if corpus in SPEAKER_CORPORA and language in LANGUAGE_NAMES:
            whose, speakers, _ = SPEAKER_CORPORA[corpus]
            shares.append(f"{whose} {LANGUAGE_NAMES[language]} {speakers} {100 * right:.1f} %")
    if not shares:
        return ""
    return (
        "\nOn real speakers it never heard, saying sentences (the nearest thing here to a voice reading into the "
        f"Record button), it gets this share of the phones right (greedy): {and_joined(shares)}. On your own voice "
        "expect most phones wrong; adapting the model to your voice from a few minutes of it, with no transcript, wins "
        "back a few points (the web page's Adapt to my voice button after a few sentences, or `unispeech adapt "
        "my-voice/*.wav --out my-voice`, then `--model my-voice`; docs/demo-model.md).\n"
    )


def starting_point(summary: dict) -> str:
    """Where the training began: random weights, or the model bundled at a commit (maybe grown first)."""
    if not summary.get("init"):
        return "from random weights"
    commit = summary.get("init_commit") or "COMMIT"
    start = (
        f"continued from `{summary['init']}`, the model bundled at commit {commit} (`mkdir -p INIT && "
        f"git archive {commit} unispeech/assets/default-model | tar -x --strip-components=3 -C INIT`)"
    )
    if summary.get("deepen"):
        start += (
            f", first grown to {summary['deepen']} transformer layers by new layers that start as identities "
            "(zero output projections, spread between the old ones: `unispeech.model.deepen`)"
        )
    return start


def result_rows(work: Path, summary: dict, trained: list[str]) -> str:
    """The card's PER table: each held-out set with its default decoding, greedy, and the start model greedy."""
    rows, described = [], TEST_SETS | test_set_descriptions()
    for name, result in summary["per"].items():
        if name in UNSEEN_FESTIVAL_SETS:
            kind, what = unseen_festival_row(UNSEEN_FESTIVAL_SETS[name], trained)
        elif name in MBROLA_SETS:
            kind, what = mbrola_row(MBROLA_SETS[name], work / name / "manifest.jsonl")
        else:
            kind, what = described.get(name, (name, ""))
        before = summary.get("per_init", {}).get(name)
        greedy = summary.get("per_greedy", {}).get(name)
        rows.append(
            f"| {kind} | {what} (`{_shown(work)}/{name}`) | {result['utterances']} | "
            f"**{100 * result['per']:.2f} %** | {_percent(greedy)} | {_percent(before)} |"
        )
    return "\n".join(rows)


UNSEEN_FESTIVAL_SETS = {f"test-{name}": language for language, name in UNSEEN_TEST_SETS.items()}


def unseen_festival_row(language: str, trained: list[str]) -> tuple[str, str]:
    """(voice type, description) of the test set of the Festival voices of `language` that were not trained on."""
    voices = [v for v in VOICES if VOICES[v].language == language and v not in trained]
    speakers = [VOICES[v].speaker.removeprefix("adult ") for v in voices]
    if len(voices) == 1:
        who = f"a real {speakers[0]}"
    elif len(set(speakers)) == 1:
        who = f"{number_word(len(voices))} real {speakers[0]}s".replace("mans", "men")
    else:
        who = "a real " + " and ".join(speakers)
    known = any(VOICES[v].language == language for v in trained)
    name = LANGUAGE_NAMES[language]
    how = (
        "given the Kyrgyz phones as the nearest English ones, with durations and pitch drawn by rule"
        if language == "en"
        else "reading Kyrgyz"
    )
    synthesis = and_joined(sorted({VOICES[v].synthesis for v in voices}))
    kind = (
        f"Festival's {name} {synthesis} voice{'s' if len(voices) > 1 else ''} "
        f"{' and '.join(v.removesuffix('_diphone') for v in voices)} ({who}; never trained on"
        f"{'' if known else f', nor any {name}'}) {how} (mapped phones)"
    )
    what = ["unseen sentences", "unseen speakers" if len(voices) > 1 else "unseen speaker"]
    if not known:
        what.append("unseen language" if language == "en" else "unseen language front end")
    if language == "en":
        what.append("rule prosody")
    return kind, ", ".join(what)


MBROLA_SETS = {f"test-mbrola-{language.name.lower()}": language.name for language in mbrola.LANGUAGES}


def mbrola_row(language: str, manifest: Path) -> tuple[str, str]:
    """(voice type, description) of the test set of MBROLA's voices of `language` (its name; the voices in
    `manifest`)."""
    said = {r["voice"].removeprefix("mbrola-") for r in manifest_rows(manifest.parent)}
    voices = [v for v in mbrola.VOICES if v in said]
    who = " and ".join(mbrola.VOICES[v].speaker.removeprefix("adult ") for v in voices)
    made = "; ".join(f"{v}: Debian `{mbrola.VOICES[v].package}`, {mbrola.VOICES[v].made_by}" for v in voices)
    kind = (
        f"MBROLA's {language} diphone voice{'s' if len(voices) > 1 else ''} "
        f"{' and '.join(voices)} (a real {who}; {made}; {mbrola.LICENSE}; never trained on) given the Kyrgyz "
        "phones as the nearest ones of the language, with durations and pitch drawn by rule (the phones given)"
    )
    what = "unseen sentences, unseen speaker" + ("s" if len(voices) > 1 else "") + ", unseen language, rule prosody"
    return kind, what


def _listed_on(items: list[str]) -> str:
    """Items that continue a list already begun: ", a, b and c" (or "" for none)."""
    return "".join(f", {item}" for item in items[:-1]) + (f" and {items[-1]}" if items else "")


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"


def decoding_text(lm: dict | None) -> str:
    """The card's line on the default decoding: the phone LM the recipe made (recipes/demo_lm.py), or greedy."""
    if not lm:
        return "greedy (the model ships no phone LM)"
    tuned = ", ".join(f"`{name}` ({n})" for name, n in lm["tuned_on"].items())
    return (
        f"beam search (width 8) with the model's own {lm['order']}-gram phone LM (`phone_lm.arpa`, "
        f"{lm['ngrams']} n-grams, Witten-Bell) of {lm['sentences']} G2P'd Kyrgyz sentences of data/ky (no "
        f"held-out or tuning sentence among them); LM weight {lm['lm_weight']}, insertion bonus "
        f"{lm['insertion_bonus']} per phone (`unispeech_decoding.json`), chosen on the validation "
        f"utterances {tuned} by the mean of their PERs (each set counts once{_unseen(lm)}): there "
        f"{100 * lm['tuning_per_greedy']:.2f} % greedy, "
        f"{100 * lm['tuning_per_beam_lm']:.2f} % with the LM. `--decoder greedy` (or "
        f"`load_model(decoder=GreedyDecoder())`) decodes without it. Made by `python recipes/demo_lm.py`"
    )


def _tuning_voices(lm: dict | None) -> list[str]:
    """The MBROLA voices of the phone LM's `valid-unseen-voices` tuning set (none without an LM or such set)."""
    return [v.removeprefix("mbrola-") for v in (lm or {}).get("unseen_voices", [])]


def _unseen(lm: dict) -> str:
    """What the LM's tuning set of unseen voices is, where it had one."""
    voices = _tuning_voices(lm)
    if not voices:
        return ""
    named = and_joined([f"{v} ({mbrola.VOICES[v].language.name}; Debian `{mbrola.VOICES[v].package}`)" for v in voices])
    return f"; `valid-unseen-voices`: MBROLA's {named}, never trained on nor tested, {mbrola.LICENSE}"


def voice_change_text(summary: dict) -> str:
    """How the real-voice copies were given other voices, when they were (since v6)."""
    if not summary.get("voice_change"):
        return ""
    from unispeech.augment import FORMANT_RATIOS, PITCH_FACTORS

    low, high = summary.get("formant_ratios", FORMANT_RATIOS)
    return (
        f"voice changes (70 %: formants x{low}-{high}, pitch median "
        f"x{PITCH_FACTORS[0]}-{PITCH_FACTORS[1]}, Praat's PSOLA), "
    )


def batch_augmentation_text(summary: dict) -> str:
    """The last stage's noise and codec drawn anew for every batch (its recipe's [noise] table, since v7, and
    [codec] table, since v18), or nothing."""
    from unispeech.augment import CODECS
    from unispeech.train.finetune import load_recipe

    recipe = summary.get("real_recipe")
    recipe = load_recipe(ROOT / recipe) if recipe else None
    noise, codec = (recipe.noise, recipe.codec) if recipe else (None, None)
    text = ""
    if noise is not None:
        low, high = noise.snr_db
        text = (
            f"; the last stage also added noise drawn anew for every batch to {100 * noise.prob:.0f} % of its "
            f"utterances at {low:g}-{high:g} dB SNR, coloured (white to brown) or, for {100 * noise.babble:.0f} % "
            f"of them, babble from the batch's other utterances: `augment.add_batch_noise`"
        )
    if codec is not None:

        def levels(name: str) -> str:  # the bitrates measured at the default range only
            (low, high), spec = codec.levels(name), CODECS[name]
            return f"{low:g}-{high:g}" + (f", {spec.bitrates}" if (low, high) == spec.levels else "")

        text += (
            f"{'; then' if text else '; the last stage also'} sent {100 * codec.prob:.0f} % of the utterances "
            f"of every batch through a lossy codec, Opus ({100 * codec.opus:.0f} % of them; soundfile's "
            f"compression level {levels('opus')}) or MP3 ({levels('mp3')}): `augment.add_batch_codec`"
        )
    return text


def _recipe_of(stage: Path, summary: dict) -> str:
    names = {
        "model": "recipes/demo_recipe.toml",
        "model-real": summary.get("real_recipe") or "recipes/demo_recipe_real.toml",
    }
    if stage.name == summary.get("real_stage"):  # a further real-voice stage under its own name
        return f"`{summary.get('real_recipe')}`"
    return f"`{names.get(stage.name) or 'recipes/demo_recipe_stage2.toml'}`"


def _shown(path: Path) -> str:
    """A path as the card shows it: relative to the repository when inside it."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def median_update_seconds(log: list[dict]) -> float:
    """The median seconds an update took between logged rows: the training's pace without the time a stage
    spent paused (stopped while benchmarks ran) or validating."""
    import statistics

    rows = [r for r in log if "seconds" in r and "step" in r]
    paces = [
        (b["seconds"] - a["seconds"]) / (b["step"] - a["step"])
        for a, b in zip(rows, rows[1:])
        if b["step"] > a["step"] and b["seconds"] > a["seconds"]  # not across a resume, whose clock restarts
    ]
    return statistics.median(paces) if paces else float("nan")


def logged_seconds(log: list[dict]) -> float:
    """Wall seconds of one training stage from its train_log.jsonl rows. Each run's clock starts at zero, so
    a resumed stage is the sum of each run's last time; a killed run loses at most its last few updates."""
    total = last = 0.0
    for row in log:
        if "seconds" in row:
            if row["seconds"] < last:  # a new run (resume) began
                total += last
            last = row["seconds"]
    return total + last


MODEL_CARD = """# unispeech demo model (Kyrgyz phones; synthetic speech and a few real voices)

**A small model trained on little real speech.** It hears espeak-ng and RHVoice's two Kyrgyz voices, one
real (Russian) speaker{festival_voices}, but it has met no real Kyrgyz recording: on your own voice expect
many errors. For real Kyrgyz speech use `--model microsoft/unispeech-1350-en-17h-ky-ft-1h`. This model exists
so that the toolkit runs offline in seconds and so that the tests have a trained model whose outputs mean something.

- Architecture: UniSpeech / wav2vec 2.0 CTC, the layout of the real checkpoint (layer-norm feature
  encoder, stable layer norm), smaller: {params:.2f} M parameters, hidden {hidden}, {layers} layers,
  {heads} heads, FFN {ffn}, conv channels {conv}; weights stored as {storage}.
- Output: the real checkpoint's 43-token vocabulary (39 Kyrgyz phones, `<pad>` = CTC blank), so its
  phones are in the same notation.
- Training data of the last stage, by origin (augmented copies counted; espeak-ng clips carry random
  reverberation, noise and gain; the real-voice clips {voice_change}speed perturbation 0.9-1.1, narrow-band
  channels with mu-law codec, reverberation, noise and gain: `unispeech/augment.py`{as_made}{batch_augmentation}):

{data}

- Held out, never trained on: the 227 sentences of `data/ky/val.text` and the 150 espeak-ng validation
  sentences (RHVoice's test utterances are exactly those of its recordings whose sentence is one of them);
  espeak-ng's voice variant m3; every tenth festvox-ru utterance{festival_held_out}. RHVoice recordings whose text
  has an abbreviation (a word with two or more capitals: {abbreviations}) are left out of every split: how the voice
  says УКМК is not in the text, so no G2P can label them.
- Training, {start}:
{stages}
  best validation PER (the validation utterances of every training source together) {valid_per:.2f} % at
  update {best_step} of the last stage; bf16 autocast, on {cpu}, torch {torch}.
- Reproduce (resumable; re-run the same command after an interruption): `{command}`{engine}
- Default decoding: {decoding}.

## Measured PER (`unispeech evaluate`)

| voice type | held-out set | utterances | PER (default decoding) | greedy | the model it continued from (greedy) |
|---|---|---|---|---|---|
{results}
{real_unseen}
Commands: `unispeech evaluate --model unispeech/assets/default-model --data {work}/NAME/manifest.jsonl`
for each set above, after `python recipes/demo_model.py` (same options) has made the sets. The festvox-ru
figure counts errors against the mapped Russian phones, so part of it is the mapping, not the model; the
phone LM models Kyrgyz phone sequences, not Russian ones. The Festival figures count errors against the
phones the voice said (a Czech voice has no ө, ү or ы and says e, i instead).
"""
