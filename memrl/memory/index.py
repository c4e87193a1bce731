"""An incremental BM25 index for the environments' hot path (related memories, probe answering, candidates).

Why not `MemoryBank.search`: the bank indexes with bm25s, whose index build has a fixed cost of ~2 ms even
for one document (measured here: 1.9 ms for 1 doc, 21 ms for 100, 57 ms for 400). An environment writes
to the bank at every step and then queries it, so every query after a write pays a (delta) rebuild; that
alone is above the 1 ms/step budget of an environment step. This index is a plain inverted index updated per op
(add / update / remove in O(tokens)), scored with the same BM25 variant and the same tokenizer as the bank
(bm25s's default "lucene" scoring, k1 = 1.5, b = 0.75; stopwords removed, Porter stems; ties broken by
creation order, oldest first), so rankings agree with `MemoryBank.search` up to float rounding.

`fork()` is copy-on-write at the posting-list level (O(vocabulary) pointer copies, no list copies), which is
what GRPO scoring needs: G completions applied to copies of one snapshot.
"""

from __future__ import annotations

import functools
import heapq
import math
from collections.abc import Iterable
from operator import itemgetter

from memrl.memory.bank import tokenize  # the bank's tokenizer: query/index tokenization must not drift apart

K1, B = 1.5, 0.75
_SCORE = itemgetter(1)


@functools.lru_cache(maxsize=200_000)
def text_tokens(text: str) -> tuple[str, ...]:
    """Stemmed, stopword-free tokens of a text (cached: memories and questions are scored many times)."""
    return tuple(tokenize(text))


