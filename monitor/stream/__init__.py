"""The streaming side: the Faust app (`app`) that wires the traffic reader (`reader`: Kafka batches
to chunk partials, with `chunks` and `join`) to the merger (`merger`: partials to judged windows).
"""
