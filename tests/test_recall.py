"""The recall lab: the MQAR generator, the model's shapes and causality, and a short training run."""
import pytest
import torch

from linattn_edu import recall
from linattn_edu.recall import IGNORE_INDEX, MIXERS, RecallModel, mqar, run_mqar, state_bytes


def available(mixer):
    """gated / delta need the library's gated / delta-rule forms; the others always exist."""
    module = {"gated": "linattn_edu.gated", "delta": "linattn_edu.delta"}.get(mixer)
    if module is None:
        return True
    try:
        __import__(module)
        return True
    except ImportError:
        return False


MIXERS_HERE = [m for m in MIXERS if available(m)]
SIZES = [(16, 2, 32), (64, 8, 256), (65, 16, 100), (128, 32, 256)]  # (seq_len, pairs, vocab)


# The generator ----------------------------------------------------------------------------------
@pytest.mark.parametrize("seq_len,pairs,vocab", SIZES)
def test_mqar_shapes_and_context(seq_len, pairs, vocab):
    x, y = mqar(50, seq_len=seq_len, num_kv_pairs=pairs, vocab_size=vocab, seed=3)
    assert x.shape == y.shape == (50, seq_len) and x.dtype == y.dtype == torch.long
    keys, values = x[:, 0:2 * pairs:2], x[:, 1:2 * pairs:2]  # (B, n) ×2
    assert ((keys >= 1) & (keys < vocab // 2)).all() and ((values >= vocab // 2) & (values < vocab)).all()
    for row in range(50):  # distinct keys and values within one example
        assert len(set(keys[row].tolist())) == pairs and len(set(values[row].tolist())) == pairs
    assert (x >= 0).all() and (x < vocab).all()


@pytest.mark.parametrize("seq_len,pairs,vocab", SIZES)
def test_mqar_labels_are_the_values_of_queried_keys(seq_len, pairs, vocab):
    x, y = mqar(50, seq_len=seq_len, num_kv_pairs=pairs, vocab_size=vocab, seed=1)
    for row in range(50):
        tokens, labels = x[row].tolist(), y[row].tolist()
        pair = dict(zip(tokens[0:2 * pairs:2], tokens[1:2 * pairs:2]))  # key -> value from the context
        scored = [t for t, lab in enumerate(labels) if lab != IGNORE_INDEX]
        assert len(scored) == pairs  # each key is asked exactly once
        assert all(t >= 2 * pairs and (t - 2 * pairs) % 2 == 0 for t in scored)  # query region, even slots
        assert sorted(tokens[t] for t in scored) == sorted(pair)  # the queried tokens are the keys
        for t in scored:
            assert labels[t] == pair[tokens[t]]  # the label is the value that followed that key
        others = [tok for t, tok in enumerate(tokens[2 * pairs:], 2 * pairs) if t not in scored]
        assert all(tok == 0 for tok in others)  # every other query-region slot is 0
        assert all(lab == IGNORE_INDEX for t, lab in enumerate(labels) if t not in scored)


def test_mqar_gaps_cluster_early():
    """p(gap = i) ∝ (i + 1)^(a − 1) with a = 0.01: the first slot is used far more often than the last."""
    x, y = mqar(2000, seq_len=64, num_kv_pairs=4, vocab_size=256, seed=0)
    used = (y[:, 8:] != IGNORE_INDEX).float().mean(0)[::2]  # (28,) how often each query slot is used
    assert used[0] > 0.5 and used[0] > 4 * used[-1]


def test_mqar_is_deterministic_per_seed():
    a, b = mqar(20, seed=7), mqar(20, seed=7)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])  # integer tokens: exact by construction
    c = mqar(20, seed=8)
    assert not torch.equal(a[0], c[0]) and not torch.equal(a[1], c[1])


