"""Checkers for notebook 09 (associative recall): the MQAR label rule, which mixer fails first, a seed
summary (mean and spread), which one change of the ablation matters most, and which layer stack recalls best."""
from __future__ import annotations

import torch

from ..recall import IGNORE_INDEX, mqar
from .runner import Case, Question, add_questions, close, fail, run_cases

__all__ = ["check_mqar_labels", "check_fails_first", "first_failure", "check_seed_summary", "check_biggest_step",
           "ablation_gains", "check_best_hybrid", "best_model"]


def _label_cases():
    sizes = [(16, 2, 32, 5), (64, 8, 256, 6), (65, 16, 100, 4)]  # (seq_len, pairs, vocab, examples)
    cases = []
    for i, (L, n, V, b) in enumerate(sizes):
        x, y = mqar(b, seq_len=L, num_kv_pairs=n, vocab_size=V, seed=100 + i)
        cases.append(Case((x, n), y, f"inputs {tuple(x.shape)}, {n} pairs"))
    return cases


def _shifted(expected, got):
    """True if got is the right labels moved one position later (the label sits on the answer's slot)."""
    if not isinstance(got, torch.Tensor) or got.shape != expected.shape:
        return False
    moved = torch.full_like(expected, IGNORE_INDEX)
    moved[:, 1:] = expected[:, :-1]
    return bool((got.long() == moved).all())


def _keys_as_labels(expected, got, case):
    if not isinstance(got, torch.Tensor) or got.shape != expected.shape:
        return False
    keys = torch.where(expected != IGNORE_INDEX, case.args[0], IGNORE_INDEX)
    return bool((got.long() == keys).all())


def _context_scored(expected, got, case):
    if not isinstance(got, torch.Tensor) or got.shape != expected.shape:
        return False
    n = case.args[1]
    return bool((got.long()[:, :2 * n] != IGNORE_INDEX).any() and
                (got.long()[:, 2 * n:] == expected[:, 2 * n:]).all())


def check_mqar_labels(your_fn) -> bool:
    """your_fn(inputs (B, L) long, num_kv_pairs) -> labels (B, L) long.

    The rule: the first 2n tokens are the context k1 v1 … kn vn. After it, every non-zero token is a
    key asked again; the model's output at that position must be the value that followed the key in
    the context, so labels[b, t] = that value. Every other label is -100 (not scored).
    """
    return run_cases(
        "check_mqar_labels", your_fn, _label_cases(), names=["labels"], atol=0, rtol=0,
        hint="build {key: value} from inputs[b, 0:2n:2] and inputs[b, 1:2n:2]; then for t >= 2n with "
             "inputs[b, t] != 0 set labels[b, t] = that key's value; everything else stays -100.",
        diagnoses=[
            (lambda e, g, c: _shifted(e, g),
             "your labels sit one position late: the label at t is the target of the output at t, "
             "so it goes on the queried key itself (the model has just read the key)."),
            (_keys_as_labels, "you labelled the queried positions with the key; the label is its value."),
            (_context_scored, "only the query region is scored: the context k1 v1 … kn vn gets -100."),
        ])


def first_failure(runs, *, threshold: float = 0.9, mixers=None) -> tuple[str | None, int | None]:
    """The mixer whose seed-0 accuracy first drops below ``threshold`` as the KV pairs grow, and at how many.

    ``runs``: run_mqar records (the ``runs`` list of a sweep). Ties at the same pair count go to the
    lower accuracy. Returns (None, None) when no mixer drops below the threshold.
    """
    worst = None
    for r in runs:
        if r["settings"].get("seed", 0) != 0 or (mixers is not None and r["mixer"] not in mixers):
            continue
        if r["accuracy"] < threshold:
            key = (r["settings"]["num_kv_pairs"], r["accuracy"])
            if worst is None or key < worst[0]:
                worst = (key, r["mixer"])
    return (worst[1], worst[0][0]) if worst else (None, None)


