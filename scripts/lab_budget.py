#!/usr/bin/env python
"""The 90-minute lab path, priced segment by segment.

    .venv/bin/python scripts/lab_budget.py            # a table: each segment's minutes and the total
    .venv/bin/python scripts/lab_budget.py --json     # the same numbers as JSON

A segment's budget is

    reading   words of its markdown cells at 200 words a minute (the sections read, and the text of
              the exercises on the path),
    exercises 4 minutes per code exercise on the path (a function to write, or the hand computation),
    quizzes   1 minute per quiz on the path (check_choice / check_order),
    running   the run time of every code cell it runs, read from the executed notebooks/NN_topic.ipynb
              (nbclient records each cell's start and end in its metadata when scripts/execute_notebooks.py
              runs it: measured on this project's 2-core machines),

plus fixed minutes for what no notebook holds (setup, debrief). The exercises on the path are the ones
whose heading says so in the notebook source ("**Exercise 3 (lab path).**"); every other exercise is
homework. ``tests/test_classroom.py`` keeps the path at 85 minutes or less.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"

WORDS_PER_MINUTE = 200
MINUTES_PER_CODE_EXERCISE = 4
MINUTES_PER_QUIZ = 1
LIMIT_MINUTES = 85  # of a 90-minute session: 5 minutes of slack

PATH_MARK = re.compile(r"\*\*Exercise (\d+) \((?:[^)]*; )?(lab path|homework)\)\.\*\*")
EXERCISE = re.compile(r"\*\*Exercise (\d+)")
SECTION = re.compile(r"^##\s+(\d+)\.", re.M)
QUIZ_CALL = re.compile(r"^\s*check_(order|choice)\(", re.M)
CHECK_CALL = re.compile(r"^\s*check_\w+\(", re.M)


@dataclass(frozen=True)
class Segment:
    """One stretch of the lab: sections of one notebook (intro included) and its lab-path exercises."""

    name: str
    notebook: str | None = None  # "01" … ; None for a fixed segment
    sections: tuple = ()  # numbered sections read ("## 2. …")
    fixed_minutes: float = 0.0  # setup, debrief: not in a notebook
    note: str = ""


#: The lab: what the instructor guide's schedule (notebooks/INSTRUCTORS.md) walks through.
PATH = [
    Segment("setup", fixed_minutes=5, note="open the student edition, run the first cell"),
    Segment("01 softmax attention", "01", (1, 2, 3, 4)),
    Segment("02 attention as kernel smoothing", "02", (1, 2, 3)),
    Segment("03 linear attention", "03", (1, 2, 3, 4)),
    Segment("04 causal linear attention is an RNN", "04", (1, 2, 4, 7)),
    Segment("07 memory: KV cache vs state", "07", (1, 2, 3), note="run the calculator, read the figure"),
    Segment("debrief", fixed_minutes=5, note="project the read-along edition; discussion prompts"),
]


@dataclass
class Budget:
    name: str
    words: int = 0
    code_exercises: list = field(default_factory=list)
    quizzes: list = field(default_factory=list)
    run_seconds: float = 0.0
    fixed_minutes: float = 0.0
    note: str = ""

    @property
    def minutes(self) -> float:
        return (self.words / WORDS_PER_MINUTE + MINUTES_PER_CODE_EXERCISE * len(self.code_exercises)
                + MINUTES_PER_QUIZ * len(self.quizzes) + self.run_seconds / 60 + self.fixed_minutes)

    def as_dict(self) -> dict:
        return {"segment": self.name, "words": self.words, "reading_min": round(self.words / WORDS_PER_MINUTE, 1),
                "code_exercises": self.code_exercises, "quizzes": self.quizzes,
                "run_s": round(self.run_seconds, 1), "fixed_min": self.fixed_minutes,
                "minutes": round(self.minutes, 1), "note": self.note}


def _text(src) -> str:
    return "".join(src) if isinstance(src, list) else src


def words(markdown: str) -> int:
    """Words a reader reads: math counts as one word per formula, markup and links do not count."""
    text = re.sub(r"\$\$.*?\$\$|\$[^$]*\$", " x ", markdown, flags=re.S)
    text = re.sub(r"\]\([^)]*\)", "]", text)  # link targets
    text = re.sub(r"<[^>]+>", " ", text)
    return len(re.findall(r"[\w'’-]+", text))


def cell_seconds(cell: dict) -> float:
    """Run time of an executed code cell from nbclient's timing metadata (0 when there is none)."""
    timing = cell.get("metadata", {}).get("execution", {})
    try:
        start = datetime.fromisoformat(timing["iopub.execute_input"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(timing["shell.execute_reply"].replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return 0.0
    return max(0.0, (end - start).total_seconds())


def notebook_path(number: str) -> Path:
    (path,) = NOTEBOOKS.glob(f"{number}_*.ipynb")
    return path


def price(segment: Segment) -> Budget:
    """The budget of one segment, from the executed notebook (text, exercise marks, cell timings)."""
    budget = Budget(segment.name, fixed_minutes=segment.fixed_minutes, note=segment.note)
    if segment.notebook is None:
        return budget
    cells = json.loads(notebook_path(segment.notebook).read_text(encoding="utf-8"))["cells"]
    section = 0  # the intro, before "## 1."
    in_exercises = False  # the self-check section (an unnumbered "## …")
    exercise = None  # (number, on the path) of the exercise whose cells follow
    for cell in cells:
        src = _text(cell["source"])
        if cell["cell_type"] == "markdown":
            heading = re.search(r"^##\s+(.*)$", src, re.M)
            if heading:
                number = SECTION.match(heading.group(0))
                section = int(number.group(1)) if number else section
                in_exercises = number is None and "exercise" in heading.group(1).lower()
                exercise = None
            mark = PATH_MARK.search(src)
            if mark:
                exercise = (int(mark.group(1)), mark.group(2) == "lab path")
            elif EXERCISE.search(src):
                exercise = (int(EXERCISE.search(src).group(1)), False)  # unmarked: homework
            reading = (section == 0 and not in_exercises) or (section in segment.sections and not in_exercises)
            if reading or (exercise is not None and exercise[1]):
                budget.words += words(src)
            elif in_exercises and exercise is None and heading:
                budget.words += words(src)  # the exercises' introduction
            continue
        if cell["cell_type"] != "code":
            continue
        runs = (section == 0 and not in_exercises) or (section in segment.sections and not in_exercises) or (
            in_exercises and (exercise is None or exercise[1]))
        if runs:
            budget.run_seconds += cell_seconds(cell)
        if in_exercises and exercise is not None and exercise[1] and CHECK_CALL.search(src):
            label = f"{segment.notebook} ex {exercise[0]}"
            (budget.quizzes if QUIZ_CALL.search(src) else budget.code_exercises).append(label)
    return budget


def lab_budget(path=PATH) -> list[Budget]:
    return [price(s) for s in path]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    budgets = lab_budget()
    total = sum(b.minutes for b in budgets)
    if args.json:
        print(json.dumps({"segments": [b.as_dict() for b in budgets], "total_min": round(total, 1),
                          "limit_min": LIMIT_MINUTES}, indent=1, ensure_ascii=False))
        return 0
    print(f"{'segment':40s} {'read':>5s} {'code ex':>7s} {'quiz':>4s} {'run s':>6s} {'fixed':>5s} {'min':>5s}")
    start = 0.0
    for b in budgets:
        print(f"{b.name:40s} {b.words / WORDS_PER_MINUTE:5.1f} {len(b.code_exercises):7d} {len(b.quizzes):4d} "
              f"{b.run_seconds:6.1f} {b.fixed_minutes:5.0f} {b.minutes:5.1f}   ({start:.0f}–{start + b.minutes:.0f})")
        start += b.minutes
    print(f"{'total':40s} {'':5s} {'':7s} {'':4s} {'':6s} {'':5s} {total:5.1f}   (limit {LIMIT_MINUTES})")
    return 0 if total <= LIMIT_MINUTES else 1


if __name__ == "__main__":
    sys.exit(main())
