"""PG112 CALIB-2: an evaluation knob is set after scoring, then the validation set is re-scored."""

from __future__ import annotations

import ast

from audit.finding import Finding
from audit.static.flow_rule import FlowRule
from audit.static.rules import _legal

_WRITERS = {"fill_", "copy_", "data"}
# the start of a main() that scores a model twice, and a model class whose temperature defaults to 1.0
_MAIN_HEAD = """

def main():
    args = Hyperparameters()
    model = build_model(args)
    val_tokens = load_validation_tokens(args.val_files, args.seq_len)
    luts = build_luts(args)
"""
_SCALED_HEADER = _legal.HEADER.replace(
    "import torch\n", "import torch\n\n\nclass Scaled(torch.nn.Module):\n    def __init__(self):\n"
    "        super().__init__()\n        self.register_buffer('inference_temp', torch.tensor(1.0))\n", 1)


class KnobTunedOnValidation(FlowRule):
    """No tuning of eval-time knobs on validation outcomes: a temperature (or gate, or mixing
    weight) written into the model after the validation set was scored (`inference_temp.fill_(0.98)`)
    and then used in a second scoring of the same set. Fixed hyperparameters chosen across whole
    training runs are allowed (FAQ); a post-hoc value applied in a re-score is not.

    Knob provenance: CALIB-2 needs the same model re-scored with a value that can depend on the
    earlier scores. Resetting a knob to its class default (the value `__init__` or
    `register_buffer` gives it) when the earlier scoring did not run with another value set for it
    (#991 scored at an explicit 1.0, then re-scored at its class's 0.98: that is calibration), or
    setting it on a model object bound after the earlier scoring and not evaluated since (a fresh
    model before its first evaluation), is not calibration: the finding becomes a note that says why.

    Precedent: #1004's author after #991 was closed ("T=0.98 on re-scored tokens was illegal");
    cocohearts on #1991 and #2098 ("validation-outcome tuning").
    """

    code = "PG112"
    rule = "CALIB-2"
    severity = "error"
    confidence = "medium"
    references = ("#991", "#1004", "#1991", "#2098", "#642")
    summary = "an eval knob is set after scoring and the validation set is scored again with it"

    VALID = _legal.ALL + [
        _legal.HEADER + '''

def main():
    args = Hyperparameters()
    model = build_model(args)
    val_tokens = load_validation_tokens(args.val_files, args.seq_len)
    luts = build_luts(args)
    for step in range(20000):
        if step % 4000 == 0:
            print(f"step:{step} val_bpb:{eval_val(args, model, val_tokens, luts):.4f}")
        model.late_gate_ramp.fill_(min(step / 10000, 1.0))
        train_step(model, args)
    print(f"final val_bpb:{eval_val(args, model, val_tokens, luts):.4f}")
''',
        # the knob is reset to the value its class gives it, before the next scoring
        _SCALED_HEADER + _MAIN_HEAD + '''    print(f"final val_bpb:{eval_val(args, model, val_tokens, luts):.6f}")
    model.inference_temp.fill_(1.0)
    print(f"final_exact val_bpb:{eval_val(args, model, val_tokens, luts):.6f}")
''',
        # the knob is set on a model loaded after the first scoring, before its own first scoring
        _legal.HEADER + _MAIN_HEAD + '''    print(f"pre_quant val_bpb:{eval_val(args, model, val_tokens, luts):.6f}")
    eval_model = load_quantized_model(args)
    eval_model.logit_temperature = 0.97
    print(f"final val_bpb:{eval_val(args, eval_model, val_tokens, luts):.6f}")
''',
    ]
    INVALID = [
        # scored at an explicit 1.0, then re-scored at the class's tuned 0.98
        _SCALED_HEADER.replace("torch.tensor(1.0)", "torch.tensor(0.98)") + _MAIN_HEAD + '''    model.inference_temp.fill_(1.0)
    print(f"final val_bpb:{eval_val(args, model, val_tokens, luts):.6f}")
    model.inference_temp.fill_(0.98)
    print(f"final_T0.98 val_bpb:{eval_val(args, model, val_tokens, luts):.6f}")
''',
        _legal.NO_TTT.replace(
            '    print(f"final val_bpb:{val_bpb:.6f}")',
            '    print(f"final val_bpb:{val_bpb:.6f}")\n'
            '    model.inference_temp.fill_(0.98)\n'
            '    val_bpb = eval_val(args, model, val_tokens, base_bytes_lut)\n'
            '    print(f"final_T0.98 val_bpb:{val_bpb:.6f}")',
        ),
        _legal.NO_TTT.replace(
            '    print(f"final val_bpb:{val_bpb:.6f}")',
            '    print(f"final val_bpb:{val_bpb:.6f}")\n'
            '    model.logit_temperature = 0.97\n'
            '    val_bpb = eval_val(args, model, val_tokens, base_bytes_lut)\n'
            '    print(f"final_T val_bpb:{val_bpb:.6f}")',
        ),
    ]

    def check(self, ctx):
        for finding in super().check(ctx):
            reason = self._not_calibration(ctx, finding)
            if reason:
                finding = Finding(code=finding.code, rule=finding.rule, severity="note",
                                  confidence=finding.confidence, path=finding.path, line=finding.line,
                                  col=finding.col, message=f"{finding.message} [not calibration: {reason}]",
                                  evidence=finding.evidence)
            yield finding

    def _not_calibration(self, ctx, finding) -> str:
        for src in ctx.files:
            analysis = src.analysis
            tree = getattr(analysis, "tree", None)
            if tree is None:
                continue
            for stmt in _statements_at(analysis, src, finding):
                knob = _knob(stmt)
                if knob is None:
                    continue
                root, attr, value = knob
                default = _class_default(analysis, attr)
                if value is not None and default is not None and value == default and not _set_before_scoring(
                        analysis, stmt, attr, value):
                    return f"`{attr}` is reset to its class default {default!r}"
                if root and _fresh_object(analysis, stmt, root):
                    return f"`{root}` is a model bound after the earlier scoring and not evaluated before this"
        return ""


