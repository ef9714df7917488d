"""PG200 CODE-1: code run from a string the audit cannot see (exec/eval/compile/import of a
non-literal)."""

from __future__ import annotations

import ast

from audit.static.evidence import calls_from_modules, in_dead_function, line_text, normalization, python_files
from audit.static.rule import Rule

_BUILTINS = {"exec", "eval", "compile", "__import__"}
_IMPORTERS = {"importlib.import_module", "runpy.run_path", "runpy.run_module", "importlib.util.spec_from_file_location"}


class DynamicCode(Rule):
    """Every rule reads the code that runs. `exec(s)`, `eval(s)`, `compile(s, …)`,
    `__import__(name)`, `importlib.import_module(name)` or `runpy.run_path(p)` with a value built
    at run time run code the audit never saw (normalisation already inlines the shims and
    `exec(open(<sibling>).read())` it can decode statically, so what is left is truly opaque).
    "All counted code should live in train_gpt.py" (README FAQ). A warning: the code may be
    harmless, but nothing vouches for it.
    """

    code = "PG200"
    rule = "CODE-1"
    severity = "warning"
    confidence = "high"
    references = ("README FAQ", "#1412")
    summary = "exec/eval/import of a string built at run time: code the audit cannot see"

    VALID = [
        "x = eval('1 + 2')\nimport importlib\nnp = importlib.import_module('numpy')\n",
        # a shim normalisation decodes is not opaque
        "import zlib, base64\nexec(zlib.decompress(base64.b64decode('eJwrKMrMK9FQz0jNyclX1+QCACx3BOs=')))\n",
    ]
    INVALID = [
        "import os\ncode = os.environ.get('EXTRA_CODE', '')\nexec(code)\n",
        "import importlib, os\nmod = importlib.import_module(os.environ['PLUGIN'])\n",
    ]

    def check(self, ctx):
        norm = normalization(ctx)
        resolved = {(n.path, n.line) for n in (norm.notes if norm else []) if n.kind in ("decoded", "indirection")}
        opaque = {(n.path, n.line) for n in (norm.notes if norm else []) if n.kind == "undecodable"}
        for src in python_files(ctx):
            for call, name in calls_from_modules(src, ("importlib", "runpy"), builtins=tuple(_BUILTINS)):
                builtin = isinstance(call.func, ast.Name) and call.func.id in _BUILTINS
                if not (builtin or name in _IMPORTERS) or not call.args:
                    continue
                arg = call.args[0]
                if isinstance(arg, ast.Constant):
                    continue
                origin = src.line_map(call.lineno)
                if origin in resolved or origin in opaque or in_dead_function(src, call):
                    continue  # decoded by normalisation, or reported by PG201
                yield self.finding(src, call.lineno, f"`{name}(…)` runs code built at run time "
                                   f"(`{src.analysis.source_of(arg, 60)}`) that the audit cannot read",
                                   evidence=line_text(src, call.lineno), col=call.col_offset + 1)
