"""Flatten golf/ into ONE self-contained train_gpt.py, the only code file a submission may count.

Starting at the entry module (golf.standalone: `golf train` configured from env vars), every golf
module it imports, at module level or inside functions, is inlined once, dependencies first; the
`from golf.x import name` statements are removed and each use of `name` points at the inlined
definition. Top-level names that two modules define differently (two `_parse` functions, two
`barrier`s) are renamed `<name>_<module>` in the module that defines them, using libcst's scope
analysis so that locals, attributes and keywords of the same spelling are left alone. Module
docstrings are dropped (a one-line header comment says where each part came from); the entry's
`if __name__ == "__main__":` block goes last.

One function is replaced: golf.runlog.loaded_source_files, which finds the code files of a run (for
the log's source dump and the code-bytes accounting) among the imported golf modules; in the bundle
that code is the bundle file itself.

The result reports its code bytes raw and as an lzma+base85 self-extracting file (the accounting
convention of the records, via golf.quant.artifact).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import libcst as cst
from libcst.helpers import get_full_name_for_node
from libcst.metadata import MetadataWrapper, ScopeProvider

from golf.errors import GolfError

PACKAGE = "golf"
ENTRY = "golf.standalone"
OVERRIDES: dict[tuple[str, str], str] = {
    ("golf.runlog", "loaded_source_files"): '''\
def loaded_source_files(package: str = "golf") -> list[Path]:
    """In the bundle every module of the package lives in this one file: it is the code."""
    return [Path(__file__).resolve()]
''',
}
HEADER = '''\
"""Parameter Golf submission: the golf reference pipeline (train, GPTQ int5 artifact, sliding-window
and score-first TTT evaluation) bundled into one file by golf/bundle.py from modules {modules}.

