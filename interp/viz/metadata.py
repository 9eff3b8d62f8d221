"""What an exported figure carries so a reader can reproduce it: the result's metadata (model,
task, seed, versions, the command) in a sidecar JSON beside the image, and the same JSON inside
the file where the format has a place for it (PNG iTXt chunk, SVG <metadata>, PDF info dictionary).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import struct
import zlib
from pathlib import Path
from typing import Any

from interp.errors import InterpError
from interp.files import atomic_write_bytes, atomic_write_text

FORMATS = ("png", "svg", "pdf")
#: The key under which the JSON sits inside PNG (iTXt keyword) and PDF (info dictionary).
KEY = "interp"


def figure_format(path: Path, format: str | None) -> str:
    """The export format: `format` if given, else the file's suffix; one of FORMATS."""
    fmt = (format or path.suffix.lstrip(".")).lower()
    if fmt == "jpg":
        fmt = "jpeg"
    if fmt not in FORMATS:
        where = f"format={format!r}" if format else f"the suffix of {path.name!r}"
        raise InterpError(
            f"{where} is not an export format; use one of {', '.join(FORMATS)} "
            "(e.g. fig.pdf, or format='svg')."
        )
    if format and path.suffix and path.suffix.lstrip(".").lower() != fmt:
        raise InterpError(
            f"format={format!r} but the path ends in {path.suffix!r}; drop format= or give "
            f"a path ending in .{fmt}."
        )
    return fmt


def sidecar_path(path: Path) -> Path:
    """``fig.pdf`` -> ``fig.pdf.json`` (one sidecar per exported file, formats never collide)."""
    return path.with_name(path.name + ".json")


def figure_metadata(meta: dict[str, Any] | None, **figure: Any) -> dict[str, Any]:
    """The record of one exported figure: the result's metadata plus how the figure was made.

    Args:
        meta: a result's ``meta`` (model, task, seed, versions, command), or None for a bare
            plotly figure.
        figure: export settings (view, format, theme, size in inches, scale, ...).
    """
    from interp.results.meta import versions

    record: dict[str, Any] = {"figure": figure}
    record.update(dict(meta or {}))
    record.setdefault("versions", versions())
    return record


def _json(record: dict[str, Any]) -> str:
    return json.dumps(record, default=str, sort_keys=True, allow_nan=True)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _embed_png(data: bytes, text: str) -> bytes:
    # iTXt: keyword, null, compression flag 0, method 0, empty language and translated keyword.
    payload = KEY.encode("latin-1") + b"\0\0\0\0\0" + text.encode("utf-8")
    end = data.rfind(b"IEND") - 4  # the IEND chunk starts with its 4-byte length
    if not data.startswith(b"\x89PNG\r\n\x1a\n") or end < 8:
        raise InterpError("The exporter returned something that is not a PNG; nothing written.")
    return data[:end] + _png_chunk(b"iTXt", payload) + data[end:]


def _embed_svg(data: bytes, text: str) -> bytes:
    svg = data.decode("utf-8")
    start = svg.find("<svg")
    close = svg.find(">", start)
    if start < 0 or close < 0:
        raise InterpError("The exporter returned something that is not an SVG; nothing written.")
    # Text content of an XML element: &, < and > escaped is all XML needs.
    body = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    node = f'<metadata id="{KEY}">{body}</metadata>'
    return (svg[: close + 1] + node + svg[close + 1 :]).encode("utf-8")


def _embed_pdf(data: bytes, record: dict[str, Any], text: str) -> bytes:
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import RectangleObject

    # Chromium's PDFs undercount their objects in the trailer; pypdf warns and reads them fine.
    quiet = logging.getLogger("pypdf")
    level, quiet.level = quiet.level, logging.ERROR
    try:
        writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    finally:
        quiet.setLevel(level)
    meta = record.get("figure", {})
    if meta.get("width_in") and meta.get("height_in") and len(writer.pages) == 1:
        # Chromium rounds the page size (3.3 in prints 3.3067 in wide): set the box to the size
        # asked for, anchored at the top left where the figure is drawn.
        box = writer.pages[0].mediabox
        w, h = 72.0 * float(meta["width_in"]), 72.0 * float(meta["height_in"])
        left, top = float(box.left), float(box.top)
        for name in ("mediabox", "cropbox", "trimbox", "artbox", "bleedbox"):
            setattr(writer.pages[0], name, RectangleObject((left, top - h, left + w, top)))
    writer.add_metadata(
        {
            "/Title": str(meta.get("title") or meta.get("view") or "interp figure"),
            "/Subject": f"model {record.get('model')}; {record.get('command') or ''}".strip(),
            "/Creator": f"interp {record.get('versions', {}).get('interp', '')}".strip(),
            f"/{KEY}": text,
        }
    )
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def embed(data: bytes, fmt: str, record: dict[str, Any]) -> bytes:
    """`data` (an image in format `fmt`) with `record` as JSON inside it."""
    text = _json(record)
    if fmt == "png":
        return _embed_png(data, text)
    if fmt == "svg":
        return _embed_svg(data, text)
    if fmt == "pdf":
        return _embed_pdf(data, record, text)
    return data


def read_embedded(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The record a figure written by interp carries inside itself (PNG, SVG or PDF)."""
    p = Path(path)
    data = p.read_bytes()
    fmt = p.suffix.lstrip(".").lower()
    if fmt == "png":
        pos = 8
        while pos < len(data):
            (n,) = struct.unpack(">I", data[pos : pos + 4])
            kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
            if kind == b"iTXt" and body.startswith(KEY.encode() + b"\0"):
                return dict(json.loads(body[len(KEY) + 5 :].decode("utf-8")))
            pos += 12 + n
    elif fmt == "svg":
        import xml.etree.ElementTree as ET

        for node in ET.fromstring(data).iter("{http://www.w3.org/2000/svg}metadata"):
            if node.get("id") == KEY and node.text:
                return dict(json.loads(node.text))
    elif fmt == "pdf":
        from pypdf import PdfReader

        info: Any = PdfReader(io.BytesIO(data)).metadata or {}
        if f"/{KEY}" in info:
            return dict(json.loads(str(info[f"/{KEY}"])))
    raise InterpError(f"{p} carries no interp metadata (was it exported by interp?).")


def write_figure(path: Path, data: bytes, fmt: str, record: dict[str, Any]) -> Path:
    """Write the image (with `record` embedded) and its sidecar JSON, each atomically.

    The sidecar records the image's sha256, so a figure and its record can be matched later.
    If the second write fails the first is removed: both exist or neither does.
    """
    image = embed(data, fmt, record)
    side = {**record, "sha256": hashlib.sha256(image).hexdigest(), "file": path.name}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, image)
    try:
        atomic_write_text(sidecar_path(path), json.dumps(side, default=str, indent=1) + "\n")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path