def _statements_at(analysis, src, finding):
    """The statements of `src` at the finding's (original) line."""
    for stmts in analysis.index.stmts.values():
        for stmt in stmts:
            if src.line_map(stmt.lineno) == (finding.path, finding.line) and not isinstance(
                    stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.For, ast.While, ast.If,
                           ast.With)):
                yield stmt


def _constant(node: ast.AST):
    """The number a knob value or default spells: a literal, torch.tensor(c), torch.full(s, c),
    torch.ones(...) = 1.0, torch.zeros(...) = 0.0, nn.Parameter(...) of those."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _constant(node.operand)
        return -inner if inner is not None else None
    if isinstance(node, ast.Call):
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name in ("tensor", "Parameter", "float", "as_tensor") and node.args:
            return _constant(node.args[0])
        if name in ("full", "full_like") and len(node.args) >= 2:
            return _constant(node.args[1])
        if name in ("ones", "ones_like"):
            return 1.0
        if name in ("zeros", "zeros_like"):
            return 0.0
    return None


def _knob(stmt: ast.stmt):
    """(root object, attribute, value) of `root.attr.fill_(v)` / `root.attr = v` / `root.attr.data.fill_(v)`."""
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call) and isinstance(stmt.value.func, ast.Attribute) \
            and stmt.value.func.attr in _WRITERS and stmt.value.args:
        target, value = stmt.value.func.value, stmt.value.args[0]
    elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
        target, value = stmt.targets[0], stmt.value
    else:
        return None
    if isinstance(target, ast.Attribute) and target.attr == "data":
        target = target.value
    if not isinstance(target, ast.Attribute):
        return None
    root = target.value
    while isinstance(root, ast.Attribute):
        root = root.value
    return (root.id if isinstance(root, ast.Name) else None), target.attr, _constant(value)


def _class_default(analysis, attr: str):
    """The constant `self.attr = c` / `register_buffer("attr", c)` gives `attr` in a class body."""
    for stmts in analysis.index.stmts.values():
        for stmt in stmts:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                target = stmt.targets[0]
                if isinstance(target, ast.Attribute) and target.attr == attr and isinstance(target.value, ast.Name) \
                        and target.value.id == "self":
                    return _constant(stmt.value)
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
                call = stmt.value
                if getattr(call.func, "attr", "") == "register_buffer" and len(call.args) >= 2 and isinstance(
                        call.args[0], ast.Constant) and call.args[0].value == attr:
                    return _constant(call.args[1])
    return None


def _set_before_scoring(analysis, knob: ast.stmt, attr: str, value: float) -> bool:
    """An earlier straight-line write in the knob's function gave `attr` another value for the
    earlier scoring (#991: `fill_(1.0)` for the first pass, then back to the class's 0.98 for the
    re-score): going back to the default then picks a different value for the second pass. Writes
    in a loop (a schedule during training) do not count."""
    owner = analysis.enclosing_function(knob) or analysis.tree
    for stmt in analysis.index.stmts.get(owner, []):
        if stmt.lineno >= knob.lineno:
            continue
        earlier = _knob(stmt)
        if earlier and earlier[1] == attr and earlier[2] != value and not any(
                isinstance(a, (ast.For, ast.While, ast.AsyncFor)) for a in _ancestors_within(analysis, stmt, owner)):
            return True
    return False


def _ancestors_within(analysis, node: ast.AST, owner: ast.AST):
    node = analysis.parents.get(node)
    while node is not None and node is not owner:
        yield node
        node = analysis.parents.get(node)


def _fresh_object(analysis, knob: ast.stmt, root: str) -> bool:
    """`root` is bound in the knob's function by an assignment before the knob and after every
    earlier statement that evaluates something, with no use of `root` in between."""
    owner = analysis.enclosing_function(knob) or analysis.tree
    stmts = [s for s in analysis.index.stmts.get(owner, []) if s.lineno < knob.lineno]
    binding = None
    for stmt in stmts:
        if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == root for t in stmt.targets):
            binding = stmt
    if binding is None:
        return False
    between = [s for s in stmts if s.lineno > binding.lineno]
    return not any(isinstance(n, ast.Name) and n.id == root for s in between
                   for n in analysis.index.exprs.get(s, ()))