def check_fails_first(prediction, runs, *, among=("softmax", "linear", "taylor", "delta"),
                      threshold: float = 0.9) -> bool:
    """Mark a prediction: which of ``among`` first falls below ``threshold`` accuracy as pairs grow?"""
    title = "check_fails_first"
    if prediction not in among:
        return fail(title, [f"  expected one of {list(among)}; got {prediction!r}"], "name one mixer.")
    if not isinstance(runs, (list, tuple)) or not runs:
        return fail(title, ["  expected the list of run records (the sweep's 'runs')"], "pass the runs.")
    mixer, pairs = first_failure(runs, threshold=threshold, mixers=among)
    if mixer is None:
        print(f"✓ {title}: none of {list(among)} fell below {threshold:.0%} in these runs — nothing failed.")
        return prediction is None
    table = {r["mixer"]: r["accuracy"] for r in runs
             if r["mixer"] in among and r["settings"]["num_kv_pairs"] == pairs and r["settings"].get("seed", 0) == 0}
    numbers = ", ".join(f"{m} {a:.2f}" for m, a in sorted(table.items(), key=lambda kv: kv[1]))
    if prediction != mixer:
        return fail(title, [f"  not {prediction}: at {pairs} pairs the accuracies were {numbers}."],
                    "which of these keeps the smallest state that the pairs must share without a way to erase?")
    print(f"✓ {title}: right — {mixer} is first below {threshold:.0%}, at {pairs} pairs ({numbers}). "
          "Its positive elu+1 features all overlap, so pairs blur together in its 64 × 64 state long before 64 of "
          "them (section 5 traces the gap to the positive map with its denominator). Taylor's 273 × 64 state has "
          "room for more, the delta rule reads with signed unit keys (and corrects before it writes), softmax "
          "keeps every pair.")
    return True


add_questions({
    "recall_state_sizes": Question(
        "At L = 64 and d = 64, rank the per-sequence memory a decoder keeps for the mixer layer, smallest first.",
        {"window": "sliding window, w = 16 (2·w·d floats)", "linear": "elu+1 linear attention (d·d + d floats)",
         "softmax": "softmax KV cache (2·L·d floats)", "taylor": "Taylor linear attention, 273 features (273·d + 273)"},
        (("window",), ("linear",), ("softmax",), ("taylor",)),
        "2048, 4160, 8192 and 17745 floats. At this short length the Taylor state is *larger* than softmax's "
        "whole cache: a fixed state only pays off once the sequence is longer than the state (L > 139 here).",
        hint="compute each count at L = 64, d = 64."),
})


# Reading seeds: mean and spread ----------------------------------------------------------------------
def _fake_runs():
    """Run-like records: two mixers × two pair counts × three seeds, with distinct accuracies."""
    g, runs = torch.Generator().manual_seed(7), []
    for mixer in ("linear", "delta"):
        for pairs in (4, 16):
            for seed in (2, 0, 1):  # not in seed order
                acc = round(float(torch.rand((), generator=g)), 3)
                runs.append({"mixer": mixer, "accuracy": acc, "settings": {"num_kv_pairs": pairs, "seed": seed}})
    return runs


def _summary(runs, mixer, pairs):
    accs = [r["accuracy"] for r in runs if r["mixer"] == mixer and r["settings"]["num_kv_pairs"] == pairs]
    return torch.tensor([sum(accs) / len(accs), min(accs), max(accs)], dtype=torch.float64)


def check_seed_summary(your_fn) -> bool:
    """your_fn(runs, mixer, pairs) -> (mean, lowest, highest) accuracy over the seeds of that mixer at that pair count."""
    runs = _fake_runs()
    cases = [Case((runs, m, n), _summary(runs, m, n), f"{m} at {n} pairs") for m, n in [("linear", 16), ("delta", 4)]]

    def as_vec(fn):
        def wrapped(*args):
            got = fn(*args)
            try:
                return torch.tensor([float(x) for x in got], dtype=torch.float64)
            except (TypeError, ValueError):
                return got
        return wrapped

    def seed0(c):
        runs, m, n = c.args
        (a,) = [r["accuracy"] for r in runs if r["mixer"] == m and r["settings"]["num_kv_pairs"] == n
                and r["settings"]["seed"] == 0]
        return torch.tensor([a, a, a], dtype=torch.float64)

    def pooled_pairs(c):
        runs, m, n = c.args
        accs = [r["accuracy"] for r in runs if r["mixer"] == m]
        return torch.tensor([sum(accs) / len(accs), min(accs), max(accs)], dtype=torch.float64)

    def pooled_mixers(c):
        runs, m, n = c.args
        accs = [r["accuracy"] for r in runs if r["settings"]["num_kv_pairs"] == n]
        return torch.tensor([sum(accs) / len(accs), min(accs), max(accs)], dtype=torch.float64)

    def first_seed_listed(c):
        runs, m, n = c.args
        accs = [r["accuracy"] for r in runs if r["mixer"] == m and r["settings"]["num_kv_pairs"] == n]
        return torch.tensor([accs[0], accs[0], accs[0]], dtype=torch.float64)

    return run_cases(
        "check_seed_summary", as_vec(your_fn), cases, names=["(mean, lowest, highest)"],
        hint="keep the runs with r['mixer'] == mixer and r['settings']['num_kv_pairs'] == pairs; then mean, min, max.",
        diagnoses=[
            (lambda e, g, c: close(g, seed0(c)), "you read seed 0 only: average over every seed of that cell."),
            (lambda e, g, c: close(g, first_seed_listed(c)), "you read one run only: average over every seed of that cell."),
            (lambda e, g, c: close(g, pooled_pairs(c)), "you pooled every pair count: keep only the runs at `pairs`."),
            (lambda e, g, c: close(g, pooled_mixers(c)), "you pooled every mixer: keep only the runs of `mixer`."),
        ])


