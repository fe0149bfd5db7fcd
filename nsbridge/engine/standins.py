"""What a container runs: the user's command, or its image's stand-in.

The decisions are nsbridge.standins' (pure, from catalog.json); this mixin
turns them into a command line for the container's main process: a web
stand-in is busybox httpd serving a page under the container's directory, a
service stand-in busybox nc answering a banner, a distro image with -i/-t its
shell. Stand-ins exit 0 on `stop`, as the servers they stand for do.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

from nsbridge import standins
from nsbridge.model import Container

if TYPE_CHECKING:
    from nsbridge.engine.core import Engine


class StandinOps:
    def _standin_command(self: "Engine", c: Container) -> list[str]:
        """The main process's command line for C ([] to idle)."""
        from nsbridge.engine.process import Command

        standins.path_dirs(c.image)  # the applet links its PATH names: /run is empty after a reboot
        d = standins.decide(c.image, c.cmd, c.tty, c.interactive)
        if d.kind == "command":
            return list(c.cmd)
        if d.kind == "shell":
            return d.argv
        if d.kind == "idle":
            self._note(d.note)
            return []
        img = d.image
        assert img is not None
        bb = standins.busybox()
        port = str(img.port)
        log_line = standins.ready_line(img, c.name, img.port)
        if d.kind == "web":
            root = os.path.join(self.host.files_dir(c.id), "standin")
            os.makedirs(root, mode=0o755, exist_ok=True)
            with open(os.path.join(root, "index.html"), "w") as f:
                f.write(standins.page(img, c.name, c.id, c.hostname, c.image))
            # -v: one log line per request, as a web server's access log
            return Command([bb, "httpd", "-f", "-v", "-p", port, "-h", root], graceful=True, log_line=log_line)
        text = standins.banner(img, c.name, c.id, c.hostname, c.image)
        # -ll: keep listening; -e: each connection gets the banner, then closes
        return Command([bb, "nc", "-ll", "-p", port, "-e", bb, "echo", text], graceful=True, log_line=log_line)

    def _standin_replaces(self: "Engine", image: str, cmd: list[str]) -> bool:
        """The given command is the image's own: the stand-in runs, so the
        host needs no such program (`training/webapp python app.py`)."""
        return standins.replaces(image, cmd)

    def standin_note(self: "Engine", c: Container) -> str | None:
        """The one-line note for an image with no stand-in and no command."""
        return standins.decide(c.image, c.cmd, c.tty, c.interactive).note

    def _note(self: "Engine", note: str | None) -> None:
        if not note:
            return
        ws = self.warnings
        if isinstance(ws, list) and note not in ws:
            ws.append(note)
