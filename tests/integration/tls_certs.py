"""Test certificates made with ``cryptography`` at test time (no private key is committed):
a CA, server and client certificates signed by it (ECDSA P-256 or RSA 2048), written as PEM
files, and OCSP responses (DER) for them signed by the CA."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _key(kind: str) -> Key:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str, org: str = "gwcore tests") -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)])


@dataclass
class Pem:
    cert: x509.Certificate
    key: Key

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        """``stem.pem`` and ``stem.key`` in directory; their paths."""
        c, k = directory / f"{stem}.pem", directory / f"{stem}.key"
        c.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        k.write_bytes(self.key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
        return c, k


def make_ca(cn: str = "gwcore test CA") -> Pem:
    key = _key("ec")
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return Pem(cert, key)


def issue(ca: Pem, cn: str, dns: tuple[str, ...] = (), ips: tuple[str, ...] = (),
          kind: str = "ec", client: bool = False, valid_days: tuple[int, int] = (-1, 30),
          emails: tuple[str, ...] = ()) -> Pem:
    """A leaf certificate for ``cn`` signed by ca, valid from now+valid_days[0] days to
    now+valid_days[1] days, with these SANs; a client (clientAuth) or server certificate."""
    key = _key(kind)
    now = dt.datetime.now(dt.UTC)
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    sans += [x509.RFC822Name(e) for e in emails]
    b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca.cert.subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now + dt.timedelta(days=valid_days[0]))
         .not_valid_after(now + dt.timedelta(days=valid_days[1]))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH if client
                                               else ExtendedKeyUsageOID.SERVER_AUTH]),
                        critical=False))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return Pem(b.sign(ca.key, hashes.SHA256()), key)


def ocsp_response(ca: Pem, leaf: Pem, status: str = "good",
                  valid: tuple[int, int] = (-60, 86400)) -> bytes:
    """A successful OCSP response (DER) for leaf, signed by ca: ``status`` good, revoked or
    unknown; thisUpdate and nextUpdate at now + valid seconds."""
    now = dt.datetime.now(dt.UTC)
    cert_status = {"good": ocsp.OCSPCertStatus.GOOD, "revoked": ocsp.OCSPCertStatus.REVOKED,
                   "unknown": ocsp.OCSPCertStatus.UNKNOWN}[status]
    revoked = status == "revoked"
    b = ocsp.OCSPResponseBuilder().add_response(
        cert=leaf.cert, issuer=ca.cert, algorithm=hashes.SHA1(), cert_status=cert_status,
        this_update=now + dt.timedelta(seconds=valid[0]),
        next_update=now + dt.timedelta(seconds=valid[1]),
        revocation_time=now - dt.timedelta(hours=1) if revoked else None,
        revocation_reason=x509.ReasonFlags.key_compromise if revoked else None)
    b = b.responder_id(ocsp.OCSPResponderEncoding.HASH, ca.cert)
    return b.sign(ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def ocsp_unsuccessful() -> bytes:
    """An OCSP response whose responseStatus is tryLater (no basic response)."""
    return ocsp.OCSPResponseBuilder.build_unsuccessful(
        ocsp.OCSPResponseStatus.TRY_LATER).public_bytes(serialization.Encoding.DER)
