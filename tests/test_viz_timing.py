"""Timing / memory figures (linattn_edu.viz) and the timing and KV-cache explorers, headless."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("plotly")
pytest.importorskip("ipywidgets")

from linattn_edu.bench import Results  # noqa: E402
from linattn_edu.explorers import kv_cache_calculator, timing_explorer  # noqa: E402
from linattn_edu.memory import PRESETS  # noqa: E402
from linattn_edu.viz import (  # noqa: E402
    decode_figure,
    kv_cache_figure,
    kv_cache_summary,
    render_assets,
    timing_figure,
)

NS = [256, 512, 1024, 2048, 4096]
CURVES = {"sdpa": lambda n: 1e-9 * n**2, "chunkwise": lambda n: 1e-6 * n, "softmax": lambda n: 4e-9 * n**2}


def _records() -> Results:
    rows = [{"method": m, "n": n, "mode": mode, "status": "ok", "d": 64, "median_s": f(n) * (3 if "back" in mode else 1),
             "iqr_s": 0.1 * f(n), "peak_bytes": 1000 * n, "predicted_bytes": 1200 * n}
            for mode in ("forward", "forward+backward") for m, f in CURVES.items() for n in NS]
    rows.append({"method": "softmax", "n": 8192, "mode": "forward", "status": "skipped: would need 4.2 GiB > budget",
                 "median_s": None, "predicted_bytes": 4.2 * 2**30, "d": 64})
    meta = {"device_name": "Test CPU", "torch_version": "2.x", "dtype": "float32", "threads": 2,
            "date": "2026-01-01T00:00:00Z", "git_revision": "abc1234"}
    return Results(records=rows, metadata=meta)


def _trace(fig, name_part):
    return [t for t in fig.data if t.name and name_part in t.name]


def test_timing_figure_draws_methods_theory_crossover_and_memory():
    fig = timing_figure(_records(), mode="forward")
    sdpa = _trace(fig, "SDPA")[0]
    assert list(sdpa.x) == NS and sdpa.y[0] == pytest.approx(1e3 * 1e-9 * 256**2)
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log" and fig.layout.yaxis2.type == "log"
    # theory: N²d fitted to SDPA passes through its points exactly (they are a pure N² law)
    quad = _trace(fig, "c·N²d")[0]
    assert quad.y[0] == pytest.approx(1e3 * 1e-9 * 256**2, rel=1e-9)
    assert _trace(fig, "c·Nd²")
    # crossover at 1e-6 N = 1e-9 N² -> N = 1000, drawn as a vertical line with its label
    assert any("N ≈ 1,000" in (a.text or "") for a in fig.layout.annotations)
    assert any(s.type == "line" and s.x0 == pytest.approx(1000) for s in fig.layout.shapes)
    # the skipped softmax point appears on the memory panel at its predicted size, with the guard's message
    skipped = _trace(fig, "skipped")[0]
    assert list(skipped.x) == [8192] and "would need 4.2 GiB" in skipped.text[0]
    assert "Test CPU" in fig.layout.title.text and "abc1234" in fig.layout.title.text


def test_timing_figure_options():
    fig = timing_figure(_records(), mode="forward+backward", methods=["chunkwise"], theory=False, memory=False)
    assert [t.name for t in fig.data] == ["linear, chunkwise"]
    assert fig.data[0].y[0] == pytest.approx(3e3 * 1e-6 * 256)
    with pytest.raises(ValueError, match="mode must be one of"):
        timing_figure(_records(), mode="backward")
    with pytest.raises(TypeError, match="records must be"):
        timing_figure("not records")


def test_decode_figure_two_panels():
    rows = [{"method": m, "n": n, "mode": "decode", "status": "ok", "median_s": t, "iqr_s": 0.0, "state_bytes": b}
            for n in (1024, 65536)
            for m, t, b in (("kv_cache", 1e-8 * n, 2 * 4 * n * 64 * 4), ("recurrent", 2e-5, 4 * 64 * 65 * 4))]
    fig = decode_figure(Results(records=rows))
    assert len(fig.data) == 4
    kv_bytes = [t for t in fig.data if t.xaxis == "x2" and "KV" in t.name][0]
    assert kv_bytes.y[-1] / kv_bytes.y[0] == pytest.approx(64)


def test_kv_cache_state_lines_of_equal_models_stay_apart():
    # Llama-2-7B and Llama-3-8B may have equal states: each keeps its colour, dash and marker
    fig = kv_cache_figure([PRESETS["llama-2-7b"], PRESETS["llama-3-8b"]], tokens_max=65536)
    states = [t for t in fig.data if "linear state" in t.name]
    assert len(states) == 2
    assert states[0].line.dash != states[1].line.dash and states[0].marker.symbol != states[1].marker.symbol
    assert states[0].line.color != states[1].line.color
    assert list(states[0].x) != list(states[1].x)  # markers at staggered positions


def test_timing_figure_skipped_points_have_a_legend_entry():
    fig = timing_figure(_records(), mode="forward")
    entry = [t for t in fig.data if t.name and t.name.startswith("✖")]
    assert len(entry) == 1 and entry[0].showlegend is not False and entry[0].marker.symbol == "x"


def test_kv_cache_figure_lines_are_the_formulas():
    llama = PRESETS["llama-2-7b"]
    fig = kv_cache_figure([llama], tokens=32768, tokens_max=65536, dtype=2)
    cache, state = fig.data
    i = list(cache.x).index(32768)
    assert cache.y[i] == pytest.approx(16 * 1024)  # MiB: 16 GiB at 32k
    assert set(state.y) == {32.0} and min(state.x) == 1 and max(state.x) == 65536  # MiB, flat over the range
    with pytest.raises(TypeError):
        kv_cache_figure(["llama"])
    assert kv_cache_summary(llama, 32768) == (
        "Llama-2-7B: KV cache at N = 32,768 is 16.0 GiB; linear state 32.0 MiB at any N; equal at N ≈ 64")


@pytest.mark.browser
@pytest.mark.slow
def test_render_assets_writes_pngs(tmp_path):
    pytest.importorskip("kaleido")
    _records().save(tmp_path / "cpu_x_sweep.json")
    written = render_assets(tmp_path, width=500, height=300)
    assert sorted(p.name for p in written) == ["cpu_x_sweep_forward.png", "cpu_x_sweep_forward_backward.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in written)


def test_timing_explorer_from_records_toggles_without_measuring():
    ex = timing_explorer(records=_records(), methods=("sdpa", "chunkwise"))
    assert ex.crossover == pytest.approx(1000)
    assert ex.slopes == {"sdpa": pytest.approx(2.0), "chunkwise": pytest.approx(1.0)}
    assert {"softmax", "sdpa", "chunkwise", "mode", "theory", "memory"} <= set(ex.controls)
    before = len(ex.results.records)
    ex.update(softmax=True, mode="forward+backward", theory=False)
    assert len(ex.results.records) == before and ex.redraws == 2 and ex.message == ""
    assert {t.name for t in ex.figure.data} >= {"naive softmax (dense N×N)", "linear, chunkwise"}
    ex.update(softmax=False, sdpa=False, chunkwise=False)
    assert "tick at least one method" in ex.message


def test_timing_explorer_live_measures_only_new_points():
    ex = timing_explorer(methods=("sdpa", "chunkwise"), n_max=256, memory=False, min_run_time=0.005)
    assert sorted((r["method"], r["n"]) for r in ex.results.records) == [
        ("chunkwise", 128), ("chunkwise", 256), ("sdpa", 128), ("sdpa", 256)]
    ex.update(theory=False)
    assert len(ex.results.records) == 4  # nothing re-measured
    assert ex.results.metadata["torch_version"]


def test_kv_cache_calculator_presets_and_custom_shapes():
    calc = kv_cache_calculator(preset="llama-2-7b", tokens=32768, dtype=2)
    assert calc.cache_bytes == 16 * 2**30 and calc.state_bytes == 32 * 2**20 and calc.crossover == 64
    assert "16.0 GiB" in calc.summary and "512.0 KiB/token" in calc.summary
    calc.update(preset="llama-3-8b")
    assert calc.controls["kv_heads"].value == 8 and calc.cache_bytes == 4 * 2**30
    calc.update(kv_heads=1, kind="MQA")
    assert calc.values()["preset"] == "custom" and calc.cache_bytes == 512 * 2**20
    calc.update(preset="deepseek-v2", dtype=2)
    assert calc.cache_bytes == 576 * 60 * 2 * 32768
    assert not calc.controls["latent_dim"].disabled
    calc.update(kind="MHA", kv_heads=4)  # MHA needs kv_heads == heads: shown, not raised
    assert "does not match" in calc.message


def test_kv_cache_calculator_rejects_bad_defaults():
    with pytest.raises(ValueError, match="tokens"):
        kv_cache_calculator(tokens=1000)
    with pytest.raises(TypeError, match="unknown argument"):
        kv_cache_calculator(n_layers=3)
    calc = kv_cache_calculator(preset="gpt2", layers=6)
    assert calc.values()["preset"] == "custom" and calc.shape.layers == 6 and calc.shape.heads == 12
    assert math.isclose(calc.cache_bytes, 2 * 6 * 12 * 64 * 32768 * 2)
