"""`seamline serve --workers N`: N proxy processes on one port (SO_REUSEPORT) under one supervisor.

supervisor.py  the `seamline serve` process: reserves the ports, owns the embedded engine and migrates the schema,
               starts, restarts and stops the workers, forwards signals;
slot.py        what a worker is told (its index, the engine's socket, its private run directory) and how its config
               differs from the file's (instance `<host>/w<i>`, spool `<spool_dir>/worker-<i>`);
metrics.py     /metrics of any worker covers every worker (each serves its own registry on a Unix socket).
"""
