"""Progress bars (on/off rules, postfix) and the figure helpers (style, PNG + PDF)."""

import threading

import matplotlib as mpl
import pytest

from sntkit.experiments import plotting, progress


@pytest.fixture
def auto_progress(monkeypatch):
    monkeypatch.delenv("SNTKIT_PROGRESS", raising=False)
    progress.set_enabled(None)
    yield
    progress.set_enabled(None)


def test_bars_follow_the_terminal_the_env_var_and_the_flag(auto_progress, monkeypatch):
    assert not progress.enabled()  # pytest's stderr is not a terminal
    monkeypatch.setenv("SNTKIT_PROGRESS", "1")
    assert progress.enabled()
    monkeypatch.setenv("SNTKIT_PROGRESS", "off")
    assert not progress.enabled()
    progress.set_enabled(True)  # --progress/--no-progress win over the environment
    assert progress.enabled()
    seen = []
    with progress.suppressed():
        assert not progress.enabled()
        worker = threading.Thread(target=lambda: seen.append(progress.enabled()))
        worker.start()
        worker.join()
    assert seen == [True] and progress.enabled()  # suppression is per thread


def test_bar_shows_step_loss_and_metric(auto_progress, monkeypatch, capsys):
    monkeypatch.setenv("SNTKIT_PROGRESS", "1")
    bar = progress.Progress(range(3), desc="demo")
    for step in bar:
        bar.show(step=step, loss=0.123456, stable_rank=2.0)
    bar.close()
    err = capsys.readouterr().err
    assert "demo" in err and "loss=0.1235" in err and "stable_rank=2" in err and "3/3" in err
    monkeypatch.setenv("SNTKIT_PROGRESS", "0")
    with progress.Progress(total=2, desc="quiet") as off:
        off.update(2)
        off.show(loss=1.0)
        assert off.disabled
    assert capsys.readouterr().err == ""


def test_figure_style_and_files(tmp_path):
    backend = mpl.get_backend()
    fig, ax = plotting.figure(1, 2, width=2.0, height=1.5)
    assert ax.shape == (1, 2) and tuple(fig.get_size_inches()) == (4.0, 1.5)
    plotting.line(ax[0, 0], [0, 1, 2], [1.0, 2.0, float("nan")], err=[0.1, 0.2, 0.1], label="a")
    plotting.mark_events(ax[0, 0], [0.5, 1.5], label="event")
    ax[0, 0].set(xlabel="step", ylabel="rank", title="t")  # after figure(): default sizes
    ax[0, 0].legend()
    ax[0, 1].set_xlabel("kept", fontsize=13)  # explicit sizes are kept
    paths = plotting.save(fig, tmp_path / "fig")
    assert [p.name for p in paths] == ["fig.png", "fig.pdf"] and all(
        p.stat().st_size for p in paths
    )
    assert ax[0, 0].xaxis.label.get_fontsize() == plotting.STYLE["axes.labelsize"]
    assert ax[0, 0].get_legend().get_texts()[0].get_fontsize() == plotting.STYLE["legend.fontsize"]
    assert not ax[0, 0].get_legend().get_frame_on()
    assert ax[0, 1].xaxis.label.get_fontsize() == 13
    assert not ax[0, 0].spines["top"].get_visible()
    assert len(ax[0, 0].get_legend().get_texts()) == 2  # one entry for all event lines
    assert mpl.get_backend() == backend  # no global backend switch
