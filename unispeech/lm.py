"""Phone n-gram language model: Witten-Bell estimation from G2P'd text, ARPA files, scoring."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from pathlib import Path

from .files import atomic_write

MAX_ORDER = 10  # beyond it the counts grow with order squared for nothing a phone LM can use

BOS, EOS = "<s>", "</s>"
LOG10 = math.log(10)


class PhoneLM:
    """Back-off n-gram model over phones; `logprob` is in natural log."""

    def __init__(self, order: int, probs: dict[tuple[str, ...], float], backoffs: dict[tuple[str, ...], float]):
        self.order, self.probs, self.backoffs = order, probs, backoffs  # log10, as ARPA stores them
        self.vocab = {gram[0] for gram in probs if len(gram) == 1}
        self._cache: dict[tuple[tuple[str, ...], str], float] = {}

    def logprob(self, history: tuple[str, ...], phone: str) -> float:
        """ln P(phone | last order-1 phones of history), backing off as ARPA prescribes."""
        history = history[-(self.order - 1) :] if self.order > 1 else ()
        key = (history, phone)
        cached = self._cache.get(key)
        if cached is None:
            cached = self._cache[key] = self._log10(history, phone) * LOG10
        return cached

    def _log10(self, history: tuple[str, ...], phone: str) -> float:
        gram = history + (phone,)
        if gram in self.probs:
            return self.probs[gram]
        if not history:
            return self.probs.get(("<unk>",), -99.0)
        return self.backoffs.get(history, 0.0) + self._log10(history[1:], phone)

    def sentence_logprob(self, phones: list[str]) -> float:
        history: tuple[str, ...] = (BOS,)
        total = 0.0
        for p in phones + [EOS]:
            total += self.logprob(history, p)
            history = history + (p,)
        return total

    # ARPA
    def save(self, path: str | Path) -> None:
        by_order: dict[int, list[tuple[str, ...]]] = defaultdict(list)
        for gram in self.probs:
            by_order[len(gram)].append(gram)
        lines = ["\\data\\"] + [f"ngram {n}={len(by_order[n])}" for n in range(1, self.order + 1)] + [""]
        for n in range(1, self.order + 1):
            lines.append(f"\\{n}-grams:")
            for gram in sorted(by_order[n]):
                row = f"{self.probs[gram]:.6f}\t{' '.join(gram)}"
                if n < self.order and gram in self.backoffs:
                    row += f"\t{self.backoffs[gram]:.6f}"
                lines.append(row)
            lines.append("")
        lines.append("\\end\\")
        atomic_write(path, "\n".join(lines) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> PhoneLM:
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"{path}: no such language model file")
        probs, backoffs, order, section = {}, {}, 0, None
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("ngram ") or line in ("\\data\\", "\\end\\"):
                continue
            if line.startswith("\\") and line.endswith("-grams:"):
                section = int(line[1:-7])
                order = max(order, section)
                continue
            if section is None:
                raise ValueError(f"{path}:{n}: not an ARPA file (no \\data\\ section before the n-grams)")
            parts = line.split()
            try:
                gram = tuple(parts[1 : 1 + section])
                probs[gram] = float(parts[0])
                if len(parts) > 1 + section:
                    backoffs[gram] = float(parts[1 + section])
            except (ValueError, IndexError) as e:
                raise ValueError(f"{path}:{n}: malformed n-gram line {line!r}") from e
        if not probs:
            raise ValueError(f"{path}: the language model holds no n-grams")
        return cls(order, probs, backoffs)


def build_lm(sentences: list[list[str]], order: int = 3) -> PhoneLM:
    """Interpolated Witten-Bell estimates, written in back-off form (bow(h) = 1 - lambda(h), exact)."""
    if not 1 <= order <= MAX_ORDER:
        raise ValueError(f"an n-gram order is 1-{MAX_ORDER}, not {order}")
    sentences = [s for s in sentences if s]
    if not sentences:
        raise ValueError("no phone sequences to build a language model from")
    counts: list[Counter] = [Counter() for _ in range(order + 1)]
    for phones in sentences:
        seq = [BOS] * max(1, order - 1) + phones + [EOS]
        for n in range(1, order + 1):
            for i in range(len(seq) - n + 1):
                gram = tuple(seq[i : i + n])
                if gram[-1] != BOS:  # <s> is only ever a context
                    counts[n][gram] += 1
    vocab = sorted({g[0] for g in counts[1]} | {"<unk>"})
    probs: dict[tuple[str, ...], float] = {}
    backoffs: dict[tuple[str, ...], float] = {}
    total, types = sum(counts[1].values()), len(counts[1])
    lam = total / (total + types)
    lower = {(w,): lam * counts[1][(w,)] / total + (1 - lam) / len(vocab) for w in vocab}
    probs.update({g: math.log10(p) for g, p in lower.items()})
    probs[(BOS,)] = -99.0
    for n in range(2, order + 1):
        context_count: Counter = Counter()
        followers: Counter = Counter()
        for gram, c in counts[n].items():
            context_count[gram[:-1]] += c
            followers[gram[:-1]] += 1
        for gram, c in counts[n].items():
            h = gram[:-1]
            lam_h = context_count[h] / (context_count[h] + followers[h])
            p_lower = 10 ** _backed_off(probs, backoffs, gram[1:])
            probs[gram] = math.log10(lam_h * c / context_count[h] + (1 - lam_h) * p_lower)
        for h in context_count:
            backoffs[h] = math.log10(followers[h] / (context_count[h] + followers[h]))
    return PhoneLM(order, probs, backoffs)


def _backed_off(probs, backoffs, gram: tuple[str, ...]) -> float:
    if gram in probs:
        return probs[gram]
    return backoffs.get(gram[:-1], 0.0) + _backed_off(probs, backoffs, gram[1:])
