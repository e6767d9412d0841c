"""Tokenizer building and the harmony chat template for the checkpoints init_model writes."""
