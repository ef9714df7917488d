"""PG201 CODE-1: a self-extracting shim or exec(open(…)) target the audit could not unwrap."""

from __future__ import annotations

from audit.static.evidence import normalization
from audit.static.rule import Rule


class UndecodableShim(Rule):
    """Records pack their code in self-extracting shims (`exec(lzma.decompress(base64.b85decode(
    "…")))`, brotli and zlib variants) and `exec(open(<sibling>).read())` indirection (#1412);
    the audit unwraps these statically. When a layer cannot be decoded (corrupt data, an unknown
    codec, a decoded text that is not Python, a target file missing from the folder) the code
    behind it is hidden from every rule, so no verdict about it can be trusted: an error that
    says why the layer failed.
    """

    code = "PG201"
    rule = "CODE-1"
    severity = "error"
    confidence = "high"
    references = ("#1412", "#1285", "#1835")
    summary = "a code shim or exec(open()) target that cannot be decoded hides code from the audit"

    VALID = [
        # `print('hello')` packed the way the records do it
        'import lzma as L,base64 as B\nexec(L.decompress(B.b85decode("0RRqga%paKC?{xTY;12QDGC4"),'
        'format=L.FORMAT_RAW,filters=[{"id":L.FILTER_LZMA2}]))\n',
    ]
    INVALID = [
        "import lzma as L, base64 as B\nexec(L.decompress(B.b85decode('not+base85+data~~~')))\n",
        'exec(open(__file__.replace("train_gpt.py", "train_gpt_decode.py")).read())\n',
    ]

    def check(self, ctx):
        norm = normalization(ctx)
        for note in (norm.notes if norm else []):
            if note.kind == "undecodable":
                yield self.finding(None, note.line, f"code hidden from the audit: {note.detail}",
                                   path=note.path, evidence=note.detail)
