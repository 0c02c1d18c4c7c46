"""Receipts for tests: signed by real keys, with whatever fields a test needs."""

from __future__ import annotations

import itertools
from typing import Any

from lobstah_core.protocol import Identity, SignedReceipt, new_nonce, sign_receipt

_job_ids = itertools.count(1)


def receipt_body(worker: Identity, requester: Identity | str, **changes: Any) -> dict[str, Any]:
    """A valid receipt body from ``worker`` to ``requester`` (a pubkey string or identity)."""
    requester_pubkey = requester if isinstance(requester, str) else requester.pubkey
    body = {
        "version": 1,
        "jobId": f"job-{next(_job_ids)}",
        "nonce": new_nonce(),
        "requesterPubkey": requester_pubkey,
        "workerPubkey": worker.pubkey,
        "model": "demo-fast",
        "inputTokens": 10,
        "outputTokens": 20,
        "startedAt": 1_767_225_600_000,
        "completedAt": 1_767_225_601_000,
    }
    return {**body, **changes}


def signed_receipt(worker: Identity, requester: Identity | str, **changes: Any) -> SignedReceipt:
    """A receipt signed by ``worker``."""
    return sign_receipt(receipt_body(worker, requester, **changes), worker)
