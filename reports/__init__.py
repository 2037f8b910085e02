"""Monthly compliance reports (issue #8): ``villagewatch report`` → PDF, CSV and HTML.

Flow: ``period`` (the month in the site's time zone) → ``queries`` (InfluxQL aggregates) →
``compute`` (numpy: completeness, compliance, episodes, AQI, flood, waste) → ``model.Report`` →
``plots`` + writers (``write_csv``, ``write_html``, ``write_pdf``).
"""
