"""Golden vectors of the Tribe webhook signature (apis.md 1.7: base64 of the HMAC-SHA512
digest of the raw body, keyed with the secret), computed here with ``hmac``/``hashlib``/
``base64`` and also written out literally, so that the product's signer and verifier and the
emulator's sender are checked against something other than themselves: a signer that sent
the hex digest, or SHA-256, or another key encoding, fails these."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from syncd_tribe.emulator_sender import Sender
from syncd_tribe.webhooks import make_parser, sign

from syncd.exceptions import WebhookRejected

HEADER = "X-Tribe-Signature"
ACCEPTED = ("Relation.Person", "Relationship.Person.Contact.Standard")

#: (secret, raw body, expected header value); the secrets are keyed as UTF-8.
VECTORS = [
    ("tribe-secret",
     b'{"webhookId":"w-1","payload":{"entityId":"8F2C","type":"EntityUpdateMutation",'
     b'"entityType":"Relation.Person"}}',
     "gHpF/tfeFc1uvfgH10z+9nF5FZED8gjAFy/9mjLD+AeaeY3jZ7RVKq4HsH6Lz4L5QLCam1uXJz3MdDyVvo/P3Q=="),
    ("geheim-\u00e9\u20ac",  # non-ASCII: the key is its UTF-8 bytes
     b'{"webhookId":"w-2","payload":[{"relationshipId":"1D"}]}',
     "k3jBmKw5TfHLRc0O9Nm1qsBhlTC5bilongm8PsjEQze9Rh4NQ8QSJD+he6AbViXrTrNPb+QTfu1BMGcc2V9QuA=="),
    ("k" * 200, b"",  # a key longer than SHA-512's block is hashed first; an empty body
     "JYF910jJRGsrAgGvaM7Hh9FzLA9XDvaAO/M6V3CAt5T3BnVPmSFOxGBjhPnHITHqL2LQHQfrLg59fkp1q24/HA=="),
    ("s", b"\x00\xff binary \r\n",
     "7G/PVNNZrAV7ezMoWz635NAI2KHAVV3kjbCQj9y9jpJeqfAH8QqwSTxlKrNaclpDj/yyUF0Ox2F0MrFDGxeeBg=="),
]


def independent(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode("utf-8"), body, hashlib.sha512).digest()
                            ).decode("ascii")


@pytest.mark.parametrize(("secret", "body", "expected"), VECTORS)
def test_the_vectors_are_base64_hmac_sha512(secret, body, expected):
    assert independent(secret, body) == expected
    assert len(base64.b64decode(expected, validate=True)) == 64


@pytest.mark.parametrize(("secret", "body", "expected"), VECTORS)
def test_the_product_signs_as_the_vectors_say(secret, body, expected):
    assert sign(secret, body) == expected
    assert sign(secret.encode("utf-8"), body) == expected


@pytest.mark.parametrize(("secret", "body", "expected"), VECTORS)
def test_the_product_verifies_the_vectors_and_nothing_else(secret, body, expected):
    parse = make_parser(secret, HEADER, ACCEPTED)

    def status(value: str) -> int:
        try:
            parse({HEADER: value}, body)
        except WebhookRejected as exc:
            return exc.status
        return 200

    envelope = body.startswith(b"{") and b"payload" in body
    assert status(expected) == (200 if envelope else 400)  # past the signature check
    digest = hmac.new(secret.encode(), body, hashlib.sha512)
    for wrong in (digest.hexdigest(), expected.rstrip("="),
                  base64.urlsafe_b64encode(digest.digest()).decode(),
                  base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()
                                   ).decode(),
                  independent(secret + "x", body), independent(secret, body + b" ")):
        if wrong != expected:
            assert status(wrong) == 401, wrong


def test_the_emulator_sends_what_the_vectors_say(receiver):
    """The emulator's sender, over HTTP, signs a known envelope as computed here."""
    sender = Sender(HEADER, attempts=1)
    sender.start()
    try:
        envelope = {"webhookId": "w-9", "payload": {
            "entityId": "ab12", "type": "EntityUpdateMutation",
            "entityType": "Relation.Person"}}
        sender.put({"id": "w-9", "url": receiver.url, "secret": "emulator-secret"}, envelope)
        assert receiver.wait_for(1)
    finally:
        sender.stop()
    headers, body = receiver.received[0]
    assert json.loads(body) == envelope
    given = headers[HEADER.title()]
    assert given == independent("emulator-secret", body)
    if body == json.dumps(envelope, separators=(",", ":")).encode():
        assert given == ("kQl2QgkVFj2YZ0ssugPu93mWg3bh6Tlrn02hTv/NfXgU2ipBDz+GGSurLEd9+CW4R+4t"
                         "jyVj3yShifJpUMxDig==")
