"""The private cluster's home does not depend on the folder a command is run from."""

import json
import os
import subprocess
import sys
from pathlib import Path

import layers.settings
from layers.settings import Settings, default_home

LANDECO = Path(sys.executable).with_name("landeco")
CHECKOUT = Path(__file__).resolve().parents[2]


def test_settings_in_another_folder_give_the_checkouts_home(tmp_path, monkeypatch):
    monkeypatch.delenv("LANDECO_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert Settings().home == CHECKOUT / ".landeco"
    monkeypatch.setenv("LANDECO_HOME", str(tmp_path / "elsewhere"))
    assert Settings().home == tmp_path / "elsewhere"  # LANDECO_HOME still wins


def test_db_status_run_elsewhere_reports_the_checkouts_cluster(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("LANDECO_HOME", "LANDECO_DATABASE_URL")}
    status = subprocess.run([str(LANDECO), "db", "status"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert status.returncode in (0, 3), status.stderr  # 3: the checkout's cluster is not running
    assert json.loads(status.stdout)["home"] == str(CHECKOUT / ".landeco")
    assert not (tmp_path / ".landeco").exists()


def test_outside_a_checkout_a_per_user_data_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(layers.settings, "_checkout", lambda: None)
    monkeypatch.setattr(layers.settings.os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_home() == tmp_path / "data" / "landeco"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert default_home() == tmp_path / "user" / ".local" / "share" / "landeco"
    # root's home is closed to the postgres user that runs the server: the system data folder
    monkeypatch.setattr(layers.settings.os, "geteuid", lambda: 0)
    assert default_home() == Path("/var/lib/landeco")
