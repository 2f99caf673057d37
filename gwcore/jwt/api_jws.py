"""PyJWT's ``jwt.api_jws`` for gwcore: the JWS layer, for payloads that are not JSON claims.

    from gwcore.jwt import api_jws
    body = api_jws.decode(token, public_pem, algorithms=["ES256"])        # bytes
    parts = api_jws.decode_complete(token, public_pem, algorithms=["ES256"])
    # {"payload": bytes, "header": dict, "signature": bytes}

Same compiled verification core as ``gwcore.jwt.decode`` (src_c/jws.c), with PyJWT's framing:
padded base64url segments are accepted, an empty payload is b"", the payload is returned as
bytes whatever it holds (no UTF-8 or JSON check), and RFC 7797 detached payloads (header
``"b64": false`` listed in ``"crit"``, empty payload segment) take ``detached_payload``.
``options={"verify_signature": False}`` returns the parts without looking at key or algorithms.
"""

from gwcore.jwt._jws import get_unverified_header
from gwcore.jwt._jws import jws_decode as decode
from gwcore.jwt._jws import jws_decode_complete as decode_complete

__all__ = ["decode", "decode_complete", "get_unverified_header"]
