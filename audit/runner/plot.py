"""PNG plot of a validation: each seed's val_bpb, their mean +- std, and the record line with the
threshold the README rule asks to beat (record - 0.005 nats, drawn in bpb)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from golf.errors import GolfError


def plot_seeds(path: str | Path, title: str, seeds: Sequence[int | None], bpb: Sequence[float],
               stats: dict[str, Any]) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    xs = list(range(len(bpb)))
    ax.scatter(xs, bpb, color="tab:blue", zorder=3, label="seeds")
    mean, std = stats.get("mean_val_bpb"), stats.get("std_val_bpb")
    if mean is not None:
        ax.axhline(mean, color="tab:blue", linewidth=1, label=f"mean {mean:.4f}")
        if std:
            ax.axhspan(mean - std, mean + std, color="tab:blue", alpha=0.12, label=f"+- std {std:.4f}")
    record = stats.get("record")
    if record:
        ax.axhline(record["mean_val_bpb"], color="tab:red", linewidth=1.5,
                   label=f"record {record['mean_val_bpb']:.4f}")
        readme = next((s for s in stats.get("significance", []) if s["rule"] == "readme"), None)
        if readme:
            ax.axhline(record["mean_val_bpb"] - readme["margin_bpb"], color="tab:red", linestyle="--",
                       linewidth=1, label="record - 0.005 nats")
    ax.set_xticks(xs, [str(s) for s in seeds])
    ax.set_xlabel("seed")
    ax.set_ylabel("val_bpb (lower is better)")
    ax.set_title(title)
    ax.legend(fontsize="small")
    fig.tight_layout()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png")
    except OSError as exc:
        raise GolfError(f"cannot write the plot {path}: {exc.strerror or exc}") from exc
    finally:
        plt.close(fig)
    return path