class TextIndex:
    """BM25 over a changing set of documents (memories, turns, sessions), each with an optional owner."""

    def __init__(self) -> None:
        self._post: dict[str, dict[str, int]] = {}  # term -> {doc id: term frequency}
        self._owned: set[str] = set()  # terms whose posting dict this index may mutate (copy-on-write)
        self._len: dict[str, int] = {}  # doc id -> length in tokens
        self._terms: dict[str, tuple[str, ...]] = {}  # doc id -> its tokens (to remove it later)
        self._owner: dict[str, str | None] = {}
        self._order: dict[str, int] = {}  # doc id -> creation rank (tie-break: older first)
        self._next = 0
        self._total = 0

    # ---- building --------------------------------------------------------------------------------------
    @classmethod
    def from_docs(cls, docs: Iterable[tuple[str, str, str | None]]) -> TextIndex:
        """An index over (doc id, text, owner) triples, creation order = iteration order."""
        index = cls()
        for doc_id, text, owner in docs:
            index.add(doc_id, text, owner)
        return index

    @classmethod
    def from_bank(cls, bank) -> TextIndex:
        """An index over a MemoryBank's current entries (creation order = bank order)."""
        return cls.from_docs((e.id, e.text, e.owner) for e in bank.current())

    def __len__(self) -> int:
        return len(self._len)

    def __contains__(self, doc_id: str) -> bool:
        return doc_id in self._len

    def _postings(self, term: str) -> dict[str, int]:
        if term not in self._owned:
            self._post[term] = dict(self._post.get(term, {}))
            self._owned.add(term)
        return self._post[term]

    def add(self, doc_id: str, text: str, owner: str | None = None) -> None:
        """Index a document (re-adding an id replaces its text, keeping its creation rank)."""
        if doc_id in self._len:
            self.remove(doc_id, keep_order=True)
        toks = text_tokens(text)
        counts: dict[str, int] = {}
        for t in toks:
            counts[t] = counts.get(t, 0) + 1
        for t, c in counts.items():
            self._postings(t)[doc_id] = c
        self._len[doc_id] = len(toks)
        self._terms[doc_id] = tuple(counts)
        self._owner[doc_id] = owner
        if doc_id not in self._order:
            self._order[doc_id] = self._next
            self._next += 1
        self._total += len(toks)

    def remove(self, doc_id: str, keep_order: bool = False) -> None:
        if doc_id not in self._len:
            return
        for t in self._terms.pop(doc_id):
            post = self._postings(t)
            post.pop(doc_id, None)
            if not post:
                del self._post[t]
                self._owned.discard(t)
        self._total -= self._len.pop(doc_id)
        if not keep_order:
            self._owner.pop(doc_id, None)
            self._order.pop(doc_id, None)

    def sync(self, result, bank) -> None:
        """Mirror what a `MemoryBank.apply` did (its ApplyResult) into the index."""
        for op, bank_id in result.applied:
            if bank_id is None or op.op == "NOOP":
                continue
            e = bank.get(bank_id)
            if e is None or not e.is_current:
                self.remove(bank_id)
            else:
                self.add(bank_id, e.text, e.owner)

    def fork(self) -> TextIndex:
        """An independent index sharing posting dicts until either side writes to them."""
        new = TextIndex.__new__(TextIndex)
        new._post = dict(self._post)
        new._owned = set()
        self._owned = set()  # the parent's postings are now shared too
        new._len = dict(self._len)
        new._terms = dict(self._terms)
        new._owner = dict(self._owner)
        new._order = dict(self._order)
        new._next, new._total = self._next, self._total
        return new

    # ---- scoring ---------------------------------------------------------------------------------------
    def scores(self, query: str) -> dict[str, float]:
        """BM25 score of every document sharing a term with the query (others score 0)."""
        n = len(self._len)
        if not n:
            return {}
        avgdl = max(self._total / n, 1e-9)
        c1, c2 = K1 * (1 - B), K1 * B / avgdl  # tf / (tf + k1 * (1 - b + b * dl / avgdl)), Lucene (no k1 + 1)
        out: dict[str, float] = {}
        get, lens = out.get, self._len
        for t in text_tokens(query):
            post = self._post.get(t)
            if not post:
                continue
            df = len(post)
            w = math.log(1.0 + (n - df + 0.5) / (df + 0.5))
            for d, tf in post.items():
                out[d] = get(d, 0.0) + w * tf / (tf + c1 + c2 * lens[d])
        return out

    def _top(self, scores: dict[str, float], k: int) -> list[tuple[str, float]]:
        """Top-k by score, ties broken by creation order (older first). BM25 scores here are all > 0."""
        if len(scores) <= k:
            order = self._order
            return sorted(scores.items(), key=lambda x: (-x[1], order[x[0]]))
        top = heapq.nlargest(k, scores.items(), key=_SCORE)
        cut = top[-1][1]
        if sum(1 for s in scores.values() if s == cut) > sum(1 for _, s in top if s == cut):
            # Equal scores straddle the cut: choose among them by creation order, as the bank does.
            order = self._order
            pool = [(d, s) for d, s in scores.items() if s >= cut]
            top = sorted(pool, key=lambda x: (-x[1], order[x[0]]))[:k]
        else:
            order = self._order
            top.sort(key=lambda x: (-x[1], order[x[0]]))
        return top

    def search(self, query: str, k: int, owner: str | None = None) -> list[tuple[str, float]]:
        """Top-k (doc id, score), best first, ties older first; only documents sharing a query term."""
        if k <= 0:
            return []
        sc = self.scores(query)
        if owner is not None:
            own = self._owner
            sc = {d: s for d, s in sc.items() if own[d] == owner}
        return self._top(sc, k)

    def search_per_owner(self, query: str, k: int) -> list[tuple[str, float]]:
        """Memory-R1's retrieval: top-k per owner (one scoring pass), merged back into creation order."""
        if k <= 0:
            return []
        groups: dict[str | None, dict[str, float]] = {}
        own = self._owner
        for d, s in self.scores(query).items():
            g = groups.get(own[d])
            if g is None:
                g = groups[own[d]] = {}
            g[d] = s
        merged = [h for g in groups.values() for h in self._top(g, k)]
        order = self._order
        return sorted(merged, key=lambda h: order[h[0]])

    def order_of(self, doc_id: str) -> int:
        return self._order[doc_id]


def bm25_rank(query: str, texts: list[str]) -> list[float]:
    """BM25 scores of `texts` for `query` within that small collection (used by the extractive answerers)."""
    index = TextIndex.from_docs((str(i), t, None) for i, t in enumerate(texts))
    sc = index.scores(query)
    return [sc.get(str(i), 0.0) for i in range(len(texts))]
