#!/usr/bin/env python
"""Write classroom/hub/values.yaml (Zero to JupyterHub) with per-user memory and CPU from the measured record.

    .venv/bin/python classroom/make_hub_values.py            # write classroom/hub/values.yaml
    .venv/bin/python classroom/make_hub_values.py --check    # exit 1 if it is out of date with the record

The numbers come from ``classroom/resources.json`` (``classroom/measure_resources.py`` measures them):

* memory limit     = two notebooks' kernels at the largest measured peak, plus the JupyterLab server's
                     peak, plus 25 % headroom, rounded up to 256 MiB (a student keeps the previous notebook
                     open while working on the next);
* memory guarantee = one kernel at the median measured peak plus the server, rounded up to 128 MiB (what
                     the scheduler reserves per student: a node of M GiB holds about M / guarantee students);
* CPU limit        = the largest measured CPU time / wall time of a notebook, rounded up to whole cores
                     (PyTorch runs a cell on several threads when it can);
* CPU guarantee    = the lab path notebooks' measured CPU seconds spread over a 90-minute session, rounded
                     up to 0.05 core (students read and type far more than they run cells).
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "classroom" / "resources.json"
VALUES = ROOT / "classroom" / "hub" / "values.yaml"
LAB_PATH_NOTEBOOKS = ("01", "02", "03", "04", "07")  # scripts/lab_budget.py's segments
SESSION_SECONDS = 90 * 60
CULL_SECONDS = 3600
EXCHANGE = "/srv/nbgrader/exchange"
COURSE_ID = "linattn-lab"


def _ceil_to(x: float, step: float) -> float:
    return math.ceil(x / step - 1e-9) * step


def resources(record: dict) -> dict:
    """Per-user memory (MiB) and CPU (cores) from the measurement record, by the rules in this module's docstring."""
    peaks = [n["peak_rss_mib"] for n in record["notebooks"].values()]
    server = record["server"]["peak_rss_mib"]
    limit = _ceil_to((2 * max(peaks) + server) * 1.25, 256)
    guarantee = _ceil_to(statistics.median(peaks) + server, 128)
    cpu_limit = max(1, math.ceil(max(n["cpu_s"] / n["wall_s"] for n in record["notebooks"].values())))
    path_cpu = sum(n["cpu_s"] for stem, n in record["notebooks"].items() if stem[:2] in LAB_PATH_NOTEBOOKS)
    cpu_guarantee = max(0.05, round(_ceil_to(path_cpu / SESSION_SECONDS, 0.05), 2))
    return {"memory_limit_mib": int(limit), "memory_guarantee_mib": int(guarantee),
            "cpu_limit": cpu_limit, "cpu_guarantee": cpu_guarantee}


ANNOUNCEMENT = (f"Idle servers stop after {CULL_SECONDS // 60} minutes. Your files stay in your home folder, but "
                "unsaved changes are lost: save often (Ctrl+S).")


def values_yaml(record: dict) -> str:
    r = resources(record)
    machine = record["machine"]
    nbgrader_config = "\n".join([
        "c = get_config()  # noqa: F821",
        f'c.CourseDirectory.course_id = "{COURSE_ID}"',
        f'c.Exchange.root = "{EXCHANGE}"',
    ])
    return f"""# Zero to JupyterHub (z2jh) values for a class running the linear-attention lab.
# Written by classroom/make_hub_values.py from classroom/resources.json (measured on {machine['cpus']} CPUs,
# {machine['processor']}, torch {machine['torch']}, {machine['date']}): change the record, not these numbers.
#   helm upgrade --install jhub jupyterhub/jupyterhub --values classroom/hub/values.yaml
singleuser:
  image:
    # Built by repo2docker from the students' repository (its environment.yml and postBuild):
    #   repo2docker --no-run --user-name jovyan --image-name REGISTRY/linattn-lab:TAG STUDENTS_REPOSITORY_URL
    name: REGISTRY/linattn-lab
    tag: TAG
  defaultUrl: /lab
  memory:
    limit: {r['memory_limit_mib']}M
    guarantee: {r['memory_guarantee_mib']}M
  cpu:
    limit: {r['cpu_limit']}
    guarantee: {r['cpu_guarantee']}
  storage:
    # nbgrader's exchange: one volume every user mounts (ReadWriteMany), where the instructor releases
    # the assignment and students submit (nbgrader release_assignment / fetch_assignment / submit / collect).
    extraVolumes:
      - name: nbgrader-exchange
        persistentVolumeClaim:
          claimName: nbgrader-exchange
    extraVolumeMounts:
      - name: nbgrader-exchange
        mountPath: {EXCHANGE}
  extraFiles:
    nbgrader-config:
      mountPath: /etc/jupyter/nbgrader_config.py
      stringData: |
{_indent(nbgrader_config, 8)}
cull:
  enabled: true
  timeout: {CULL_SECONDS}
  every: 300
hub:
  extraConfig:
    save-your-work: |
      c.JupyterHub.template_vars = {{"announcement": {json.dumps(ANNOUNCEMENT)}}}
"""


def _indent(text: str, n: int) -> str:
    return "\n".join(" " * n + line for line in text.splitlines())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if values.yaml is stale")
    args = parser.parse_args(argv)
    text = values_yaml(json.loads(RECORD.read_text(encoding="utf-8")))
    if args.check:
        stale = not VALUES.exists() or VALUES.read_text(encoding="utf-8") != text
        if stale:
            print("out of date: classroom/hub/values.yaml; run: .venv/bin/python classroom/make_hub_values.py")
        return 1 if stale else 0
    VALUES.parent.mkdir(parents=True, exist_ok=True)
    VALUES.write_text(text, encoding="utf-8")
    print(json.dumps(resources(json.loads(RECORD.read_text(encoding="utf-8")))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
