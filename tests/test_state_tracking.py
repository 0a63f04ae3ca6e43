"""The state-tracking lab: the generator against direct Python, its seeding and refusals, the mixers whose
transitions reach negative eigenvalues (against their own loops), a tiny training run, and the shipped
record's table as the notebook prints it."""
import itertools
import json
from pathlib import Path

import pytest
import torch

from linattn_edu import MemoryBudgetError, delta_product_attention, delta_rule_attention, memory_budget, \
    set_memory_budget
from linattn_edu import recall
from linattn_edu.recall import (MIXERS, S3_ELEMENTS, STATE_METRICS, STATE_TASKS, RecallModel,
                                format_state_tracking_table, run_state_tracking, state_tracking,
                                state_tracking_table)
from linattn_edu.transitions import delta_product_transition

RECORD = Path(__file__).resolve().parents[1] / "assets" / "state_tracking.json"
TINY = dict(seq_len=8, test_lengths=(8, 16), d_model=8, train_examples=32, test_examples=16, epochs=1,
            progress=False, device="cpu")


def tiny(**kwargs):
    return {**TINY, **kwargs}


# The generator ------------------------------------------------------------------------------------
def _compose(g, p):
    """(g ∘ p)(i) = g(p(i)) on tuples."""
    return tuple(g[p[i]] for i in range(3))


def _direct_labels(task, tokens):
    """The running state, one Python step at a time."""
    labels, state = [], (0, 1, 2) if task == "s3" else 0
    for x in tokens:
        if task == "parity":
            state ^= x
        elif task == "mod3":
            state = (state + x) % 3
        else:
            state = _compose(S3_ELEMENTS[x], state)
        labels.append(S3_ELEMENTS.index(state) if task == "s3" else state)
    return labels


@pytest.mark.parametrize("task", list(STATE_TASKS))
@pytest.mark.parametrize("seq_len", [1, 7, 64])
def test_labels_are_the_running_state(task, seq_len):
    x, y = state_tracking(task, n_examples=20, seq_len=seq_len, seed=5)
    assert x.shape == y.shape == (20, seq_len) and x.dtype == y.dtype == torch.long
    assert ((x >= 0) & (x < STATE_TASKS[task])).all() and ((y >= 0) & (y < STATE_TASKS[task])).all()
    for row in range(20):
        assert y[row].tolist() == _direct_labels(task, x[row].tolist())


@pytest.mark.parametrize("task", list(STATE_TASKS))
def test_every_token_occurs(task):
    x, _ = state_tracking(task, n_examples=50, seq_len=40, seed=0)
    counts = torch.bincount(x.flatten(), minlength=STATE_TASKS[task]).double()  # (m,)
    assert (counts / counts.sum() - 1 / STATE_TASKS[task]).abs().max() < 0.05  # uniform tokens


def test_s3_is_the_symmetric_group():
    """Six distinct permutations, token 0 the identity, and the composition is not commutative."""
    assert len(set(S3_ELEMENTS)) == 6 and S3_ELEMENTS[0] == (0, 1, 2)
    assert sorted(S3_ELEMENTS) == sorted(itertools.permutations(range(3)))
    a, b = S3_ELEMENTS[1], S3_ELEMENTS[3]
    assert _compose(a, b) != _compose(b, a)
    assert _direct_labels("s3", [1, 3])[-1] != _direct_labels("s3", [3, 1])[-1]  # order matters
    x, y = state_tracking("s3", n_examples=200, seq_len=2, seed=0)
    order = {tuple(r) for r, s in zip(x.tolist(), y.tolist()) if s[-1] != _direct_labels("s3", r[::-1])[-1]}
    assert order  # the generator's labels depend on the order of the tokens too


@pytest.mark.parametrize("task", list(STATE_TASKS))
def test_deterministic_per_seed_and_global_rng_untouched(task):
    before = torch.random.get_rng_state()
    a = state_tracking(task, n_examples=30, seq_len=25, seed=11)
    b = state_tracking(task, n_examples=30, seq_len=25, seed=11)
    c = state_tracking(task, n_examples=30, seq_len=25, seed=12)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and not torch.equal(a[0], c[0])


