"""item15: records each execution of slow_import's body."""
EXECUTIONS = []
