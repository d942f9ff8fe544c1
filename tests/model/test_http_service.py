"""The scoring service over real HTTP: `genre-serve` in its own process on 127.0.0.1, a real client,
real audio; bad uploads get a 4xx naming the reason and the service keeps serving."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx
import pytest

from musicgenre.config import PROJECT_ROOT

START_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def service(transfer_champion):
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "musicgenre.serving.http",
            "--port",
            str(port),
            "--tracking-uri",
            transfer_champion["uri"],
            "--params",
            str(transfer_champion["params_file"]),
        ],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
        assert process.poll() is None, process.stdout.read()
    else:
        process.kill()
        pytest.fail(f"service did not start in {START_TIMEOUT_S} s")
    yield {"url": url, "limit_mb": transfer_champion["params"]["serve"]["max_upload_mb"], "champion": transfer_champion}
    process.terminate()
    process.wait(timeout=30)


def post(service, data: bytes, filename: str) -> httpx.Response:
    return httpx.post(f"{service['url']}/predict", params={"filename": filename}, content=data, timeout=120)


def test_good_file_gets_top3_from_the_champion(service, gtzan_slice, modern_clips):
    for path in (gtzan_slice.abs_path[0], modern_clips[0]):
        response = post(service, path.read_bytes(), path.name)
        assert response.status_code == 200, response.text
        body = response.json()
        probabilities = [p["probability"] for p in body["top"]]
        assert len(body["top"]) == 3 and probabilities == sorted(probabilities, reverse=True)
        assert body["set"] and set(body["set"]) <= set(service["champion"]["params"]["genres"])
        assert body["model"]["version"] == service["champion"]["record"]["challenger_version"]
    assert httpx.get(f"{service['url']}/health").json()["status"] == "ok"


def test_bad_uploads_are_refused_with_the_reason_and_the_service_goes_on(service, gtzan_slice, tmp_path):
    cases = {
        "empty.wav": (b"", 400, "empty upload"),
        "corrupt.flac": (b"fLaC" + bytes(range(256)) * 8, 422, "corrupt.flac: cannot read audio header"),
        "notes.mp3": (b"just some text, not audio\n" * 100, 422, "notes.mp3: cannot read audio header"),
    }
    for name, (data, status, reason) in cases.items():
        response = post(service, data, name)
        assert response.status_code == status and reason in response.json()["detail"], (name, response.text)
    short = gtzan_slice.abs_path[0].read_bytes()[:20000]  # a truncated FLAC: decodes to well under 3 s
    response = post(service, short, "short.flac")
    assert response.status_code == 422 and "short.flac" in response.json()["detail"]
    assert post(service, gtzan_slice.abs_path[1].read_bytes(), "again.flac").status_code == 200


def read_response(connection: socket.socket) -> str:
    """A whole HTTP response: the headers, then as many body bytes as Content-Length says."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += connection.recv(4096) or b"\r\n\r\n"
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0
    )
    while len(body) < length:
        chunk = connection.recv(4096)
        if not chunk:
            break
        body += chunk
    return (head + b"\r\n\r\n" + body).decode(errors="replace")


def test_oversized_upload_refused_before_its_body_is_read(service):
    """Only the headers are sent, declaring a body above the limit: the answer comes without the body."""
    limit = int(service["limit_mb"] * 1024 * 1024)
    host, port = service["url"].removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(
            f"POST /predict?filename=big.wav HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {limit + 1}\r\n\r\n".encode()
        )
        reply = read_response(connection)
    assert reply.startswith("HTTP/1.1 413") and "above the limit" in reply
    streamed = httpx.post(
        f"{service['url']}/predict",
        params={"filename": "big.wav"},
        timeout=120,
        content=(b"\0" * 1024 * 1024 for _ in range(int(service["limit_mb"]) + 2)),
    )
    assert streamed.status_code == 413