@pytest.mark.parametrize("kwargs,err,match", [
    (dict(task="xor"), ValueError, r"task must be one of \('parity', 'mod3', 's3'\); got 'xor'"),
    (dict(task="Parity"), ValueError, "task must be one of"),
    (dict(task=2), TypeError, "task must be a string, one of"),
    (dict(task=None), TypeError, "task must be a string"),
    (dict(n_examples=0), ValueError, "n_examples must be an int >= 1; got 0"),
    (dict(n_examples=2.0), TypeError, "n_examples must be an int"),
    (dict(n_examples=True), TypeError, "n_examples must be an int"),
    (dict(seq_len=-3), ValueError, "seq_len must be an int >= 1; got -3"),
    (dict(seq_len="8"), TypeError, "seq_len must be an int"),
    (dict(seed=-1), ValueError, "seed must be"),
    (dict(seed=1.5), TypeError, "seed must be an int"),
    (dict(seed=2**63), ValueError, "seed must be"),
])
def test_state_tracking_bad_input(kwargs, err, match):
    args = {"task": "parity", "n_examples": 4, "seq_len": 8, "seed": 0, **kwargs}
    task = args.pop("task")
    with pytest.raises(err, match=match):
        state_tracking(task, **args)


def test_state_tracking_past_the_budget():
    with pytest.raises(MemoryBudgetError, match="n_examples=1000000000"):
        state_tracking("parity", n_examples=10**9, seq_len=10**3)


# The mixers with negative eigenvalues and two micro-steps ---------------------------------------------
def _mixer_inputs(kind, d=6, L=9, seed=0):
    torch.manual_seed(seed)
    m = recall.Mixer(kind, d).double()
    x = torch.randn(2, L, d, dtype=torch.float64)  # (B, L, d)
    n_h = MIXERS[kind].micro_steps
    q = torch.randn(2, L, d, dtype=torch.float64)  # (B, L, d)
    k = torch.randn(2, L, n_h, d, dtype=torch.float64).squeeze(2)  # (B, L, d) or (B, L, n_h, d)
    v = torch.randn(2, L, n_h, d, dtype=torch.float64).squeeze(2)
    return m, x, q, k, v


def _delta_loop(q, k, v, beta):
    """S ← S + β k̂ (v − Sᵀk̂)ᵀ per micro-step, out_t = Sᵀq̂_t after token t's last: k (B, L, n_h, d)."""
    B, L, n_h, d = k.shape
    S = torch.zeros(B, d, v.shape[-1], dtype=q.dtype)  # (B, d, d_v)
    q, k = torch.nn.functional.normalize(q, dim=-1), torch.nn.functional.normalize(k, dim=-1)
    out = []
    for t in range(L):
        for j in range(n_h):
            kt, bt = k[:, t, j], beta[:, t, j]  # (B, d), (B,)
            S = S + bt[:, None, None] * kt[:, :, None] * (v[:, t, j] - (S * kt[:, :, None]).sum(1))[:, None, :]
        out.append((S * q[:, t, :, None]).sum(1))  # (B, d_v)
    return torch.stack(out, 1)  # (B, L, d_v)


@pytest.mark.parametrize("kind,n_h,scale", [("delta", 1, 1), ("delta_neg", 1, 2), ("deltaproduct", 2, 1),
                                            ("deltaproduct_neg", 2, 2)])
def test_mixer_is_its_loop(kind, n_h, scale):
    """Each delta-family mixer is the delta loop with β = scale · sigmoid(gate) ∈ (0, scale) per micro-step."""
    m, x, q, k, v = _mixer_inputs(kind)
    with torch.no_grad():
        m.gate.bias.fill_(2.0)  # β near the top of its range: 0.88 (delta) or 1.76 (β ∈ (0, 2))
        beta = scale * torch.sigmoid(m.gate(x)).reshape(2, 9, n_h)  # (B, L, n_h)
        out = MIXERS[kind].attend(m, x, q, k, v)  # (B, L, d)
    if n_h == 1:
        k, v = k.unsqueeze(2), v.unsqueeze(2)  # (B, L, 1, d)
    assert (beta > 1).any() == (scale == 2)
    torch.testing.assert_close(out, _delta_loop(q, k, v, beta), rtol=1e-10, atol=1e-10)


def test_deltaproduct_neg_is_deltaproduct_where_both_apply():
    """The micro-step construction (the delta rule over 2L steps, read after each token's last) equals the
    library's delta_product_attention for β ∈ (0, 1]."""
    torch.manual_seed(1)
    q, k, v = torch.randn(3, 20, 5, dtype=torch.float64), torch.randn(3, 20, 2, 5, dtype=torch.float64), \
        torch.randn(3, 20, 2, 4, dtype=torch.float64)
    beta = torch.rand(3, 20, 2, dtype=torch.float64) * 0.9 + 0.05  # (B, L, 2) in (0, 1)
    micro = delta_rule_attention(q.repeat_interleave(2, 1), k.flatten(1, 2), v.flatten(1, 2), beta.flatten(1, 2))
    torch.testing.assert_close(micro[:, 1::2], delta_product_attention(q, k, v, beta), rtol=1e-10, atol=1e-10)


