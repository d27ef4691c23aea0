"""Files: what users send (photos with Telegram's PhotoSizes, documents, stickers) and what the
bot uploads, served back by ``getFile`` and the download endpoint."""

from __future__ import annotations

import io
import itertools
from dataclasses import dataclass, field
from typing import Any

from tests.support.standin.core import ApiError, StandInCore, Upload, bot_method

MAX_GETFILE_BYTES = 20 * 1024 * 1024  # bots may download up to 20 MB
PHOTO_SIDES = (90, 320, 800)  # thumbnail sizes Telegram produces below the full photo


@dataclass
class _StoredFile:
    file_id: str
    file_unique_id: str
    path: str
    data: bytes
    width: int = 0
    height: int = 0
    sizes: list[dict[str, Any]] = field(default_factory=list)


def _image_size(data: bytes) -> tuple[int, int] | None:
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except Exception:
        return None


def _thumbnail(data: bytes, side: int) -> tuple[bytes, int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        img = img.convert("RGB")
        img.thumbnail((side, side))
        out = io.BytesIO()
        img.save(out, "JPEG", quality=80)
        return out.getvalue(), img.width, img.height


class FilesMixin(StandInCore):
    """``register_file``, ``file_bytes``; getFile and downloads."""

    def _init_files(self, thumbnails: bool) -> None:
        self.thumbnails = thumbnails  # False: reuse the photo bytes for every PhotoSize (faster)
        self._file_ids = itertools.count(1)
        self._files: dict[str, _StoredFile] = {}
        self._files_by_path: dict[str, _StoredFile] = {}

    def register_file(self, data: bytes, *, kind: str = "documents", suffix: str = ".bin",
                      width: int = 0, height: int = 0) -> str:
        """Store bytes as a Telegram file; returns its file_id (getFile + download serve it)."""
        with self._lock:
            n = next(self._file_ids)
            stored = _StoredFile(file_id=f"FILE{n:06d}-{kind}", file_unique_id=f"U{n:06d}",
                                 path=f"{kind}/file_{n}{suffix}", data=data,
                                 width=width, height=height)
            self._files[stored.file_id] = stored
            self._files_by_path[stored.path] = stored
        return stored.file_id

    def file_bytes(self, file_id: str) -> bytes:
        return self._files[file_id].data

    def _photo_sizes(self, data: bytes, width: int | None = None,
                     height: int | None = None) -> list[dict[str, Any]]:
        """PhotoSizes of increasing size like Telegram's; the largest is the bytes given."""
        size = _image_size(data)
        full_w, full_h = size if size else (width or 1, height or 1)
        variants: list[tuple[bytes, int, int]] = []
        if size:
            for side in PHOTO_SIDES:
                if side < max(full_w, full_h):
                    if self.thumbnails:
                        variants.append(_thumbnail(data, side))
                    else:
                        scale = side / max(full_w, full_h)
                        variants.append((data, max(1, round(full_w * scale)),
                                         max(1, round(full_h * scale))))
        variants.append((data, full_w, full_h))
        sizes = []
        for blob, w, h in variants:
            file_id = self.register_file(blob, kind="photos", suffix=".jpg", width=w, height=h)
            stored = self._files[file_id]
            sizes.append({"file_id": file_id, "file_unique_id": stored.file_unique_id,
                          "width": w, "height": h, "file_size": len(blob)})
        self._files[sizes[-1]["file_id"]].sizes = sizes
        return sizes

    # ----------------------------------------------------------------- what the bot uploads
    def _input_file(self, value: Any, files: dict[str, Upload], field_name: str) -> Upload | str:
        """An uploaded part (by field name or attach://name) or a file_id / URL string."""
        if isinstance(value, str) and value.startswith("attach://"):
            upload = files.get(value.removeprefix("attach://"))
            if upload is None:
                raise ApiError(400, f"Bad Request: file {value} not found in the request")
            return upload
        if value is None and field_name in files:
            return files[field_name]
        if isinstance(value, str) and value:
            if value in self._files or value.startswith(("http://", "https://")):
                return value
            raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        raise ApiError(400, f"Bad Request: there is no {field_name} in the request")

    def _photo_field(self, source: Upload | str) -> list[dict[str, Any]]:
        if isinstance(source, str):
            stored = self._files.get(source)
            if stored is None:  # an URL: Telegram would fetch it
                return self._photo_sizes(b"", 1, 1)
            return stored.sizes or [{"file_id": stored.file_id,
                                     "file_unique_id": stored.file_unique_id,
                                     "width": stored.width or 1, "height": stored.height or 1,
                                     "file_size": len(stored.data)}]
        size = _image_size(source.data)
        if size is None:
            raise ApiError(400, "Bad Request: IMAGE_PROCESS_FAILED")
        if sum(size) > 10_000 or max(size) / max(min(size), 1) > 20:
            raise ApiError(400, "Bad Request: PHOTO_INVALID_DIMENSIONS")
        if len(source.data) > 10 * 1024 * 1024:
            raise ApiError(400, "Bad Request: photo is too big")
        return self._photo_sizes(source.data)

    def _document_field(self, source: Upload | str) -> dict[str, Any]:
        if isinstance(source, str):
            stored = self._files.get(source)
            data = stored.data if stored else b""
            file_id = source if stored else self.register_file(b"")
            name = None
        else:
            data, name = source.data, source.filename
            file_id = self.register_file(data)
        document: dict[str, Any] = {"file_id": file_id,
                                    "file_unique_id": self._files[file_id].file_unique_id,
                                    "file_size": len(data)}
        if name:
            document["file_name"] = name
        if not isinstance(source, str) and source.content_type:
            document["mime_type"] = source.content_type
        return document

    # ----------------------------------------------------------------- Bot API
    @bot_method("getFile", "file_id")
    async def _get_file(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        stored = self._files.get(str(params["file_id"]))
        if stored is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        if len(stored.data) > MAX_GETFILE_BYTES:
            raise ApiError(400, "Bad Request: file is too big")
        return {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
                "file_size": len(stored.data), "file_path": stored.path}

    def _download(self, path: str) -> bytes:
        """GET /file/bot<token>/<file_path>: the bytes, or 404 for a path getFile never gave."""
        stored = self._files_by_path.get(path)
        if stored is None:
            raise ApiError(404, "Not Found")
        return stored.data