@pytest.mark.parametrize("kwargs,err,match", [
    (dict(seq_len=64, vocab_size=64), ValueError, "vocab_size > seq_len"),
    (dict(seq_len=64, num_kv_pairs=17), ValueError, r"4 · num_kv_pairs <= seq_len"),
    (dict(num_kv_pairs=0), ValueError, "num_kv_pairs"),
    (dict(seq_len=2.5), TypeError, "seq_len"),
    (dict(seed=-1), ValueError, "seed"),
])
def test_mqar_bad_input(kwargs, err, match):
    with pytest.raises(err, match=match):
        mqar(4, **kwargs)
    with pytest.raises(TypeError, match="num_examples"):
        mqar("4")


# The model --------------------------------------------------------------------------------------
@pytest.mark.parametrize("mixer", MIXERS_HERE)
def test_forward_shapes(mixer):
    torch.manual_seed(0)
    model = RecallModel(mixer, vocab_size=40, d_model=16, window=4)
    logits = model(torch.randint(40, (3, 21)))
    assert logits.shape == (3, 21, 40) and torch.isfinite(logits).all()


@pytest.mark.parametrize("mixer", MIXERS_HERE)
def test_causal(mixer):
    """Changing token t never changes the prediction at any position before t (every mixer)."""
    torch.manual_seed(0)
    model = RecallModel(mixer, vocab_size=40, d_model=16, window=4).double()
    x = torch.randint(40, (2, 24))
    base = model(x)  # (2, 24, 40)
    for t in (1, 9, 23):
        y = x.clone()
        y[:, t] = (y[:, t] + 7) % 40
        out = model(y)
        torch.testing.assert_close(out[:, :t], base[:, :t], rtol=1e-12, atol=1e-12)
        assert (out[:, t] - base[:, t]).abs().max() > 1e-6  # and the changed token itself matters


def test_state_bytes():
    assert state_bytes("softmax", seq_len=64, d_model=64) == 2 * 64 * 64 * 4
    assert state_bytes("softmax", seq_len=128, d_model=64) == 2 * state_bytes("softmax", seq_len=64, d_model=64)
    assert state_bytes("linear", seq_len=64, d_model=64) == (64 * 64 + 64) * 4  # S and z
    assert state_bytes("window", seq_len=64, d_model=64, window=16) == 2 * 16 * 64 * 4
    assert state_bytes("taylor", seq_len=999, d_model=64) == (273 * 64 + 273) * 4  # independent of L


def test_unknown_mixer_lists_the_valid_ones():
    with pytest.raises(ValueError, match="softmax.*linear.*taylor"):
        RecallModel("mamba")
    with pytest.raises(ValueError, match=r"mixer must be one of \('softmax', 'linear'.*got 'lstm'"):
        run_mqar("lstm", progress=False)
    with pytest.raises(TypeError, match="mixer"):
        run_mqar(3, progress=False)


@pytest.mark.parametrize("kwargs,err", [
    (dict(epochs=0), ValueError), (dict(d_model=8.0), TypeError), (dict(progress="yes"), TypeError),
    (dict(lr=0), ValueError), (dict(num_kv_pairs=40), ValueError), (dict(seed=1.5), TypeError),
])
def test_run_mqar_bad_input(kwargs, err):
    with pytest.raises(err):
        run_mqar("linear", **kwargs)


