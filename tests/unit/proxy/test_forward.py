"""Mapping aiohttp/asyncio failures to problem types and error classes (the DNS case cannot be provoked
on 127.0.0.1 without sending a query to a real resolver, so the mapping is checked on the exception)."""

from __future__ import annotations

import asyncio
import socket
import ssl

import aiohttp
from aiohttp.client_reqrep import ConnectionKey

from seamline import errors
from seamline.proxy.forward import classify_client_error
from seamline.proxy.netguard import RefusedAddress

KEY = ConnectionKey("api.example", 443, True, True, None, None, None)


def test_dns_failure_is_502_dns():
    err = classify_client_error(aiohttp.ClientConnectorDNSError(KEY, socket.gaierror(-2, "Name or service not known")))
    assert (err.status, err.error_class) == (502, "dns")


def test_refused_address_behind_the_resolver_is_403():
    exc = aiohttp.ClientConnectorDNSError(KEY, RefusedAddress("api.example resolves only to non-public addresses"))
    err = classify_client_error(exc)
    assert isinstance(err, errors.Forbidden) and err.error_class == "refused"


def test_certificate_failure_is_502_tls():
    cert_err = ssl.SSLCertVerificationError(1, "certificate verify failed")
    err = classify_client_error(aiohttp.ClientConnectorCertificateError(KEY, cert_err))
    assert (err.status, err.error_class) == (502, "tls")


def test_connection_refused_is_502_connect():
    err = classify_client_error(aiohttp.ClientConnectorError(KEY, ConnectionRefusedError(111, "Connection refused")))
    assert (err.status, err.error_class) == (502, "connect")


def test_timeouts_are_504_with_the_phase():
    assert classify_client_error(TimeoutError()).status == 504
    connect = classify_client_error(aiohttp.ConnectionTimeoutError("connect"))
    assert connect.extra["timeout"] == "connect" and connect.error_class == "timeout"


def test_disconnect_before_response_is_502_connect():
    err = classify_client_error(aiohttp.ServerDisconnectedError())
    assert (err.status, err.error_class) == (502, "connect")
