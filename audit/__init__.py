"""audit: judges Parameter Golf submissions: a static libcst audit, a dynamic replay that proves
score-before-update ordering token by token, and a multi-seed runner. Never imports audited code."""
