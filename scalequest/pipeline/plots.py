"""The run folder's plots (PNG, matplotlib, linked from the dataset card):

  plots/funnel.png             rows entering each stage, and the kept rows
  plots/question_length.png    words per kept question, one histogram per generator
  plots/difficulty.png         difficulty of every scored question (before the easiest share is dropped) and of
                               the kept ones (after)
  plots/reward.png             reward and answer agreement of the kept pairs' selected responses

The shards are read column by column in record batches; only the plotted numbers are kept (a few floats per row).

Test: tests/pipeline/test_card.py.
"""

from __future__ import annotations

import io
from collections import defaultdict

from scalequest.pipeline.storage import Folder, as_folder
from scalequest.schema import KEPT

PLOTS_DIR = "plots"
COLUMNS = ["status", "generator", "question", "difficulty", "reward", "agreement"]


def plot_values(data_dir: Folder) -> dict:
    """{"length": {generator: [words per kept question]}, "difficulty_scored", "difficulty_kept", "reward",
    "agreement": [floats]} from every shard."""
    out = {"length": defaultdict(list), "difficulty_scored": [], "difficulty_kept": [], "reward": [],
           "agreement": []}
    for batch in as_folder(data_dir).dataset().to_batches(columns=COLUMNS):
        cols = batch.to_pydict()
        for status, gen, question, diff, reward, agree in zip(*(cols[c] for c in COLUMNS)):
            kept = status == KEPT
            if diff is not None:
                out["difficulty_scored"].append(diff)
                if kept:
                    out["difficulty_kept"].append(diff)
            if kept:
                out["length"][gen].append(len((question or "").split()))
                if reward is not None:
                    out["reward"].append(reward)
                if agree is not None:
                    out["agreement"].append(agree)
    out["length"] = dict(out["length"])
    return out


def write_plots(run_dir: Folder, report: dict) -> dict[str, str]:
    """Write the PNGs under run_dir/plots; returns {plot name: path relative to run_dir} of those written (a plot
    with nothing to show, e.g. difficulty without a scorer, is left out)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scalequest.pipeline.run_dir import DATA_DIR

    run_dir = as_folder(run_dir)
    values = plot_values(run_dir / DATA_DIR)
    written = {}

    def save(fig, name: str, title: str) -> None:
        fig.suptitle(title)
        fig.tight_layout()
        png = io.BytesIO()  # rendered in memory, then written through the run folder's filesystem
        fig.savefig(png, format="png", dpi=100)
        plt.close(fig)
        (run_dir / PLOTS_DIR / f"{name}.png").write_bytes(png.getvalue())
        written[name] = f"{PLOTS_DIR}/{name}.png"

    funnel = report["funnel"]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(funnel) + 1.5))
    labels = [f["stage"] for f in funnel] + ["kept"]
    counts = [f["in"] for f in funnel] + [report["kept"]]
    ax.barh(labels[::-1], counts[::-1], color="#4c72b0")
    for y, n in enumerate(counts[::-1]):
        ax.text(n, y, f" {n:,}", va="center")
    ax.set_xlabel("rows entering the stage")
    save(fig, "funnel", f"Funnel: {report['kept']:,} kept of {report['candidates']:,} candidates")

    if values["length"]:
        fig, ax = plt.subplots(figsize=(7, 4))
        for gen, lengths in values["length"].items():
            ax.hist(lengths, bins=30, alpha=0.6, label=f"{gen} (n={len(lengths):,})")
        ax.set_xlabel("words per question")
        ax.set_ylabel("kept questions")
        ax.legend()
        save(fig, "question_length", "Question length by generator")

    if values["difficulty_scored"]:
        fig, ax = plt.subplots(figsize=(7, 4))
        bins = [i / 20 for i in range(21)]
        for key, label, alpha in (("difficulty_scored", "scored", 0.5), ("difficulty_kept", "kept", 0.7)):
            ax.hist(values[key], bins=bins, alpha=alpha, label=f"{label} (n={len(values[key]):,})")
        ax.set_xlabel("difficulty (predicted solver fail rate)")
        ax.legend()
        save(fig, "difficulty", "Difficulty before and after dropping the easiest share")

    if values["reward"] or values["agreement"]:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
        for ax, key, label in ((axes[0], "reward", "reward of the selected response"),
                               (axes[1], "agreement", "share of responses agreeing with its answer")):
            if values[key]:
                ax.hist(values[key], bins=20, color="#55a868")
            else:  # reward.kind agreement scores no reward
                ax.text(0.5, 0.5, f"no {key} scores", ha="center", va="center", transform=ax.transAxes)
            ax.set_xlabel(label)
        axes[0].set_ylabel("kept pairs")
        save(fig, "reward", "Reward and answer agreement of the kept pairs")
    return written
