"""What the driver needs from the image store."""

from __future__ import annotations

from typing import Protocol

from aerodrome.core import ImageInfo, PullGrant


class ImageSource(Protocol):
    """Where images come from: `aerodrome.runtime.images.ImageStore` satisfies it."""

    async def pull(self, reference: str, *, grant: PullGrant | None = None) -> ImageInfo:
        """Pull (if not cached) and unpack an image."""
        ...

    def get(self, digest: str) -> ImageInfo | None:
        """An image already on this host, by manifest digest."""
        ...
