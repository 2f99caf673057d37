"""OCSP stapling on a server ssl.SSLContext (src_c/ocsp.c over the libssl Python's ssl uses).

A staple is checked and installed for the certificate the context loaded last
(``load_cert_chain``); it is served when a client asks (status_request) and that certificate
was chosen, and freed with the context.
"""

import ssl

class OcspError(ValueError):
    code: int
    def __init__(self, code: int, message: str) -> None: ...

def check(ctx: ssl.SSLContext, der: bytes) -> str:
    """"good" or "unknown"; OcspError: not DER, not successful, not for the certificate,
    outside its validity, revoked."""

def staple(ctx: ssl.SSLContext, der: bytes) -> str:
    """check(), then staple der for that certificate (replacing an earlier one)."""

def certificate_count(ctx: ssl.SSLContext) -> int:
    """The number of certificates ctx has a staple for."""
