"""`golf data demo|check|download`: demo shards from the bundled corpus, a data folder check, FineWeb.

Heavy imports (torch, sentencepiece, huggingface_hub) happen inside `run`, so `golf` starts fast.
"""

from __future__ import annotations

import argparse
import sys
import time

DEMO_HELP = "tokenizer + shards in the real format from the bundled public-domain corpus"
CHECK_HELP = "validate a data folder: layout, every shard's header and size, tokenizer vs shards"
DOWNLOAD_HELP = "the challenge's FineWeb export from Hugging Face (manifest-driven, resumable)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="data_action", metavar="ACTION", parser_class=type(parser))
    actions.required = True

    demo = actions.add_parser("demo", help=DEMO_HELP, description=DEMO_HELP)
    demo.add_argument("--out", required=True, help="folder to write (new, empty, or an earlier demo output)")
    demo.add_argument("--vocab-size", type=int, default=1024, help="SentencePiece vocabulary (default 1024)")
    demo.add_argument("--val-fraction", type=float, default=None, help="share of documents for validation, the first ones (default 0.0125)")
    demo.add_argument("--shard-tokens", type=int, default=1 << 18, help="tokens per shard (default 262144)")
    demo.add_argument("--max-chars", type=int, default=None, help="use only a prefix of the corpus of about this many characters")

    check = actions.add_parser("check", help=CHECK_HELP, description=CHECK_HELP)
    check.add_argument("--data", required=True, help="a demo output or a download folder")

    download = actions.add_parser("download", help=DOWNLOAD_HELP, description=DOWNLOAD_HELP)
    download.add_argument("--out", required=True, help="folder to fill (datasets/ and tokenizers/ inside)")
    download.add_argument("--variant", default="sp1024", help="tokenizer variant sp<VOCAB> (default sp1024)")
    download.add_argument("--train-shards", type=int, default=80, help="first N train shards (default 80, as upstream)")
    download.add_argument("--repo-id", default="willdepueoai/parameter-golf", help="Hugging Face dataset repository")
    download.add_argument("--remote-root", default="datasets", help="folder of the export inside the repository")
    download.add_argument("--endpoint", default=None, help="Hub endpoint (default: HF_ENDPOINT or huggingface.co)")


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    if args.data_action == "demo":
        from golf.data.corpus import build_demo

        meta = build_demo(args.out, args.vocab_size, args.val_fraction, args.shard_tokens, args.max_chars)
        print(
            f"demo data in {args.out}: vocab {meta['vocab_size']}, {meta['tokens']['train']} train tokens "
            f"in {len(meta['files']['train'])} shard(s), {meta['tokens']['val']} val tokens, "
            f"unigram val bpb {meta['unigram_val_bpb']:.4f} ({time.perf_counter() - started:.1f} s)",
            file=sys.stderr,
        )
        return 0

    from golf.data.layout import count_tokens, resolve_data

    if args.data_action == "check":
        layout = resolve_data(args.data)
        counts = count_tokens(layout)
        print(
            f"{args.data}: vocab {layout.vocab_size}; train {counts['train']['tokens']} tokens in "
            f"{counts['train']['shards']} shards; val {counts['val']['tokens']} tokens in {counts['val']['shards']} shards",
            file=sys.stderr,
        )
        return 0

    from golf.data.download import download_variant

    counts = download_variant(
        args.out, args.variant, args.train_shards, args.repo_id, args.remote_root, args.endpoint
    )
    layout = resolve_data(args.out)
    print(
        f"{args.variant} in {args.out}: {counts['downloaded']} files fetched, {counts['skipped']} already present; "
        f"vocab {layout.vocab_size} ({time.perf_counter() - started:.1f} s)",
        file=sys.stderr,
    )
    return 0
