"""Generated kernel modules land here (``python -m compiler.build``); they are build output, not source."""
