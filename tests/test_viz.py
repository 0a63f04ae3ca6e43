"""linattn_edu.viz: every builder returns a figure with the expected traces, shapes, titles and scales."""

from __future__ import annotations

import numpy as np
import pytest
import torch

go = pytest.importorskip("plotly.graph_objects")
from linattn_edu import viz  # noqa: E402


def _weights(n: int, seed: int = 0) -> torch.Tensor:
    """A row-stochastic (n, n) matrix."""
    gen = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(n, n, generator=gen, dtype=torch.float64), dim=-1)  # (n, n)


def _types(fig) -> list[str]:
    return [t.type for t in fig.data]


def test_heatmap_labels_axes_and_scale():
    m = torch.arange(6, dtype=torch.float64).reshape(2, 3)  # (2, 3)
    fig = viz.heatmap(m, title="T", x_title="key position j", y_title="query position i",
                      colorbar_title="weight", zmin=-1.0, zmax=9.0, x_labels=list("abc"))
    assert isinstance(fig, go.Figure) and _types(fig) == ["heatmap"]
    tr = fig.data[0]
    assert np.asarray(tr.z).shape == (2, 3) and (tr.zmin, tr.zmax) == (-1.0, 9.0)
    assert list(tr.x) == ["0:a", "1:b", "2:c"]  # positions keep repeated words distinct
    assert fig.layout.title.text == "T"
    assert fig.layout.xaxis.title.text == "key position j"
    assert fig.layout.yaxis.title.text == "query position i"
    assert fig.layout.yaxis.autorange == "reversed"  # query 0 at the top
    assert tr.colorbar.title.text == "weight"


def test_heatmap_rejects_wrong_rank_and_label_count():
    with pytest.raises(ValueError, match="2 dims"):
        viz.heatmap(torch.zeros(3), title="", x_title="", y_title="", colorbar_title="")
    with pytest.raises(ValueError, match="3 entries"):
        viz.attention_map(torch.zeros(3, 3), labels=["a", "b"])


def test_attention_map_is_one_weight_heatmap_from_zero():
    fig = viz.attention_map(_weights(5))
    assert _types(fig) == ["heatmap"]
    assert fig.data[0].zmin == 0.0
    assert fig.data[0].zmax == pytest.approx(float(_weights(5).max()))


def test_attention_comparison_shares_one_scale_and_reports_row_error():
    p, a = _weights(7, 0), _weights(7, 1)
    fig = viz.attention_comparison(p, a, linear_name="elu+1")
    assert _types(fig) == ["heatmap"] * 3
    soft, lin, diff = fig.data
    for tr in fig.data:
        assert np.asarray(tr.z).shape == (7, 7)
    top = float(max(p.max(), a.max()))
    assert (soft.zmin, soft.zmax) == (lin.zmin, lin.zmax) == (0.0, pytest.approx(top))
    assert diff.zmin == -diff.zmax and diff.zmax == pytest.approx(float((a - p).abs().max()))
    np.testing.assert_allclose(np.asarray(diff.z), (a - p).numpy())
    row_err = (a - p).abs().sum(-1)  # (7,)
    assert f"max {row_err.max():.3g}" in fig.layout.title.text
    assert f"mean {row_err.mean():.3g}" in fig.layout.title.text
    titles = [ann.text for ann in fig.layout.annotations]
    assert titles[:3] == ["softmax  P", "elu+1  A", "difference  A − P"]
    assert fig.layout.xaxis.title.text == "key position j"
    assert fig.layout.yaxis.title.text == "query position i"


def test_attention_comparison_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"must match softmax_weights \(4, 4\); got \(3, 3\)"):
        viz.attention_comparison(_weights(4), _weights(3))


