"""The report ``python -m rnnkit demo`` writes at the end: each model's learning curve and a few of its
predictions on held-out data, as a PNG (matplotlib, when it is installed) and as Markdown beside it
(always: the same table and examples as text, so that a machine without matplotlib still gets one).

``write(path, done, header, meta)`` takes the demo's ``(task, result, row)`` triples: ``result`` holds
the model's ``history`` (``model.history_``) and ``examples``, the dict its task's ``examples`` function
returned — ``{"kind": "digits", "images", "predicted", "true"}``, ``{"kind": "pairs", "rows": [(input,
predicted, true)]}`` or ``{"kind": "alice", "lines": [(what, text, text)]}``.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["markdown", "write"]


def _mark(predicted, true) -> str:
    return "✓" if predicted == true else f"✗ ({true})"


def _example_lines(task, examples) -> list:
    """The examples of one task as plain text lines."""
    if examples is None:
        return []
    kind = examples["kind"]
    if kind == "digits":
        return [" ".join(f"{p}{'' if p == t else '(' + t + '?)'}" for p, t in zip(examples["predicted"], examples["true"]))]
    if kind == "pairs":
        width = max(len(row[0]) for row in examples["rows"])
        return [f"{source.ljust(width)} -> {predicted}  {_mark(predicted, true)}" for source, predicted, true
                in examples["rows"]]
    lines = []
    for what, first, second in examples["lines"]:
        if what == "writes":
            lines.append(f"{first!r} -> ...{second}")
        else:
            lines += ["a held-out sentence, and beneath it the model's guess of each next character:", first, second]
    return lines


def markdown(done, header, meta, png=None) -> str:
    """The report as Markdown: the table, the curves' numbers (loss per epoch) and the examples."""
    lines = [f"# {meta['title']}", ""]
    if png is not None:
        lines += [f"![learning curves and predictions]({png.name})", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for _, _, row in done]
    lines += ["", meta["footnote"], "", "## Learning curves (training loss per epoch)", ""]
    for task, result, _ in done:
        losses = ", ".join(f"{v:.4f}" for v in result["history"].get("loss", []))
        lines.append(f"- {task.name}, {task.title}: {losses}")
    lines += ["", "## Predictions on held-out data", ""]
    for task, result, _ in done:
        text = _example_lines(task, result["examples"])
        if text:
            lines += [f"{task.name}, {task.title}:", "", "```", *text, "```", ""]
    return "\n".join(lines)


def _plot(path: Path, done, meta) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display needed: the demo writes a file
    import matplotlib.pyplot as plt
    from matplotlib.gridspec import GridSpec
    from matplotlib.ticker import MaxNLocator

    digits = [(task, result) for task, result, _ in done if (result["examples"] or {}).get("kind") == "digits"]
    texts = [(task, _example_lines(task, result["examples"])) for task, result, _ in done
             if result["examples"] and result["examples"]["kind"] != "digits"]
    curve_rows = -(-len(done) // 3)
    text_lines = sum(len(lines) + 2 for _, lines in texts)
    heights = [2.6] * curve_rows + ([1.5] if digits else []) + [0.18 * text_lines + 0.3]
    fig = plt.figure(figsize=(13, sum(heights) + 0.8))
    grid = GridSpec(len(heights), 1, height_ratios=heights, figure=fig, hspace=0.6)
    fig.suptitle(meta["title"], fontsize="large")

    curves = grid[:curve_rows].subgridspec(curve_rows, 3, hspace=0.7, wspace=0.3)
    for k, (task, result, row) in enumerate(done):
        ax = fig.add_subplot(curves[k // 3, k % 3])
        loss = result["history"].get("loss", [])
        ax.plot(range(1, len(loss) + 1), loss, marker="o" if len(loss) < 12 else None, markersize=3)
        ax.set_title(f"{task.name}: {task.title}\ntest {task.metric} {row[6]} (target {row[7]})", fontsize="small")
        ax.set_xlabel("epoch", fontsize="x-small")
        ax.set_ylabel("training loss", fontsize="x-small")
        ax.tick_params(labelsize="x-small")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)

    at = curve_rows
    if digits:
        images = digits[0][1]["examples"]["images"]
        strip = grid[at].subgridspec(1, len(images), wspace=0.15)
        at += 1
        for i, image in enumerate(images):
            ax = fig.add_subplot(strip[0, i])
            ax.imshow(image, cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            said = [f"true: {digits[0][1]['examples']['true'][i]}"]
            said += [f"{task.topology.__name__}: {result['examples']['predicted'][i]}" for task, result in digits]
            wrong = any(result["examples"]["predicted"][i] != result["examples"]["true"][i] for _, result in digits)
            ax.set_xlabel("\n".join(said), fontsize="x-small", color="red" if wrong else "black")
        fig.text(0.5, grid[at - 1].get_position(fig).y1 + 0.005, "held-out digits and what each digits model "
                 "says (red: one of them is wrong)", ha="center", fontsize="small")
    ax = fig.add_subplot(grid[at])
    ax.axis("off")
    body = []
    for task, lines in texts:
        body += [f"{task.name} — {task.title}:", *(f"    {line}" for line in lines), ""]
    ax.text(0, 1, "\n".join(body), va="top", ha="left", family="monospace", fontsize=8, transform=ax.transAxes)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def write(path, done, header, meta) -> tuple:
    """Write the PNG at ``path`` (when matplotlib is installed) and the Markdown beside it (``path``
    with ``.md``); (the paths written, why there is no PNG or "").  The folder must exist."""
    path = Path(os.fspath(path))
    if path.suffix.lower() != ".png":
        raise ValueError(f"--report must name a .png file, got {os.fspath(path)!r}")
    written, why, png = [], "", None
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        why = "no PNG: matplotlib is not installed; pip install matplotlib for one"
    else:
        _plot(path, done, meta)
        written.append(path)
        png = path
    notes = path.with_suffix(".md")
    notes.write_text(markdown(done, header, meta, png) + "\n", encoding="utf-8")
    written.append(notes)
    return written, why