def test_transition_eigenvalues():
    """What the experiment tests: with β ∈ (0, 1] one or two delta factors keep every eigenvalue real and
    in [0, 1] (a product of two symmetric PSD matrices); β ∈ (0, 2] reaches below zero (and, with two
    factors, a rotation: complex eigenvalues)."""
    g = torch.Generator().manual_seed(0)
    k = torch.nn.functional.normalize(torch.randn(500, 2, 3, generator=g, dtype=torch.float64), dim=-1)
    beta = torch.rand(500, 2, generator=g, dtype=torch.float64)  # (0, 1)
    for n_h in (1, 2):
        eig = torch.linalg.eigvals(delta_product_transition(k[:, :n_h], beta[:, :n_h]))  # (500, 3)
        assert eig.imag.abs().max() < 1e-9 and eig.real.min() > -1e-9 and eig.real.max() < 1 + 1e-9
    eig = torch.linalg.eigvals(delta_product_transition(k[:, :1], 2 * beta[:, :1]))  # one reflection-like factor
    assert eig.imag.abs().max() < 1e-9 and eig.real.min() < -0.9
    a = torch.eye(3, dtype=torch.float64) - 2 * k[:, 0, :, None] * k[:, 0, None, :]  # (500, 3, 3) reflections
    b = torch.eye(3, dtype=torch.float64) - 2 * k[:, 1, :, None] * k[:, 1, None, :]
    assert torch.linalg.eigvals(b @ a).imag.abs().max() > 0.5  # two reflections: a rotation


def test_the_new_mixers_are_causal_and_priced():
    for kind in ("delta_neg", "deltaproduct", "deltaproduct_neg"):
        torch.manual_seed(0)
        model = RecallModel(kind, vocab_size=3, d_model=8).double()
        x = torch.randint(3, (2, 20))
        base = model(x)  # (2, 20, 3)
        y = x.clone()
        y[:, 12] = (y[:, 12] + 1) % 3
        torch.testing.assert_close(model(y)[:, :12], base[:, :12], rtol=1e-12, atol=1e-12)
        assert recall.state_bytes(kind, seq_len=64, d_model=8) == 8 * 8 * 4  # one d_k × d matrix
    assert RecallModel("deltaproduct", vocab_size=3, d_model=8).blocks[1].qkv.out_features == 8 + 2 * (8 + 8)


# Training ---------------------------------------------------------------------------------------
def test_run_state_tracking_smoke():
    r = run_state_tracking("delta_neg", task="mod3", seed=3, **tiny())
    assert r["mixer"] == "delta_neg" and r["task"] == "mod3" and r["steps"] == 1 and len(r["losses"]) == 1
    assert [t["seq_len"] for t in r["tests"]] == [8, 16] and r["settings"]["test_lengths"] == [8, 16]
    for t in r["tests"]:
        assert len(t["position_accuracy"]) == t["seq_len"] and 0 <= t["accuracy"] <= 1
        assert t["accuracy"] == pytest.approx(sum(t["position_accuracy"]) / t["seq_len"], abs=1e-4)
        assert t["last_accuracy"] == pytest.approx(t["position_accuracy"][-1], abs=1e-4)
    assert r["accuracy"] == r["tests"][0]["accuracy"] and r["last_accuracy"] == r["tests"][0]["last_accuracy"]
    assert r["cpu_seconds"] > 0 and r["state_bytes"] == 8 * 8 * 4 and r["settings"]["layers"] == 1
    again = run_state_tracking("delta_neg", task="mod3", seed=3, **tiny())
    assert again["losses"] == r["losses"] and again["tests"] == r["tests"]  # seeded: the same run
    two = run_state_tracking(("deltaproduct_neg", "softmax"), task="s3", **tiny(test_lengths=[8]))
    assert two["mixer"] == "deltaproduct_neg+softmax" and two["settings"]["layers"] == 2
    assert run_state_tracking("gated", **tiny(test_lengths=None))["settings"]["test_lengths"] == [8, 32]


