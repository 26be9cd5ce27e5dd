"""Kestra-compatible flow files: loading, validation, and the task tree."""
