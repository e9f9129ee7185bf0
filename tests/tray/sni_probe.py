#!/usr/bin/python3
"""A stand-in tray host for tests: reads and clicks the app's tray menu over D-Bus.

Run inside a private session bus (`dbus-run-session -- /usr/bin/python3 sni_probe.py APP`).
It owns `org.kde.StatusNotifierWatcher`, starts APP, waits for it to register its
StatusNotifierItem, then answers commands, one per line on stdin:

  dump            print the menu as one JSON line: {"menu": [{"id", "label", "enabled", "type",
                  "toggle", "path"}...]}, submenus flattened depth-first ("path": parent labels)
  click LABEL     send a "clicked" event to the first item whose label starts with LABEL
                  (or, written "PARENT >> LABEL", the item of the submenu whose label contains PARENT)
  notifications   print {"notifications": [{"id", "summary", "body", "actions", "app_name"}...]}
  invoke ID KEY   the user clicks action KEY ("default" = the notification itself) of notification ID
  wait-exit       wait (<= 10 s) for APP to exit and print {"exit": CODE}

It also owns org.freedesktop.Notifications, recording every Notify call, so a test
sees exactly which notifications the app showed.

Events it prints on its own, one JSON line each: {"registered": {..., "pid", "after_s"}}
once the item registered (the app's pid, seconds from its start, the session bus's
address for other processes of the test), {"error": ...} on failures. Every wait is bounded; it never hangs.
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
NOTIFICATIONS = "org.freedesktop.Notifications"


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


class Notifications(dbus.service.Object):
    """A notification server that shows nothing and remembers everything."""

    def __init__(self, bus):
        self.shown = []
        super().__init__(dbus.service.BusName(NOTIFICATIONS, bus), "/org/freedesktop/Notifications")

    @dbus.service.method(NOTIFICATIONS, in_signature="susssasa{sv}i", out_signature="u")
    def Notify(self, app_name, replaces_id, icon, summary, body, actions, hints, timeout):
        nid = len(self.shown) + 1
        self.shown.append({
            "id": nid, "app_name": str(app_name), "summary": str(summary), "body": str(body),
            "actions": [str(a) for a in actions],
        })
        return dbus.UInt32(nid)

    @dbus.service.method(NOTIFICATIONS, in_signature="", out_signature="as")
    def GetCapabilities(self):
        return dbus.Array(["actions", "body"], signature="s")

    @dbus.service.method(NOTIFICATIONS, in_signature="", out_signature="ssss")
    def GetServerInformation(self):
        return ("probe", "mcp-auth-tray tests", "1", "1.2")

    @dbus.service.method(NOTIFICATIONS, in_signature="u", out_signature="")
    def CloseNotification(self, nid):
        self.NotificationClosed(nid, dbus.UInt32(3))

    @dbus.service.signal(NOTIFICATIONS, signature="us")
    def ActionInvoked(self, nid, key):
        pass

    @dbus.service.signal(NOTIFICATIONS, signature="uu")
    def NotificationClosed(self, nid, reason):
        pass


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


def flatten(layout, out, path=()):
    """dbusmenu layout (id, props, children) -> flat list of items, depth-first."""
    item_id, props, children = layout
    label = unmnemonic(str(props.get("label", "")))
    if item_id != 0:
        out.append({
            "id": int(item_id),
            "label": label,
            "enabled": bool(props.get("enabled", True)),
            "type": str(props.get("type", "standard")),
            "toggle": int(props["toggle-state"]) if "toggle-state" in props else None,
            "path": list(path),
        })
        path = path + (label,)
    for child in children:
        flatten(child, out, path)
    return out


def main():
    app = sys.argv[1]
    DBusGMainLoop(set_as_default=True)
    bus = dbus.SessionBus()
    loop = GLib.MainLoop()
    state = {"item": None}

    def on_register(name, path):
        # The app may register again (a new icon): only the first one starts the session.
        if state["item"] is None:
            state["item"] = (name, path)
            state["after_s"] = time.monotonic() - started
            loop.quit()

    Watcher(bus, on_register)
    notifications = Notifications(bus)
    started = time.monotonic()
    proc = subprocess.Popen([app], stdout=sys.stderr, stderr=sys.stderr)
    timer = GLib.timeout_add_seconds(60, lambda: (state.update(timer=None), loop.quit(), False)[2])
    state["timer"] = timer
    loop.run()
    if state.get("timer") is not None:
        GLib.source_remove(timer)
    if state["item"] is None:
        emit({"error": "the app did not register a tray item within 60 s", "exit": proc.poll()})
        proc.kill()
        return 1
    name, path = state["item"]
    item = bus.get_object(name, path)
    menu_path = item.Get("org.kde.StatusNotifierItem", "Menu", dbus_interface=dbus.PROPERTIES_IFACE)
    menu = dbus.Interface(bus.get_object(name, menu_path), "com.canonical.dbusmenu")
    emit({"registered": {"name": str(name), "path": str(path), "menu": str(menu_path),
                         "pid": proc.pid, "after_s": state["after_s"],
                         "bus": os.environ.get("DBUS_SESSION_BUS_ADDRESS", "")}})

    # Every call to the app is asynchronous: the main loop keeps serving the
    # app's own calls (notifications) while we wait for its answers.
    def read_menu(then, done):
        def failed(e):
            emit({"error": f"D-Bus: {e}"})
            done()

        menu.AboutToShow(0, reply_handler=lambda *_: None, error_handler=lambda *_: None)
        menu.GetLayout(0, -1, dbus.Array([], signature="s"),
                       reply_handler=lambda _rev, layout: then(flatten(layout, [])), error_handler=failed)

    def find(items, arg):
        parent, sep, label = arg.partition(" >> ")
        if not sep:
            parent, label = None, arg
        for i in items:
            in_parent = parent is None or (i["path"] and parent in i["path"][-1])
            if in_parent and i["label"].startswith(label):
                return i
        return None

    def run(line, done):
        cmd, _, arg = line.strip().partition(" ")

        def answer(obj):
            emit(obj)
            done()

        if cmd == "dump":
            read_menu(lambda items: answer({"menu": items}), done)
        elif cmd == "click":
            def click(items, tries=3):
                target = find(items, arg)
                if target is None:
                    answer({"error": f"no menu item {arg!r}"})
                    return

                def failed(e):
                    # The app rebuilt its menu (a state change) between our read and
                    # the click, so the item has a new id: read again and retry.
                    if tries > 1 and "does not refer to a menu item" in str(e):
                        read_menu(lambda again: click(again, tries - 1), done)
                    else:
                        answer({"error": f"D-Bus: {e}"})

                menu.Event(target["id"], "clicked", dbus.String("", variant_level=1), dbus.UInt32(int(time.time())),
                           reply_handler=lambda *_: answer({"clicked": target["label"]}), error_handler=failed)
            read_menu(click, done)
        elif cmd == "notifications":
            answer({"notifications": notifications.shown})
        elif cmd == "invoke":
            nid, _, key = arg.partition(" ")
            notifications.ActionInvoked(dbus.UInt32(int(nid)), key)
            answer({"invoked": [int(nid), key]})
        elif cmd == "wait-exit":
            def waiter():
                try:
                    code = proc.wait(timeout=10)
                    GLib.idle_add(lambda: (answer({"exit": code}), False)[1])
                except subprocess.TimeoutExpired:
                    GLib.idle_add(lambda: (answer({"error": "the app did not exit within 10 s"}), False)[1])
            threading.Thread(target=waiter, daemon=True).start()
        else:
            answer({"error": f"unknown command {cmd!r}"})

    # Commands arrive on a thread; they run on the main loop, which keeps
    # serving the app's D-Bus calls (notifications) in between.
    def read_commands():
        for line in sys.stdin:
            done = threading.Event()
            GLib.idle_add(lambda line=line, done=done: (run(line, done.set), False)[1])
            done.wait(30)
        GLib.idle_add(loop.quit)

    threading.Thread(target=read_commands, daemon=True).start()
    loop.run()
    if proc.poll() is None:
        proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
