"""Running executions: the task-tree walker, the durable work queue with leases, timers."""
