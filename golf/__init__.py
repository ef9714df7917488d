"""golf: a clean reference of the 33.6M int5-GPTQ + legal score-first TTT Parameter Golf solution,
and the `golf` command that also fronts the auditor (audit/)."""

__version__ = "0.1.0"
