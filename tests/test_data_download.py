"""`golf data download` against a local fake of the Hugging Face Hub (real huggingface_hub client).

The fake serves a small dataset repository in the Hub's URL layout on 127.0.0.1
(/datasets/<repo>/resolve/<revision>/<path>, with the X-Repo-Commit/ETag headers and Range
requests that huggingface_hub relies on). The download runs as a real `python -m golf` process with
HF_HUB_OFFLINE=0, because the test session itself keeps the Hub offline.
"""

import hashlib
import json
import os
import subprocess
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from golf.cli import main
from golf.data.corpus import load_corpus_documents
from golf.data.shards import write_shard
from golf.data.tokenizer import train_tokenizer

REPO_ID = "golf-tests/fake-parameter-golf"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
SHARDS = "datasets/datasets/fineweb10B_sp400"
REPO_ROOT = Path(__file__).resolve().parents[1]


class FakeHub(ThreadingHTTPServer):
    def __init__(self, files: dict[str, bytes]):
        super().__init__(("127.0.0.1", 0), _HubHandler)
        self.files = files
        self.requests: list[tuple[str, str]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _HubHandler(BaseHTTPRequestHandler):
    def do_HEAD(self):
        self._respond(with_body=False)

    def do_GET(self):
        self._respond(with_body=True)

    def _respond(self, with_body: bool):
        prefix = f"/datasets/{REPO_ID}/resolve/main/"
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        name = path[len(prefix) :] if path.startswith(prefix) else None
        self.server.requests.append((self.command, name))
        data = self.server.files.get(name)
        if data is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start = 0
        if self.headers.get("Range", "").startswith("bytes="):
            start = int(self.headers["Range"][len("bytes=") :].split("-")[0])
        self.send_response(206 if start else 200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.send_header("Content-Length", str(len(data) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if with_body:
            self.wfile.write(data[start:])

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def repo_files(tmp_path_factory):
    """A small export: manifest, 1 val + 3 train shards in the real format, a 400-piece tokenizer."""
    work = tmp_path_factory.mktemp("fake_repo")
    model = train_tokenizer(load_corpus_documents(max_chars=30_000), 400, work / "fineweb_400_bpe")
    rng = np.random.default_rng(0)
    files = {
        "datasets/tokenizers/fineweb_400_bpe.model": model.read_bytes(),
        "datasets/tokenizers/fineweb_400_bpe.vocab": model.with_suffix(".vocab").read_bytes(),
    }
    for name, n in [("val_000000", 3000), ("train_000000", 5000), ("train_000001", 5000), ("train_000002", 700)]:
        files[f"{SHARDS}/fineweb_{name}.bin"] = write_shard(work / name, rng.integers(0, 400, n)).read_bytes()
    manifest = {
        "datasets": [
            {"name": "fineweb10B_sp400", "tokenizer_name": "sp_bpe_400", "stats": {"files_train": 3, "files_val": 1}}
        ],
        "tokenizers": [
            {
                "name": "sp_bpe_400",
                "model_path": "tokenizers/fineweb_400_bpe.model",
                "vocab_path": "tokenizers/fineweb_400_bpe.vocab",
            }
        ],
    }
    files["datasets/manifest.json"] = json.dumps(manifest).encode()
    return files


@pytest.fixture
def hub(repo_files):
    server = FakeHub(dict(repo_files))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _download(hub, out, tmp_path, train_shards=2):
    env = dict(os.environ, HF_HUB_OFFLINE="0", HF_HOME=str(tmp_path / "hf_home"), NO_PROXY="127.0.0.1")
    command = [sys.executable, "-m", "golf", "data", "download", "--variant", "sp400", "--out", str(out)]
    command += ["--train-shards", str(train_shards), "--repo-id", REPO_ID, "--endpoint", hub.url]
    return subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)


def _local(out, remote):
    return out / remote[len("datasets/") :]


@pytest.mark.slow
def test_download_fetches_val_first_train_shards_and_tokenizer_and_resumes(hub, repo_files, tmp_path):
    out = tmp_path / "data"
    missing = f"{SHARDS}/fineweb_train_000001.bin"
    del hub.files[missing]  # the first attempt breaks off at this file

    first = _download(hub, out, tmp_path)
    assert first.returncode == 2
    assert first.stderr.strip().splitlines()[-1].startswith(f"golf: error: could not download {missing}")
    for done in ["datasets/manifest.json", f"{SHARDS}/fineweb_val_000000.bin", f"{SHARDS}/fineweb_train_000000.bin"]:
        assert _local(out, done).read_bytes() == repo_files[done]
    assert not _local(out, missing).exists()

    # A damaged file is fetched again; complete files are not asked for.
    val = _local(out, f"{SHARDS}/fineweb_val_000000.bin")
    val.write_bytes(val.read_bytes()[:-10])
    hub.files[missing] = repo_files[missing]
    hub.requests.clear()
    second = _download(hub, out, tmp_path)
    assert second.returncode == 0, second.stderr
    fetched = {name for method, name in hub.requests if method == "GET"}
    assert fetched == {
        f"{SHARDS}/fineweb_val_000000.bin",
        missing,
        "datasets/tokenizers/fineweb_400_bpe.model",
        "datasets/tokenizers/fineweb_400_bpe.vocab",
    }
    expected = [name for name in repo_files if "train_000002" not in name]  # only --train-shards 2
    for name in expected:
        assert _local(out, name).read_bytes() == repo_files[name]
    assert not _local(out, f"{SHARDS}/fineweb_train_000002.bin").exists()
    assert "vocab 400" in second.stderr

    # Everything present: no request at all, and `golf data check` accepts the folder.
    hub.requests.clear()
    third = _download(hub, out, tmp_path)
    assert third.returncode == 0 and hub.requests == []
    assert "0 files fetched, 5 already present" in third.stderr
    assert main(["data", "check", "--data", str(out)]) == 0

    # Against the local manifest, without the Hub: a shard count beyond the export is refused.
    assert main(["data", "download", "--variant", "sp400", "--out", str(out), "--train-shards", "4"]) == 2


def test_download_errors_are_one_line_exit_2(tmp_path, capsys):
    out = tmp_path / "data"
    # The test session is offline (HF_HUB_OFFLINE=1): the client refuses at once.
    assert main(["data", "download", "--out", str(out), "--train-shards", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("golf: error: could not download datasets/manifest.json") and "\n" not in err
    assert main(["data", "download", "--variant", "byte260", "--out", str(out)]) == 2
    assert "only SentencePiece variants" in capsys.readouterr().err
