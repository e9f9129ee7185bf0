#!/usr/bin/env python3
"""Source art for the app and tray icons, drawn as geometry.

Run `python3 icons/generate.py` to regenerate every PNG in this folder. Pure
standard library (zlib + struct), so it runs on any machine with Python 3; the
shapes are rendered with 4x4 supersampling for smooth edges.

The motif is a key: a ring (the bow) and a shaft with two teeth.
- icon-*.png / icon.png: the app icon, white key on a blue rounded square.
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
    """Write an RGBA PNG; pixel(x, y) gets coordinates in [0,1) and returns RGBA floats."""
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
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


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
    for size in (32, 128, 256):
        png(os.path.join(HERE, f"icon-{size}.png"), size, app_icon)
    png(os.path.join(HERE, "icon.png"), 512, app_icon)
    for suffix, dot in (("", None), ("-attention", ORANGE), ("-busy", ACCENT)):
        png(os.path.join(HERE, f"tray{suffix}.png"), 32, tray(dot))
        png(os.path.join(HERE, f"tray{suffix}@2x.png"), 64, tray(dot))


if __name__ == "__main__":
    main()
