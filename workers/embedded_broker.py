"""kombu's filesystem transport (the embedded broker), with messages written atomically.

kombu creates ``<ms>_<uuid>.<queue>.msg`` and then writes into it; a consumer polling the
folder in between moves the empty or half-written file away, fails to decode it
(JSONDecodeError) and the message is gone. Here a message is written under a name the
consumer skips (``.<name>.part``: kombu matches everything after the first dot against
``<queue>.msg``) and renamed into place when complete, so a consumer sees all of it or
nothing. Everything else is kombu's own transport.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

# Celery's broker_transport: kombu resolves "module:Class" itself
TRANSPORT = "workers.embedded_broker:Transport"


class Channel(filesystem.Channel):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # made when a connection first opens a channel: building the app touches no disk
        for folder in (self.data_folder_in, self.data_folder_out, self.control_folder):
            os.makedirs(folder, exist_ok=True)

    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f".{name}.part")
        try:
            with open(partial, "wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
                handle.flush()
                os.fsync(handle.fileno())  # a power cut leaves the whole message or none
            os.replace(partial, final)
        except OSError as error:
            raise ChannelError(f"Cannot add file {final!r} to directory") from error


class Transport(filesystem.Transport):
    Channel = Channel
