"""PER equals an independent edit distance; `unispeech evaluate` reads Common Voice folders and reports."""

import functools
import json
import random

import jiwer
import pytest
import soundfile as sf

from unispeech.metrics import edit_ops as align
from unispeech.metrics import phone_error_rate

from .conftest import run_main, speechlike
from .test_g2p import reference

CASES = [
    (["a b c d", "e f"], ["a x c", "e f g"]),
    (["a b", ""], ["", "a"]),  # empty hypothesis; empty reference
    (["", ""], ["", ""]),
    (["k e r e k"], ["k e r e k"]),
]


@pytest.mark.parametrize("refs,hyps", CASES)
def test_per_matches_jiwer(refs, hyps):
    ours = phone_error_rate([r.split() for r in refs], [h.split() for h in hyps])
    theirs = jiwer.process_words(refs, hyps)
    assert (ours.substitutions, ours.deletions, ours.insertions) == (
        theirs.substitutions,
        theirs.deletions,
        theirs.insertions,
    )
    assert ours.correct == theirs.hits
    if ours.reference_phones:
        assert ours.per == pytest.approx(theirs.wer)


def test_per_matches_jiwer_on_random_phone_strings():
    rng = random.Random(0)
    phones = "a b c d e f".split()
    refs = [" ".join(rng.choices(phones, k=rng.randint(1, 12))) for _ in range(200)]
    hyps = [" ".join(rng.choices(phones, k=rng.randint(0, 12))) for _ in range(200)]
    ours = phone_error_rate([r.split() for r in refs], [h.split() for h in hyps])
    assert ours.per == pytest.approx(jiwer.wer(refs, hyps))


@functools.cache
def best_alignment(ref: tuple, hyp: tuple) -> tuple[int, int]:
    """(edits, -matches) of the best of all alignments of ref and hyp, by brute force over their suffixes."""
    if not ref or not hyp:
        return len(ref) + len(hyp), 0
    edits, matches = best_alignment(ref[1:], hyp[1:])
    same = ref[0] == hyp[0]
    skips = [(e + 1, m) for e, m in (best_alignment(ref[1:], hyp), best_alignment(ref, hyp[1:]))]
    return min([(edits + (not same), matches - same)] + skips)


def test_of_the_fewest_edit_alignments_the_one_with_most_matches_is_taken():
    # a tie-break must not decide how many phones were recognised right: "a b" / "b c" is D, =, I (one right),
    # not S, S (none right; jiwer's choice)
    assert [op for op, _, _ in align("a b".split(), "b c".split())] == ["D", "=", "I"]
    rng = random.Random(1)
    for _ in range(300):
        ref, hyp = rng.choices("abc", k=rng.randint(0, 7)), rng.choices("abc", k=rng.randint(0, 7))
        kinds = [op for op, _, _ in align(ref, hyp)]
        assert (len(kinds) - kinds.count("="), -kinds.count("=")) == best_alignment(tuple(ref), tuple(hyp))


def test_alignment_rebuilds_both_sides():
    ref, hyp = "q ɯ r ʁ ɯ z".split(), "q ɯ ʁ ɑ ɯ z s".split()
    ops = align(ref, hyp)
    assert [r for _, r, _ in ops if r is not None] == ref
    assert [h for _, _, h in ops if h is not None] == hyp