def test_state_step_panels_and_hidden_future_rows():
    n, d_phi, d_v, t = 6, 5, 3, 2
    gen = torch.Generator().manual_seed(0)
    S = torch.randn(d_phi, d_v, generator=gen)  # (d_φ, d_v)
    z = torch.rand(d_phi, generator=gen)  # (d_φ,)
    ref = torch.randn(n, d_v, generator=gen)  # (n, d_v)
    out = ref + 1e-3  # (n, d_v)
    fig = viz.state_step(S, z, out, ref, t)
    assert _types(fig) == ["heatmap", "bar", "heatmap", "bar", "bar"]
    assert np.asarray(fig.data[0].z).shape == (d_phi, d_v)
    assert len(fig.data[1].y) == d_phi
    shown = np.asarray(fig.data[2].z, dtype=float)  # (n, d_v)
    assert np.isfinite(shown[: t + 1]).all() and np.isnan(shown[t + 1:]).all()
    np.testing.assert_allclose(fig.data[3].y, out[t].numpy(), rtol=1e-6)
    np.testing.assert_allclose(fig.data[4].y, ref[t].numpy(), rtol=1e-6)
    assert "t = 2" in fig.layout.title.text and "1.00e-03" in fig.layout.title.text


def test_state_step_checks_shapes_and_t():
    S, z, out = torch.zeros(4, 2), torch.zeros(4), torch.zeros(3, 2)
    with pytest.raises(ValueError, match=r"t must be in \[0, 2\]; got 3"):
        viz.state_step(S, z, out, out, 3)
    with pytest.raises(ValueError, match=r"z must be \(d_phi,\) = \(4,\)"):
        viz.state_step(S, torch.zeros(5), out, out, 0)


def test_kernel_smoother_1d_traces():
    x = torch.linspace(-1, 1, 9)  # (9,)
    w = torch.softmax(-x ** 2, 0)  # (9,)
    grid = torch.linspace(-1, 1, 50)  # (50,)
    fig = viz.kernel_smoother_1d(x, x ** 2, grid, grid ** 2, w, 0.0, truth=grid ** 2, kernel_name="Gaussian")
    assert _types(fig) == ["scatter", "scatter", "scatter", "scatter", "bar"]
    assert len(fig.data[1].x) == 50 and len(fig.data[4].y) == 9
    np.testing.assert_allclose(fig.data[0].marker.color, w.numpy(), rtol=1e-6)  # data coloured by weight
    assert "Gaussian" in fig.layout.title.text
    assert fig.layout.yaxis2.title.text == "weight"
    with pytest.raises(ValueError, match=r"x, y, weights must all be \(M,\)"):
        viz.kernel_smoother_1d(x, x, grid, grid, w[:3], 0.0)


def test_kernel_smoother_2d_traces():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(10, 2, generator=gen)  # (10, 2)
    axis = torch.linspace(0, 1, 7)  # (7,)
    fig = viz.kernel_smoother_2d(x, x[:, 0], axis, torch.zeros(7, 7), torch.full((10,), 0.1), (0.5, 0.5))
    assert _types(fig) == ["heatmap", "scatter", "scatter", "scatter", "scatter"]
    assert np.asarray(fig.data[0].z).shape == (7, 7)
    with pytest.raises(ValueError, match=r"fit must be \(G, G\)"):
        viz.kernel_smoother_2d(x, x[:, 0], axis, torch.zeros(6, 7), torch.full((10,), 0.1), (0.5, 0.5))


def test_feature_map_approximation_log_axes_and_guide():
    exact = torch.full((5, 5), 2.0, dtype=torch.float64)  # (5, 5)
    est = exact * 1.1  # (5, 5): 10 % too large everywhere
    ms = [4, 16, 64]
    fig = viz.feature_map_approximation(exact, est, ms, {"orthogonal": [0.4, 0.2, 0.1], "iid": [0.5, 0.25, 0.12]},
                                        16, this_draw=0.21)
    assert _types(fig) == ["scattergl", "scatter", "scatter", "scatter", "scatter", "scatter"]
    assert len(fig.data[0].x) == 25
    guide = fig.data[4]
    assert guide.name == "∝ 1/√m"
    np.testing.assert_allclose(guide.y, 0.5 * np.sqrt(4 / np.array(ms)))  # through the first point, slope −½
    assert fig.layout.xaxis2.type == "log" and fig.layout.yaxis2.type == "log"
    assert "relative error 0.100" in fig.layout.title.text
    with pytest.raises(ValueError, match="one value per m"):
        viz.feature_map_approximation(exact, est, ms, {"iid": [0.1]}, 4)