python train_gpt.py                                        smoke preset on CPU (PRESET=smoke|record)
torchrun --standalone --nproc_per_node=8 train_gpt.py      record preset on 8 GPUs
Env: DATA_PATH (data folder), OUT_DIR (run folder, new or empty), SEED, and golf's hyperparameters.
"""
'''


@dataclass(frozen=True)
class Bundle:
    source: str
    modules: list[str]  # inlined golf modules, in bundle order
    renamed: dict[str, str] = field(default_factory=dict)  # "module.name" -> name in the bundle

    @property
    def raw_bytes(self) -> int:
        return len(self.source.encode("utf-8"))

    @property
    def compressed_bytes(self) -> int:
        from golf.quant.artifact import self_extracting_code

        return len(self_extracting_code(self.source).encode("utf-8"))


def _is_golf(module: str | None) -> bool:
    return module is not None and (module == PACKAGE or module.startswith(PACKAGE + "."))


@dataclass
class _Module:
    name: str
    tree: cst.Module
    hard: list[str] = field(default_factory=list)  # golf modules imported at module level
    soft: list[str] = field(default_factory=list)  # golf modules imported inside functions


class _ImportScan(cst.CSTVisitor):
    """Golf imports of one module, split into module-level and function-level ones."""

    def __init__(self, name: str):
        self.name = name
        self.depth = 0
        self.hard: list[str] = []
        self.soft: list[str] = []

    def visit_FunctionDef(self, node):
        self.depth += 1

    def leave_FunctionDef(self, node):
        self.depth -= 1

    def visit_Import(self, node: cst.Import):
        for alias in node.names:
            if _is_golf(get_full_name_for_node(alias.name)):
                raise GolfError(f"{self.name}: `import {get_full_name_for_node(alias.name)}` cannot be bundled; "
                                "use `from golf.x import name`")

    def visit_ImportFrom(self, node: cst.ImportFrom):
        if node.relative:
            raise GolfError(f"{self.name}: relative imports cannot be bundled; use `from golf.x import name`")
        module = get_full_name_for_node(node.module)
        if not _is_golf(module):
            return
        if module == PACKAGE or isinstance(node.names, cst.ImportStar):
            raise GolfError(f"{self.name}: `from {module} import ...` of a module or * cannot be bundled")
        (self.soft if self.depth else self.hard).append(module)


def _load(name: str) -> _Module:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise GolfError(f"cannot find the source of module {name}")
    tree = cst.parse_module(Path(spec.origin).read_text(encoding="utf-8"))
    for (module, function), replacement in OVERRIDES.items():
        if module == name:
            tree = _replace_function(tree, function, cst.parse_statement(replacement))
    scan = _ImportScan(name)
    tree.visit(scan)
    return _Module(name, tree, list(dict.fromkeys(scan.hard)), list(dict.fromkeys(scan.soft)))


def _replace_function(tree: cst.Module, name: str, replacement: cst.BaseStatement) -> cst.Module:
    body = [replacement if isinstance(s, cst.FunctionDef) and s.name.value == name else s for s in tree.body]
    if body == list(tree.body):
        raise GolfError(f"bundle override: function {name} not found")
    return tree.with_changes(body=body)


def _collect(entry: str) -> list[_Module]:
    """Every golf module reachable from `entry`, dependencies first (post-order DFS)."""
    modules: dict[str, _Module] = {}
    order: list[str] = []

    def visit(name: str) -> None:
        if name in modules:
            return
        modules[name] = module = _load(name)
        for dep in module.hard + module.soft:
            visit(dep)
        order.append(name)

    visit(entry)
    position = {name: i for i, name in enumerate(order)}
    for name in order:
        for dep in modules[name].hard:
            if position[dep] > position[name]:
                raise GolfError(f"module-level import cycle between {name} and {dep}")
    return [modules[name] for name in order]


def _short(module: str) -> str:
    return module.rsplit(".", 1)[-1]


def _binding_signature(module: str, assignment) -> tuple:
    """Two modules binding a name the same way (the same external import) need no rename."""
    node = assignment.node
    if isinstance(node, (cst.Import, cst.ImportFrom)):
        source = get_full_name_for_node(node.module) if isinstance(node, cst.ImportFrom) and node.module else ""
        for alias in node.names:
            bound = get_full_name_for_node(alias.asname.name) if alias.asname else get_full_name_for_node(alias.name)
            if bound == assignment.name or bound.split(".")[0] == assignment.name:
                return ("import", source, get_full_name_for_node(alias.name))
    return ("def", module)


class _Analysis:
    """Scopes of every module: top-level bindings, golf-import bindings, final names."""

    def __init__(self, modules: list[_Module]):
        self.wrappers = {m.name: MetadataWrapper(m.tree) for m in modules}
        self.scopes = {name: w.resolve(ScopeProvider) for name, w in self.wrappers.items()}
        self.top: dict[str, dict[str, list]] = {}  # module -> name -> global assignments (non-golf)
        self.golf_imports: dict[str, list[tuple]] = {}  # module -> [(assignment, src module, src name)]
        for name, wrapper in self.wrappers.items():
            global_scope = self.scopes[name][wrapper.module]
            top: dict[str, list] = {}
            imports = []
            for scope in set(self.scopes[name].values()):
                if scope is None:
                    continue
                for assignment in scope.assignments:
                    source = _golf_import_source(assignment)
                    if source is not None:
                        imports.append((assignment, *source))
                    elif scope is global_scope and assignment.name != "annotations":
                        top.setdefault(assignment.name, []).append(assignment)
            self.top[name], self.golf_imports[name] = top, imports
        self.final = self._final_names()

    def _final_names(self) -> dict[str, dict[str, str]]:
        signatures: dict[str, set] = {}
        for module, top in self.top.items():
            for name, assignments in top.items():
                signatures.setdefault(name, set()).add(_binding_signature(module, assignments[0]))
        taken = set(signatures)
        final: dict[str, dict[str, str]] = {}
        for module, top in self.top.items():
            final[module] = {}
            for name in top:
                new = name
                if len(signatures[name]) > 1:
                    new = f"{name}_{_short(module)}"
                    if new in taken:
                        new = f"{name}_{module.replace('.', '_')}"
                    taken.add(new)
                final[module][name] = new
        return final

    def target(self, module: str, name: str, seen: tuple = ()) -> str:
        """The bundle name of `name` as defined (or re-imported) by golf `module`."""
        if name in self.final.get(module, {}):
            return self.final[module][name]
        for assignment, src_module, src_name in self.golf_imports.get(module, []):
            if assignment.name == name and (src_module, src_name) not in seen:
                return self.target(src_module, src_name, seen + ((module, name),))
        raise GolfError(f"cannot bundle: {module} has no top-level name {name}")


def _golf_import_source(assignment) -> tuple[str, str] | None:
    node = assignment.node
    if not isinstance(node, cst.ImportFrom) or not _is_golf(get_full_name_for_node(node.module)):
        return None
    for alias in node.names:
        bound = get_full_name_for_node(alias.asname.name) if alias.asname else get_full_name_for_node(alias.name)
        if bound == assignment.name:
            return get_full_name_for_node(node.module), get_full_name_for_node(alias.name)
    return None


class _Rewrite(cst.CSTTransformer):
    """Applies the renames of one module, drops golf imports, __future__ imports and the docstring."""

    def __init__(self, names: dict[cst.Name, str], import_aliases: dict[cst.ImportAlias, str],
                 globals_renamed: dict[str, str]):
        self.names = names
        self.import_aliases = import_aliases
        self.globals_renamed = globals_renamed

    def leave_Name(self, original, updated):
        new = self.names.get(original)
        return updated.with_changes(value=new) if new else updated

    def leave_ImportAlias(self, original, updated):
        new = self.import_aliases.get(original)
        return updated.with_changes(asname=cst.AsName(name=cst.Name(new))) if new else updated

    def leave_ImportFrom(self, original, updated):
        module = get_full_name_for_node(original.module) if original.module else ""
        if _is_golf(module) or module == "__future__":
            return cst.RemoveFromParent()
        return updated

    def leave_Global(self, original, updated):
        names = [n.with_changes(name=cst.Name(self.globals_renamed.get(n.name.value, n.name.value)))
                 for n in updated.names]
        return updated.with_changes(names=names)

    def leave_SimpleStatementLine(self, original, updated):
        return updated if updated.body else cst.RemoveFromParent()

    def leave_IndentedBlock(self, original, updated):
        return updated if updated.body else updated.with_changes(body=[cst.SimpleStatementLine([cst.Pass()])])


def _rewrite(module: _Module, analysis: _Analysis) -> cst.Module:
    names: dict[cst.Name, str] = {}
    aliases: dict[cst.ImportAlias, str] = {}
    final = analysis.final[module.name]
    for name, assignments in analysis.top[module.name].items():
        new = final[name]
        if new == name:
            continue
        for assignment in assignments:
            node = assignment.node
            if isinstance(node, (cst.FunctionDef, cst.ClassDef)):
                names[node.name] = new
            elif isinstance(node, cst.Name):
                names[node] = new
            elif isinstance(node, (cst.Import, cst.ImportFrom)):
                for alias in node.names:
                    bound = get_full_name_for_node(alias.asname.name) if alias.asname else get_full_name_for_node(alias.name)
                    if bound == name:
                        aliases[alias] = new
            else:
                raise GolfError(f"cannot bundle: {module.name} binds {name} in an unsupported way")
            for access in assignment.references:
                if isinstance(access.node, cst.Name):
                    names[access.node] = new
    for assignment, src_module, src_name in analysis.golf_imports[module.name]:
        new = analysis.target(src_module, src_name)
        for access in assignment.references:
            if isinstance(access.node, cst.Name):
                names[access.node] = new
    renamed_globals = {n: f for n, f in final.items() if n != f}
    return analysis.wrappers[module.name].visit(_Rewrite(names, aliases, renamed_globals))


def _split_main_guard(tree: cst.Module) -> tuple[list, list]:
    body, guard = [], []
    for stmt in tree.body:
        is_guard = isinstance(stmt, cst.If) and "__name__" in cst.Module([]).code_for_node(stmt.test)
        (guard if is_guard else body).append(stmt)
    return body, guard


def _without_docstring(body: list) -> list:
    if body and isinstance(body[0], cst.SimpleStatementLine) and isinstance(body[0].body[0], cst.Expr) \
            and isinstance(body[0].body[0].value, (cst.SimpleString, cst.ConcatenatedString)):
        return body[1:]
    return body


def _package_digest() -> str:
    """Hash of every .py file of the package: a bundle is rebuilt only when one of them changed."""
    root = Path(importlib.util.find_spec(PACKAGE).origin).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def bundle(entry: str = ENTRY) -> Bundle:
    """The source of one train_gpt.py holding `entry` and every golf module it needs."""
    return _bundle(entry, _package_digest())


@functools.lru_cache(maxsize=4)
def _bundle(entry: str, digest: str) -> Bundle:
    modules = _collect(entry)
    analysis = _Analysis(modules)
    parts = [HEADER.format(modules=", ".join(m.name for m in modules)), "from __future__ import annotations\n"]
    main_guard: list = []
    empty = cst.Module([])
    for module in modules:
        tree = _rewrite(module, analysis)
        body, guard = _split_main_guard(tree)
        if module.name == entry:
            main_guard = guard
        body = _without_docstring(body)
        if not body:
            continue
        path = module.name.replace(".", "/") + ".py"
        parts.append(f"\n# {'-' * 30} {path} {'-' * 30}\n")
        parts.append(empty.with_changes(body=body).code.strip("\n") + "\n")
    if not main_guard:
        raise GolfError(f"{entry} has no `if __name__ == \"__main__\":` block to run")
    parts.append("\n\n" + empty.with_changes(body=main_guard).code.strip("\n") + "\n")
    source = "".join(parts)
    _check_self_contained(source)
    renamed = {f"{m}.{n}": f for m, names in analysis.final.items() for n, f in names.items() if n != f}
    return Bundle(source=source, modules=[m.name for m in modules], renamed=renamed)


def _check_self_contained(source: str) -> None:
    """The bundle must parse and import nothing of golf."""
    scan = _ImportScan("train_gpt.py")
    try:
        cst.parse_module(source).visit(scan)
    except cst.ParserSyntaxError as exc:
        raise GolfError(f"the bundle does not parse: {exc}") from exc
    if scan.hard or scan.soft:
        raise GolfError(f"the bundle still imports {sorted(set(scan.hard + scan.soft))}")


def write_bundle(path: str | Path, entry: str = ENTRY) -> Bundle:
    result = bundle(entry)
    Path(path).write_text(result.source, encoding="utf-8")
    return result
