"""The test pass, predictions and the confusion matrix of a trained classifier."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from PIL import Image, ImageDraw, ImageFont
from torch.nn import functional as F
from torch.utils.data import DataLoader

from src.model.model01.image_classifier_models import NUM_CLASSES

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# matplotlib's "Blues" end points: an empty cell is near white, the fullest dark blue.
_EMPTY_RGB = (247, 251, 255)
_FULL_RGB = (8, 48, 107)


@torch.no_grad()
def predict(model: torch.nn.Module, loader: DataLoader) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted and true labels over a loader of (images, labels) batches."""
    model.eval()
    device = next(model.parameters()).device
    predicted, actual = [], []
    for images, labels in loader:
        predicted.append(model(images.to(device)).argmax(dim=1).cpu())
        actual.append(labels)
    return torch.cat(predicted), torch.cat(actual)


@torch.no_grad()
def score_test_set(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    limit_batches: int | float = 1.0,
) -> tuple[dict[str, float], torch.Tensor]:
    """`test/acc`, `test/loss` and counts[true, predicted] of `model` in one pass.

    Plain batches over feature01's in-memory test tensors: Lightning's `trainer.test` would
    set up a second loop (and reload the checkpoint) for every trial, about a third of a
    small trial's bookkeeping (the template's benchmarks/run.py). `limit_batches` reads
    like `trainer.limit_test_batches`: a number of batches (int) or a fraction (float).
    """
    n_batches = math.ceil(len(images) / batch_size)
    if isinstance(limit_batches, float):
        n_batches = max(1, int(n_batches * limit_batches)) if limit_batches > 0 else 0
    else:
        n_batches = min(n_batches, int(limit_batches))
    n = min(len(images), n_batches * batch_size)
    if n == 0:
        raise ValueError("the test pass has no batch: keep trainer.limit_test_batches above 0")
    model.eval()
    device = next(model.parameters()).device
    loss_sum, predicted = 0.0, []
    for start in range(0, n, batch_size):
        logits = model(images[start : start + batch_size].to(device))
        targets = labels[start : start + batch_size].to(device)
        loss_sum += float(F.cross_entropy(logits, targets, reduction="sum"))
        predicted.append(logits.argmax(dim=1).cpu())
    predicted_labels, actual = torch.cat(predicted), labels[:n].cpu()
    accuracy = float((predicted_labels == actual).float().mean())
    metrics = {"test/acc": accuracy, "test/loss": loss_sum / n}
    return metrics, confusion_matrix(predicted_labels, actual)


def confusion_matrix(predicted: torch.Tensor, actual: torch.Tensor) -> torch.Tensor:
    """counts[true, predicted] as a NUM_CLASSES × NUM_CLASSES int64 tensor."""
    flat = actual * NUM_CLASSES + predicted
    return torch.bincount(flat, minlength=NUM_CLASSES**2).reshape(NUM_CLASSES, NUM_CLASSES)


def confusion_matrix_image(
    counts: torch.Tensor, title: str = "Confusion matrix", cell: int = 40
) -> Image.Image:
    """counts[true, predicted] as a heat map with the count in each cell (a PIL image).

    Drawn with Pillow, not matplotlib: every trial logs one, and a matplotlib figure costs
    about 0.4 s to lay out and save on two cores (the template's benchmarks/run.py),
    Pillow a few milliseconds. Notebooks display the returned image inline.
    """
    classes = counts.shape[0]
    font = ImageFont.load_default(size=max(10, cell // 3))
    left, top = 2 * cell, 2 * cell
    image = Image.new(
        "RGB", (left + (classes + 1) * cell, top + classes * cell + cell // 2), "white"
    )
    draw = ImageDraw.Draw(image)
    peak = max(int(counts.max()), 1)
    for true in range(classes):
        for predicted in range(classes):
            value = int(counts[true, predicted])
            share = value / peak
            fill = tuple(
                round(e + (f - e) * share) for e, f in zip(_EMPTY_RGB, _FULL_RGB, strict=True)
            )
            x, y = left + predicted * cell, top + true * cell
            draw.rectangle((x, y, x + cell, y + cell), fill=fill, outline=(210, 210, 210))
            if value:
                ink = "white" if share > 0.5 else "black"
                draw.text(
                    (x + cell / 2, y + cell / 2), str(value), fill=ink, font=font, anchor="mm"
                )
    for index in range(classes):
        middle = index * cell + cell / 2
        draw.text((left + middle, top - 4), str(index), fill="black", font=font, anchor="md")
        draw.text((left - 6, top + middle), str(index), fill="black", font=font, anchor="rm")
    grid_middle = left + classes * cell / 2
    draw.text((grid_middle, cell / 2), title, fill="black", font=font, anchor="mm")
    draw.text((grid_middle, top - cell / 2 - 4), "predicted", fill="black", font=font, anchor="md")
    draw.text((left / 3, top + classes * cell / 2), "true", fill="black", font=font, anchor="mm")
    return image


def sample_grid_figure(
    images: torch.Tensor, predicted: torch.Tensor, actual: torch.Tensor, n: int = 24
) -> Figure:
    """The first `n` images titled 'predicted (true)'; wrong ones in red."""
    import matplotlib.pyplot as plt

    shown, columns = min(n, len(images)), 8
    rows = max(1, -(-shown // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.3, rows * 1.5))
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index < shown:
            ax.imshow(images[index].squeeze(0).numpy(), cmap="gray")
            color = "black" if bool(predicted[index] == actual[index]) else "red"
            ax.set_title(f"{int(predicted[index])} ({int(actual[index])})", color=color, fontsize=9)
    figure.tight_layout()
    return figure
