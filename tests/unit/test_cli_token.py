"""`collab token`: a key it cannot read or sign with is a configuration error (status 2, one
line naming the option), not a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from collab.cli.main import main

SECRET = "test-secret-for-collab-tests-0123456789abcdef"
TOKEN = ["token", "--sub", "ann", "--workspace", "w1:editor"]


def run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    return int(exited.value.code or 0)


def public_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def test_a_private_key_file_that_is_missing_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("COLLAB_DATABASE_URL", "memory://")
    monkeypatch.setenv("COLLAB_JWT_SECRET", SECRET)

    code = run([*TOKEN, "--private-key", str(tmp_path / "no-such-key.pem")])

    err = capsys.readouterr().err
    assert code == 2
    assert "--private-key" in err
    assert "cannot read it" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("content", ["this is not a key\n", "PUBLIC"])
def test_a_private_key_file_that_is_no_private_key_is_named(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    content: str,
) -> None:
    public = public_key_pem()
    monkeypatch.setenv("COLLAB_DATABASE_URL", "memory://")
    monkeypatch.setenv("COLLAB_JWT_ALGORITHMS", "RS256")
    monkeypatch.setenv("COLLAB_JWT_PUBLIC_KEY", public)
    not_a_key = tmp_path / "key.pem"
    not_a_key.write_text(public if content == "PUBLIC" else content)

    code = run([*TOKEN, "--private-key", str(not_a_key)])

    err = capsys.readouterr().err
    assert code == 2
    assert "--private-key" in err
    assert "cannot sign with it" in err
    assert "Traceback" not in err


def test_a_readable_private_key_signs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    monkeypatch.setenv("COLLAB_DATABASE_URL", "memory://")
    monkeypatch.setenv("COLLAB_JWT_ALGORITHMS", "RS256")
    monkeypatch.setenv("COLLAB_JWT_PUBLIC_KEY", public)
    key_file = tmp_path / "key.pem"
    key_file.write_text(private)

    code = run([*TOKEN, "--private-key", str(key_file)])

    assert code == 0
    assert capsys.readouterr().out.count(".") == 2  # a JWT: header.claims.signature
