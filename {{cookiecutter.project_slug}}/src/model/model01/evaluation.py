"""Predictions and the confusion matrix of a trained classifier."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # training runs headless; notebooks switch to inline themselves

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from src.model.model01.image_classifier_models import NUM_CLASSES  # noqa: E402


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


def confusion_matrix(predicted: torch.Tensor, actual: torch.Tensor) -> torch.Tensor:
    """counts[true, predicted] as a NUM_CLASSES × NUM_CLASSES int64 tensor."""
    flat = actual * NUM_CLASSES + predicted
    return torch.bincount(flat, minlength=NUM_CLASSES**2).reshape(NUM_CLASSES, NUM_CLASSES)


def confusion_matrix_figure(counts: torch.Tensor, title: str = "Confusion matrix") -> Figure:
    figure, axes = plt.subplots(figsize=(6, 5))
    image = axes.imshow(counts.numpy(), cmap="Blues")
    figure.colorbar(image, ax=axes)
    axes.set(xlabel="predicted", ylabel="true", title=title)
    axes.set_xticks(range(NUM_CLASSES))
    axes.set_yticks(range(NUM_CLASSES))
    threshold = counts.max().item() / 2
    for true in range(NUM_CLASSES):
        for pred in range(NUM_CLASSES):
            value = counts[true, pred].item()
            if value:
                color = "white" if value > threshold else "black"
                axes.text(pred, true, str(value), ha="center", va="center", color=color, fontsize=7)
    figure.tight_layout()
    return figure
