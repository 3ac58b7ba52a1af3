"""Moves the clock of every process the tests start (``scripts/moved_clock.py``).

On the ``PYTHONPATH`` of the moved-clock runs only; does nothing unless
``TAKT_TEST_CLOCK_OFFSET_S`` is set.

- This Python process: ``time.time()`` and ``datetime.now()`` start that many
  seconds ahead and tick on in real time (time-machine); ``time.monotonic()``
  and sleeps are left alone.
- Servers it starts (``pg_ctl`` and so PostgreSQL, Mosquitto) run under
  libfaketime with the same offset, given as ``TAKT_TEST_FAKETIME_LIB``.
  Python processes never get libfaketime: its 0.9.10 ``clock_nanosleep`` makes
  Python's ``time.sleep`` fail with EINVAL even where the process is skipped.
  They inherit this file instead. Nor do Node and Chromium (pages stop loading
  under it): the dashboard tests set the page's clock with Playwright's own
  ``clock.install`` from this process's moved clock.
"""

import os

_offset = os.environ.get("TAKT_TEST_CLOCK_OFFSET_S")
_faketime = os.environ.get("TAKT_TEST_FAKETIME_LIB")
if _offset:
    import subprocess
    import time
    from pathlib import Path
    from typing import Any

    import time_machine

    time_machine.travel(time.time() + float(_offset), tick=True).start()

    _popen_init = subprocess.Popen.__init__

    def _init(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
        program = args if isinstance(args, (str, bytes, os.PathLike)) else args[0]
        if kwargs.get("shell"):
            program = str(program).split()[0]
        env = dict(os.environ if kwargs.get("env") is None else kwargs["env"])
        name = Path(os.fsdecode(program)).name
        if _faketime and not name.startswith(("python", "node", "chrom")):
            env.update(LD_PRELOAD=_faketime, FAKETIME=f"+{round(float(_offset))}")
            env.setdefault("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        else:
            env.pop("LD_PRELOAD", None)
        kwargs["env"] = env
        _popen_init(self, args, *rest, **kwargs)

    subprocess.Popen.__init__ = _init  # type: ignore[method-assign]
