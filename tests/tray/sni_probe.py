#!/usr/bin/python3
"""A stand-in tray host for tests: reads and clicks the app's tray menu over D-Bus.

Run inside a private session bus (`dbus-run-session -- /usr/bin/python3 sni_probe.py APP`).
It owns `org.kde.StatusNotifierWatcher`, starts APP, waits for it to register its
StatusNotifierItem, then answers commands, one per line on stdin:

  dump            print the menu as one JSON line: {"menu": [{"id", "label", "enabled", "type"}...]}
  click LABEL     send a "clicked" event to the first item whose label starts with LABEL
  wait-exit       wait (<= 10 s) for APP to exit and print {"exit": CODE}

Events it prints on its own, one JSON line each: {"registered": ...} once the item
registered, {"error": ...} on failures. Every wait is bounded; it never hangs.
Needs Debian's python3-dbus and python3-gi (use /usr/bin/python3).
"""
import json
import os
import subprocess
import sys
import threading
import time

import dbus
import dbus.service
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib

WATCHER = "org.kde.StatusNotifierWatcher"


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Watcher(dbus.service.Object):
    def __init__(self, bus, on_register):
        self.items = []
        self.on_register = on_register
        super().__init__(dbus.service.BusName(WATCHER, bus), "/StatusNotifierWatcher")

    @dbus.service.method(WATCHER, in_signature="s", out_signature="", sender_keyword="sender")
    def RegisterStatusNotifierItem(self, service, sender=None):
        # libappindicator passes its object path; others pass a bus name.
        path = service if service.startswith("/") else "/StatusNotifierItem"
        name = sender if service.startswith("/") else service
        self.items.append((name, path))
        self.StatusNotifierItemRegistered(f"{name}{path}")
        self.on_register(name, path)

    @dbus.service.method(WATCHER, in_signature="s", out_signature="")
    def RegisterStatusNotifierHost(self, service):
        pass

    @dbus.service.signal(WATCHER, signature="s")
    def StatusNotifierItemRegistered(self, item):
        pass

    @dbus.service.method(dbus.PROPERTIES_IFACE, in_signature="ss", out_signature="v")
    def Get(self, interface, prop):
        return self.GetAll(interface)[prop]

    @dbus.service.method(dbus.PROPERTIES_IFACE, in_signature="s", out_signature="a{sv}")
    def GetAll(self, interface):
        return {
            "RegisteredStatusNotifierItems": dbus.Array([f"{n}{p}" for n, p in self.items], signature="s"),
            "IsStatusNotifierHostRegistered": True,
            "ProtocolVersion": dbus.Int32(0),
        }


def unmnemonic(label):
    """dbusmenu labels mark the access key with "_" and write a literal "_" as "__"."""
    out, i = [], 0
    while i < len(label):
        if label[i] == "_":
            if label[i + 1:i + 2] == "_":
                out.append("_")
                i += 1
        else:
            out.append(label[i])
        i += 1
    return "".join(out)


def flatten(layout, out):
    """dbusmenu layout (id, props, children) -> flat list of items, depth-first."""
    item_id, props, children = layout
    if item_id != 0:
        out.append({
            "id": int(item_id),
            "label": unmnemonic(str(props.get("label", ""))),
            "enabled": bool(props.get("enabled", True)),
            "type": str(props.get("type", "standard")),
        })
    for child in children:
        flatten(child, out)
    return out


def main():
    app = sys.argv[1]
    DBusGMainLoop(set_as_default=True)
    bus = dbus.SessionBus()
    loop = GLib.MainLoop()
    state = {"item": None}

    def on_register(name, path):
        state["item"] = (name, path)
        loop.quit()

    Watcher(bus, on_register)
    proc = subprocess.Popen([app], stdout=sys.stderr, stderr=sys.stderr)
    GLib.timeout_add_seconds(60, loop.quit)
    loop.run()
    if state["item"] is None:
        emit({"error": "the app did not register a tray item within 60 s", "exit": proc.poll()})
        proc.kill()
        return 1
    name, path = state["item"]
    item = bus.get_object(name, path)
    menu_path = item.Get("org.kde.StatusNotifierItem", "Menu", dbus_interface=dbus.PROPERTIES_IFACE)
    menu = dbus.Interface(bus.get_object(name, menu_path), "com.canonical.dbusmenu")
    emit({"registered": {"name": str(name), "path": str(path), "menu": str(menu_path)}})

    def read_menu():
        try:
            menu.AboutToShow(0)
        except dbus.DBusException:
            pass  # optional in the protocol
        _rev, layout = menu.GetLayout(0, -1, dbus.Array([], signature="s"))
        return flatten(layout, [])

    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        try:
            if cmd == "dump":
                emit({"menu": read_menu()})
            elif cmd == "click":
                target = next((i for i in read_menu() if i["label"].startswith(arg)), None)
                if target is None:
                    emit({"error": f"no menu item starts with {arg!r}"})
                    continue
                menu.Event(target["id"], "clicked", dbus.String("", variant_level=1), dbus.UInt32(int(time.time())))
                emit({"clicked": target["label"]})
            elif cmd == "wait-exit":
                try:
                    emit({"exit": proc.wait(timeout=10)})
                except subprocess.TimeoutExpired:
                    emit({"error": "the app did not exit within 10 s"})
            else:
                emit({"error": f"unknown command {cmd!r}"})
        except dbus.DBusException as e:
            emit({"error": f"D-Bus: {e.get_dbus_name()}: {e}"})
    if proc.poll() is None:
        proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
