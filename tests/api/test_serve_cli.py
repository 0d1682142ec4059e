"""``landeco serve`` on a port another program holds says so and how to choose another."""

import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LANDECO = Path(sys.executable).parent / "landeco"


def test_a_taken_port_is_a_clear_error_naming_landeco_port():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        proc = subprocess.run([str(LANDECO), "serve", "--port", str(port)],
                              capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 1
    assert "port_taken" in proc.stderr and f"LANDECO_PORT={port + 1}" in proc.stderr
