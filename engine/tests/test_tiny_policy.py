"""The tiny policy's line-level tokenizer: harmony ids where gpt-oss has them, lines as tokens."""

from rl2048_engine.templates.tokenizer import special_token_id
from rl2048_engine.tiny_policy import PRESET, line_tokenizer

PROGRAM = 'def strategy(board):\n    for key in ["w", "a"]:\n        return key\n    return "w"\n'


def test_line_tokenizer_layout_and_round_trip() -> None:
    texts = [PROGRAM] * 20 + ["<|start|>user<|message|>Write a strategy.<|end|>" + PROGRAM]
    tokenizer = line_tokenizer(texts, PRESET)
    assert tokenizer.get_vocab_size() == PRESET.vocab_size
    for name in ("<|return|>", "<|start|>", "<|message|>", "<|channel|>", "<|end|>"):
        assert tokenizer.token_to_id(name) == special_token_id(name, PRESET.regular_vocab_size)
    ids = tokenizer.encode(PROGRAM).ids
    assert len(ids) == 4  # one token per line seen often enough
    assert tokenizer.decode(ids) == PROGRAM
    text = "<|start|>user<|message|>" + PROGRAM + "<|end|>"
    encoded = tokenizer.encode(text).ids
    assert encoded[0] == special_token_id("<|start|>", PRESET.regular_vocab_size)
    assert tokenizer.decode(encoded, skip_special_tokens=False) == text
    unseen = "x = 1  # a line never seen\n"
    assert tokenizer.decode(tokenizer.encode(unseen).ids) == unseen  # byte-level: anything encodes
