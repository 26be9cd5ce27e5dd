"""Signed decisions and signed audit checkpoints (non-repudiation): keys, statements, sshsig."""
