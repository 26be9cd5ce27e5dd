"""`signoff keys add|list|revoke|allowed-signers`: the SSH keys decisions are signed with.

`keys add` proves possession: the server issues a fresh challenge, the key signs it (through
the SSH agent, or the private key file next to the given .pub file), the server checks the
signature before it stores the key. An admin may register a key for someone else with
`--user NAME` (no proof; audited as such).
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from signoff.console import output
from signoff.console.cli import backend, common_options
from signoff.engine.errors import UsageError


@click.group("keys")
def keys() -> None:
    """Register, list and revoke the SSH keys your decisions are signed with."""


def _read_public_key(source: str | None) -> tuple[str, Path | None]:
    """(public key text, the file it came from); no SOURCE: the only key in your SSH agent."""
    from signoff.console.signing import agent_keys

    if source == "-":
        return sys.stdin.read(), None
    if source is None:
        held = agent_keys()
        if len(held) == 1:
            return held[0].openssh + (f" {held[0].comment}" if held[0].comment else ""), None
        if not held:
            raise UsageError("give a public key file (e.g. ~/.ssh/id_ed25519.pub) or `-` for stdin: your SSH agent "
                             "holds no keys")
        listed = ", ".join(f"{k.fingerprint} ({k.comment or k.key_type})" for k in held)
        raise UsageError(f"your SSH agent holds {len(held)} keys ({listed}); name the .pub file of the one to add")
    path = Path(source)
    try:
        return path.read_text(encoding="utf-8"), path
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read public key file {source}: {getattr(exc, 'strerror', None) or exc}") from None


def _possession_signer(key, path: Path | None):  # -> signing.KeySigner
    from signoff.console.signing import AgentKeySigner, agent_keys, load_key_file

    if any(k.blob == key.blob for k in agent_keys()):
        return AgentKeySigner(None, key)
    if path is not None and path.suffix == ".pub" and path.with_suffix("").is_file():
        signer = load_key_file(path.with_suffix(""))
        if signer.key.blob == key.blob:
            return signer
    raise UsageError(f"cannot prove you hold key {key.fingerprint}: its private key is not in your SSH agent "
                     "(`ssh-add` it) and there is no private key file beside the public one")


@keys.command("add")
@common_options
@click.argument("public_key_file", required=False, metavar="[PUBKEY_FILE|-]")
@click.option("--user", metavar="NAME", help="Register the key for NAME (admins only; no proof of possession).")
@click.option("--json", "as_json", is_flag=True)
def keys_add(public_key_file: str | None, user: str | None, as_json: bool) -> None:
    """Register an SSH public key for signing your decisions (proof of possession through your agent)."""
    from signoff.console.signing import sign_key_registration
    from signoff.engine.signing.sshsig import parse_public_key

    text, path = _read_public_key(public_key_file)
    key = parse_public_key(text)
    b = backend()
    if user is not None and user != b.identity:
        row = b.add_key(text, user=user)
    else:
        signer = _possession_signer(key, path)
        challenge = b.key_challenge()
        signature = sign_key_registration(b.identity, key, challenge["nonce"], signer)
        row = b.add_key(text, nonce=challenge["nonce"], signature=signature)
    if as_json:
        output.emit_json(row)
    else:
        click.echo(f"registered {row['key_type']} {row['fingerprint']} for {row['user']} (proof: {row['proof']})")


def keys_table(rows: list[dict]) -> str:
    return output.table(("USER", "TYPE", "FINGERPRINT", "ADDED (UTC)", "BY", "PROOF", "REVOKED (UTC)"),
                        [(r["user"], r["key_type"], r["fingerprint"], r["added_at"][:19].replace("T", " "),
                          r["added_by"], r["proof"], (r["revoked_at"] or "")[:19].replace("T", " ")) for r in rows])


@keys.command("list")
@common_options
@click.option("--user", metavar="NAME", help="Someone else's keys.")
@click.option("--all", "all_users", is_flag=True, help="Everyone's keys.")
@click.option("--json", "as_json", is_flag=True)
def keys_list(user: str | None, all_users: bool, as_json: bool) -> None:
    """Your registered keys (revoked ones too, with the revocation time)."""
    rows = backend().list_keys(user, all_users)
    if as_json:
        output.emit_json(rows)
    elif rows:
        click.echo(keys_table(rows))
    else:
        click.echo("No keys registered." + ("" if user or all_users else " Add one with `signoff keys add`."))


@keys.command("revoke")
@common_options
@click.argument("fingerprint")
@click.option("--user", metavar="NAME", help="Whose key (admins: someone else's).")
@click.option("--json", "as_json", is_flag=True)
def keys_revoke(fingerprint: str, user: str | None, as_json: bool) -> None:
    """Revoke a key from now on; decisions it signed before stay verifiable."""
    row = backend().revoke_key(fingerprint, user)
    if as_json:
        output.emit_json(row)
    else:
        click.echo(f"revoked {row['fingerprint']} of {row['user']} at {row['revoked_at']}")


@keys.command("allowed-signers")
@common_options
@click.option("--user", metavar="NAME", help="Only NAME's keys.")
@click.option("--out", "out", type=click.Path(dir_okay=False), help="Write to FILE instead of stdout.")
def keys_allowed_signers(user: str | None, out: str | None) -> None:
    """Every registered key as an OpenSSH allowed_signers file (with validity dates), for `ssh-keygen -Y verify`."""
    text = backend().allowed_signers(user)
    if out:
        try:
            Path(out).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {out}: {exc.strerror or exc}") from None
    else:
        click.echo(text, nl=False)
