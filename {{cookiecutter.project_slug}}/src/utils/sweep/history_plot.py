"""A study's optimization history (each completed trial's value and the best so far).

The same plot as `optuna.visualization.matplotlib.plot_optimization_history`, drawn with
Pillow: matplotlib is imported for nothing else in a sweep, and importing it and laying
out the figure took ~0.3 s at the end of every sweep on two cores (the template's
benchmarks/run.py); Pillow needs a few milliseconds.
"""

from __future__ import annotations

import math

import optuna
from PIL import Image, ImageDraw, ImageFont

_POINT_RGB = (31, 119, 180)  # matplotlib's default blue and red, as Optuna's plot uses
_BEST_RGB = (214, 39, 40)
_GRID_RGB = (225, 225, 225)


def optimization_history_image(
    study: optuna.Study, value_name: str = "Objective Value", size: tuple[int, int] = (640, 420)
) -> Image.Image:
    """Completed trials' values by trial number, and the best value so far as a line."""
    trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not trials:
        raise ValueError("the study has no completed trial to plot")
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    numbers = [t.number for t in trials]
    values = [float(t.value) for t in trials]
    best, best_so_far = [], values[0]
    for value in values:
        best_so_far = max(best_so_far, value) if maximize else min(best_so_far, value)
        best.append(best_so_far)

    width, height = size
    font = ImageFont.load_default(size=12)
    left, right, top, bottom = 70, 20, 40, 50
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    low, high = min(values), max(values)
    pad = (high - low) * 0.08 or abs(high) * 0.05 or 1.0
    low, high = low - pad, high + pad
    first, last = -0.5, max(numbers) + 0.5  # half a trial of room: no point on the frame

    def x_of(number: float) -> float:
        return left + (number - first) / (last - first) * (width - left - right)

    def y_of(value: float) -> float:
        return top + (high - value) / (high - low) * (height - top - bottom)

    for tick in _ticks(low, high, 5):
        y = y_of(tick)
        draw.line((left, y, width - right, y), fill=_GRID_RGB)
        draw.text((left - 6, y), f"{tick:.4g}", fill="black", font=font, anchor="rm")
    for tick in _ticks(0, max(numbers), 8, integers=True):
        x = x_of(tick)
        draw.line((x, height - bottom, x, height - bottom + 4), fill="black")
        draw.text((x, height - bottom + 6), str(int(tick)), fill="black", font=font, anchor="ma")
    draw.rectangle((left, top, width - right, height - bottom), outline="black")

    steps = []
    for number, value in zip(numbers, best, strict=True):
        if steps:
            steps.append((x_of(number), steps[-1][1]))
        steps.append((x_of(number), y_of(value)))
    if len(steps) > 1:
        draw.line(steps, fill=_BEST_RGB, width=2)
    for number, value in zip(numbers, values, strict=True):
        x, y = x_of(number), y_of(value)
        draw.ellipse((x - 4, y - 4, x + 4, y + 4), fill=_POINT_RGB)

    middle = left + (width - left - right) / 2
    draw.text((middle, top / 2), "Optimization History Plot", fill="black", font=font, anchor="mm")
    draw.text((middle, height - 14), "Trial", fill="black", font=font, anchor="mm")
    draw.text((8, top - 12), value_name, fill="black", font=font, anchor="lm")
    legend_x = width - right - 130
    draw.ellipse((legend_x, top + 8, legend_x + 8, top + 16), fill=_POINT_RGB)
    draw.text((legend_x + 14, top + 12), value_name, fill="black", font=font, anchor="lm")
    draw.line((legend_x - 2, top + 30, legend_x + 10, top + 30), fill=_BEST_RGB, width=2)
    draw.text((legend_x + 14, top + 30), "Best Value", fill="black", font=font, anchor="lm")
    return image


def _ticks(low: float, high: float, count: int, integers: bool = False) -> list[float]:
    """About `count` round values between low and high (1, 2 or 5 times a power of ten)."""
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    if integers:
        step = max(1.0, round(step))
    start = math.ceil(low / step) * step
    ticks, tick = [], start
    while tick <= high + step * 1e-9:
        ticks.append(tick)
        tick += step
    return ticks
