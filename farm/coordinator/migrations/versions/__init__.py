"""The revisions, one module each, oldest first by their number."""
