"""The course's JupyterLab server settings, loaded by `make lab` (`python -m tools.lab` puts this
folder on JUPYTER_CONFIG_PATH; nothing else uses them).

Two promises: a course notebook opened and saved unchanged is byte for byte what git has, and
nothing is logged after the URL that the learner did not cause.
"""

from typing import Any

import zmq
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager

c = get_config()  # noqa: F821 - traitlets provides it to config files


def keep_committed_metadata(model: dict[str, Any], **_: Any) -> None:
    """Save `language_info` as committed: its name only.

    On opening a notebook JupyterLab fills `language_info` from the kernel it started (the
    Python version, codemirror mode, pygments lexer, ...) and autosaves it, so every notebook a
    learner merely opened would show as modified in `git status`, differently for each
    Python version. All of it is derived from the kernel and comes back on the next open.
    """
    if model.get("type") != "notebook" or not isinstance(model.get("content"), dict):
        return
    metadata = model["content"].get("metadata")
    info = metadata.get("language_info") if isinstance(metadata, dict) else None
    if isinstance(info, dict) and "name" in info:
        metadata["language_info"] = {"name": info["name"]}


class CourseContentsManager(AsyncLargeFileManager):
    """jupyter_server's default contents manager, saving notebooks with `keep_committed_metadata`.

    Registered here rather than as `ContentsManager.pre_save_hook`: JupyterLab applies the
    server's config twice, and setting that option again warns "Overriding existing
    pre_save_hook" at every start.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.register_pre_save_hook(keep_committed_metadata)


c.ServerApp.contents_manager_class = CourseContentsManager

# Warnings and errors only: the URL is the last thing `make lab` prints.
c.ServerApp.log_level = "WARN"
c.LabApp.log_level = "WARN"

# Kernels talk to the server over TCP; with CurveZMQ keys provisioned by the kernel manager
# (ipykernel's kernelspec declares support) that traffic is encrypted, and ipykernel no longer
# warns "Kernel is running over TCP without encryption" on every kernel start. (pyzmq's wheels
# have CurveZMQ; a pyzmq built without it keeps plain TCP rather than failing to start.)
if zmq.has("curve"):
    c.KernelManager.transport_encryption = "auto"

# jupyter_server's websocket handlers default to a 30 000 ms ping interval and a 90 000 ms
# timeout, and tornado warns once per server that a timeout longer than the interval is cut
# to the interval. Setting it to the interval is what tornado does anyway, without the warning.
c.ServerApp.tornado_settings = {"ws_ping_interval": 30_000, "ws_ping_timeout": 30_000}

# No news feed and no update check: the course's JupyterLab never calls out to the internet
# on its own (jupyter/overrides.json turns the matching pop-ups off in the browser).
c.LabApp.news_url = None
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"