# Training ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_training_learns_above_chance():
    """V = 64, L = 16, 2 pairs: softmax learns far above chance (1/32) in seconds on a CPU (0.99 measured)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: more threads only wait on each other (and on a busy CPU, much longer)
    try:
        r = run_mqar("softmax", num_kv_pairs=2, seq_len=16, vocab_size=64, d_model=32, train_examples=2048,
                     test_examples=256, epochs=6, progress=False, device="cpu")
    finally:
        torch.set_num_threads(threads)
    assert r["accuracy"] > 0.5, r
    assert r["losses"][-1] < r["losses"][0]
    assert set(r) >= {"accuracy", "seconds", "state_bytes", "steps", "losses", "epoch_accuracy"}
    assert r["steps"] == 6 * 32


# The capacity argument --------------------------------------------------------------------------
def test_readout_error_follows_the_interference_law():
    assert recall.readout_error(1, 32) < 1e-12  # one pair, unit key: read back exactly
    for n in (16, 64, 256):  # random unit keys: error ≈ √((n − 1)/d)
        expected = ((n - 1) / 64) ** 0.5
        assert abs(recall.readout_error(n, 64, trials=16) - expected) < 0.1 * expected
    orthogonal_limit = recall.readout_error(8, 4096)  # d ≫ n: nearly orthogonal keys, little interference
    assert orthogonal_limit < 0.06


# The figures ------------------------------------------------------------------------------------
def fake_runs():
    runs = []
    for seed in (0, 1):
        for mixer, accs in {"softmax": (1.0, 1.0, 1.0), "linear": (0.9, 0.7, 0.5)}.items():
            for (L, n), acc in zip([(64, 8), (64, 16), (128, 32)], accs):
                runs.append({"mixer": mixer, "accuracy": acc - 0.05 * seed, "settings": {"seq_len": L,
                             "num_kv_pairs": n, "seed": seed},
                             "state_bytes": state_bytes(mixer, seq_len=L, d_model=64)})
    return runs


def test_recall_figures():
    pytest.importorskip("plotly")
    from linattn_edu.viz.recall import recall_accuracy_figure, recall_capacity_figure, recall_frontier_figure
    fig = recall_accuracy_figure(fake_runs())
    assert [t.name for t in fig.data] == ["softmax", "linear (elu+1, denominator)"]
    assert list(fig.data[1].y) == pytest.approx([0.875, 0.675, 0.475])  # the mean over seeds drawn
    assert list(fig.data[1].error_y.arrayminus) == pytest.approx([0.025] * 3)  # down to the lowest seed
    assert list(fig.data[1].error_y.array) == pytest.approx([0.025] * 3)  # up to the highest
    fr = recall_frontier_figure(fake_runs())
    assert len(fr.data) == 6 and fr.data[0].x[0] == 2 * 64 * 64 * 4 / 1024
    cap = recall_capacity_figure([1, 4, 16], [0.0, 0.2, 0.5], d=16)
    assert len(cap.data) == 2
    with pytest.raises(ValueError):
        recall_capacity_figure([1, 2], [0.1], d=4)
    with pytest.raises(TypeError):
        recall_accuracy_figure([])
    with pytest.raises(ValueError):
        recall_frontier_figure([{"mixer": "x"}])


def test_recall_pairs_figure_puts_pairs_over_key_width_on_x():
    pytest.importorskip("plotly")
    from linattn_edu.viz.recall import mixer_label, recall_pairs_figure
    runs = [dict(r, settings=dict(r["settings"], d_key=8)) for r in fake_runs()]
    fig = recall_pairs_figure(runs)
    assert [t.name for t in fig.data] == ["softmax", "linear (elu+1, denominator)"]
    assert list(fig.data[1].x) == [1.0, 2.0, 4.0]  # 8, 16, 32 pairs over d_k = 8
    assert list(fig.data[1].y) == pytest.approx([0.875, 0.675, 0.475])
    assert mixer_label("linear+softmax") == "linear (elu+1, denominator) → softmax"
    with pytest.raises(ValueError, match="d_key"):
        recall_pairs_figure(fake_runs())


# The notebook's checkers ------------------------------------------------------------------------
def reference_labels(inputs, n):
    labels = torch.full_like(inputs, IGNORE_INDEX)
    for b in range(inputs.shape[0]):
        pair = dict(zip(inputs[b, 0:2 * n:2].tolist(), inputs[b, 1:2 * n:2].tolist()))
        for t in range(2 * n, inputs.shape[1]):
            if inputs[b, t] != 0:
                labels[b, t] = pair[inputs[b, t].item()]
    return labels


def test_check_mqar_labels(capsys):
    from linattn_edu.exercises import check_mqar_labels
    assert check_mqar_labels(reference_labels)

    def late(inputs, n):  # the label on the slot after the key
        out = torch.full_like(inputs, IGNORE_INDEX)
        out[:, 1:] = reference_labels(inputs, n)[:, :-1]
        return out

    def keys(inputs, n):
        lab = reference_labels(inputs, n)
        return torch.where(lab != IGNORE_INDEX, inputs, IGNORE_INDEX)

    capsys.readouterr()
    assert not check_mqar_labels(late) and "one position late" in capsys.readouterr().out
    assert not check_mqar_labels(keys) and "its value" in capsys.readouterr().out


def test_check_fails_first(capsys):
    from linattn_edu.exercises import check_fails_first, first_failure
    runs = fake_runs()
    assert first_failure(runs) == ("linear", 16)
    assert check_fails_first("linear", runs)
    assert not check_fails_first("softmax", runs) and "not softmax" in capsys.readouterr().out
    assert not check_fails_first("mamba", runs)


def test_progress_bar_is_optional(monkeypatch):
    """tqdm comes with an extra: without it run_mqar trains the same, silently."""
    import sys
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # import now raises ImportError
    bar = recall._progress(3, "x", True)
    bar.update(1), bar.set_postfix(loss="1"), bar.close()
    assert isinstance(bar, recall._NoBar) and isinstance(recall._progress(3, "x", False), recall._NoBar)


# The ablation mixers, the key width and stacks of mixer layers -----------------------------------------
def _mixer_out(kind, d_model=12, d_key=5, seed=0):
    """A Mixer's output and the q, k, v it computed, in float64."""
    from linattn_edu.recall import Mixer
    torch.manual_seed(seed)
    m = Mixer(kind, d_model, 4, d_key).double()
    x = torch.randn(2, 9, d_model, dtype=torch.float64)  # (B, L, d)
    q, k, v = m.qkv(x).split([d_key, d_key, d_model], dim=-1)  # (B, L, d_k) ×2, (B, L, d)
    return m, x, q, k, v


