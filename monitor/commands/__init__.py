"""The `synthdrift` command line (`cli`) and what its commands run: `check`, `replay` and
`simulate`, `demo` with its bundled `example`, and the embedded `broker` for development.
Heavy modules are imported inside the commands that use them, so `synthdrift --help` starts fast.
"""
