"""The guards of issue #13, one module each, each a stage of the request path (seamline.proxy.handler):
ratelimit.py (the local rate limit per upstream); redis_state.py (the Redis client shared by the guards' state).
"""