def test_window_pattern_counts_pairs_and_cost_curves():
    n, w = 8, 2
    i = torch.arange(n)
    mask = (i[:, None] - i[None, :]).abs() < w  # (n, n)
    weights = mask.double() / mask.sum(-1, keepdim=True)  # (n, n)
    fig = viz.window_pattern(mask, weights, window=w)
    assert _types(fig) == ["heatmap", "heatmap", "scatter", "scatter", "scatter"]
    assert f"{int(mask.sum())} of {n * n} pairs" in fig.layout.title.text
    dense, band = fig.data[2], fig.data[3]
    k = list(dense.x).index(1024)
    assert dense.y[k] == 1024 ** 2 and band.y[k] == 1024 * (2 * w - 1)
    assert fig.layout.xaxis3.type == "log"


def test_message_figure_has_text():
    fig = viz.message_figure("N too large")
    assert fig.layout.annotations[0].text == "N too large"


def test_figures_do_not_share_state():
    """Panels come from a cached grid: each call must get its own copy."""
    first = viz.attention_comparison(_weights(3), _weights(3), linear_name="relu")
    second = viz.attention_comparison(_weights(4), _weights(4), linear_name="taylor")
    assert first.layout.annotations[1].text == "relu  A" and second.layout.annotations[1].text == "taylor  A"
    assert np.asarray(first.data[0].z).shape == (3, 3)
    assert first.layout.annotations is not second.layout.annotations


def test_viz_is_pure_and_never_shows(monkeypatch):
    """Builders return figures; none may call show() (the notebook decides)."""
    monkeypatch.setattr(go.Figure, "show", lambda *a, **k: pytest.fail("viz called show()"))
    viz.attention_comparison(_weights(3), _weights(3))
    viz.attention_map(_weights(3))


# ----------------------------------------------------------------------------- one palette, legibility


def test_one_palette_gives_each_name_one_colour_everywhere():
    from linattn_edu.viz import _style

    assert viz.colour("iid") == viz.PROJECTION_COLOURS["iid"] != viz.colour("orthogonal")
    assert viz.colour("FAVOR+") == viz.FEATURE_MAP_COLOURS["favor+"] and viz.colour("elu+1") == viz.LINEAR_COLOUR
    assert viz.colour("no such thing", 3) == viz.CYCLE[3]
    fig = viz.feature_map_approximation(torch.ones(3, 3), torch.ones(3, 3), [4, 8], {"iid": [0.2, 0.1],
                                        "orthogonal": [0.1, 0.05]}, 4)
    lines = {t.name: t.line.color for t in fig.data if t.name in ("iid", "orthogonal")}
    assert lines == {"iid": viz.colour("iid"), "orthogonal": viz.colour("orthogonal")}
    # the same order reversed keeps the colours (they follow the name, not the position)
    fig = viz.feature_map_approximation(torch.ones(3, 3), torch.ones(3, 3), [4, 8], {"orthogonal": [0.1, 0.05],
                                        "iid": [0.2, 0.1]}, 4)
    assert {t.name: t.line.color for t in fig.data if t.name in ("iid", "orthogonal")} == lines
    assert _style.METHOD_COLOURS is viz.METHOD_COLOURS  # one table, re-exported


def test_feature_scatter_range_ignores_an_outlier_and_counts_it():
    gen = torch.Generator().manual_seed(0)
    exact = 1 + torch.rand(20, 20, generator=gen, dtype=torch.float64)  # (20, 20) in [1, 2]
    estimate = exact.clone()
    estimate[0, 0] = 1e4  # one wild estimate
    fig = viz.feature_map_approximation(exact, estimate, [4], {"iid": [0.1]}, 4)
    lo, hi = fig.layout.xaxis.range
    assert hi < 2.5 and tuple(fig.layout.yaxis.range) == (lo, hi)  # the outlier does not set the scale
    assert max(fig.data[0].y) == pytest.approx(hi)  # drawn at the edge
    assert any("1 of 400 pairs beyond the axes" in (a.text or "") for a in fig.layout.annotations)


