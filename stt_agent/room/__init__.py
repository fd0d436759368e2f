"""Room mode: a LiveKit server's participants transcribed by a worker in the kernel.

* `worker`: `start_agent`, LiveKit's `AgentServer` as a task on the kernel's loop;
* `logs`: the worker's log lines, scrubbed, to the handle's log panel;
* `multi_user`: one `AgentSession` per participant who publishes audio (the room entrypoint);
* `worker_load`: the load the worker reports to LiveKit;
* `guard`: the one settings check room mode makes before talking to a server;
* `rooms`: fresh rooms, short-lived join tokens, LiveKit's room page in a notebook;
* `speaker`: a virtual participant that speaks a recording into a room.
"""
