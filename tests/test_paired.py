"""Two evaluations of one test set compared: PERs over the shared utterances, a paired-bootstrap interval of
the difference, and a verdict only when the interval leaves out zero (`unispeech compare-reports`)."""

import json
import random

import pytest

from unispeech.data import Utterance
from unispeech.evaluate import score
from unispeech.paired import compare, compare_runs, read_evaluation

from .conftest import run_main

PHONES = "a e i o u k q s t m n l r".split()


def references(n: int, seed: int = 0) -> list[list[str]]:
    rng = random.Random(seed)
    return [rng.choices(PHONES, k=rng.randint(8, 30)) for _ in range(n)]


def garbled(ref: list[str], rate: float, rng: random.Random) -> list[str]:
    """`ref` with about `rate` of its phones replaced by another, dropped or doubled."""
    out = []
    for p in ref:
        r = rng.random()
        out += [p] if r >= rate else [rng.choice(PHONES)] if r < rate / 3 else [] if r < 2 * rate / 3 else [p, p]
    return out


def evaluation(folder, refs, hyps, skipped=()) -> str:
    """An `unispeech evaluate --out` folder's utterances.jsonl, rows made by evaluate's own scoring."""
    rows = [
        score(
            Utterance(f"u{i}", f"u{i}.wav", None, tuple(ref)),
            {"error": "unreadable"} if i in skipped else {"phones": hyp, "text": " ".join(hyp), "duration": 1.0},
        )
        for i, (ref, hyp) in enumerate(zip(refs, hyps))
    ]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "utterances.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(folder)


def test_identical_evaluations_differ_by_nothing(tmp_path):
    refs = references(50)
    hyps = [garbled(r, 0.2, random.Random(i)) for i, r in enumerate(refs)]
    a = read_evaluation(evaluation(tmp_path / "a", refs, hyps))
    result = compare(a, a)
    assert result.difference == 0 and result.low == result.high == 0
    assert result.verdict == "no clear difference" and result.b_better == result.b_worse == 0
    assert result.utterances == 50 and result.reference_phones == sum(map(len, refs))


def test_a_clearly_better_model_is_called_better_and_its_pers_are_the_pooled_ones(tmp_path):
    refs = references(200)
    rng = random.Random(1)
    worse, better = [garbled(r, 0.3, rng) for r in refs], [garbled(r, 0.1, rng) for r in refs]
    a = read_evaluation(evaluation(tmp_path / "a", refs, worse))
    b = read_evaluation(evaluation(tmp_path / "b", refs, better))
    result = compare(a, b)
    edits = [sum(r[k] for k in ("substitutions", "deletions", "insertions")) for r in a.values()]
    assert result.per_a == pytest.approx(sum(edits) / sum(map(len, refs)))
    assert result.low <= result.difference <= result.high < 0
    assert result.verdict == "B better" and result.b_better > result.b_worse
    assert compare(b, a).verdict == "B worse"
    assert compare(a, b) == result  # seeded: the same inputs give the same interval
    assert compare(a, b, level=0.5).high - compare(a, b, level=0.5).low < result.high - result.low


def test_a_small_difference_on_few_utterances_is_no_clear_difference(tmp_path):
    refs = references(30)
    rng = random.Random(2)
    a = read_evaluation(evaluation(tmp_path / "a", refs, [garbled(r, 0.20, rng) for r in refs]))
    b = read_evaluation(evaluation(tmp_path / "b", refs, [garbled(r, 0.20, rng) for r in refs]))
    result = compare(a, b)
    assert result.low < 0 < result.high and result.verdict == "no clear difference"


def test_only_utterances_scored_in_both_are_paired(tmp_path):
    refs = references(20)
    a = read_evaluation(evaluation(tmp_path / "a", refs, refs, skipped={3}))
    b = read_evaluation(evaluation(tmp_path / "b", refs[:15], refs[:15]))
    result = compare(a, b)
    assert result.utterances == 14 and result.unpaired == 6  # u3 skipped in A, u15-u19 only in A


def test_other_test_sets_are_refused(tmp_path):
    refs = references(10)
    a = read_evaluation(evaluation(tmp_path / "a", refs, refs))
    other = read_evaluation(evaluation(tmp_path / "b", references(10, seed=5), refs))
    with pytest.raises(ValueError, match="other reference phones"):
        compare(a, other)
    with pytest.raises(ValueError, match="share no scored utterance"):
        compare(a, {})


def test_cli_prints_both_pers_the_interval_and_the_verdict(tmp_path, capsys):
    refs = references(200)
    rng = random.Random(3)
    a = evaluation(tmp_path / "a", refs, [garbled(r, 0.3, rng) for r in refs])
    b = evaluation(tmp_path / "b", refs, [garbled(r, 0.1, rng) for r in refs])
    code, out, err = run_main(["compare-reports", a, b], capsys)
    assert code == 0, err
    assert "over 200 utterances" in out and "95 % interval" in out and "B better" in out
    code, out, _ = run_main(["compare-reports", a, b, "--format", "json", "--level", "0.9"], capsys)
    result = json.loads(out)
    assert code == 0 and result["verdict"] == "B better" and result["level"] == 0.9


def test_cli_refusals_are_one_line(tmp_path, capsys):
    a = evaluation(tmp_path / "a", references(5), references(5))
    code, _, err = run_main(["compare-reports", a, str(tmp_path / "nothing")], capsys)
    assert code == 2 and "not an evaluation folder" in err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "utterances.jsonl").write_text("{}\n")
    code, _, err = run_main(["compare-reports", a, str(tmp_path / "bad")], capsys)
    assert code == 2 and "utterances.jsonl:1: not a row of `unispeech evaluate`" in err
    code, _, err = run_main(["compare-reports", a, a, "--level", "95"], capsys)
    assert code == 2 and "between 0 and 1" in err


