"""Open-vocabulary relevance of features to a text query (LERF-style), over a vocabulary.

With ``s(f)`` the best cosine of a feature ``f`` with the query or one of its synonyms, and
for every negative label ``c`` the pairwise softmax ``exp(t s(f)) / (exp(t s(f)) +
exp(t cos(f, c)))``, the relevance is the minimum over the negatives (in [0, 1]).
Synonyms are vocabulary words whose text embedding is close to the query's ("couch" ->
"sofa", "armchair" -> "chair"): they stand for the query instead of competing with it.
"""
from __future__ import annotations

from typing import Callable, List, Sequence, Tuple

import torch

SYNONYM_SIMILARITY = 0.8
TEMPERATURE = 10.0


def split_vocabulary(label: str, query_embedding: torch.Tensor, vocabulary: Sequence[str],
                     encode: Callable[[List[str]], torch.Tensor],
                     synonym_similarity: float = SYNONYM_SIMILARITY,
                     margin: float = 0.05) -> Tuple[List[str], List[str]]:
    """Split ``vocabulary`` (minus the query itself) by text similarity with the query.

    Synonyms: words with similarity >= ``synonym_similarity``. Negatives: the words that
    compete with the query, i.e. all but the synonyms and, for a query outside the
    vocabulary, the words within ``margin`` of its nearest vocabulary word (the closest
    class stands in for it). ``encode`` maps words to unit-norm embeddings (L, D).
    Returns ``(synonyms, negatives)``.
    """
    key = label.strip().lower()
    vocab = [v for v in dict.fromkeys(vocabulary) if v.strip().lower() != key]
    if not vocab:
        return [], []
    sims = (encode(vocab).to(query_embedding) @ query_embedding).tolist()
    in_vocab = len(vocab) < len(set(vocabulary))
    cut = synonym_similarity if in_vocab else min(synonym_similarity, max(sims) - margin)
    synonyms = [v for v, s in zip(vocab, sims) if s >= synonym_similarity]
    negatives = [v for v, s in zip(vocab, sims) if s < cut]
    return synonyms, negatives


def relevance(similarities: torch.Tensor, positives: int,
              temperature: float = TEMPERATURE) -> torch.Tensor:
    """Cosine similarities ``(..., P + K)`` to [query and synonyms (P), negatives (K)] ->
    relevance ``(...)`` in [0, 1]; without negatives, the best cosine mapped to [0, 1]."""
    pos = similarities[..., :positives].max(dim=-1, keepdim=True).values
    if similarities.shape[-1] == positives:
        return (pos[..., 0] + 1) / 2
    neg = similarities[..., positives:]
    return torch.sigmoid(temperature * (pos - neg)).min(dim=-1).values
