"""No Docker engine runs here: the Dockerfile is linted with hadolint and the compose file is
checked for the structure the README promises."""
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_dockerfile_passes_hadolint():
    hadolint = Path(sys.executable).parent / "hadolint"
    proc = subprocess.run([str(hadolint), "--failure-threshold", "info", str(ROOT / "Dockerfile")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_runs_unprivileged_with_healthcheck_volume_and_make_run_entry_point():
    text = (ROOT / "Dockerfile").read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    user = [line for line in lines if line.startswith("USER ")]
    assert user and user[-1] not in ("USER root", "USER 0")
    assert any(line.startswith("HEALTHCHECK") for line in lines) and "/health" in text
    assert 'VOLUME ["/data"]' in lines and "MODEL_DIR=/data/models" in text
    # the dependency layer comes before the code, so a code change reuses it
    assert text.index("COPY requirements.txt") < text.index("pip install") < text.index("COPY . .")
    assert lines[-1] == 'CMD ["python", "_wsgi.py", "--host", "0.0.0.0", "--port", "9090"]'
    assert "$(BIN)/python _wsgi.py --host $(HOST) --port $(PORT)" in (ROOT / "Makefile").read_text()
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".venv-ls", "models", "data", ".env", "*.env"} <= set(ignored)  # no secrets in the image


def test_compose_has_backend_worker_redis_and_optional_label_studio():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"ml-backend", "worker", "redis", "label-studio"}
    backend, worker, ls = services["ml-backend"], services["worker"], services["label-studio"]
    assert backend["image"] == worker["image"] and "build" in backend
    assert worker["command"] == ["python", "-m", "baal_backend", "worker"]
    for service in (backend, worker):
        env = service["environment"]
        assert env["REDIS_URL"].startswith("redis://redis:") and env["MODEL_DIR"] == "/data/models"
        assert {"BASIC_AUTH_USER", "BASIC_AUTH_PASS", "LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY"} <= set(env)
        assert "models:/data" in service["volumes"]  # one MODEL_DIR for both
        assert "redis" in service["depends_on"]
        assert service["env_file"] == [{"path": ".env", "required": False}]  # every setting, not only those named
    assert worker["healthcheck"] == {"disable": True}  # it serves no /health
    assert int(worker["stop_grace_period"].rstrip("s")) >= 300  # the job in hand finishes on docker stop
    assert all(port.startswith("127.0.0.1:") for port in backend["ports"] + ls["ports"])  # not open by default
    assert int(backend["stop_grace_period"].rstrip("s")) >= 30  # the SIGTERM grace period fits
    assert ls["profiles"] == ["studio"] and ls["image"].endswith(":1.23.2")
    assert ls["environment"]["ML_BLOCK_LOCAL_IP"] == "false" and ls["environment"]["SSRF_PROTECTION_ENABLED"] == "false"
    assert set(compose["volumes"]) == {"models", "label-studio-data"}
