"""Text shown to clients or printed to a terminal, with secrets and file-system layout taken out.

redact("cannot read http://bob:hunter2@mlflow:5000 (/srv/models/1/best.pt: no such file)")
-> "cannot read http://bob:***@mlflow:5000 (…/best.pt: no such file)"
"""

from __future__ import annotations

import re

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@/\s]+)@")
_SECRET_QUERY = re.compile(r"(?i)(?P<key>[?&](?:password|passwd|pwd|token|secret|key|sig|signature)=)[^&\s'\"]+")
# An absolute path (POSIX or Windows), not the path part of a URL: cut down to its last part.
_PATH = re.compile(r"(?<![\w:/.])(?:[A-Za-z]:)?[\\/](?:[^\s'\"\\/:()]+[\\/])+(?P<last>[^\s'\"\\/:()]+)")


_FILE_URL = re.compile(r"(?P<scheme>\b(?:sqlite|file)[\w+]*:)/+(?:[^\s'\";]*/)?(?P<last>[^\s'\";/]+)")


def redact_url(text: str) -> str:
    """Passwords in URLs (`user:password@`, `?password=`) replaced by ***."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    return _SECRET_QUERY.sub(lambda m: f"{m['key']}***", text)


def redact(text: str) -> str:
    """Passwords in URLs and the folders of absolute file paths taken out (the file's own name stays)."""
    text = _FILE_URL.sub(lambda m: f"{m['scheme']}…/{m['last']}", redact_url(text))
    return _PATH.sub(lambda m: f"…/{m['last']}", text)