def _causal_sum(a, b, v):
    """Σ_{j<=i} (a_iᵀb_j) v_j with no normaliser, written out: (B, L, d_v)."""
    w = (a @ b.transpose(-2, -1)).tril()  # (B, L, L)
    return w @ v


def test_ablation_mixers_are_one_change_apart():
    import torch.nn.functional as F
    from linattn_edu.recall import ABLATION, MIXERS
    assert ABLATION == ("linear", "linear_nodenom", "additive", "delta")
    m, x, q, k, v = _mixer_out("additive")
    unit = _causal_sum(F.normalize(q, dim=-1), F.normalize(k, dim=-1), v)  # identity map on unit q, k
    torch.testing.assert_close(MIXERS["additive"].attend(m, x, q, k, v), unit, rtol=1e-10, atol=1e-12)
    m, x, q, k, v = _mixer_out("linear_nodenom")
    fq, fk = (F.normalize(F.elu(t) + 1, dim=-1) for t in (q, k))  # elu+1, unit length, no denominator
    torch.testing.assert_close(MIXERS["linear_nodenom"].attend(m, x, q, k, v), _causal_sum(fq, fk, v),
                               rtol=1e-10, atol=1e-12)
    w = (F.elu(q) + 1) @ (F.elu(k) + 1).transpose(-2, -1)  # (B, L, L): linear = the same with its denominator
    w = w.tril()
    torch.testing.assert_close(MIXERS["linear"].attend(m, x, q, k, v), (w @ v) / (w.sum(-1, keepdim=True) + 1e-6),
                               rtol=1e-8, atol=1e-10)


def test_delta_with_beta_zero_keeps_nothing_and_additive_keeps_everything():
    """The write is the one difference between additive and delta: β → the delta rule's correction."""
    import torch.nn.functional as F
    from linattn_edu import delta_rule_attention
    m, x, q, k, v = _mixer_out("delta")
    qn, kn = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    one = torch.ones(q.shape[:-1], dtype=q.dtype)
    # with orthonormal keys the delta rule at β = 1 equals the additive write
    eye = torch.eye(5, dtype=q.dtype).expand(2, 5, 5)  # (B, 5, d_k): 5 orthonormal keys
    vv = v[:, :5]
    torch.testing.assert_close(delta_rule_attention(eye, eye, vv, one[:, :5]), _causal_sum(eye, eye, vv),
                               rtol=1e-10, atol=1e-12)
    assert not torch.allclose(delta_rule_attention(qn, kn, v, one), _causal_sum(qn, kn, v))


