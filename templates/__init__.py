"""jinja2 templates of kernel text, rendered by the compiler's emitters with ``StrictUndefined``."""
