"""A study's optimization history as `optuna.visualization.matplotlib.plot_optimization_history`
draws it, but with Pillow (a few ms): importing matplotlib and laying out the figure took ~0.3 s
per sweep on two cores (the template's benchmarks/run.py), often its only use of matplotlib."""

import math
from itertools import accumulate

import optuna
from PIL import Image, ImageDraw, ImageFont

# matplotlib's default blue and red, as Optuna's plot uses, and a light grey grid.
_POINT_RGB, _BEST_RGB, _GRID_RGB = (31, 119, 180), (214, 39, 40), (225, 225, 225)


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
    best = list(accumulate(values, max if maximize else min))  # the best value so far
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
    steps = [(x_of(numbers[0]), y_of(best[0]))]
    for number, value in zip(numbers[1:], best[1:], strict=True):
        steps += [(x_of(number), steps[-1][1]), (x_of(number), y_of(value))]
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
    step = max(1.0, round(step)) if integers else step
    ticks, tick = [], math.ceil(low / step) * step
    while tick <= high + step * 1e-9:
        ticks.append(tick)
        tick += step
    return ticks
