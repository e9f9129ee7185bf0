#!/usr/bin/env python3
"""Source art for the app and tray icons, drawn as geometry.

Run `python3 icons/generate.py` to regenerate every PNG in this folder. Pure
standard library (zlib + struct), so it runs on any machine with Python 3; the
shapes are rendered with 4x4 supersampling for smooth edges.

The motif is a key: a ring (the bow) and a shaft with two teeth.
- icon-*.png / icon.png: the app icon, white key on a blue rounded square;
  icon.ico (Windows: 16, 32, 48, 256 px) and icon.icns (macOS: 16 to 512 px)
  hold the same art as PNG entries.
- tray*.png: the tray icon, the app icon (readable on light and dark panels);
  `tray-attention` adds an orange dot (something needs sign-in),
  `tray-busy` a blue dot (a sign-in or refresh is running).
"""
import math
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
SS = 4  # supersampling factor


def png(path, size, pixel):
    """Write an RGBA PNG (see `encode`) and return its bytes."""
    data = encode(size, pixel)
    with open(path, "wb") as f:
        f.write(data)
    return data


def encode(size, pixel):
    """An RGBA PNG; pixel(x, y) gets coordinates in [0,1) and returns RGBA floats."""
    rows = []
    for y in range(size):
        row = bytearray([0])
        for x in range(size):
            acc = [0.0, 0.0, 0.0, 0.0]
            for sy in range(SS):
                for sx in range(SS):
                    r, g, b, a = pixel((x + (sx + 0.5) / SS) / size, (y + (sy + 0.5) / SS) / size)
                    acc[0] += r * a
                    acc[1] += g * a
                    acc[2] += b * a
                    acc[3] += a
            n = SS * SS
            alpha = acc[3] / n
            if alpha > 0:
                color = [c / acc[3] for c in acc[:3]]
            else:
                color = [0, 0, 0]
            row += bytes(int(round(max(0, min(1, c)) * 255)) for c in color + [alpha])
        rows.append(bytes(row))
    raw = b"".join(rows)

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def ico(path, images):
    """Write a Windows .ico holding PNG images (Vista and later read PNG entries).

    images: {size: png bytes}. The directory says 0 for 256 (the format's
    "256"); the Windows build (tauri-build) needs this file.
    """
    sizes = sorted(images)
    header = struct.pack("<HHH", 0, 1, len(sizes))
    offset = len(header) + 16 * len(sizes)
    entries, blobs = b"", b""
    for size in sizes:
        data = images[size]
        dim = 0 if size >= 256 else size
        entries += struct.pack("<BBBBHHII", dim, dim, 0, 0, 1, 32, len(data), offset)
        offset += len(data)
        blobs += data
    with open(path, "wb") as f:
        f.write(header + entries + blobs)


# The icns element types that hold a PNG of this many pixels (macOS 10.7+).
ICNS_TYPES = {16: b"icp4", 32: b"icp5", 64: b"icp6", 128: b"ic07", 256: b"ic08", 512: b"ic09"}


def icns(path, images):
    """Write a macOS .icns of PNG elements (the app bundle's icon).

    images: {size: png bytes}, sizes among ICNS_TYPES.
    """
    body = b""
    for size in sorted(images):
        data = images[size]
        body += ICNS_TYPES[size] + struct.pack(">I", 8 + len(data)) + data
    with open(path, "wb") as f:
        f.write(b"icns" + struct.pack(">I", 8 + len(body)) + body)


def key(x, y):
    """True where the key shape covers the point (unit square, key drawn diagonally)."""
    # rotate by -45 degrees around the centre so the key lies diagonally
    cx, cy = x - 0.5, y - 0.5
    a = math.radians(45)
    u = cx * math.cos(a) + cy * math.sin(a)
    v = -cx * math.sin(a) + cy * math.cos(a)
    # bow: ring centred at u=-0.22
    d = math.hypot(u + 0.22, v)
    if 0.08 <= d <= 0.19:
        return True
    # shaft
    if -0.04 <= u <= 0.36 and abs(v) <= 0.045:
        return True
    # teeth
    if 0.2 <= u <= 0.26 and 0 <= v <= 0.14:
        return True
    if 0.3 <= u <= 0.36 and 0 <= v <= 0.11:
        return True
    return False


def rounded_square(x, y, r=0.2, m=0.03):
    cx = min(max(x, m + r), 1 - m - r)
    cy = min(max(y, m + r), 1 - m - r)
    return math.hypot(x - cx, y - cy) <= r


BLUE = (0.16, 0.38, 0.85, 1.0)
WHITE = (1.0, 1.0, 1.0, 1.0)
CLEAR = (0.0, 0.0, 0.0, 0.0)
ORANGE = (0.98, 0.55, 0.05, 1.0)
ACCENT = (0.16, 0.55, 0.95, 1.0)


def app_icon(x, y):
    if not rounded_square(x, y):
        return CLEAR
    return WHITE if key(x, y) else BLUE


def tray(dot=None):
    def pixel(x, y):
        if dot is not None:
            d = math.hypot(x - 0.78, y - 0.78)
            if d <= 0.2:
                return dot
            if d <= 0.27:
                return CLEAR  # a gap so the dot reads against the key
        return app_icon(x, y)

    return pixel


def main():
    images = {size: png(os.path.join(HERE, f"icon-{size}.png"), size, app_icon) for size in (32, 128, 256)}
    images[512] = png(os.path.join(HERE, "icon.png"), 512, app_icon)
    for size in (16, 48, 64):
        images[size] = encode(size, app_icon)
    ico(os.path.join(HERE, "icon.ico"), {s: images[s] for s in (16, 32, 48, 256)})
    icns(os.path.join(HERE, "icon.icns"), {s: images[s] for s in (16, 32, 64, 128, 256, 512)})
    for suffix, dot in (("", None), ("-attention", ORANGE), ("-busy", ACCENT)):
        png(os.path.join(HERE, f"tray{suffix}.png"), 32, tray(dot))
        png(os.path.join(HERE, f"tray{suffix}@2x.png"), 64, tray(dot))


if __name__ == "__main__":
    main()
