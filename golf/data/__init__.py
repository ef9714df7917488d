"""Data: shard format and loaders, SentencePiece tokenizer and byte tables, demo corpus, download."""
