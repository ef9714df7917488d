"""audit/normalize.py: shims, indirection and helper modules are unwrapped statically, with a
line map back to the original files; nothing is executed."""

import ast
import base64
import lzma
import zlib

import brotli

from audit.normalize import normalize_source

CODE = (
    "import torch\n"
    "def eval_val(model, val_tokens):\n"
    "    with torch.no_grad():\n"
    "        return model(val_tokens).mean()\n"
    "print(f\"{', '.join(['a', 'b'])}\")\n"
)


def lzma_shim(code: str) -> str:
    """The records' form: raw LZMA2 + base85, aliases L and B (#1285, #1394, #1413 …)."""
    packed = lzma.compress(code.encode(), format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2}])
    return ("import lzma as L,base64 as B\n"
            f'exec(L.decompress(B.b85decode("{base64.b85encode(packed).decode()}"),'
            'format=L.FORMAT_RAW,filters=[{"id":L.FILTER_LZMA2}]))\n')


def brotli_shim(code: str) -> str:
    """The `_compressed_code_size` wrapper form (#1530 … #1868), on one line."""
    packed = base64.b85encode(brotli.compress(code.encode(), quality=11)).decode()
    return f'import brotli as B,base64 as b;exec(B.decompress(b.b85decode("{packed}")))\n'


def test_lzma_shim_is_decoded_and_mapped_to_its_exec_line():
    n = normalize_source(lzma_shim(CODE), "train_gpt.py")
    assert "def eval_val(model, val_tokens):" in n.text
    ast.parse(n.text)
    line = n.text.splitlines().index("def eval_val(model, val_tokens):") + 1
    assert n.line_map(line) == ("train_gpt.py#decoded", 2)
    assert n.real_location(*n.line_map(line)) == ("train_gpt.py", 2)
    assert n.line_map(1) == ("train_gpt.py", 1)
    assert [note.kind for note in n.notes] == ["decoded"]
    assert "lzma+base85" in n.notes[0].detail


def test_two_layers_zlib_around_lzma():
    inner = lzma_shim(CODE)
    outer = ("import zlib, base64\n"
             f"exec(zlib.decompress(base64.b64decode('{base64.b64encode(zlib.compress(inner.encode())).decode()}')))\n")
    n = normalize_source(outer, "train_gpt.py")
    assert "def eval_val(model, val_tokens):" in n.text
    assert [note.kind for note in n.notes] == ["decoded", "decoded"]
    line = n.text.splitlines().index("def eval_val(model, val_tokens):") + 1
    assert n.real_location(*n.line_map(line)) == ("train_gpt.py", 2)


def test_brotli_shim_after_a_semicolon():
    n = normalize_source(brotli_shim(CODE), "train_gpt.py")
    assert "def eval_val(model, val_tokens):" in n.text
    assert n.text.splitlines()[0] == "import brotli as B,base64 as b"
    assert "brotli+base85" in n.notes[0].detail


def test_literal_bound_first_then_exec_with_replace_and_decode():
    packed = base64.b85encode(lzma.compress(CODE.encode())).decode()
    wrapped = "\n".join(packed[i:i + 60] for i in range(0, len(packed), 60))
    text = ('import lzma,base64\n_b=b"""\n' + wrapped + '\n"""\n'
            'exec(lzma.decompress(base64.b85decode(_b.replace(b"\\n",b""))).decode("utf-8"))\n')
    n = normalize_source(text, "train_gpt.py")
    assert "def eval_val(model, val_tokens):" in n.text
    assert n.notes[0].line == text.splitlines().index(
        'exec(lzma.decompress(base64.b85decode(_b.replace(b"\\n",b""))).decode("utf-8"))') + 1


def test_shim_inside_a_function_is_reindented():
    text = "def run():\n    " + lzma_shim("x = 1\ny = x + 1\n").replace("\n", "\n    ").rstrip() + "\n"
    n = normalize_source(text, "train_gpt.py")
    tree = ast.parse(n.text)
    assert [type(s).__name__ for s in tree.body[0].body][-2:] == ["Assign", "Assign"]


