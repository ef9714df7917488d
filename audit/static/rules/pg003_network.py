"""PG003 NET-1: network access (downloads, HTTP, hub clients, wget/curl) reachable from the code."""

from __future__ import annotations

import re

from audit.static.evidence import calls_from_modules, in_dead_function, python_files, string_constants
from audit.static.rule import Rule

# callees (import aliases expanded) that reach the network
_NETWORK_CALLS = re.compile(
    r"^(requests\.(get|post|put|head|request|Session)|requests\.api\.\w+|httpx\.\w+|aiohttp\.\w+"
    r"|urllib\.request\.(urlopen|urlretrieve|Request|build_opener)|urllib3\.\w+|http\.client\.HTTPS?Connection"
    r"|huggingface_hub\.\w+|datasets\.load_dataset|torch\.hub\.(load|load_state_dict_from_url|download_url_to_file)"
    r"|wget\.download|socket\.create_connection|ftplib\.FTP|smtplib\.\w+|gdown\.download)$"
)
# hub functions that only read the local cache or configuration are not network access
_HUB_LOCAL = re.compile(r"^huggingface_hub\.(constants|utils|logging|try_to_load_from_cache|scan_cache_dir)")
_NETWORK_MODULES = ("requests", "httpx", "aiohttp", "urllib", "urllib3", "http", "huggingface_hub", "datasets",
                    "torch", "wget", "socket", "ftplib", "smtplib", "gdown", "subprocess", "os")
_SHELL_CALLS = {"subprocess.run", "subprocess.call", "subprocess.check_call", "subprocess.check_output",
                "subprocess.Popen", "os.system", "os.popen"}
_SHELL_NETWORK = re.compile(r"(^|[\s;&|'\"])(wget|curl|huggingface-cli|git\s+clone|pip3?\s+install|aria2c|scp|rsync)\b")


class NetworkAccess(Rule):
    """No external downloads or network access: the artifact must be self-contained (README FAQ).
    #1972 downloaded a casefold dataset and tokenizer from train_gpt.py.

    Flags calls of HTTP clients (requests, urllib.request, httpx), Hugging Face hub functions
    (snapshot_download, hf_hub_download), datasets.load_dataset, torch.hub downloads and shell
    commands that fetch (wget, curl, git clone, pip install), with import aliases resolved. Calls in
    functions nothing references, or behind a configuration guard that is off under the logged
    hyperparameters, are not reachable and are not errors.
    """

    code = "PG003"
    rule = "NET-1"
    severity = "error"
    confidence = "high"
    references = ("#1972", "README FAQ")
    summary = "network access (download, HTTP, hub, wget/curl) reachable from the submission"

    VALID = [
        "import os\nimport torch\nx = torch.load('final_model.pt')\n",
        # defined but never called: not reachable
        "import requests\ndef fetch():\n    return requests.get('https://example.com')\n",
        # the hub's cache helpers do not reach the network
        "from huggingface_hub import try_to_load_from_cache\np = try_to_load_from_cache('r', 'f')\n",
    ]
    INVALID = [
        "from huggingface_hub import snapshot_download as dl\n"
        "def main():\n    dl(repo_id='someone/casefold-fineweb', local_dir='data')\nmain()\n",
        "import subprocess\nsubprocess.run('wget -q https://example.com/tok.model', shell=True)\n",
        "import urllib.request as U\nU.urlretrieve('https://example.com/x.bin', 'x.bin')\n",
    ]

    def check(self, ctx):
        for src in python_files(ctx):
            for call, name in sorted(calls_from_modules(src, _NETWORK_MODULES), key=lambda cn: cn[0].lineno):
                what = None
                if _NETWORK_CALLS.match(name) and not _HUB_LOCAL.match(name):
                    what = f"`{name}(...)`"
                elif name in _SHELL_CALLS:
                    hit = next((m for s in string_constants(call) if (m := _SHELL_NETWORK.search(s))), None)
                    if hit:
                        what = f"a shell command running `{hit.group(2)}`"
                if what is None or in_dead_function(src, call):
                    continue
                yield self.finding(src, call.lineno, f"network access: {what} can run during the submission's "
                                   "training or evaluation; the artifact must be self-contained",
                                   evidence=src.analysis.source_of(call), col=call.col_offset + 1)
