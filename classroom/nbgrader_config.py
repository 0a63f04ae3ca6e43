"""nbgrader configuration of the linear-attention lab (copy it to the root of your course folder).

Layout of a course folder (``classroom/README.md`` says how to make one)::

    course/
      nbgrader_config.py        this file
      source/<assignment>/      the nbgrader source notebooks (built from notebooks/*.md, never edited by hand)
      release/<assignment>/     what students get: `nbgrader generate_assignment <assignment>`
      submitted/<student>/<assignment>/   collected work (`nbgrader collect`, or copied in)
      autograded/ feedback/     `nbgrader autograde`, `nbgrader generate_feedback`
      gradebook.db              the grades; `nbgrader export` writes grades.csv
"""
c = get_config()  # noqa: F821  (nbgrader provides it)

c.CourseDirectory.course_id = "linattn-lab"
# One stub for every exercise: the `# TODO:` line that nbgrader keeps above it says what to write.
c.ClearSolutions.code_stub = {
    "python": 'raise NotImplementedError("write your answer here: the # TODO line above says what")'}
c.ClearSolutions.text_stub = "*Write your answer here.*"
c.ClearSolutions.enforce_metadata = True
# Every notebook runs well under a minute on 2 cores; this is the autograder's limit per cell.
c.Execute.timeout = 300
c.Execute.interrupt_on_timeout = True
# The exchange (release / fetch / submit / collect) on a JupyterHub: see classroom/hub/nbgrader_exchange.py.
# Feedback shows each test cell's verdict and hint, not the hidden tests' code.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbgrader.preprocessors.ClearHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
