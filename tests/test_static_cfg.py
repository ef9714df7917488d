"""The control-flow graph (audit/static/cfg.py) and the position offsets (audit/static/offsets.py)
that the order and target analyses of the flow rules ask."""

import ast

from audit.static.cfg import CFG
from audit.static.offsets import PositionFrame, index_offsets

LOOPS_AND_BRANCHES = '''
def f(chunks, flag):
    setup = 0
    for chunk in chunks:
        if flag:
            scored = 1
        else:
            trained = 2
        if chunk is None:
            continue
        tail = 3
    after_loop = 4
    while True:
        try:
            risky = 5
        except ValueError:
            handled = 6
        finally:
            cleanup = 7
        break
    return setup
'''


def _graph(src):
    fn = ast.parse(src).body[0]
    by_text = {ast.unparse(s).splitlines()[0]: s for s in ast.walk(fn) if isinstance(s, ast.stmt)}
    return CFG(fn.body), by_text


def test_branches_of_one_if_do_not_follow_each_other():
    cfg, s = _graph(LOOPS_AND_BRANCHES)
    assert not cfg.follows(s["scored = 1"], s["trained = 2"])
    assert cfg.follows(s["scored = 1"], s["tail = 3"])


def test_a_loop_back_edge_reaches_earlier_statements_but_not_within_one_iteration():
    cfg, s = _graph(LOOPS_AND_BRANCHES)
    assert cfg.reaches(s["tail = 3"], s["scored = 1"])  # the next iteration
    assert not cfg.follows(s["tail = 3"], s["scored = 1"])
    assert (s["tail = 3"], s["for chunk in chunks:"]) in cfg.back_edges


def test_continue_skips_the_rest_of_the_body_and_loops_back():
    cfg, s = _graph(LOOPS_AND_BRANCHES)
    cont = next(n for n in cfg.succ if isinstance(n, ast.Continue))
    assert cfg.succ[cont] == {s["for chunk in chunks:"]}


def test_statements_after_a_loop_are_strictly_after_its_body():
    cfg, s = _graph(LOOPS_AND_BRANCHES)
    assert cfg.strictly_before(s["tail = 3"], s["after_loop = 4"])
    assert cfg.strictly_before(s["setup = 0"], s["after_loop = 4"])


def test_try_body_may_jump_to_its_handler_and_finally_always_runs():
    cfg, s = _graph(LOOPS_AND_BRANCHES)
    assert cfg.reaches(s["risky = 5"], s["handled = 6"])
    assert cfg.reaches(s["handled = 6"], s["cleanup = 7"]) and cfg.reaches(s["risky = 5"], s["cleanup = 7"])
    brk = next(n for n in cfg.succ if isinstance(n, ast.Break))
    assert not cfg.reaches(brk, s["risky = 5"])  # break leaves the while loop


def _offsets(expr, **bindings):
    return index_offsets(ast.parse(expr, mode="eval").body,
                         {k: ast.parse(v, mode="eval").body for k, v in bindings.items()})


def test_index_arithmetic_resolves_to_base_and_offset():
    assert _offsets("pos + 1") == {("pos", 1)}
    assert _offsets("positions - 2") == {("positions", -2)}
    assert _offsets("1 + t") == {("t", 1)}
    assert _offsets("idx", idx="np.arange(s + 1, e + 1)") == {("s", 1)}
    assert _offsets("int(i) + 1") == {("i", 1)}
    assert _offsets("logits.argmax(-1)") == set()  # an index a score chose
    assert _offsets("w * 2 + 1") == {("w * 2", 1)}  # a computed position is a base of its own
    assert _offsets("ws + s + 1") == {("ws + s", 1)}
    assert _offsets("jv - (order - k)", jv="pos[mask]", pos="np.arange(s + 1, e + 1)") == {("s", 0)}


def test_the_largest_offset_of_a_base_is_the_target_and_lower_ones_are_the_prefix():
    frame = PositionFrame()
    for expr in ("t - 3", "t - 1", "t"):
        frame.add(_offsets(expr))
    assert frame.role(_offsets("t")) == "target"
    assert frame.role(_offsets("t - 1")) == "prefix"
    alone = PositionFrame()
    alone.add(_offsets("i"))
    assert alone.role(_offsets("i")) is None  # one read at the base: nothing tells target from input
    shifted = PositionFrame()
    shifted.add(_offsets("pos + 1"))
    assert shifted.role(_offsets("pos + 1")) == "target"
