"""The recall lab refuses bad input before any work: a clear ValueError/TypeError naming the argument, a
MemoryBudgetError naming the size that scales an allocation, and a refused call draws nothing and leaves
the global RNG where it was. The mixers live in one registry, read by the model, state_bytes and errors."""
import pytest
import torch

from linattn_edu import MemoryBudgetError, memory_budget, set_memory_budget
from linattn_edu import recall
from linattn_edu.recall import MIXERS, RecallModel, mqar, readout_error, run_mqar, state_bytes

TINY = dict(num_kv_pairs=2, seq_len=16, vocab_size=32, d_model=8, train_examples=8, test_examples=8, epochs=1,
            progress=False, device="cpu")


def tiny(**kwargs):
    return {**TINY, **kwargs}


@pytest.fixture
def no_work(monkeypatch):
    """Refusals must come before any data is drawn or any model is built."""
    def forbidden(*args, **kwargs):
        raise AssertionError("work started before the arguments were checked")
    monkeypatch.setattr(recall, "mqar", forbidden)
    monkeypatch.setattr(recall, "RecallModel", forbidden)


@pytest.fixture
def budget():
    old = memory_budget()
    yield set_memory_budget
    set_memory_budget(old)


# run_mqar: optimiser, device, seed -----------------------------------------------------------------
@pytest.mark.parametrize("weight_decay,err", [(-1, ValueError), (float("nan"), ValueError), (float("inf"), ValueError),
                                              ("0.1", TypeError), (None, TypeError), (True, TypeError)])
def test_weight_decay(weight_decay, err, no_work):
    with pytest.raises(err, match=r"weight_decay must be a finite number >= 0; got"):
        run_mqar("linear", **tiny(weight_decay=weight_decay))


@pytest.mark.parametrize("kwargs,err,match", [
    (dict(lr=-1e-3), ValueError, "lr must be"), (dict(lr=float("inf")), ValueError, "lr must be"),
    (dict(lr=True), TypeError, "lr must be"), (dict(epochs=True), TypeError, "epochs must be an int"),
    (dict(batch_size=0), ValueError, "batch_size must be an int >= 1"), (dict(batch_size=2.0), TypeError, "batch_size"),
    (dict(window=True), TypeError, "window must be an int"), (dict(test_examples=-1), ValueError, "test_examples"),
    (dict(progress=1), TypeError, "progress must be True or False"),
])
def test_run_mqar_scalars(kwargs, err, match, no_work):
    with pytest.raises(err, match=match):
        run_mqar("linear", **tiny(**kwargs))


def test_cuda_without_a_gpu_is_a_value_error(monkeypatch, no_work):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    for device in ("cuda", "cuda:0", torch.device("cuda")):
        with pytest.raises(ValueError, match=r"device must be one this machine has; got .*no CUDA GPU"):
            run_mqar("linear", **tiny(device=device))


def test_cuda_index_past_the_gpus(monkeypatch, no_work):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ValueError, match=r"device must be one this machine has \(cuda:0 … cuda:1\); got 'cuda:3'"):
        run_mqar("linear", **tiny(device="cuda:3"))


@pytest.mark.parametrize("device,err,match", [
    ("xyz", ValueError, "device must name a torch device"), ("gpu", ValueError, "device must name a torch device"),
    ("cpu:x", ValueError, "device must name a torch device"), ("", ValueError, "device must name a torch device"),
    ("meta", ValueError, "device must hold real numbers"), (3, TypeError, "device must be None, a torch.device"),
])
def test_devices_torch_does_not_know_or_cannot_train_on(device, err, match, no_work):
    with pytest.raises(err, match=match):
        run_mqar("linear", **tiny(device=device))


def test_mps_without_mps(monkeypatch, no_work):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ValueError, match="MPS is not available"):
        run_mqar("linear", **tiny(device="mps"))


