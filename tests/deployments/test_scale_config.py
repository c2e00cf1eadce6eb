"""The scale profile's configuration, without starting it: HAProxy accepts the config,
and every Prefect setting the stack sets is one that the installed Prefect reads."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from prefect.settings import Settings

from contact_center.exceptions import InvalidParameter
from deployments.scale import ScaleOptions, database_urls, haproxy_config, redis_environment
from deployments.stack_options import StackOptions, stack_environment


@pytest.fixture(scope="session", autouse=True)
def prefect_server() -> Iterator[None]:
    """No server: nothing here talks to one."""
    yield


def _prefect_settings(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key, value in env.items():
        if key.startswith("PREFECT_"):
            monkeypatch.setenv(key, value)
    return Settings()


def test_haproxy_accepts_the_config(tmp_path: Path) -> None:
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(haproxy).exists():
        pytest.skip("haproxy is not installed (apt-get install haproxy; .ci/run installs it)")
    config = tmp_path / "haproxy.cfg"
    config.write_text(haproxy_config("127.0.0.1", 4200, [4201, 4202], tmp_path / "h.pid"))
    checked = subprocess.run([haproxy, "-c", "-f", str(config)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "127.0.0.1:4201" in config.read_text() and "127.0.0.1:4202" in config.read_text()


def test_redis_settings_are_prefects_own(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _prefect_settings(redis_environment("redis://127.0.0.1:6390/3"), monkeypatch)
    events = settings.server.events
    assert events.messaging_broker == "prefect_redis.messaging"
    assert events.messaging_cache == "prefect_redis.messaging"
    assert events.causal_ordering == "prefect_redis.ordering"
    assert settings.server.concurrency.lease_storage == "prefect_redis.lease_storage"
    assert settings.server.docket.url == "redis://127.0.0.1:6390/3"


def test_history_retention_reaches_prefects_vacuum(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CCTASKS_HOME", str(tmp_path))
    monkeypatch.setenv("CCTASKS_HISTORY_DAYS", "30")
    project = Path(__file__).resolve().parents[2]
    env = stack_environment(StackOptions.create(project_dir=project), base={})
    vacuum = _prefect_settings(env, monkeypatch).server.services.db_vacuum
    assert {"events", "flow_runs"} <= vacuum.enabled_vacuum_types
    assert vacuum.retention_period == timedelta(days=30)
    monkeypatch.setenv("CCTASKS_HISTORY_DAYS", "0")
    with pytest.raises(InvalidParameter, match="CCTASKS_HISTORY_DAYS='0'"):
        StackOptions.create(project_dir=project)


def test_scale_options_and_database_urls() -> None:
    prefect, centre = database_urls("postgresql://u:pw@db.example:5433")
    assert prefect == "postgresql+asyncpg://u:pw@db.example:5433/cctasks_prefect"
    assert centre == "postgresql+psycopg://u:pw@db.example:5433/cctasks"
    with pytest.raises(InvalidParameter, match="--workers 0"):
        ScaleOptions(workers=0)
    with pytest.raises(InvalidParameter, match="not redis://"):
        ScaleOptions(redis_url="http://x")


def test_api_auth_reaches_servers_and_clients_but_no_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "ops:s3cret-" + tmp_path.name
    auth_file = tmp_path / "api-auth"
    auth_file.write_text(secret + "\n")
    monkeypatch.setenv("CCTASKS_HOME", str(tmp_path))
    monkeypatch.setenv("CCTASKS_API_AUTH_FILE", str(auth_file))
    monkeypatch.delenv("CCTASKS_API_AUTH", raising=False)
    project = Path(__file__).resolve().parents[2]
    options = StackOptions.create(project_dir=project, scale=ScaleOptions())
    assert secret not in repr(options)
    # A stale value of the caller's never wins over the stack's own.
    env = stack_environment(options, base={"PREFECT_API_AUTH_STRING": "old:one"})
    settings = _prefect_settings(env, monkeypatch)
    assert settings.server.api.auth_string is not None
    assert settings.server.api.auth_string.get_secret_value() == secret
    assert settings.api.auth_string is not None
    assert settings.api.auth_string.get_secret_value() == secret
    from deployments.scale import ScaleStack

    stack = ScaleStack(options, ScaleOptions())
    for service in [*stack.api_servers, stack.services, stack.balancer, *stack.workers]:
        assert service.env["PREFECT_API_AUTH_STRING"] == secret
        assert not any(secret in part for part in service.command)
    # Prefect lets GET /api/health through unauthenticated: HAProxy's check needs no secret.
    config = haproxy_config("127.0.0.1", 4200, [4201, 4202], tmp_path / "h.pid")
    assert "option httpchk GET /api/health" in config and secret not in config
    assert stack.write_env_file().read_text().count(secret) == 0
    assert f"CCTASKS_API_AUTH_FILE={auth_file}" in (tmp_path / "env").read_text()

    auth_file.write_text("no-colon")
    with pytest.raises(InvalidParameter, match="CCTASKS_API_AUTH_FILE=.*user:password") as err:
        StackOptions.create(project_dir=project)
    assert "no-colon" not in str(err.value)
    monkeypatch.setenv("CCTASKS_API_AUTH", "ops:")
    with pytest.raises(InvalidParameter, match="^CCTASKS_API_AUTH must hold user:password"):
        StackOptions.create(project_dir=project)
