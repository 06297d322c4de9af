"""Kyrgyz G2P reproduces the checkpoint's reference phones and never emits phones outside its inventory."""

import warnings
from pathlib import Path

import pytest

from unispeech.g2p import kyrgyz_inventory, phonemize, text_words
from unispeech.metrics import phone_error_rate

DATA = Path(__file__).parents[1] / "data" / "ky"


def reference(split: str) -> tuple[list[str], list[list[str]]]:
    texts = [line.split("\t", 1)[1] for line in (DATA / f"{split}.text").read_text(encoding="utf-8").splitlines()]
    phones = [line.split() for line in (DATA / f"{split}.phone").read_text(encoding="utf-8").splitlines()]
    return texts, phones


def test_reproduces_reference_phones_of_all_977_sentences():
    texts, refs = reference("train")
    val_texts, val_refs = reference("val")
    texts, refs = texts + val_texts, refs + val_refs
    assert len(texts) == 977
    hyps = phonemize(texts, word_boundaries=True)
    counts = phone_error_rate([[p for p in r if p != "|"] for r in refs], [[p for p in h if p != "|"] for h in hyps])
    agreement = 1 - counts.per
    print(
        f"G2P phone agreement over {len(texts)} sentences: {100 * agreement:.3f} % "
        f"({counts.edits} edits / {counts.reference_phones} phones)"
    )
    assert agreement >= 0.999
    # word boundaries too (the reference lines end with a trailing "|"); the references split two written
    # words with capitals in two (КООРТ|тун, Рус|Гидро); ours keep them one word, as `text_words` counts them
    same = [h == r[: len(h)] and r[len(h) :] in ([], ["|"]) for h, r in zip(hyps, refs)]
    assert sum(same) >= 975
    assert all(h.count("|") + 1 == len(text_words(t)) for t, h, ok in zip(texts, hyps, same) if not ok)


@pytest.mark.parametrize(
    "text",
    [
        "«Кыргызстан» — сонун өлкө!",
        "Мен 2024-жылы Москвага бардым.",
        "iPhone 15 Pro жакшы",
        "Привет, как дела?",
        "COVID-19 жана 1/2",
        "  Жаңы\tсөз\n  ",
        "Hello world",
        "Ош, Бишкек; Нарын: Талас...",
        "“Тырмакча” жана 'бир' (кашаа) [квадрат]",
    ],
)
def test_real_sentence_noise_stays_in_the_inventory(text):
    inventory = set(kyrgyz_inventory())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing dropped for these
        phones = phonemize(text)
    assert phones and set(phones) <= inventory


def test_digits_are_read_as_kyrgyz_numbers():
    assert phonemize("3") == phonemize("үч")


@pytest.mark.parametrize(
    "shouted, spoken",
    [
        (
            "Текебаев өзү камакка алынып, УКМКнын ТИЗОсунда отурат.",
            "Текебаев өзү камакка алынып, укмкнын тизосунда отурат.",
        ),
        ("Мен АКШга бардым.", "Мен акшга бардым."),
    ],
)
def test_words_in_capitals_are_read_as_words_not_spelled_as_cyrillic_letters(shouted, spoken):
    # espeak-ng alone spells these in running text as "сирилик у, сирилик ка, ..." ("Cyrillic U, ...")
    phones = phonemize(shouted)
    assert "s i r i l i k" not in " ".join(phones)
    assert phones == phonemize(spoken)
    assert phonemize("Ош") == phonemize("ош")  # one capital: an ordinary word, unchanged


def test_batch_equals_one_by_one_and_empty_inputs():
    texts = ["Салам", "", "...", "Кандайсың?"]
    together = phonemize(texts)
    assert together == [phonemize(t) for t in texts]
    assert together[1] == [] and together[2] == []
    assert phonemize([]) == []


def test_word_boundaries_are_optional():
    with_bounds = phonemize("эки сөз", word_boundaries=True)
    assert with_bounds.count("|") == 1
    assert [p for p in with_bounds if p != "|"] == phonemize("эки сөз")


def test_unknown_language_is_a_clear_error():
    with pytest.raises(ValueError, match="no voice"):
        phonemize("x", language="xx-nope")


def test_phonemize_command(tmp_path, capsys):
    from unispeech.cli import main

    sentences = tmp_path / "s.txt"
    sentences.write_text("Салам\nэки сөз\n", encoding="utf-8")
    with pytest.raises(SystemExit) as stop:
        main(["phonemize", "Кыргызстан", "--file", str(sentences), "--word-boundaries"])
    out = capsys.readouterr().out.splitlines()
    assert stop.value.code == 0
    assert out == [" ".join(phonemize(t, word_boundaries=True)) for t in ("Кыргызстан", "Салам", "эки сөз")]
