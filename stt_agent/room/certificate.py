"""A self-signed HTTPS certificate, made when the workshop's join service starts.

Browsers give the microphone only to secure contexts: `https://`, or `http://localhost` /
`http://127.0.0.1` on the machine itself. An attendee opens the join link on a LAN address, so
the service speaks HTTPS there. No certificate authority knows a laptop on a Wi-Fi network, so
the kit makes its own: valid for that address (and `localhost`) for a few days, its key never
written anywhere but a private temporary folder that is removed when the service stops. Each
browser shows a warning once; the README's workshop guide tells attendees what to click, and
the teacher can read out the fingerprint the notebook prints to be sure it is theirs.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["SelfSignedCertificate", "make_certificate"]

_VALID_FOR = datetime.timedelta(days=7)


@dataclass(frozen=True)
class SelfSignedCertificate:
    """The certificate's PEM (public) and an SSL context that serves it."""

    pem: bytes
    fingerprint: str  # SHA-256, colon-separated hex, as browsers show it
    context: ssl.SSLContext

    def __repr__(self) -> str:
        return f"SelfSignedCertificate(sha256 {self.fingerprint})"


def make_certificate(host: str) -> SelfSignedCertificate:
    """A fresh key and certificate for `host` (an IP address or a name), and `localhost`."""
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    try:
        names.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        names.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"stt-agent workshop {host}")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # a laptop clock a bit behind
        .not_valid_after(now + _VALID_FOR)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    # `load_cert_chain` reads files only: the key lives for a moment in a private folder.
    with tempfile.TemporaryDirectory(prefix="stt-agent-tls-") as folder:
        cert_path, key_path = Path(folder) / "cert.pem", Path(folder) / "key.pem"
        cert_path.write_bytes(pem)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key_pem)
        context.load_cert_chain(cert_path, key_path)
    digest = cert.fingerprint(hashes.SHA256()).hex().upper()
    fingerprint = ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
    return SelfSignedCertificate(pem=pem, fingerprint=fingerprint, context=context)
