"""plugins.lock: round trip, and every way a lock is refused (TrustError, exit 2)."""

from __future__ import annotations

import hashlib

import pytest

from capa.errors import TrustError
from capa.trust.lockfile import (
    AttestationRecord,
    LockEntry,
    PluginsLock,
    dump_lock,
    load_lock,
    parse_lock,
    write_lock,
)

DIGEST = "sha256:" + "ab" * 32

ENTRY = f"""
[[plugins]]
name = "acme"
dist = "acme-capa"
version = "1.2.3"
entry_point = "acme_capa.plugin"
record_digest = "{DIGEST}"
provides = ["acme.thermo"]
"""


def test_round_trip_keeps_every_field(tmp_path):
    att = AttestationRecord("pep740", "acme-1.2.3.whl", "cd" * 32, "github:a/b/r.yml", "x.att")
    lock = PluginsLock(require_attestation=True).with_entry(
        LockEntry("acme", "acme-capa", "1.2.3", "acme.plugin:obj", DIGEST, ("a.b", 'q"x'), att)
    )
    lock = lock.with_entry(LockEntry("zed", "zed", "0.1", "zed", DIGEST))
    path = tmp_path / "plugins.lock"
    back = write_lock(path, lock)
    assert back.plugins == lock.plugins
    assert back.require_attestation is True
    assert back.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert path.read_text().count("[[plugins]]") == 2
    assert dump_lock(back) == path.read_text()  # stable: rewriting changes nothing


def test_newer_schema_is_refused_with_a_clear_message():
    with pytest.raises(TrustError, match="schema version 2 is newer"):
        parse_lock(b"version = 2\n", "x.lock")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("version = 1\n[[plugins]\n", "malformed plugins.lock"),
        ("", "`version` must be an integer"),
        ('version = "1"\n', "`version` must be an integer"),
        ("version = 1\nextra = 3\n", "unknown key"),
        ("version = 1\nrequire_attestation = 1\n", "must be a bool"),
        (f"version = 1\n{ENTRY.replace('provides', 'provided')}", "unknown ['provided']"),
        (f"version = 1\n{ENTRY.replace('dist = ', 'distx = ')}", "missing ['dist']"),
        (f"version = 1\n{ENTRY.replace(DIGEST, 'md5:00')}", "expected 'sha256:<hex>'"),
        (f"version = 1\n{ENTRY.replace(chr(34) + '1.2.3' + chr(34), '123')}", "non-empty string"),
        (f"version = 1\n{ENTRY}[plugins.attestation]\nkind = 'x'\n", "attestation"),
    ],
)
def test_malformed_locks_are_refused(text, needle):
    with pytest.raises(TrustError) as info:
        parse_lock(text.encode(), "lab/plugins.lock")
    assert needle in str(info.value)
    assert str(info.value).startswith("lab/plugins.lock")


def test_duplicate_plugin_names_are_refused():
    with pytest.raises(TrustError, match="duplicate plugin name 'acme'"):
        parse_lock(f"version = 1\n{ENTRY}{ENTRY}".encode())


def test_unreadable_lock_names_the_file(tmp_path):
    with pytest.raises(TrustError, match=r"cannot read plugins\.lock"):
        load_lock(tmp_path / "nope.lock")


def test_owner_of_finds_the_entry_providing_a_component():
    lock = parse_lock(f"version = 1\n{ENTRY}".encode())
    assert lock.owner_of("acme.thermo") is lock.plugins["acme"]
    assert lock.owner_of("other") is None
