"""The guards: request stages that stop the failures an integration fears (duplicate calls, loops, floods, outages).

One module per guard (dedup.py the duplicate guard, with its state in dedup_store.py), and redis_state.py, the one
Redis client they share when `redis_url` is set.
"""
