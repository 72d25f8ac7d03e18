"""The Hub stand-in's storage: repos, their refs and commits, and each file with the hashes the Hub reports for it."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import cached_property

# stored in LFS on the Hub (its default .gitattributes): served through the CDN redirect
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".pkl", ".png", ".npz")
INVALID_TOKEN = "hf_invalid_token"
USER = "test-user"  # whoever the token belongs to: the namespace of a repo created without an organization
# the Hub's initial commit of a new repo holds a .gitattributes; this one agrees with `HubFile.is_lfs`
GITATTRIBUTES = "".join(f"*{suffix} filter=lfs diff=lfs merge=lfs -text\n" for suffix in LFS_SUFFIXES).encode()
_COMMIT_DATE = "2025-01-01T00:00:00.000Z"
_FRONT_MATTER = re.compile(r"^\s*---[\r\n]+([\S\s]*?)[\r\n]+---(?:\r\n|\n|$)")  # a model card's YAML header


@dataclass(frozen=True)
class HubFile:
    """One file of a commit, with the hashes the Hub reports for it."""

    path: str
    data: bytes

    @property
    def is_lfs(self) -> bool:
        return self.path.endswith(LFS_SUFFIXES)

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @cached_property
    def pointer(self) -> bytes:
        return f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {len(self.data)}\n".encode()

    @cached_property
    def git_oid(self) -> str:
        """The git blob sha1 of what git stores: the LFS pointer for LFS files, the content otherwise."""
        return _git_blob_sha1(self.pointer if self.is_lfs else self.data)

    def tree_entry(self) -> dict:
        entry = {"type": "file", "oid": self.git_oid, "size": len(self.data), "path": self.path}
        if self.is_lfs:
            entry["lfs"] = {"oid": self.sha256, "size": len(self.data), "pointerSize": len(self.pointer)}
        return entry


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    refs: dict[str, str] = field(default_factory=dict)  # branch or tag -> commit
    commits: dict[str, dict[str, HubFile]] = field(default_factory=dict)  # commit -> path -> file
    messages: dict[str, str] = field(default_factory=dict)  # commit -> summary, for commits that have one
    private: bool = False