def test_attention_comparison_cells_are_square_and_large_maps_blur_not_moire():
    fig = viz.attention_comparison(_weights(8), _weights(8, seed=1))
    assert [fig.layout[f"yaxis{s}"].scaleanchor for s in ("", "2", "3")] == ["x", "x2", "x3"]
    assert fig.data[0].zsmooth is False
    big = viz.attention_comparison(_weights(200), _weights(200, seed=1))
    assert {t.zsmooth for t in big.data} == {"fast"}


def test_attention_rows_draws_profiles_for_diffuse_maps():
    p, a = _weights(12), _weights(12, seed=1)
    fig = viz.attention_rows(p, a, linear_name="elu+1", rows=[0, 11])
    assert _types(fig) == ["scatter"] * 5
    np.testing.assert_allclose(fig.data[0].y, p[0].numpy())
    np.testing.assert_allclose(fig.data[3].y, a[11].numpy())
    assert fig.data[0].line.color == fig.data[1].line.color and fig.data[1].line.dash == "dash"
    with pytest.raises(ValueError, match="rows must be query indices"):
        viz.attention_rows(p, a, rows=[12])


def test_kernel_smoother_says_so_when_no_key_has_weight():
    x = torch.linspace(-1, 1, 5, dtype=torch.float64)
    fig = viz.kernel_smoother_1d(x, x, x, x, torch.zeros(5), 3.0)
    assert any("no key has weight" in (a.text or "") for a in fig.layout.annotations)


# ----------------------------------------------------------------------------- diagrams


def test_associativity_diagram_shows_the_n_by_n_matrix_only_in_the_first_order():
    fig = viz.associativity_diagram(n=8, d=2)
    texts = [a.text for a in fig.layout.annotations]
    assert any("(φ(Q) φ(K)ᵀ) V" in t for t in texts) and any("φ(Q) (φ(K)ᵀ V)" in t for t in texts)
    assert texts.count("N × N  (grows as N²)") == 1 and texts.count("d_φ × d_v") == 2
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    widths = sorted({round(s.x1 - s.x0, 6) for s in rects})
    assert widths == [round(2 * 0.35, 6), round(8 * 0.35, 6)]  # sides ∝ d and N
    big = [s for s in rects if round(s.x1 - s.x0, 6) == round(s.y1 - s.y0, 6) == round(8 * 0.35, 6)]
    assert len(big) == 1  # exactly one N × N matrix, in the top row
    assert big[0].y0 > 0
    with pytest.raises(ValueError):
        viz.associativity_diagram(n=8, d=8)


@pytest.mark.parametrize("n, c", [(10, 4), (16, 16), (5, 64), (1, 1)])
def test_chunk_tiling_counts_blocks_and_carried_states(n, c):
    fig = viz.chunk_tiling(n, c)
    z = np.asarray(fig.data[0].z)
    chunk = np.arange(n) // min(c, n)
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    np.testing.assert_array_equal(z == 0, j > i)  # the future, masked
    np.testing.assert_array_equal(z == 1, (j <= i) & (chunk[i] == chunk[j]))  # intra-chunk quadratic block
    np.testing.assert_array_equal(z == 2, (j <= i) & (chunk[i] != chunk[j]))  # through the carried state
    n_chunks = int(chunk[-1]) + 1
    assert f"{n_chunks} chunks" in fig.layout.title.text
    assert f"{n_chunks - 1} carried states" in fig.layout.title.text
    assert {t.name for t in fig.data[1:]} == {"future key (masked)", "intra-chunk: quadratic C × C block",
                                             "inter-chunk: through the carried state S"}


def test_chunk_tiling_rejects_bad_sizes():
    with pytest.raises(ValueError):
        viz.chunk_tiling(0, 4)
    with pytest.raises(TypeError):
        viz.chunk_tiling(8, 2.5)


# ----------------------------------------------------------------------------- accessible styles, every builder


