"""The cloud upstreams' credentials and framing: SigV4 against botocore's signer and AWS's published signing-key
example, event streams against botocore's reader, Google service-account JWTs against their public key."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamBuffer
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from relay.adapters.aws_eventstream import EventStreamDecoder, EventStreamError
from relay.adapters.aws_sigv4 import AwsCredentials, signing_key, sigv4_headers
from relay.adapters.bedrock import aws_credentials, event_as_sse
from relay.adapters.google_credentials import jwt_assertion, service_account_parse
from relay.key_vault import keys_parse
from tests.fakes.bedrock_upstream import chunk_frame, event_frame, exception_frame
from tests.fakes.vertex_upstream import FakeVertex

def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


WHEN = datetime(2026, 12, 6, 7, 8, 9, tzinfo=timezone.utc)


def test_the_signing_key_matches_aws_published_example():
    # AWS's "derive a signing key" example: the example secret, 20120215, us-east-1, iam.
    key = signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam")
    assert key.hex() == "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"


@pytest.mark.parametrize("session_token", ["", "FwoGZXIvYXdzEXAMPLETOKEN"])
def test_sigv4_signature_equals_botocores(session_token):
    url = "https://bedrock-runtime.us-west-2.amazonaws.com/model/us.anthropic.claude-sonnet-4-5-v1%3A0/invoke"
    body = json.dumps({"anthropic_version": "bedrock-2023-05-31", "messages": [{"role": "user", "content": "héllo"}]})
    headers = {"content-type": "application/json", "accept": "application/json"}
    credentials = AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "", session_token)
    ours = sigv4_headers(method="POST", url=url, headers=headers, body=body.encode(), credentials=credentials,
                         region="us-west-2", service="bedrock", now=WHEN)
    assert ours["x-amz-date"] == "20261206T070809Z"
    assert (ours.get("x-amz-security-token") or "") == session_token

    theirs = AWSRequest(method="POST", url=url, data=body.encode(), headers={
        **headers, "host": "bedrock-runtime.us-west-2.amazonaws.com", "x-amz-date": ours["x-amz-date"],
        **({"x-amz-security-token": session_token} if session_token else {})})
    theirs.context["timestamp"] = ours["x-amz-date"]
    signer = SigV4Auth(Credentials("AKIDEXAMPLE", credentials.secret_key, session_token or None), "bedrock",
                       "us-west-2")
    expected = signer.signature(signer.string_to_sign(theirs, signer.canonical_request(theirs)), theirs)
    assert ours["authorization"].endswith(f"Signature={expected}")
    assert "Credential=AKIDEXAMPLE/20261206/us-west-2/bedrock/aws4_request" in ours["authorization"]


def test_bedrock_keys_are_access_key_pairs_or_api_keys():
    assert aws_credentials("AKID|secret|eu-west-1") == AwsCredentials("AKID", "secret", "eu-west-1", "")
    assert aws_credentials("AKID|secret|eu-west-1|token").session_token == "token"
    assert aws_credentials("AKID|secret").region == ""
    assert aws_credentials("ABSKQmVkcm9ja0FQSUtleS1leGFtcGxl") is None  # a Bedrock API key


def _frames():
    return (chunk_frame({"type": "message_start", "message": {"usage": {"input_tokens": 3}}})
            + event_frame({":message-type": "event", ":event-type": "other"}, b"{}")
            + exception_frame("throttlingException", "Too many requests, please wait."))


def test_event_stream_frames_read_as_botocore_reads_them_whatever_the_split():
    data = _frames()
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    theirs = [(dict(m.headers), m.payload) for m in buffer]
    for step in (1, 7, len(data)):
        decoder, ours = EventStreamDecoder(), []
        for at in range(0, len(data), step):
            ours += decoder.feed(data[at:at + step])
        assert [(m.headers, m.payload) for m in ours] == theirs and decoder.pending == 0
    assert len(theirs) == 3


def test_event_stream_messages_become_anthropic_sse_events():
    events = [event_as_sse(m) for m in EventStreamDecoder().feed(_frames())]
    assert events[0].startswith(b"event: message_start\ndata: {") and events[1] == b""
    error = json.loads(events[2].split(b"data: ")[1])
    assert error["type"] == "error"
    assert error["error"] == {"type": "rate_limit_error", "message": "Too many requests, please wait."}


def test_a_corrupt_event_stream_frame_is_refused():
    data = bytearray(chunk_frame({"type": "ping"}))
    data[-6] ^= 0xFF  # inside the payload: the message checksum no longer matches
    with pytest.raises(EventStreamError):
        EventStreamDecoder().feed(bytes(data))
    with pytest.raises(EventStreamError):
        EventStreamDecoder().feed(b"\x00\x00\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00")  # a wrong prelude checksum


def test_service_account_jwt_verifies_with_its_public_key():
    fake = FakeVertex()
    fake.app.token_url = "http://127.0.0.1:1/token"
    key_file = fake.service_account()
    account = service_account_parse(keys_parse(key_file)[0])
    assert account is not None and account.project_id == "proj-test" and account.token_uri.endswith("/token")
    token = jwt_assertion(account, 1_700_000_000)
    header_b64, claims_b64, signature = token.split(".")
    claims = json.loads(unb64(claims_b64))
    assert claims["iss"] == account.client_email and claims["aud"] == account.token_uri
    assert claims["exp"] - claims["iat"] == 3600 and claims["scope"].endswith("/auth/cloud-platform")
    assert json.loads(unb64(header_b64)) == {"alg": "RS256", "typ": "JWT", "kid": account.private_key_id}
    private = serialization.load_pem_private_key(account.private_key.encode(), password=None)
    private.public_key().verify(unb64(signature), f"{header_b64}.{claims_b64}".encode(), padding.PKCS1v15(),
                                hashes.SHA256())  # raises if the signature is wrong


def test_a_plain_api_key_is_not_a_service_account():
    assert service_account_parse("AIzaSyExample") is None
    assert service_account_parse('{"type": "service_account"}') is None  # no email or key


def test_json_keys_are_one_key_each():
    first, second = json.dumps({"client_email": "a@x", "private_key": "k\nk"}, indent=2), {"client_email": "b@x"}
    assert keys_parse(first) == ['{"client_email":"a@x","private_key":"k\\nk"}']
    assert len(keys_parse(json.dumps([json.loads(first), second], indent=2))) == 2
    assert keys_parse("sk-a\n\n sk-b ") == ["sk-a", "sk-b"]
    with pytest.raises(ValueError, match="JSON"):
        keys_parse('{"client_email": "a@x",\n')