def test_key_width_sets_the_projection_and_the_state():
    model = RecallModel("delta", vocab_size=40, d_model=16, d_key=4)
    assert model.blocks[1].qkv.out_features == 2 * 4 + 16 and model.blocks[1].d_qk == 4
    assert state_bytes("delta", seq_len=64, d_model=16, d_key=4) == 4 * 16 * 4  # d_k × d floats
    assert state_bytes("softmax", seq_len=64, d_model=16, d_key=4) == 64 * (4 + 16) * 4  # L·(d_k + d)
    assert state_bytes("linear", seq_len=64, d_model=16, d_key=4) == (4 * 16 + 4) * 4  # S and z
    assert state_bytes("taylor", seq_len=64, d_model=16) == (273 * 16 + 273) * 4  # default key width 16
    for mixer in MIXERS:  # with d = 16 every default key width is 16 (d, or Taylor's 16)
        assert state_bytes(mixer, seq_len=64, d_model=16, d_key=16) == state_bytes(mixer, seq_len=64, d_model=16)


def test_a_stack_of_mixer_layers_is_a_layer_wise_hybrid():
    from linattn_edu.recall import mixer_name
    torch.manual_seed(0)
    model = RecallModel(("linear", "softmax"), vocab_size=40, d_model=16, window=4, d_key=8).double()
    kinds = [type(b).__name__ + (f":{b.kind}" if hasattr(b, "kind") else "") for b in model.blocks]
    assert kinds == ["BaseConv", "Mixer:linear", "BaseConv", "Mixer:softmax"] and len(model.norms) == 5
    x = torch.randint(40, (2, 24))
    base = model(x)  # (2, 24, 40)
    y = x.clone()
    y[:, 11] = (y[:, 11] + 7) % 40
    torch.testing.assert_close(model(y)[:, :11], base[:, :11], rtol=1e-12, atol=1e-12)  # still causal
    assert mixer_name(("linear", "softmax")) == "linear+softmax" and mixer_name("delta") == "delta"
    assert state_bytes(("linear", "softmax"), seq_len=64, d_model=16, d_key=8) == \
        state_bytes("linear", seq_len=64, d_model=16, d_key=8) + state_bytes("softmax", seq_len=64, d_model=16, d_key=8)
    with pytest.raises(ValueError, match="mixer must be one of"):
        RecallModel(("linear", "mamba"))
    with pytest.raises(TypeError, match="mixer must be a string"):
        RecallModel(())


def test_run_mqar_records_a_stack_and_its_key_width():
    r = run_mqar(("additive", "softmax"), num_kv_pairs=2, seq_len=16, vocab_size=32, d_model=8, d_key=4,
                 train_examples=64, test_examples=16, epochs=1, progress=False, device="cpu")
    assert r["mixer"] == "additive+softmax" and r["settings"]["d_key"] == 4
    assert r["cpu_seconds"] > 0 and r["state_bytes"] == state_bytes(("additive", "softmax"), seq_len=16, d_model=8,
                                                                    d_key=4)


def test_every_line_of_a_recall_figure_has_its_own_colour():
    pytest.importorskip("plotly")
    from linattn_edu.viz.recall import recall_accuracy_figure, recall_pairs_figure
    runs = [{"mixer": m, "accuracy": 0.5, "state_bytes": 1024, "settings": {"seq_len": 64, "num_kv_pairs": n,
             "seed": 0, "d_key": 8}} for m in ("softmax", "linear", "linear_nodenom", "additive", "delta")
            for n in (2, 16)]
    for fig in (recall_accuracy_figure(runs), recall_pairs_figure(runs)):
        colours = [t.line.color for t in fig.data]
        assert len(set(colours)) == len(colours) == 5, colours
