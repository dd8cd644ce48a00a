"""A server process freezes what starting made (Django, the apps, their modules) out of the cycle collector: its full
passes otherwise walked all of it and held the event loop for about 100 ms every few seconds under load."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import gc
before = gc.get_freeze_count()
import config.asgi
gc.collect()
print(before, gc.get_freeze_count(), len(gc.get_objects()))
"""


def test_the_asgi_application_leaves_its_start_out_of_the_collector():
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'platform'}",
           "DJANGO_SETTINGS_MODULE": "config.settings"}
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    before, frozen, tracked = map(int, done.stdout.split())
    assert before == 0 and frozen > 50_000  # Django and the apps: well over a hundred thousand objects
    assert tracked < frozen / 5  # what the collector still walks is a small part of it