# The one-change ablation: which change matters most? ---------------------------------------------------
ABLATION_STEPS = {"normaliser": ("linear", "linear_nodenom"), "feature map": ("linear_nodenom", "additive"),
                  "write rule": ("additive", "delta")}


def ablation_gains(runs, pairs) -> dict[str, float]:
    """Mean accuracy gained by each one-change step of the ablation at ``pairs`` pairs (mean over seeds)."""
    mean = {}
    for r in runs:
        if r["settings"]["num_kv_pairs"] == pairs:
            mean.setdefault(r["mixer"], []).append(r["accuracy"])
    mean = {m: sum(a) / len(a) for m, a in mean.items()}
    return {step: mean[b] - mean[a] for step, (a, b) in ABLATION_STEPS.items() if a in mean and b in mean}


def check_biggest_step(prediction, runs, pairs) -> bool:
    """Mark a prediction: which one change (normaliser, feature map, write rule) gains most accuracy at ``pairs``?"""
    title = "check_biggest_step"
    if prediction not in ABLATION_STEPS:
        return fail(title, [f"  expected one of {list(ABLATION_STEPS)}; got {prediction!r}"], "name one change.")
    gains = ablation_gains(runs, pairs)
    if len(gains) < len(ABLATION_STEPS):
        return fail(title, [f"  these runs lack the ablation's mixers at {pairs} pairs"], "pass the capacity sweep's runs.")
    best = max(gains, key=gains.get)
    numbers = ", ".join(f"{step} {gain:+.2f}" for step, gain in gains.items())
    if prediction != best:
        return fail(title, [f"  not the {prediction}: mean accuracy gained per step at {pairs} pairs: {numbers}."],
                    "compare the steps' gains; a step can also *lose* accuracy.")
    print(f"✓ {title}: right — at {pairs} pairs the {best} gains most ({numbers}).")
    return True


def best_model(runs) -> tuple[str, float]:
    """The mixer (or layer stack) with the highest mean accuracy over its seeds, and that mean."""
    mean = {}
    for r in runs:
        mean.setdefault(r["mixer"], []).append(r["accuracy"])
    name = max(mean, key=lambda m: sum(mean[m]) / len(mean[m]))
    return name, sum(mean[name]) / len(mean[name])


def check_best_hybrid(prediction, runs) -> bool:
    """Mark a prediction: which stack of mixer layers recalls best (highest mean accuracy over seeds)?"""
    title = "check_best_hybrid"
    names = list(dict.fromkeys(r["mixer"] for r in runs)) if isinstance(runs, (list, tuple)) and runs else []
    if prediction not in names:
        return fail(title, [f"  expected one of {names}; got {prediction!r}"], "name one of the stacks in the runs.")
    best, acc = best_model(runs)
    if prediction != best:
        got = [r["accuracy"] for r in runs if r["mixer"] == prediction]
        return fail(title, [f"  not {prediction} (mean {sum(got) / len(got):.2f}): {best} reached {acc:.2f}."],
                    "which stack can look a pair up exactly at any distance?")
    print(f"✓ {title}: right — {best}, mean accuracy {acc:.2f} over {sum(r['mixer'] == best for r in runs)} seeds.")
    return True
