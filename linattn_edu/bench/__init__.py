"""Timing and peak memory of attention forms as the sequence grows; ``python -m linattn_edu.bench``.

The package, one idea a module (read in this order):

* :mod:`.methods`  the methods under test (naive softmax, SDPA, linear attention's quadratic,
  chunkwise and recurrent forms, sliding window; FLA's kernels where present), how one call is
  built (forward or forward+backward, optionally ``torch.compile``-d) and the guards that
  predict a point's memory and time before it runs.
* :mod:`.timer`    :func:`time_call` (warm-up, median, IQR, noise flag; CUDA events on a GPU),
  :func:`peak_memory`, the dense-matmul yardstick.  Notebooks time with :func:`time_call`.
* :mod:`.records`  :class:`Results`: tidy records plus the run's metadata, JSON/CSV.
* :mod:`.sweeps`   one guarded point, a sweep over N, the headline at one N, decode steps.
* :mod:`.analysis` log-log slopes, theory constants, the crossover N, FLOP counts.
* :mod:`.targets`  claims per device and shape, reported with their noise.
* :mod:`.report`, :mod:`.cli`  text output and the command line.

Command line (the bare command is the headline and takes its options)::

    python -m linattn_edu.bench                     # = headline: chunkwise vs SDPA at N=16384
    python -m linattn_edu.bench --n 4096 --compile  # the headline at another N, chunkwise compiled
    python -m linattn_edu.bench sweep --out artifacts/sweep.json
    python -m linattn_edu.bench slopes              # log-log slopes over N in [2k, 32k], crossover N
    python -m linattn_edu.bench decode              # per-token step: KV-cache softmax vs recurrent state
"""

from . import fla, hf
from .analysis import chunkwise_flops, crossover_n, fit_loglog_slope, fit_theory_constant, slopes
from .cli import main
from .methods import (ALL_METHODS, FEATURE_MAP, GATED_METHODS, RULE_METHODS, channel_gates, METHODS, OPTIONAL_METHODS, MODES, Method, attention_fn, build_call,
                      check_method, check_mode, log_grid, make_gates, make_inputs, predict_peak_bytes, predict_seconds)
from .records import Results, run_metadata
from .report import format_claims, format_decode, format_grid, format_headline, format_metadata, format_table, \
    report
from .sweeps import DECODERS, GiB, decode_sweep, default_methods, headline, measure_point, sweep
from .targets import Target, decode_targets, headline_targets, ratio_noise, slope_noise, slope_targets
from .timer import NOISE_RATIO, format_timing, load_average, machine_busy, matmul_gflops, peak_memory, time_call

__all__ = [
    "METHODS", "OPTIONAL_METHODS", "ALL_METHODS", "MODES", "FEATURE_MAP", "GiB", "NOISE_RATIO", "Method", "Results", "Target", "DECODERS", "fla",
    "GATED_METHODS", "RULE_METHODS", "channel_gates", "log_grid", "make_inputs", "make_gates", "attention_fn", "build_call", "check_method", "check_mode", "predict_peak_bytes",
    "predict_seconds", "time_call", "format_timing", "load_average", "machine_busy", "peak_memory",
    "matmul_gflops", "measure_point", "sweep", "default_methods", "headline", "decode_sweep",
    "fit_loglog_slope", "slopes", "fit_theory_constant", "crossover_n", "chunkwise_flops",
    "headline_targets", "decode_targets", "slope_targets", "slope_noise", "ratio_noise", "run_metadata", "format_metadata", "format_table",
    "format_grid", "format_headline", "format_decode", "format_claims", "report", "main",
]
