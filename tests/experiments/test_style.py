"""The shared figure style: plain ticks at grid values, uncrowded log axes, legends off the data."""

import itertools

import numpy as np
import pytest

from sntkit.experiments import plotting, style


def _drawn(fig):
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def _tick_label_boxes(ax, renderer):
    boxes = []
    for axis in (ax.xaxis, ax.yaxis):
        lo, hi = sorted(axis.get_view_interval())
        ticks = axis.get_major_ticks() + axis.get_minor_ticks()
        for tick in ticks:
            label, shown = tick.label1, lo <= tick.get_loc() <= hi
            if shown and label.get_visible() and label.get_text() and tick.get_visible():
                boxes.append((label.get_text(), label.get_window_extent(renderer)))
    return boxes


def _overlaps(ax, renderer):
    boxes = _tick_label_boxes(ax, renderer)
    return [
        (a, b)
        for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2)
        if box_a.overlaps(box_b)
    ]


def test_grid_ticks_are_plain_numbers_at_the_grid_values(tmp_path):
    gains = [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0]  # paper-scale Fig. 5 grid
    fig, ax = plotting.figure()
    ax[0, 0].plot(gains, np.arange(len(gains)), "o-")
    ax[0, 0].set_xscale("log")
    style.grid_ticks(ax[0, 0], gains)
    plotting.save(fig, tmp_path / "f")
    renderer = _drawn(fig)
    labels = [t.get_text() for t in ax[0, 0].get_xticklabels()]
    assert labels == ["0.25", "0.5", "0.75", "1", "1.25", "1.5", "2", "3", "4"]
    assert ax[0, 0].xaxis.get_minorticklocs().size == 0
    with pytest.raises(ValueError, match="axis must be 'x' or 'y'"):
        style.grid_ticks(ax[0, 0], gains, axis="z")
    assert renderer is not None


@pytest.mark.parametrize("axis", ["x", "y"])
@pytest.mark.parametrize(
    ("lo", "hi"), [(2e3, 9e4), (0.5, 4.0), (2.0, 4.2), (4.0, 4.5), (0.8, 3e5), (1e-3, 2e-2)]
)
def test_log_axes_have_no_overlapping_tick_labels(tmp_path, lo, hi, axis):
    fig, ax = plotting.figure(width=2.0, height=2.0)
    x = np.linspace(0.0, 1.0, 50)
    y = lo * (hi / lo) ** x
    if axis == "x":
        ax[0, 0].semilogx(y, x)
    else:
        ax[0, 0].semilogy(x, y)
    ax[0, 0].set(xlabel="s", ylabel="norm")
    plotting.save(fig, tmp_path / "f")
    renderer = _drawn(fig)
    assert _overlaps(ax[0, 0], renderer) == []
    texts = [text for text, _ in _tick_label_boxes(ax[0, 0], renderer)]
    assert sum(1 for t in texts if t) >= 2  # still labelled


def test_matplotlib_default_would_overlap_here(tmp_path):
    """The case the style fixes does occur with matplotlib's defaults (so the test above can
    fail): a log gain axis over 0.5–4 (Fig. 5) labels its minor ticks densely."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2.0, 2.0))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.semilogx([0.5, 4.0], [0, 1])
    fig.tight_layout()
    renderer = _drawn(fig)
    assert _overlaps(ax, renderer)


@pytest.mark.parametrize("where", ["right", "below"])
def test_legend_outside_does_not_cover_the_data(tmp_path, where):
    fig, ax = plotting.figure()
    ax[0, 0].plot([0, 1], [0, 1], label="data")
    ax[0, 0].scatter([0.95], [0.05], label="a point in the corner")
    ax[0, 0].set(xlabel="s along $e_g$", ylabel="norm")
    legend = style.legend_outside(ax[0, 0], where)
    plotting.save(fig, tmp_path / "f")
    renderer = _drawn(fig)
    box = legend.get_window_extent(renderer)
    assert not box.overlaps(ax[0, 0].get_window_extent(renderer))
    for text in (ax[0, 0].xaxis.label, ax[0, 0].yaxis.label, *ax[0, 0].get_xticklabels()):
        assert not box.overlaps(text.get_window_extent(renderer)), text.get_text()
    fig_box = fig.bbox
    assert box.x0 >= fig_box.x0 - 1 and box.x1 <= fig_box.x1 + 1  # tight layout made room
    assert box.y0 >= fig_box.y0 - 1


def test_proxy_entries_explain_shared_encodings():
    _, ax = plotting.figure()
    handles = [style.proxy("mode 1", color=style.COLORS[0]), style.proxy("SGD", linestyle="--")]
    legend = style.legend_outside(ax[0, 0], handles=handles)
    assert [t.get_text() for t in legend.get_texts()] == ["mode 1", "SGD"]
    assert handles[1].get_linestyle() == "--"
    with pytest.raises(ValueError, match="where must be"):
        style.legend_outside(ax[0, 0], "left")
