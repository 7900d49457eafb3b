"""One module per agent; each exposes `install(app, ...)` and keeps its logic pure."""
