"""Byte-level BPE tokenizers with the harmony special tokens of gpt-oss (o200k_harmony layout).

`build_tokenizer(texts, regular_size, vocab_size)` trains BPE merges on `texts` with the
`tokenizers` library, using o200k's pre-tokenizer (the split regex, then byte-level), and lays
out the ids as gpt-oss does:

    0 .. regular_size-1            regular tokens: 256 bytes, then learned merges, then fillers
    regular_size .. vocab_size-1   the harmony specials, in the published order

A special token's id is `regular_size + (published_id - 199998)`, so with the published sizes
(`regular_size=199998`, `vocab_size=201088`) every id is the real one: <|startoftext|> 199998,
<|endoftext|> 199999, <|return|> 200002, <|constrain|> 200003, <|channel|> 200005,
<|start|> 200006, <|end|> 200007, <|message|> 200008, <|call|> 200012, and `<|reserved_N|>`
in every other slot (N the published id). A small vocabulary keeps the same order with a
smaller offset (tiny: regular 2000, vocab 2048, so <|return|> is 2004).

A small text sample cannot teach 199998 merges; the rest of the regular range is filled with
`<unusedN>` tokens that no merge produces (they keep the ids aligned; encoding never emits them).
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

PUBLISHED_SPECIAL_START = 199998
PUBLISHED_REGULAR_SIZE = 199998
PUBLISHED_VOCAB_SIZE = 201088

NAMED_SPECIALS = {
    199998: "<|startoftext|>",
    199999: "<|endoftext|>",
    200002: "<|return|>",
    200003: "<|constrain|>",
    200005: "<|channel|>",
    200006: "<|start|>",
    200007: "<|end|>",
    200008: "<|message|>",
    200012: "<|call|>",
}
"""Published id of each named harmony token; every other special slot is `<|reserved_ID|>`."""

MIN_SPECIALS = max(NAMED_SPECIALS) - PUBLISHED_SPECIAL_START + 1

O200K_PATTERN = "|".join(
    [
        r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
        r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
        r"\p{N}{1,3}",
        r" ?[^\s\p{L}\p{N}]+[\r\n/]*",
        r"\s*[\r\n]+",
        r"\s+(?!\S)",
        r"\s+",
    ]
)
"""o200k's pre-tokenizer split pattern (as in tiktoken and gpt-oss' tokenizer.json)."""


def special_tokens(regular_size: int, vocab_size: int) -> dict[int, str]:
    """The id of every special token for this layout (see module doc)."""
    if vocab_size - regular_size < MIN_SPECIALS:
        raise ValueError(f"vocab_size - regular_size must be at least {MIN_SPECIALS} for the harmony tokens")
    specials = {}
    for token_id in range(regular_size, vocab_size):
        published = token_id - regular_size + PUBLISHED_SPECIAL_START
        specials[token_id] = NAMED_SPECIALS.get(published, f"<|reserved_{published}|>")
    return specials


def special_token_id(name: str, regular_size: int) -> int:
    """The id of a named harmony token (e.g. "<|return|>") in a layout with `regular_size`."""
    published = next(pid for pid, token in NAMED_SPECIALS.items() if token == name)
    return regular_size + published - PUBLISHED_SPECIAL_START


def build_tokenizer(
    texts: Iterable[str], regular_size: int, vocab_size: int, split_pattern: str = O200K_PATTERN
) -> Tokenizer:
    """Train byte-level BPE on `texts`, pre-tokenized by `split_pattern` then byte-level (o200k's
    by default); ids laid out as the module doc says."""
    if regular_size < 256:
        raise ValueError("regular_size must be at least 256 (the byte alphabet)")
    specials = special_tokens(regular_size, vocab_size)

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = _pre_tokenizer(split_pattern)
    trainer = trainers.BpeTrainer(
        vocab_size=regular_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)

    # Fill the regular range up to regular_size (a BPE model's ids must be dense).
    learned = tokenizer.model
    vocab = tokenizer.get_vocab(with_added_tokens=False)
    merges = _merges(learned)
    filler = 0
    while len(vocab) < regular_size:
        name = f"<unused{filler}>"
        filler += 1
        if name not in vocab:
            vocab[name] = len(vocab)

    tokenizer.model = models.BPE(vocab=vocab, merges=merges)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in specials.values()])
    for token_id, token in specials.items():
        assert tokenizer.token_to_id(token) == token_id, (token, token_id)
    return tokenizer


def _pre_tokenizer(split_pattern: str) -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(split_pattern), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ]
    )


def _merges(model: models.Model) -> list[tuple[str, str]]:
    """The merges of a trained BPE model, in rank order (read back from its serialized form)."""
    import json

    state = json.loads(Tokenizer(model).to_str())["model"]
    return [tuple(m.split(" ", 1)) if isinstance(m, str) else (m[0], m[1]) for m in state["merges"]]
