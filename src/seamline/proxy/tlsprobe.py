"""Why did an `http://` upstream hang up without a word? Often because its port speaks TLS.

TLS servers given plaintext (Python's ssl, OpenSSL's s_server, most load balancers) close the connection without
a byte, so aiohttp reports only "server disconnected". On that one error path for an `http://` base URL, one TLS
handshake to the same host and port (guarded like every upstream connection; certificate not checked: this only
asks whether TLS answers) turns the detail into the fix.
"""

from __future__ import annotations

import asyncio
import ssl

from seamline import errors
from seamline.proxy.tunnel import open_guarded

TLS_HINT = "the upstream answered with TLS; use https:// in base_url"


async def answers_tls(host: str, port: int, allow_private: bool, timeout: float) -> bool:
    """Does host:port complete a TLS handshake (within `timeout`)?"""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        async with asyncio.timeout(timeout):
            _, writer = await open_guarded(host, port, allow_private, timeout)
            try:
                await writer.start_tls(ctx, server_hostname=host or None)
                return True
            finally:
                writer.close()
    except (OSError, TimeoutError, ssl.SSLError, errors.ProxyError):
        return False