def _every_figure() -> dict:
    """{builder: figure} for every figure builder of linattn_edu.viz, with every named method, rule, mixer,
    feature map and model it can draw at once (the most crowded legends the notebooks can produce)."""
    from linattn_edu import RULES
    from linattn_edu.bench import METHODS, Results
    from linattn_edu.memory import PRESETS
    from linattn_edu.recall import MIXERS
    from linattn_edu.viz import recall as vrecall

    gen = torch.Generator().manual_seed(0)
    p, a = _weights(8, 0), _weights(8, 1)
    ns = [256, 512, 1024]
    rows = [dict(method=m, n=n, mode="forward", status="ok", d=64, median_s=1e-6 * n * (i + 1),
                 iqr_s=1e-7 * n, peak_bytes=1000 * n) for i, m in enumerate(METHODS) for n in ns]
    rows.append(dict(method="softmax", n=2048, mode="forward", status="skipped: would need 4 GiB > budget",
                     median_s=None, predicted_bytes=4 * 2**30, d=64))
    decode = [dict(method=m, n=n, mode="decode", status="ok", median_s=1e-5, iqr_s=1e-6, state_bytes=100 * n)
              for m in ("kv_cache", "recurrent") for n in ns]
    runs = [dict(mixer=m, accuracy=0.5, state_bytes=4096 * (i + 1), settings=dict(seq_len=64, num_kv_pairs=k,
                 seed=0, d_key=8)) for i, m in enumerate([*MIXERS, "linear+softmax"]) for k in (4, 8)]
    rules = {r: np.linspace(1, 0, 6) + i for i, r in enumerate(["additive", "gated", "delta", "gated delta"])}
    decay = {f"map {i}": np.tril(np.full((6, 6), 0.5 + 0.1 * i)) for i in range(3)}
    figs = {
        "attention_rows": viz.attention_rows(p, a, rows=range(6)),
        "state_step": viz.state_step(torch.randn(4, 3, generator=gen), torch.rand(4, generator=gen),
                                     torch.randn(5, 3, generator=gen), torch.randn(5, 3, generator=gen), 2),
        "kernel_smoother_1d": viz.kernel_smoother_1d(np.arange(5.0), np.ones(5), np.arange(5.0), np.ones(5),
                                                     np.full(5, 0.2), 1.0, truth=np.ones(5)),
        "kernel_smoother_2d": viz.kernel_smoother_2d(np.random.default_rng(0).random((6, 2)), np.ones(6),
                                                     np.linspace(0, 1, 4), np.ones((4, 4)), np.full(6, 1 / 6),
                                                     (0.5, 0.5)),
        "feature_map_approximation": viz.feature_map_approximation(
            torch.rand(4, 4, generator=gen), torch.rand(4, 4, generator=gen), [4, 8, 16],
            {"orthogonal": [0.3, 0.2, 0.1], "iid": [0.4, 0.3, 0.2]}, 8, this_draw=0.2),
        "window_pattern": viz.window_pattern(torch.ones(8, 8, dtype=torch.bool), _weights(8), window=3,
                                             global_tokens=(0,)),
        "timing_figure": viz.timing_figure(Results(records=rows)),
        "decode_figure": viz.decode_figure(Results(records=decode)),
        "kv_cache_figure": viz.kv_cache_figure(list(PRESETS.values()), tokens=4096),
        "chunk_tiling": viz.chunk_tiling(8, 4),
        "message_figure": viz.message_figure("nothing"),
        "associativity_diagram": viz.associativity_diagram(),
        "retrieval_error": viz.retrieval_error(rules, {r: e[:4] for r, e in rules.items()}, d=4, n=4),
        "decay_maps": viz.decay_maps(decay),
        "gated_delta_step": viz.gated_delta_step({r: torch.randn(3, 3, generator=gen) for r in rules}, rules, 3,
                                                 repeat_at=(1,)),
        "recall_capacity_figure": viz.recall_capacity_figure([1, 2, 4, 8], [0.1, 0.2, 0.5, 1.0], d=4),
        "recall_accuracy_figure": viz.recall_accuracy_figure(runs),
        "recall_frontier_figure": viz.recall_frontier_figure(runs),
        "recall_pairs_figure": vrecall.recall_pairs_figure(runs),
    }
    assert set(RULES) <= {k.replace(" ", "_") for k in viz.METHOD_COLOURS}, "a registered rule has no style"
    return figs


