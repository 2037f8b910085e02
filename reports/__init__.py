"""Monthly compliance reports (issues #8, #13): ``villagewatch report`` → PDF, CSV and HTML.

Flow: ``period`` (the month in the site's time zone) → ``queries`` (readings per day: completeness)
and ``series`` (each station's readings with their quality flags; sensor faults are not evidence) →
``judge`` (met / not met / not enough data per station × limit × day, with the rule version in force
that day and the rule's own comparison) → ``model.Report`` → ``summary`` (page 1) → ``plots`` +
writers (``write_csv``, ``write_html``, ``write_pdf``). Evidence rules: docs/reports.md.
"""
