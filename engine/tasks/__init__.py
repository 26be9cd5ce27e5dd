"""Leaf task handlers (Log, HTTP, notifications, shell...); flow-control tasks live in the runner."""
