"""The statistics core: pure NumPy, no Kafka, Faust, HTTP or command-line code.

The data path, one module a step: bytes -> validated record (`events`) -> batch of columns
(`columns`) -> bins per channel (`channels`) -> sketch update (`sketch`) -> comparison with the
synthetic profile (`profile`, `statistics`, `calibration`) -> severity (`severity`) and online
detectors (`detectors`), tied together by `analyzer`; windows merged from partial sketches
(`windows`) and the alert state machine (`alerts`). Shared value types live in `types`.
`synthdrift check` and the streaming worker both drive this code, so they compute the same numbers.
"""
