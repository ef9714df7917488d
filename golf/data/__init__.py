"""Data: the shard format and loaders, the SentencePiece tokenizer and byte tables, the demo corpus, the FineWeb download."""
