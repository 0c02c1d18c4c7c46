"""The Lobstah wire format, pure: values in, values out; no sockets, files or clocks.

Other implementations can read this package to learn the format. Everything that needs the
current time takes it as an argument (``now_ms``: integer milliseconds since the epoch).
"""

from .announcements import (
    Announcement,
    AnnouncementStatus,
    SignedAnnouncement,
    Tier,
    Unannounce,
    announcement_status,
    sign_announcement,
    sign_unannounce,
    verify_announcement,
    verify_unannounce,
)
from .canonical import canonical_bytes, canonicalize
from .identity import Identity, is_pubkey, parse_pubkey, verify_signature
from .receipts import (
    Receipt,
    SignedReceipt,
    check_receipt_addressed,
    check_receipt_fresh,
    decode_receipt_header,
    encode_receipt_header,
    new_nonce,
    sign_receipt,
    verify_receipt,
)
from .request_signing import sign_request, verify_request
from .url_safety import UrlPolicy, check_address, check_peer_url, peer_url_host

__all__ = [
    "Announcement",
    "AnnouncementStatus",
    "Identity",
    "Receipt",
    "SignedAnnouncement",
    "SignedReceipt",
    "Tier",
    "Unannounce",
    "UrlPolicy",
    "announcement_status",
    "canonical_bytes",
    "canonicalize",
    "check_address",
    "check_peer_url",
    "check_receipt_addressed",
    "check_receipt_fresh",
    "decode_receipt_header",
    "encode_receipt_header",
    "is_pubkey",
    "new_nonce",
    "parse_pubkey",
    "peer_url_host",
    "sign_announcement",
    "sign_receipt",
    "sign_request",
    "sign_unannounce",
    "verify_announcement",
    "verify_receipt",
    "verify_request",
    "verify_signature",
    "verify_unannounce",
]
