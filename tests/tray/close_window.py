#!/usr/bin/python3
"""Closes X windows the way a window manager's close button does.

Usage: close_window.py WINDOW_ID...  (ids as xdotool prints them, decimal)

Sends each window the WM_DELETE_WINDOW client message (ICCCM 4.2.8.1), so the
app sees a close request, not a destroyed window. Xvfb runs no window manager,
and this machine's xdotool (2016) can only destroy windows. Uses libX11 through
ctypes; exits 1 when the display cannot be opened.
"""
import ctypes
import ctypes.util
import sys

x11 = ctypes.cdll.LoadLibrary(ctypes.util.find_library("X11") or "libX11.so.6")
x11.XOpenDisplay.restype = ctypes.c_void_p
x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
x11.XInternAtom.restype = ctypes.c_ulong
x11.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
x11.XSendEvent.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
x11.XFlush.argtypes = [ctypes.c_void_p]
x11.XCloseDisplay.argtypes = [ctypes.c_void_p]

CLIENT_MESSAGE = 33


class ClientMessage(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("serial", ctypes.c_ulong),
        ("send_event", ctypes.c_int),
        ("display", ctypes.c_void_p),
        ("window", ctypes.c_ulong),
        ("message_type", ctypes.c_ulong),
        ("format", ctypes.c_int),
        ("data", ctypes.c_long * 5),
    ]


class XEvent(ctypes.Union):
    _fields_ = [("xclient", ClientMessage), ("pad", ctypes.c_long * 24)]


def main():
    display = x11.XOpenDisplay(None)
    if not display:
        sys.stderr.write("cannot open the display\n")
        return 1
    protocols = x11.XInternAtom(display, b"WM_PROTOCOLS", 0)
    delete = x11.XInternAtom(display, b"WM_DELETE_WINDOW", 0)
    for arg in sys.argv[1:]:
        event = XEvent()
        msg = event.xclient
        msg.type = CLIENT_MESSAGE
        msg.window = int(arg)
        msg.message_type = protocols
        msg.format = 32
        msg.data[0] = delete
        msg.data[1] = 0  # CurrentTime
        event.xclient = msg
        x11.XSendEvent(display, int(arg), 0, 0, ctypes.byref(event))
    x11.XFlush(display)
    x11.XCloseDisplay(display)
    return 0


if __name__ == "__main__":
    sys.exit(main())