def build_common_voice(root, n_clips=6):
    """cv-corpus-x/ky/ with mp3 clips, test.tsv with real sentences, and deliberate problems."""
    folder = root / "cv-corpus-test" / "ky"
    (folder / "clips").mkdir(parents=True)
    texts, _ = reference("val")
    header = "client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccents\tlocale\tsegment"
    lines = [header]
    for i in range(n_clips):
        name = f"common_voice_ky_{1000 + i}.mp3"
        sf.write(folder / "clips" / name, speechlike(0.8 + 0.3 * i, seed=i), 48000 if i % 2 else 16000, format="MP3")
        lines.append(f"c{i}\t{name}\t{texts[i]}\t2\t0\t\t\t\tky\t")
    lines.append("cX\tcommon_voice_ky_missing.mp3\tЖок файл.\t2\t0\t\t\t\tky\t")  # no such clip
    (folder / "clips" / "common_voice_ky_corrupt.mp3").write_bytes(b"ID3" + bytes(200))
    lines.append("cY\tcommon_voice_ky_corrupt.mp3\tБузулган.\t2\t0\t\t\t\tky\t")  # corrupt clip
    sf.write(folder / "clips" / "common_voice_ky_dots.mp3", speechlike(1.0), 16000, format="MP3")
    lines.append("cZ\tcommon_voice_ky_dots.mp3\t...\t2\t0\t\t\t\tky\t")  # phonemizes to nothing
    lines.append("cW\tcommon_voice_ky_empty.mp3")  # a short row: no sentence
    (folder / "test.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root / "cv-corpus-test"


def test_evaluate_common_voice_folder_end_to_end(tiny_model_dir, tmp_path, capsys):
    data = build_common_voice(tmp_path)
    out = tmp_path / "report"
    code, stdout, err = run_main(
        ["evaluate", "--model", str(tiny_model_dir), "--data", str(data), "--out", str(out)], capsys
    )
    assert code == 0, err
    assert "PER" in stdout
    for name in ("report.json", "report.md", "per_phone_errors.png", "confusion.png", "utterances.jsonl"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    report = json.loads((out / "report.json").read_text())
    s = report["summary"]
    assert s["utterances"] == 6
    reasons = {k["id"]: k["reason"] for k in report["skipped"]}
    assert "no such file" in reasons["common_voice_ky_missing"]
    assert "not a readable audio file" in reasons["common_voice_ky_corrupt"]
    assert reasons["common_voice_ky_dots"] == "sentence phonemizes to nothing"
    assert "empty sentence" in reasons["common_voice_ky_empty"]
    rows = [json.loads(line) for line in (out / "utterances.jsonl").read_text().splitlines()]
    scored = [r for r in rows if "per" in r]
    # the corpus PER is total edits over total reference phones of the per-utterance rows
    assert s["per"] == pytest.approx(
        sum(r["substitutions"] + r["deletions"] + r["insertions"] for r in scored)
        / sum(r["reference_phones"] for r in scored)
    )
    assert s["per"] == pytest.approx(
        jiwer.wer([r["ref"] for r in scored], [r["hyp"] if r["hyp"] else "" for r in scored])
    )
    md = (out / "report.md").read_text()
    correct = sum(r["reference_phones"] - r["substitutions"] - r["deletions"] for r in scored)
    hits = jiwer.process_words([r["ref"] for r in scored], [r["hyp"] if r["hyp"] else "" for r in scored]).hits
    assert s["correct"] == correct >= hits and f"| recognised right | {correct} (" in md  # jiwer: fewer on ties
    assert "## Worst utterances" in md and "## Most confused phone pairs" in md and "common_voice_ky_missing" in md

    # a second run with the same folder resumes: nothing is transcribed again, the report is the same
    code, _, _ = run_main(["evaluate", "--model", str(tiny_model_dir), "--data", str(data), "--out", str(out)], capsys)
    again = json.loads((out / "report.json").read_text())
    assert again["summary"]["newly_scored"] == 0 and again["summary"]["per"] == s["per"]
    assert len((out / "utterances.jsonl").read_text().splitlines()) == len(rows)

    # another model (or precision) into the same folder is refused, and the results stay as they were
    before = (out / "utterances.jsonl").read_bytes()
    code, _, err = run_main(
        ["evaluate", "--model", str(tiny_model_dir), "--data", str(data), "--out", str(out), "--dtype", "float16"],
        capsys,
    )
    assert code == 2 and "holds results of another run" in err and "float16" in err
    assert (out / "utterances.jsonl").read_bytes() == before


def test_limit_and_manifest(tiny_model_dir, tmp_path, capsys):
    clip = tmp_path / "a.wav"
    sf.write(clip, speechlike(1.0), 16000)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        "\n".join(
            json.dumps(r, ensure_ascii=False)
            for r in [{"audio": "a.wav", "phones": "s ɑ l ɑ m"}, {"audio": "a.wav", "text": "Салам"}, "not an object"]
        )
        + "\n{bad"
    )
    code, _, err = run_main(
        [
            "evaluate",
            "--model",
            str(tiny_model_dir),
            "--data",
            str(manifest),
            "--out",
            str(tmp_path / "r"),
            "--limit",
            "1",
        ],
        capsys,
    )
    assert code == 0, err
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["summary"]["utterances"] == 1 and report["summary"]["reference_phones"] == 5
    assert len(report["skipped"]) == 2  # the two malformed lines


def test_tsv_without_needed_columns_is_a_clear_error(tiny_model_dir, tmp_path, capsys):
    (tmp_path / "test.tsv").write_text("client_id\tup_votes\nx\t1\n")
    code, _, err = run_main(
        ["evaluate", "--model", str(tiny_model_dir), "--data", str(tmp_path), "--out", str(tmp_path / "r")], capsys
    )
    assert code == 2 and "needs an audio column" in err and "found: client_id, up_votes" in err


def test_audio_without_labels_is_read_where_labels_are_not_needed(tiny_model_dir, tmp_path, capsys):
    from unispeech.data import load_dataset

    sf.write(tmp_path / "a.wav", speechlike(1.0), 16000)
    manifest = tmp_path / "audio-only.jsonl"
    manifest.write_text(json.dumps({"audio": "a.wav"}) + "\n")
    unlabelled, skipped = load_dataset(manifest, labelled=False)  # pretraining's --unlabeled, --valid
    assert [u.audio for u in unlabelled] == [tmp_path / "a.wav"] and not skipped and unlabelled[0].text is None
    with pytest.raises(ValueError, match="and a label column"):
        load_dataset(manifest)  # what evaluation and fine-tuning read
    out = tmp_path / "transcripts"
    code, _, err = run_main(
        ["transcribe", "--input", str(manifest), "--model", str(tiny_model_dir), "--output-dir", str(out)], capsys
    )
    assert code == 0, err
    assert json.loads((out / "transcripts.jsonl").read_text())["path"] == str(tmp_path / "a.wav")


def test_score_logits_counts_the_errors_of_one_decoding_of_logits_computed_once(tiny_model_dir):
    import unispeech
    from unispeech.evaluate import score_logits

    model = unispeech.load_model(tiny_model_dir, dtype="float32", decoder=unispeech.GreedyDecoder())
    wavs = [model.prepare(speechlike(seconds, seed=i), 16000) for i, seconds in enumerate((0.8, 1.3))]
    logits, lengths = model.logits_batch(wavs, batch_size=2), [w.size for w in wavs]
    hyps = [model.decode(x, n).phones for x, n in zip(logits, lengths)]
    assert score_logits(model, logits, lengths, hyps).per == 0
    counts = score_logits(model, logits, lengths, [hyps[0] + ["ɑ"], hyps[1]])
    assert (counts.deletions, counts.substitutions, counts.insertions) == (1, 0, 0)
    with pytest.raises(ValueError):
        score_logits(model, logits, lengths[:1], hyps)


def test_a_manifests_ids_name_its_utterances_in_the_report(tiny_model_dir, tmp_path, capsys):
    for lang in ("fr", "it"):  # one file name in two folders, as in KLettres
        (tmp_path / lang).mkdir()
        sf.write(tmp_path / lang / "a-0.wav", speechlike(1.0), 16000)
    manifest = tmp_path / "m.jsonl"
    rows = [{"id": f"klettres_{lang}_a-0", "audio": f"{lang}/a-0.wav", "phones": "ɑ"} for lang in ("fr", "it")]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows + [{"audio": "fr/a-0.wav", "phones": "ɑ"}]))
    out = tmp_path / "r"
    code, _, err = run_main(
        ["evaluate", "--model", str(tiny_model_dir), "--data", str(manifest), "--out", str(out)], capsys
    )
    assert code == 0, err
    ids = [json.loads(line)["id"] for line in (out / "utterances.jsonl").read_text().splitlines()]
    assert ids == ["klettres_fr_a-0", "klettres_it_a-0", "a-0"]  # without an id: the audio file's stem
