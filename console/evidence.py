"""Writing `signoff audit evidence` bundles: files an auditor checks with OpenSSH alone."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from signoff.engine.errors import UsageError


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:60] or "_"


def write_evidence(bundle: dict[str, Any], out: Path) -> list[str]:
    """Write ``bundle`` (service.audit_evidence) into ``out``; returns the file names written."""
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"{out} is not empty; give a new or empty folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {out}: {exc.strerror or exc}") from None
    files: dict[str, str] = {"context.json": bundle["context"]}
    request_id = bundle["request_id"]
    lines = [f"# Evidence for approval request {request_id}", "",
             f"Namespace `{bundle['namespace']}`, flow `{bundle['flow_id']}`, state {bundle['state']}.", "",
             "`context.json` is the context frozen when the request was created (what approvers were shown).",
             f"Its SHA-256 is `{hashlib.sha256(bundle['context'].encode('utf-8')).hexdigest()}`; each signed "
             "statement names the hash of the context its signer saw (`context_sha256`). Check it with:", "",
             "    sha256sum context.json", "",
             "Each signed decision below has three files: the statement that was signed (`.statement`), the SSH "
             "signature (`.sig`, OpenSSH's sshsig format) and the signer's key with its validity dates "
             "(`.allowed_signers`). Check each with OpenSSH alone (8.9 or later for `verify-time`):", ""]
    for number, decision in enumerate(bundle["decisions"], 1):
        stem = f"{number}-{_safe(decision['by'])}-{decision['verdict']}"
        head = (f"## {number}. {decision['verdict']} by {decision['by']} at {decision['at']} "
                f"(audit event {decision['seq']})")
        if not decision.get("signed"):
            why = decision.get("missing") or "only the audit trail records this decision"
            lines += [head, "", f"Not signed: {why}.", ""]
            continue
        files[f"{stem}.statement"] = decision["statement"]
        files[f"{stem}.sig"] = decision["signature"]
        if decision.get("context") is not None and decision["context"] != bundle["context"]:
            files[f"{stem}.context.json"] = decision["context"]
        if decision.get("allowed_signers"):
            files[f"{stem}.allowed_signers"] = decision["allowed_signers"] + "\n"
        if decision.get("batch"):
            lines += [head, "", f"Signed together with other decisions: `{stem}.statement` lists "
                      f"{decision.get('batch_items') or 'several'} requests under `items`; this decision is the item "
                      f"with `\"request_id\": \"{request_id}\"`, with the shared verdict, reason, signer, nonce and "
                      "time above the list.", ""]
            head = "Check it:"
        principal = decision["by"] if not any(c in decision["by"] for c in " \"'*?!,") else f"'{decision['by']}'"
        lines += [head, "", f"Key: {decision['key_type']} {decision['fingerprint']}.", "",
                  f"    ssh-keygen -Y verify -f {stem}.allowed_signers -I {principal} -n {decision['namespace']} "
                  f"-s {stem}.sig -O verify-time={decision['verify_time']} < {stem}.statement", "",
                  "It prints `Good \"signoff-decision\" signature for ...` and exits 0 when the statement is what "
                  f"that key signed. `context_sha256` in the statement must equal `{decision['context_sha256']}`.", ""]
    files["README.md"] = "\n".join(lines)
    for name, text in files.items():
        (out / name).write_text(text, encoding="utf-8")
    return sorted(files)