@pytest.mark.parametrize("seed", [2**63, 2**64, 2**70])
def test_mqar_seed_range(seed):
    with pytest.raises(ValueError, match=rf"seed must be an int >= 0 and <= {2**63 - 1}; got {seed}"):
        mqar(4, seed=seed)


def test_largest_seeds_still_work():
    x, _ = mqar(2, seed=2**63 - 1)
    assert x.shape == (2, 64)
    with pytest.raises(ValueError, match=rf"seed must be an int >= 0 and <= {2**63 - 2}"):  # the test set uses seed + 1
        run_mqar("linear", **tiny(seed=2**63 - 1))


@pytest.mark.parametrize("seed,err", [(True, TypeError), (1.5, TypeError), (-1, ValueError), (2**64, ValueError)])
def test_readout_error_seed(seed, err):
    with pytest.raises(err, match="seed must be an int"):
        readout_error(4, 8, seed=seed)


# Sizes that scale an allocation: MemoryBudgetError naming the argument, before anything is allocated ----------
@pytest.mark.parametrize("call,name", [
    (lambda: mqar(2, vocab_size=10**12), "vocab_size"),
    (lambda: mqar(10**9), "num_examples=1000000000"),
    (lambda: mqar(10**8, seq_len=64), "num_examples"),
    (lambda: RecallModel("linear", vocab_size=10**12), "vocab_size=1000000000000"),
    (lambda: RecallModel("linear", d_model=10**6), "d_model=1000000"),
    (lambda: readout_error(10**12, 8), "num_pairs"),
    (lambda: readout_error(4, 8, trials=10**12), "trials"),
])
def test_allocations_past_the_budget(call, name):
    with pytest.raises(MemoryBudgetError, match=name):
        call()


@pytest.mark.parametrize("kwargs,name", [
    (dict(vocab_size=10**12), "vocab_size"), (dict(train_examples=10**12), "train_examples=1000000000000"),
    (dict(test_examples=10**12), "test_examples=1000000000000"), (dict(d_model=10**12), "d_model"),
])
def test_run_mqar_allocations_past_the_budget(kwargs, name, no_work):
    with pytest.raises(MemoryBudgetError, match=name):
        run_mqar("linear", **tiny(**kwargs))


def test_logits_past_the_budget(budget, no_work):
    budget(2**20)  # 1 MiB: the data (64 × 32 floats) and weights fit, the (64, 64, 256) logits (4 MiB) do not
    with pytest.raises(MemoryBudgetError, match=r"the logits \(batch_size, seq_len, vocab_size\) = \(64, 64, 256\)"):
        run_mqar("linear", **tiny(seq_len=64, vocab_size=256, train_examples=64, test_examples=16))


def test_torch_multinomial_limit():
    """torch.multinomial draws from at most 2²⁴ categories: a larger vocabulary is refused, not torch's error."""
    with pytest.raises(ValueError, match=rf"vocab_size must be <= {2**25}"):
        mqar(1, vocab_size=2**25 + 2)


# Failed calls change no state ---------------------------------------------------------------------
def test_refused_and_finished_runs_leave_the_global_rng():
    torch.manual_seed(11)
    before = torch.get_rng_state()
    for kwargs in (dict(weight_decay=-1), dict(device="meta"), dict(seed=2**64), dict(vocab_size=10**12)):
        with pytest.raises(ValueError):
            run_mqar("linear", **kwargs, progress=False)
        assert torch.equal(torch.get_rng_state(), before), kwargs
    run_mqar("linear", **tiny())  # a finished run seeds its init inside fork_rng
    assert torch.equal(torch.get_rng_state(), before)


def test_same_seed_same_run_whatever_the_global_rng():
    torch.manual_seed(0)
    a = run_mqar("linear", **tiny())
    torch.manual_seed(1)
    b = run_mqar("linear", **tiny())
    assert a["losses"] == b["losses"] and a["epoch_accuracy"] == b["epoch_accuracy"]


