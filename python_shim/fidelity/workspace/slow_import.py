"""item15: slow to import, so that 16 threads race for it."""
import time

from thread_counter import EXECUTIONS

EXECUTIONS.append(1)
time.sleep(0.2)
VALUE = 42
