"""The prediction log's writer, off the request path: queue, writer thread, spill folder.

| module | holds |
| --- | --- |
| `recorder.py` | ``PredictionRecorder``: the bounded queue and the thread that drains it |
| `outage.py` | a database behind or away: spilled, replayed and refused rows, ``/readyz`` state |
| `spill_file.py` | rows the database could not take yet, in local files, replayed |
"""
