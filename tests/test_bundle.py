"""golf/bundle.py: one self-contained train_gpt.py from golf/ (tests/test_submit.py runs it standalone
and checks that it reproduces the run it was built from)."""

import ast

import libcst as cst
import pytest

from golf.bundle import ENTRY, bundle

pytestmark = pytest.mark.slow  # bundling golf/ runs libcst scope analysis over ~25 modules


@pytest.fixture(scope="module")
def built():
    return bundle()


def test_the_bundle_imports_nothing_of_golf_and_parses(built):
    tree = ast.parse(built.source)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert not (node.module or "").startswith("golf"), ast.unparse(node)
            assert node.level == 0
        if isinstance(node, ast.Import):
            assert not any(a.name.split(".")[0] == "golf" for a in node.names), ast.unparse(node)
    futures = [n for n in tree.body if isinstance(n, ast.ImportFrom) and n.module == "__future__"]
    assert len(futures) == 1 and tree.body.index(futures[0]) == 1  # right after the header docstring


def test_modules_in_dependency_order_and_main_guard_last(built):
    order = built.modules
    assert order[-1] == ENTRY and order.index("golf.errors") < order.index("golf.config")
    assert order.index("golf.model") < order.index("golf.train") < order.index("golf.pipeline")
    tree = ast.parse(built.source)
    last = tree.body[-1]
    assert isinstance(last, ast.If) and "__name__" in ast.unparse(last.test)
    defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    # every module's entry points are there, once
    assert {"run_pipeline", "GPT", "Hyperparameters", "main", "eval_sliding", "gptq_quantize"} <= defined
    names = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    assert len(names) == len(set(names)), "a top-level name is defined twice"


def test_colliding_imports_are_renamed_where_used(built):
    # typing.Iterable and collections.abc.Iterable are bound under one name in different modules
    assert {"golf.data.tokenizer.Iterable", "golf.quant.gptq.Iterable"} <= set(built.renamed)
    source = built.source
    assert "from typing import Callable, Iterable as Iterable_gptq" in source
    assert "batches: Iterable_gptq" in source
    tree = ast.parse(source)
    bound = {a.asname or a.name for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    bound |= {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    for qualified, new in built.renamed.items():
        assert new in bound, qualified  # each renamed binding exists at top level under its new name


def test_code_accounting_counts_the_bundle_itself(built):
    tree = cst.parse_module(built.source)
    fn = next(s for s in tree.body if isinstance(s, cst.FunctionDef) and s.name.value == "loaded_source_files")
    assert "Path(__file__)" in tree.code_for_node(fn)
    assert 0 < built.compressed_bytes < built.raw_bytes == len(built.source.encode())
