"""`golf data download`: the challenge's FineWeb export from its Hugging Face dataset repository.

The repository's `<root>/manifest.json` lists each dataset variant (`fineweb10B_sp1024`: shard
counts under `stats.files_train` / `stats.files_val`, and its `tokenizer_name`) and each tokenizer
(`model_path`, `vocab_path`, relative to <root>). We fetch all val shards, the first N train shards
and the tokenizer files into the challenge layout (OUT/datasets/..., OUT/tokenizers/...).

Resumable: files are downloaded into OUT/.download/ (huggingface_hub resumes partial files there)
and moved into place only when complete, so a file at its final path is complete; shards are
checked again by header and size before being skipped.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from huggingface_hub import hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

from golf.data.shards import shard_token_count
from golf.errors import GolfError

DEFAULT_REPO_ID = "willdepueoai/parameter-golf"
DEFAULT_REMOTE_ROOT = "datasets"
STAGING = ".download"
SP_VARIANT = re.compile(r"sp\d+")
# What huggingface_hub raises for a file it cannot get: HTTP errors, offline mode, connection failures.
DOWNLOAD_ERRORS = (HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled, OSError, ValueError)


class HubFiles:
    """Files of one dataset repository, fetched into `out` under their path relative to `remote_root`."""

    def __init__(self, out: Path, repo_id: str, remote_root: str, endpoint: str | None):
        self.out = out
        self.repo_id = repo_id
        self.remote_root = remote_root.strip("/")
        self.endpoint = endpoint

    def is_complete(self, relative: str) -> bool:
        path = self.out / relative
        if not path.is_file():
            return False
        if path.suffix == ".bin":
            try:
                shard_token_count(path)
            except GolfError:
                return False
        return True

    def fetch(self, relative: str) -> bool:
        """Download one file unless it is already complete; True if it was downloaded."""
        if self.is_complete(relative):
            return False
        remote = f"{self.remote_root}/{relative}" if self.remote_root else relative
        try:
            staged = hf_hub_download(
                repo_id=self.repo_id,
                filename=remote,
                repo_type="dataset",
                local_dir=self.out / STAGING,
                endpoint=self.endpoint,
            )
        except DOWNLOAD_ERRORS as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise GolfError(f"could not download {remote} from {self.repo_id}: {reason}") from None
        destination = self.out / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, destination)
        if not self.is_complete(relative):
            raise GolfError(f"{remote} from {self.repo_id} is not a valid shard")
        return True


def plan_files(manifest: dict, variant: str, train_shards: int) -> list[str]:
    """The files of one variant to fetch, relative to the remote root: val, train shards, tokenizer."""
    dataset_name = f"fineweb10B_{variant}"
    dataset = next((d for d in manifest.get("datasets", []) if d.get("name") == dataset_name), None)
    if dataset is None:
        raise GolfError(f"variant {variant}: no dataset {dataset_name} in the manifest")
    stats = dataset.get("stats") or {}
    try:
        files_train, files_val = int(stats["files_train"]), int(stats["files_val"])
    except (KeyError, TypeError, ValueError):
        raise GolfError(f"manifest entry {dataset_name} lacks stats.files_train / stats.files_val") from None
    if not 0 <= train_shards <= files_train:
        raise GolfError(f"{variant} has {files_train} train shards; --train-shards {train_shards} is out of range")
    tokenizer = next((t for t in manifest.get("tokenizers", []) if t.get("name") == dataset.get("tokenizer_name")), None)
    if tokenizer is None or not tokenizer.get("model_path"):
        raise GolfError(f"manifest has no SentencePiece model for {dataset_name} (tokenizer {dataset.get('tokenizer_name')})")
    folder = f"datasets/{dataset_name}"
    return (
        [f"{folder}/fineweb_val_{i:06d}.bin" for i in range(files_val)]
        + [f"{folder}/fineweb_train_{i:06d}.bin" for i in range(train_shards)]
        + [str(tokenizer[key]) for key in ("model_path", "vocab_path") if tokenizer.get(key)]
    )


def download_variant(
    out: str | os.PathLike,
    variant: str = "sp1024",
    train_shards: int = 80,
    repo_id: str = DEFAULT_REPO_ID,
    remote_root: str = DEFAULT_REMOTE_ROOT,
    endpoint: str | None = None,
) -> dict[str, int]:
    """Fetch the manifest, all val shards, the first `train_shards` train shards and the tokenizer.

    Returns counts {"downloaded", "skipped"} of the data files (the manifest not counted).
    """
    if not SP_VARIANT.fullmatch(variant):
        raise GolfError(f"variant {variant!r}: only SentencePiece variants sp<VOCAB> (e.g. sp1024) are supported")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise GolfError(f"{out} exists and is not a folder")
    hub = HubFiles(out, repo_id, remote_root, endpoint)
    hub.fetch("manifest.json")
    try:
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GolfError(f"{out / 'manifest.json'} is not valid JSON: {exc}") from None
    counts = {"downloaded": 0, "skipped": 0}
    for relative in plan_files(manifest, variant, train_shards):
        downloaded = hub.fetch(relative)
        counts["downloaded" if downloaded else "skipped"] += 1
        print(f"{'fetched' if downloaded else 'present'} {relative}", file=sys.stderr)
    return counts