def _trace_colour(trace) -> list:
    """The fixed colours a Scatter or Bar trace draws with (line, marker; arrays of values are colour scales)."""
    out = []
    line = getattr(trace, "line", None)
    if line is not None and getattr(line, "color", None) is not None:
        out.append(line.color)
    marker = getattr(trace, "marker", None)
    if marker is not None and isinstance(marker.color, str):
        out.append(marker.color)
    return out


def _shape(trace) -> tuple:
    """What tells a line apart without colour: its dash (if drawn as a line) and marker (if drawn with markers)."""
    mode = trace.mode or "lines+markers"
    dash = (trace.line.dash or "solid") if "lines" in mode else None
    symbol = (trace.marker.symbol or "circle") if "markers" in mode else None
    return dash, symbol


def test_every_trace_of_every_figure_uses_the_palette():
    """Okabe–Ito and one grey only (plus the masked cells' light grey): no plotly default colour, no red/green."""
    from linattn_edu.viz import _style

    allowed = {c.lower() for c in _style.PALETTE} | {_style.MASKED_COLOUR}
    figs = _every_figure()
    assert set(figs) >= {name for name in viz.__all__ if name.endswith(("_figure", "_step", "_maps", "_error",
                                                                          "_pattern", "_tiling", "_rows"))}
    for name, fig in figs.items():
        for trace in fig.data:
            if trace.type not in ("scatter", "scattergl", "bar"):
                continue
            colours = _trace_colour(trace)
            if not colours and trace.marker.colorscale is not None and trace.marker.color is not None:
                continue  # coloured by value through a colour scale (Viridis, RdBu)
            assert colours, f"{name}: trace {trace.name!r} has no colour of its own (plotly's default cycle)"
            bad = [c for c in colours if str(c).lower() not in allowed]
            assert not bad, f"{name}: trace {trace.name!r} draws in {bad}, not in the course palette"


def test_methods_in_one_figure_differ_by_more_than_colour():
    """Every legend entry of a figure has its own (colour, dash, marker), and its own (dash, marker) too:
    two methods can be told apart in greyscale or under any colour-vision deficiency."""
    for name, fig in _every_figure().items():
        if fig.layout.showlegend is False:  # no legend: panels and titles name what is drawn
            continue
        entries = [t for t in fig.data if t.type in ("scatter", "scattergl") and t.showlegend is not False
                   and t.name and not (t.x is not None and len(t.x) and t.x[0] is None)]
        looks = {}
        for t in entries:
            look = (str((_trace_colour(t) or ["by value"])[0]).lower(), *_shape(t))
            looks.setdefault(_shape(t), []).append((t.name, look))
        same = {k: v for k, v in looks.items() if len(v) > 1}
        assert not same, f"{name}: legend entries drawn alike without colour: {same}"
    timing = _every_figure()["timing_figure"]
    symbols = [t.marker.symbol for t in timing.data if t.legendgroup and t.showlegend is not False
               and "theory" not in t.legendgroup and t.legendgroup != "skipped"]
    assert len(symbols) >= 10 and len(set(symbols)) == len(symbols), symbols  # 06: one marker per method


def test_bars_of_two_rules_differ_by_fill_pattern():
    fig = _every_figure()["retrieval_error"]
    patterns = [t.marker.pattern.shape or "" for t in fig.data if t.type == "bar"]
    assert len(patterns) == 4 and len(set(patterns)) == 4, patterns


def test_distinct_styles_never_repeat_a_style_in_one_figure():
    from linattn_edu.viz import _style

    names = ["softmax", "kv_cache", "sdpa", "nobody", "nobody else", *(f"x{i}" for i in range(30))]
    looks = _style.distinct_styles(names)
    assert len(set(looks.values())) == len(names)
    assert looks["softmax"] == _style.METHOD_STYLES["softmax"] and looks["kv_cache"] != looks["softmax"]
    assert all(s.colour in _style.PALETTE for s in looks.values())
