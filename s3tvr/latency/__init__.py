"""The latency log and what is read from it: one record per utterance, the field's metrics, the report.

* :mod:`~s3tvr.latency.record`: :class:`UtteranceRecord`, one frozen record per finished
  utterance, the :class:`Collector` that writes the log (one JSON line each) and
  :func:`read_log` that reads it back. The live path writes it; eval, serve, the report and the
  benchmarks read it.
* :mod:`~s3tvr.latency.field_metrics`: the latency the simultaneous translation field reports
  (StartOffset, EndOffset, LAAL, YAAL), per source utterance.
* :mod:`~s3tvr.latency.report`: ``s3tvr report``'s table and plot (:func:`summarize`).
* :mod:`~s3tvr.latency.percentile`: the one percentile every report uses (dub's and eval's too).

Nothing here imports the live path: the record sits below it, the reports beside it.
"""