def test_exec_open_indirection_inlines_the_sibling_with_its_own_lines():
    files = {
        "train_gpt.py": 'exec(open(__file__.replace("train_gpt.py","train_gpt_decode.py")).read())\n',
        "train_gpt_decode.py": CODE,
    }
    n = normalize_source(files["train_gpt.py"], "train_gpt.py", files)
    line = n.text.splitlines().index("def eval_val(model, val_tokens):") + 1
    assert n.line_map(line) == ("train_gpt_decode.py", 2)
    assert n.helpers == ["train_gpt_decode.py"]
    assert n.files == ["train_gpt.py", "train_gpt_decode.py"]


def test_indirection_path_forms(tmp_path):
    (tmp_path / "stage.py").write_text("STAGE = 2\n")
    for form in ('exec(open(os.path.join(os.path.dirname(__file__), "stage.py")).read())',
                 'exec(open(Path(__file__).with_name("stage.py")).read())',
                 'exec(open(Path(__file__).resolve().parent / "stage.py").read())',
                 'exec(compile(open("stage.py").read(), "stage.py", "exec"))'):
        text = "import os\nfrom pathlib import Path\n" + form + "\n"
        n = normalize_source(text, "train_gpt.py", tmp_path)
        assert "STAGE = 2" in n.text, form
        assert n.line_map(n.text.splitlines().index("STAGE = 2") + 1) == ("stage.py", 1)


def test_helper_modules_are_inlined_before_their_first_use():
    files = {
        "train_gpt.py": "import torch\nfrom ngram_tilt import tilt\nimport kern.ops\n\ndef main():\n    tilt()\n",
        "ngram_tilt.py": "def tilt():\n    return 1\n",
        "kern/__init__.py": "",
        "kern/ops.py": "def fused():\n    return 2\n",
    }
    n = normalize_source(files["train_gpt.py"], "train_gpt.py", files)
    lines = n.text.splitlines()
    assert lines.index("def tilt():") < lines.index("from ngram_tilt import tilt")
    assert n.line_map(lines.index("def tilt():") + 1) == ("ngram_tilt.py", 1)
    assert n.line_map(lines.index("def fused():") + 1) == ("kern/ops.py", 1)
    assert n.helpers == ["ngram_tilt.py", "kern/__init__.py", "kern/ops.py"]
    assert n.line_map(lines.index("def main():") + 1) == ("train_gpt.py", 5)


def test_corrupt_shim_is_reported_and_left_in_place():
    text = "import lzma as L,base64 as B\nexec(L.decompress(B.b85decode('not base85 at all ~~~')))\n"
    n = normalize_source(text, "train_gpt.py")
    assert n.text.splitlines() == text.splitlines()
    assert [(note.kind, note.line) for note in n.notes] == [("undecodable", 2)]


def test_missing_indirection_target_and_cycles_end():
    files = {"a.py": 'exec(open("b.py").read())\n', "b.py": 'exec(open("a.py").read())\nB = 1\n'}
    n = normalize_source(files["a.py"], "a.py", files)
    assert "B = 1" in n.text
    assert any(note.kind == "undecodable" and "cycle" in note.detail for note in n.notes)
    missing = normalize_source('exec(open("gone.py").read())\n', "train_gpt.py", {})
    assert [note.kind for note in missing.notes] == ["undecodable"]


def test_python_312_fstrings_become_parseable():
    code = 'names = ["a"]\nprint(f"{", ".join(names)}")\n'
    n = normalize_source(lzma_shim(code), "train_gpt.py")
    ast.parse(n.text)  # the quotes inside the replacement field were swapped
    assert "print(f\"{', '.join(names)}\")" in n.text


def test_dunder_import_form():
    packed = base64.b64encode(zlib.compress(CODE.encode())).decode()
    n = normalize_source(f'exec(__import__("zlib").decompress(__import__("base64").b64decode("{packed}")))\n',
                         "train_gpt.py")
    assert "def eval_val(model, val_tokens):" in n.text and "zlib+base64" in n.notes[0].detail