def test_evaluations_whose_ids_differ_are_paired_by_audio_file(tmp_path):
    # an evaluation made before ids came from the manifest named the same utterances by their file stems
    refs = references(20)
    a = read_evaluation(evaluation(tmp_path / "a", refs, refs))
    renamed = {f"stem{i}": row for i, row in enumerate(a.values())}
    result = compare(a, renamed)
    assert result.paired_by == "audio" and result.utterances == 20 and result.difference == 0
    clash = {key: {**row, "audio": "same.wav"} for key, row in renamed.items()}  # no file names them apart
    with pytest.raises(ValueError, match="by id or audio file"):
        compare(a, clash)


def test_several_runs_a_side_average_their_edits_and_widen_the_interval_by_their_disagreement(tmp_path):
    # two seeds of recipe B: one clearly better than A's run, one clearly worse; over both, no verdict
    refs = references(300)
    rng = random.Random(4)
    a1, a2 = (read_evaluation(evaluation(tmp_path / n, refs, [garbled(r, 0.2, rng) for r in refs])) for n in "pq")
    lucky = read_evaluation(evaluation(tmp_path / "b1", refs, [garbled(r, 0.1, rng) for r in refs]))
    unlucky = read_evaluation(evaluation(tmp_path / "b2", refs, [garbled(r, 0.3, rng) for r in refs]))
    assert compare(a1, lucky).verdict == "B better" and compare(a2, unlucky).verdict == "B worse"
    result = compare_runs([a1, a2], [lucky, unlucky])
    assert result.runs_a == result.runs_b == 2 and result.verdict == "no clear difference"
    assert result.per_b == pytest.approx((compare(a1, lucky).per_b + compare(a1, unlucky).per_b) / 2)
    one_run = compare(a1, lucky)
    assert result.high - result.low > 2 * (one_run.high - one_run.low)


def test_runs_that_agree_give_the_one_run_comparison(tmp_path):
    refs = references(100)
    rng = random.Random(5)
    a = read_evaluation(evaluation(tmp_path / "a", refs, [garbled(r, 0.3, rng) for r in refs]))
    b = read_evaluation(evaluation(tmp_path / "b", refs, [garbled(r, 0.1, rng) for r in refs]))
    one, repeated = compare(a, b), compare_runs([a, a, a], [b, b])
    assert (repeated.per_a, repeated.per_b, repeated.b_better) == (one.per_a, one.per_b, one.b_better)
    assert repeated.low == pytest.approx(one.low, abs=0.01) and repeated.verdict == one.verdict == "B better"


def test_a_run_of_another_test_set_is_named(tmp_path):
    refs = references(10)
    a = read_evaluation(evaluation(tmp_path / "a", refs, refs))
    other = read_evaluation(evaluation(tmp_path / "b", references(10, seed=5), refs))
    with pytest.raises(ValueError, match="other reference phones in B's evaluation 2"):
        compare_runs([a], [a, other])


def test_cli_takes_more_runs_with_also(tmp_path, capsys):
    refs = references(100)
    rng = random.Random(6)
    a, a2, b, b2 = (
        evaluation(tmp_path / n, refs, [garbled(r, 0.2, rng) for r in refs]) for n in ("a", "a2", "b", "b2")
    )
    code, out, err = run_main(["compare-reports", a, b, "--also", a2, b2], capsys)
    assert code == 0, err
    assert "the mean of 2 and 2 runs" in out and "over utterances and runs" in out


def test_a_model_that_says_less_is_told_from_one_that_hears_more(tmp_path, capsys):
    """Lower PER by dropping what it is unsure of (A inserts and substitutes, B deletes instead) against lower PER
    by getting more phones right: the PER verdict is the same, the phones-right one is not."""
    refs = references(200)
    rng = random.Random(3)
    noisy = [[q for p in r for q in ([p] if rng.random() > 0.4 else [rng.choice(PHONES), rng.choice(PHONES)])]
             for r in refs]  # fmt: skip
    terse = [[p for p in r if rng.random() > 0.45] for r in refs]  # only deletions
    keener = [garbled(r, 0.15, rng) for r in refs]
    a, b, c = (evaluation(tmp_path / n, refs, h) for n, h in (("a", noisy), ("b", terse), ("c", keener)))
    says_less = compare(read_evaluation(a), read_evaluation(b))
    assert says_less.verdict == "B better" and says_less.right_high < 0 and says_less.says_less
    right = sum(len(r) for r in refs)
    assert says_less.right_b == pytest.approx(sum(map(len, terse)) / right)  # deletions only: the kept phones
    hears_more = compare(read_evaluation(a), read_evaluation(c))
    assert hears_more.verdict == "B better" and hears_more.right_low > 0 and not hears_more.says_less
    code, out, err = run_main(["compare-reports", a, b], capsys)
    assert code == 0, err
    assert "fewer phones right: it says less, it does not hear more" in out
    code, out, _ = run_main(["compare-reports", a, c], capsys)
    assert "Phones right: A " in out and "says less" not in out
    code, out, _ = run_main(["compare-reports", a, b, "--format", "json"], capsys)
    result = json.loads(out)
    assert result["says_less"] is True and result["right_difference"] == pytest.approx(says_less.right_difference)