# Bools and sizes where ints are expected ------------------------------------------------------------
@pytest.mark.parametrize("kwargs,err", [
    (dict(seq_len=True), TypeError), (dict(seq_len=0), ValueError), (dict(seq_len=2.5), TypeError),
    (dict(d_model=True), TypeError), (dict(d_model=1.5), TypeError), (dict(window=0), ValueError),
    (dict(window=True), TypeError), (dict(seq_len=None), TypeError),
])
def test_state_bytes_sizes(kwargs, err):
    args = {**dict(seq_len=64, d_model=64), **kwargs}
    name = next(iter(kwargs))
    with pytest.raises(err, match=f"{name} must be an int >= 1"):
        state_bytes("softmax", **args)


@pytest.mark.parametrize("window,err", [(0, ValueError), (-1, ValueError), (True, TypeError), (None, TypeError),
                                        (2.5, TypeError)])
def test_recall_model_window(window, err):
    with pytest.raises(err, match="window must be an int >= 1"):
        RecallModel("window", window=window)


@pytest.mark.parametrize("kwargs", [dict(num_examples=True), dict(seq_len=True), dict(vocab_size=True),
                                    dict(num_kv_pairs=True)])
def test_mqar_bools(kwargs):
    args = {"num_examples": 4, **kwargs}
    with pytest.raises(TypeError, match=f"{next(iter(kwargs))} must be an int"):
        mqar(**args)


# One registry of mixers -----------------------------------------------------------------------------
@pytest.mark.parametrize("call", [lambda m: RecallModel(m), lambda m: run_mqar(m, progress=False),
                                  lambda m: state_bytes(m, seq_len=64, d_model=64)])
@pytest.mark.parametrize("mixer", ["mamba", "Softmax", ""])
def test_wrong_mixer_lists_the_registered_ones(call, mixer):
    with pytest.raises(ValueError, match=rf"mixer must be one of {tuple(MIXERS)!r}; got {mixer!r}".replace("(", r"\(")
                       .replace(")", r"\)")):
        call(mixer)


@pytest.mark.parametrize("mixer", [None, 3, ["linear"]])
def test_mixer_type(mixer):
    with pytest.raises(TypeError, match="mixer must be a string, one of"):
        RecallModel(mixer)


def test_registry_is_the_one_source(monkeypatch):
    """A mixer registered once is built, trained, priced and listed in errors, with no other edit."""
    from linattn_edu.recall import MixerSpec
    assert all(isinstance(spec, MixerSpec) for spec in MIXERS.values())

    def mean_mixer(m, x, q, k, v):  # causal running mean of v
        steps = torch.arange(1, v.shape[-2] + 1, dtype=v.dtype)[:, None]  # (L, 1)
        return v.cumsum(-2) / steps  # (B, L, d)

    monkeypatch.setitem(MIXERS, "mean", MixerSpec(mean_mixer, lambda L, d, w: d, "running mean", gate=True))
    model = RecallModel("mean", vocab_size=32, d_model=8)
    assert hasattr(model.blocks[1], "gate") and model(torch.randint(32, (2, 16))).shape == (2, 16, 32)
    assert state_bytes("mean", seq_len=16, d_model=8) == 8 * 4
    assert run_mqar("mean", **tiny())["mixer"] == "mean"
    with pytest.raises(ValueError, match="'mean'"):
        RecallModel("nope")


def test_a_window_wider_than_the_sequence_keeps_the_sequence():
    """A window past L caches at most the L tokens there are (not 2·w·d floats for w = 10¹²)."""
    kv_cache = state_bytes("softmax", seq_len=64, d_model=64)
    assert state_bytes("window", seq_len=64, d_model=64, window=10**12) == kv_cache
    assert state_bytes("hybrid", seq_len=64, d_model=64, window=10**12) == state_bytes("hybrid", seq_len=64, d_model=64,
                                                                                       window=64)
