"""OpenSSH's signature format ("sshsig", PROTOCOL.sshsig in OpenSSH) and SSH public keys.

signoff writes and checks exactly what ``ssh-keygen -Y sign`` writes and ``ssh-keygen -Y
verify`` checks, so anyone can check a decision's signature with OpenSSH alone. Signatures are
verified here with ``cryptography``; key types: ssh-ed25519, ecdsa-sha2-nistp256/384/521 and
ssh-rsa (signing with rsa-sha2-512, as ssh-keygen does).

The blob::

    "SSHSIG" uint32(1) string(public key) string(namespace) string(reserved="")
    string(hash algorithm="sha512") string(signature)

where the signature is over ``"SSHSIG" string(namespace) string("") string("sha512")
string(SHA-512(message))``, and the armoured text is the blob in base64 (70 columns) between
``-----BEGIN SSH SIGNATURE-----`` and ``-----END SSH SIGNATURE-----``.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass

from signoff.engine.errors import UsageError

MAGIC = b"SSHSIG"
BEGIN = "-----BEGIN SSH SIGNATURE-----"
END = "-----END SSH SIGNATURE-----"
HASH_ALGORITHMS = {"sha512": hashlib.sha512, "sha256": hashlib.sha256}

ECDSA_CURVES = {
    "ecdsa-sha2-nistp256": ("nistp256", "SECP256R1", "SHA256"),
    "ecdsa-sha2-nistp384": ("nistp384", "SECP384R1", "SHA384"),
    "ecdsa-sha2-nistp521": ("nistp521", "SECP521R1", "SHA512"),
}
KEY_TYPES = ("ssh-ed25519", *ECDSA_CURVES, "ssh-rsa")


class SignatureError(UsageError):
    """A key or signature that cannot be read or does not verify (the message says which)."""


# -- SSH wire encoding ------------------------------------------------------------------------

def ssh_string(data: bytes | str) -> bytes:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return struct.pack(">I", len(raw)) + raw


def ssh_mpint(value: int) -> bytes:
    if value == 0:
        return ssh_string(b"")
    raw = value.to_bytes((value.bit_length() + 8) // 8, "big")  # room for a clear sign bit
    return ssh_string(raw)


class Reader:
    """Reads SSH wire values from a buffer; a short or malformed buffer is a SignatureError."""

    def __init__(self, data: bytes, what: str = "data") -> None:
        self.data = data
        self.pos = 0
        self.what = what

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise SignatureError(f"{self.what} is truncated or malformed")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def uint32(self) -> int:
        value: int = struct.unpack(">I", self.take(4))[0]
        return value

    def string(self) -> bytes:
        return self.take(self.uint32())

    def text(self) -> str:
        try:
            return self.string().decode("utf-8")
        except UnicodeDecodeError:
            raise SignatureError(f"{self.what} holds text that is not UTF-8") from None

    def mpint(self) -> int:
        return int.from_bytes(self.string(), "big", signed=True)

    def done(self) -> bool:
        return self.pos == len(self.data)


# -- public keys ----------------------------------------------------------------------------

@dataclass(frozen=True)
class PublicKey:
    """An SSH public key: its wire blob, type and (optional) comment."""

    blob: bytes
    key_type: str
    comment: str = ""

    @property
    def fingerprint(self) -> str:
        """``SHA256:...`` as ``ssh-keygen -l`` prints it."""
        digest = hashlib.sha256(self.blob).digest()
        return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")

    @property
    def openssh(self) -> str:
        """``TYPE BASE64`` (no comment): the form allowed_signers and authorized_keys use."""
        return f"{self.key_type} {base64.b64encode(self.blob).decode('ascii')}"

    def verify_raw(self, signature_blob: bytes, data: bytes) -> None:
        """Check an SSH signature blob over ``data``; raises SignatureError when it does not match."""
        _verify_raw(self, signature_blob, data)


def public_key_from_blob(blob: bytes, comment: str = "") -> PublicKey:
    reader = Reader(blob, "the public key")
    key_type = reader.text()
    if key_type not in KEY_TYPES:
        raise SignatureError(f"unsupported key type `{key_type}`; use one of {', '.join(KEY_TYPES)}")
    if key_type == "ssh-ed25519":
        if len(reader.string()) != 32:
            raise SignatureError("the ssh-ed25519 key is not 32 bytes long")
    elif key_type == "ssh-rsa":
        exponent, modulus = reader.mpint(), reader.mpint()
        if exponent <= 0 or modulus.bit_length() < 2048:
            raise SignatureError("RSA keys shorter than 2048 bits are not accepted")
    else:
        curve = reader.text()
        if curve != ECDSA_CURVES[key_type][0]:
            raise SignatureError(f"the {key_type} key names curve `{curve}`")
        reader.string()
    if not reader.done():
        raise SignatureError("the public key has trailing bytes")
    return PublicKey(blob, key_type, comment)


def parse_public_key(text: str) -> PublicKey:
    """One OpenSSH public key line (``ssh-ed25519 AAAA... comment``), as in ``id_ed25519.pub``."""
    if "PRIVATE KEY" in (text or ""):
        raise SignatureError("that is a private key; give the public key (the .pub file)")
    lines = [line.strip() for line in (text or "").splitlines() if line.strip() and not line.startswith("#")]
    if len(lines) != 1:
        raise SignatureError("expected exactly one OpenSSH public key line (e.g. the contents of "
                             f"~/.ssh/id_ed25519.pub), found {len(lines)} lines")
    parts = lines[0].split(None, 2)
    if len(parts) < 2:
        raise SignatureError("an OpenSSH public key line is `TYPE BASE64 [COMMENT]`, e.g. `ssh-ed25519 AAAAC3... "
                             "you@host`")
    key_type, encoded = parts[0], parts[1]
    try:
        blob = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"the key's base64 part is not valid base64 (`{encoded[:20]}…`)") from None
    key = public_key_from_blob(blob, parts[2] if len(parts) > 2 else "")
    if key.key_type != key_type:
        raise SignatureError(f"the line says `{key_type}` but the key inside is `{key.key_type}`")
    return key


def _verify_raw(key: PublicKey, signature_blob: bytes, data: bytes) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    sig = Reader(signature_blob, "the signature")
    sig_type = sig.text()
    raw = sig.string()
    keyr = Reader(key.blob, "the public key")
    keyr.text()
    try:
        if key.key_type == "ssh-ed25519":
            if sig_type != "ssh-ed25519":
                raise SignatureError(f"an ssh-ed25519 key cannot make a `{sig_type}` signature")
            ed25519.Ed25519PublicKey.from_public_bytes(keyr.string()).verify(raw, data)
        elif key.key_type == "ssh-rsa":
            hash_for = {"rsa-sha2-512": hashes.SHA512(), "rsa-sha2-256": hashes.SHA256()}
            if sig_type not in hash_for:
                raise SignatureError(f"RSA signatures must be rsa-sha2-512 or rsa-sha2-256, not `{sig_type}`")
            e, n = keyr.mpint(), keyr.mpint()
            rsa.RSAPublicNumbers(e, n).public_key().verify(raw, data, padding.PKCS1v15(), hash_for[sig_type])
        else:
            if sig_type != key.key_type:
                raise SignatureError(f"a {key.key_type} key cannot make a `{sig_type}` signature")
            _, curve_name, hash_name = ECDSA_CURVES[key.key_type]
            keyr.text()
            point = keyr.string()
            curve = getattr(ec, curve_name)()
            inner = Reader(raw, "the ECDSA signature")
            r, s = inner.mpint(), inner.mpint()
            public = ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
            public.verify(encode_dss_signature(r, s), data, ec.ECDSA(getattr(hashes, hash_name)()))
    except InvalidSignature:
        raise SignatureError("the signature does not match") from None
    except ValueError as exc:
        raise SignatureError(f"the key or signature is malformed: {exc}") from None


# -- sshsig ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class SshSig:
    """A parsed sshsig blob."""

    public_key: PublicKey
    namespace: str
    hash_algorithm: str
    signature: bytes
    blob: bytes

    @property
    def armored(self) -> str:
        return armor(self.blob)

    def verify(self, message: bytes, namespace: str) -> None:
        """Raises SignatureError unless this is a signature over ``message`` in ``namespace``."""
        if self.namespace != namespace:
            raise SignatureError(f"the signature is for namespace `{self.namespace}`, not `{namespace}`")
        self.public_key.verify_raw(self.signature, signed_data(message, namespace, self.hash_algorithm))


def signed_data(message: bytes, namespace: str, hash_algorithm: str = "sha512") -> bytes:
    """The bytes the key actually signs for an sshsig signature over ``message``."""
    digest = HASH_ALGORITHMS[hash_algorithm](message).digest()
    return MAGIC + ssh_string(namespace) + ssh_string(b"") + ssh_string(hash_algorithm) + ssh_string(digest)


def build_blob(public_blob: bytes, namespace: str, signature_blob: bytes, hash_algorithm: str = "sha512") -> bytes:
    return (MAGIC + struct.pack(">I", 1) + ssh_string(public_blob) + ssh_string(namespace) + ssh_string(b"")
            + ssh_string(hash_algorithm) + ssh_string(signature_blob))


def armor(blob: bytes) -> str:
    encoded = base64.b64encode(blob).decode("ascii")
    lines = [encoded[i:i + 70] for i in range(0, len(encoded), 70)]
    return "\n".join([BEGIN, *lines, END]) + "\n"


def parse_signature(text: str) -> SshSig:
    """An armoured sshsig signature (as ``ssh-keygen -Y sign`` writes it)."""
    body = (text or "").strip()
    if not body.startswith(BEGIN) or not body.endswith(END):
        raise SignatureError(f"a signature must be OpenSSH's armoured format ({BEGIN} ... {END})")
    encoded = "".join(body[len(BEGIN):-len(END)].split())
    try:
        blob = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("the signature's base64 is not valid") from None
    reader = Reader(blob, "the signature")
    if reader.take(6) != MAGIC:
        raise SignatureError("the signature does not start with SSHSIG")
    version = reader.uint32()
    if version != 1:
        raise SignatureError(f"unsupported sshsig version {version}")
    public_key = public_key_from_blob(reader.string())
    namespace = reader.text()
    reader.string()  # reserved
    hash_algorithm = reader.text()
    if hash_algorithm not in HASH_ALGORITHMS:
        raise SignatureError(f"unsupported signature hash `{hash_algorithm}`")
    signature = reader.string()
    if not reader.done():
        raise SignatureError("the signature has trailing bytes")
    return SshSig(public_key, namespace, hash_algorithm, signature, blob)


def verify(message: bytes, armored_signature: str, namespace: str) -> SshSig:
    """Parse and check a signature; returns it (its ``public_key`` says who signed)."""
    sig = parse_signature(armored_signature)
    sig.verify(message, namespace)
    return sig


# -- signing with a private key held in this process (the engine's checkpoint key; --sign-key)

def raw_sign(private_key: object, data: bytes) -> tuple[PublicKey, bytes]:
    """(public key, SSH signature blob) of ``data`` with a ``cryptography`` private key."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        sig_type, raw = "ssh-ed25519", private_key.sign(data)
    elif isinstance(private_key, rsa.RSAPrivateKey):
        sig_type, raw = "rsa-sha2-512", private_key.sign(data, padding.PKCS1v15(), hashes.SHA512())
    elif isinstance(private_key, ec.EllipticCurvePrivateKey):
        hash_for: dict[str, hashes.HashAlgorithm] = {"secp256r1": hashes.SHA256(), "secp384r1": hashes.SHA384(),
                                                     "secp521r1": hashes.SHA512()}
        algorithm = hash_for.get(private_key.curve.name)
        if algorithm is None:
            raise SignatureError(f"unsupported ECDSA curve {private_key.curve.name}")
        r, s = decode_dss_signature(private_key.sign(data, ec.ECDSA(algorithm)))
        sig_type = {"secp256r1": "ecdsa-sha2-nistp256", "secp384r1": "ecdsa-sha2-nistp384",
                    "secp521r1": "ecdsa-sha2-nistp521"}[private_key.curve.name]
        raw = ssh_mpint(r) + ssh_mpint(s)
    else:
        raise SignatureError(f"unsupported private key type {type(private_key).__name__}")
    public_line = private_key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                        serialization.PublicFormat.OpenSSH).decode("ascii")
    return parse_public_key(public_line), ssh_string(sig_type) + ssh_string(raw)


def sign_with_private_key(private_key: object, message: bytes, namespace: str) -> str:
    """The armoured sshsig signature of ``message`` made with a private key in this process."""
    public, signature_blob = raw_sign(private_key, signed_data(message, namespace))
    return armor(build_blob(public.blob, namespace, signature_blob))