@pytest.fixture
def no_work(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("work started before the arguments were checked")
    monkeypatch.setattr(recall, "state_tracking", forbidden)
    monkeypatch.setattr(recall, "RecallModel", forbidden)


@pytest.mark.parametrize("kwargs,err,match", [
    (dict(mixer="lstm"), ValueError, "mixer must be one of"),
    (dict(task="s5"), ValueError, "task must be one of"),
    (dict(seq_len=0), ValueError, "seq_len must be an int >= 1"),
    (dict(test_lengths=()), TypeError, "test_lengths must be a non-empty tuple of ints"),
    (dict(test_lengths=8), TypeError, "test_lengths must be a non-empty tuple"),
    (dict(test_lengths=(8, 0)), ValueError, "every test length must be an int >= 1; got 0"),
    (dict(test_lengths=(8, 2.5)), TypeError, "every test length must be an int"),
    (dict(epochs=0), ValueError, "epochs must be an int >= 1"),
    (dict(lr=0), ValueError, "lr must be"),
    (dict(weight_decay=-1), ValueError, "weight_decay must be"),
    (dict(progress="no"), TypeError, "progress must be True or False"),
    (dict(seed=2**63 - 1), ValueError, "seed must be"),
    (dict(d_key=0), ValueError, "d_key must be an int >= 1"),
    (dict(train_examples=10**12), MemoryBudgetError, "train_examples=1000000000000"),
    (dict(test_lengths=(8, 10**13)), MemoryBudgetError, "test_examples=16, seq_len=10000000000000"),
    (dict(d_model=10**12), MemoryBudgetError, "d_model"),
])
def test_run_state_tracking_bad_input(kwargs, err, match, no_work):
    args = tiny(**kwargs)
    mixer = args.pop("mixer", "delta_neg")
    with pytest.raises(err, match=match):
        run_state_tracking(mixer, **args)


def test_softmax_scores_past_the_budget(no_work):
    old = memory_budget()
    set_memory_budget(4 * 2**20)  # 4 MiB: (16, 4096, 4096) scores do not fit, the recurrent (16, 4096, 8) do
    try:
        with pytest.raises(MemoryBudgetError, match=r"the activations \(4 · batch_size when testing, length, width\) "
                                                    r"= \(16, 4096, 4096\).*lower batch_size or the lengths"):
            run_state_tracking("softmax", **tiny(test_lengths=(8, 4096), test_examples=16, batch_size=4))
        with pytest.raises(AssertionError, match="work started"):  # every check passed: the work begins
            run_state_tracking("delta_neg", **tiny(test_lengths=(8, 4096), test_examples=16, batch_size=4))
    finally:
        set_memory_budget(old)


# The shipped record and its table --------------------------------------------------------------------
def _record():
    return json.loads(RECORD.read_text())


def test_record_has_its_metadata_and_every_run():
    record = _record()
    meta = record["meta"]
    for key in ("torch_version", "date", "git_revision", "device_name", "threads", "total_cpu_seconds", "command",
                "seeds", "tasks", "mixers", "model", "runs_included"):
        assert key in meta, key
    assert len(meta["seeds"]) >= 3 and meta["command"].startswith("OMP_NUM_THREADS=1 python scripts/state_tracking.py")
    runs = {(r["task"], r["mixer"], r["settings"]["seed"]) for r in record["runs"]}
    assert runs == {(t, m, s) for t in meta["tasks"] for m in meta["mixers"] for s in meta["seeds"]}
    assert meta["total_cpu_seconds"] == pytest.approx(sum(r["cpu_seconds"] for r in record["runs"]), abs=0.1)
    assert meta["total_cpu_seconds"] < 15 * 60  # the default sweep stays a few CPU minutes


def test_table_is_the_mean_min_max_over_seeds():
    record = _record()
    rows = state_tracking_table(record)
    meta = record["meta"]
    lengths = meta["model"]["test_lengths"]
    assert all(len(m.get("test_lengths", lengths)) == len(lengths) for m in meta.get("task_model", {}).values())
    assert len(rows) == len(meta["tasks"]) * len(meta["mixers"]) * len(lengths)
    assert [(r["task"], r["mixer"]) for r in rows[::len(lengths)]] == [(t, m) for t in meta["tasks"]
                                                                       for m in meta["mixers"]]
    for row in rows:
        values = {metric: [t[metric] for r in record["runs"] if (r["task"], r["mixer"]) == (row["task"], row["mixer"])
                           for t in r["tests"] if t["seq_len"] == row["seq_len"]] for metric in STATE_METRICS}
        model = {**meta["model"], **meta.get("task_model", {}).get(row["task"], {})}
        assert row["seeds"] == len(meta["seeds"]) and row["train_len"] == model["seq_len"]
        for metric, v in values.items():
            assert row[f"{metric}_mean"] == pytest.approx(sum(v) / len(v))
            assert (row[f"{metric}_min"], row[f"{metric}_max"]) == (min(v), max(v))
    assert state_tracking_table(record["runs"]) == rows


def test_printed_table_is_the_record():
    record = _record()
    rows = state_tracking_table(record)
    for metric in STATE_METRICS:
        text = format_state_tracking_table(rows, metric)
        lines = text.splitlines()
        assert lines[0] == f"{metric} over {len(record['meta']['seeds'])} seeds: mean [min, max]"
        assert len(lines) == 1 + len(record["meta"]["tasks"]) * (1 + len(record["meta"]["mixers"]))
        for row in rows:
            cell = f"{row[f'{metric}_mean']:.2f} [{row[f'{metric}_min']:.2f}, {row[f'{metric}_max']:.2f}]"
            top = lines.index(next(x for x in lines if x.startswith(f"{row['task']} (trained at L={row['train_len']})")))
            column = lines[top].split(")", 1)[1].split().index(f"L={row['seq_len']}")  # after "task (trained at L=…)"
            line = next(x for x in lines[top + 1:] if x.split()[0] == row["mixer"])
            cells = [c.strip() + "]" for c in line.split(None, 1)[1].split("]")[:-1]]
            assert cells[column] == cell


def test_what_the_record_shows():
    """The claim the notebook prints: at the training length, only rules with a negative eigenvalue track
    parity, and only two reflections per token (a rotation) track a count mod 3 or S3; the others stay near
    chance at the last position."""
    rows = {(r["task"], r["mixer"], r["seq_len"]): r for r in state_tracking_table(_record())}
    for mixer in ("delta_neg", "deltaproduct_neg"):
        assert rows[("parity", mixer, 32)]["last_accuracy_min"] > 0.95
    assert rows[("mod3", "deltaproduct_neg", 32)]["last_accuracy_min"] > 0.9
    for mixer in ("gated", "delta", "deltaproduct", "softmax"):
        assert rows[("parity", mixer, 32)]["last_accuracy_max"] < 0.65
        assert rows[("mod3", mixer, 32)]["last_accuracy_max"] < 0.5
    # S3 (trained at 16): two reflections per token track it; one (delta_neg) reaches at most ~1/3 (the sign)
    assert rows[("s3", "deltaproduct_neg", 16)]["last_accuracy_min"] > 0.95
    assert rows[("s3", "delta_neg", 16)]["last_accuracy_max"] < 0.4
    for mixer in ("gated", "delta", "deltaproduct", "softmax"):
        assert rows[("s3", mixer, 16)]["last_accuracy_max"] < 0.25  # chance is 1/6


def test_curves_are_the_mean_position_accuracy():
    record = _record()
    curves = recall.state_tracking_curves(record, "parity", 128)
    assert list(curves) == record["meta"]["mixers"] and all(len(c) == 128 for c in curves.values())
    runs = [r for r in record["runs"] if r["task"] == "parity" and r["mixer"] == "delta_neg"]
    at = [t["position_accuracy"][99] for r in runs for t in r["tests"] if t["seq_len"] == 128]
    assert curves["delta_neg"][99] == pytest.approx(sum(at) / len(at))
    row = next(r for r in state_tracking_table(record) if (r["task"], r["mixer"], r["seq_len"]) == ("parity", "delta", 128))
    assert sum(curves["delta"]) / 128 == pytest.approx(row["accuracy_mean"], abs=1e-4)  # the curve's mean: the table's
    with pytest.raises(ValueError, match=r"seq_len must be a length the record tests 'parity' at, one of \[32, 128, 512\]"):
        recall.state_tracking_curves(record, "parity", 64)


def test_table_refuses_what_is_not_a_record():
    with pytest.raises(TypeError, match="record must be a state-tracking record"):
        state_tracking_table("runs.json")
    with pytest.raises(ValueError, match="record must hold runs from run_state_tracking"):
        state_tracking_table({"runs": [{"mixer": "delta"}]})
    with pytest.raises(ValueError, match="metric must be one of"):
        format_state_tracking_table([], "loss")
