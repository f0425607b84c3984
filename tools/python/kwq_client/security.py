"""Channels to a secured kwq scheduler or tracker (server/auth/README.md).

TLS when a CA file is given (or tls=True: the system roots), a client certificate for
mutual TLS, and a bearer token sent as "authorization: Bearer <token>" on every call.
Unset arguments come from the environment: KWQ_TLS_CA, KWQ_TLS_CERT, KWQ_TLS_KEY,
KWQ_TOKEN, KWQ_TLS=1, KWQ_TLS_SERVER_NAME.
"""
import collections
import os

import grpc


class _CallDetails(collections.namedtuple(
        "_CallDetails", ("method", "timeout", "metadata", "credentials",
                         "wait_for_ready", "compression")), grpc.ClientCallDetails):
    pass


class _BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                   grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds the token to every call (works on plaintext channels too, unlike call
    credentials)."""

    def __init__(self, token):
        self._header = ("authorization", "Bearer " + token)

    def _details(self, d):
        metadata = list(d.metadata or []) + [self._header]
        return _CallDetails(d.method, d.timeout, metadata, d.credentials,
                            getattr(d, "wait_for_ready", None),
                            getattr(d, "compression", None))

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, requests):
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation, details, requests):
        return continuation(self._details(details), requests)


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def channel(address, ca_file=None, cert_file=None, key_file=None, token=None,
            tls=None, server_name=None):
    """A grpc.Channel to `address` with kwq's TLS and token settings."""
    env = os.environ.get
    ca_file = ca_file or env("KWQ_TLS_CA")
    cert_file = cert_file or env("KWQ_TLS_CERT")
    key_file = key_file or env("KWQ_TLS_KEY")
    token = token or env("KWQ_TOKEN")
    server_name = server_name or env("KWQ_TLS_SERVER_NAME")
    if tls is None:
        tls = env("KWQ_TLS") == "1"
    if bool(cert_file) != bool(key_file):
        raise ValueError("a client certificate needs both cert_file and key_file")
    options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
    if tls or ca_file or cert_file:
        creds = grpc.ssl_channel_credentials(
            root_certificates=_read(ca_file) if ca_file else None,
            private_key=_read(key_file) if key_file else None,
            certificate_chain=_read(cert_file) if cert_file else None)
        ch = grpc.secure_channel(address, creds, options=options)
    else:
        ch = grpc.insecure_channel(address, options=options)
    if token:
        ch = grpc.intercept_channel(ch, _BearerToken(token))
    return ch
