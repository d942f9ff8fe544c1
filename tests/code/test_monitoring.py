"""Monitoring plumbing on real files: batch folder safety, inbox → archive, the predictions store,
and the drift alert's webhook (a real local HTTP server)."""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pandas as pd
import pytest

from monitoring.alerts import send_alert
from monitoring.batch import check_batch_id, discover
from monitoring.inbox import pending, take
from monitoring.store import partition, read_table, write_batch
from musicgenre.io import file_sha256
from tests.helpers import drift_summary


def test_discover_refuses_links_leaving_the_batch_and_names_each_reason(tmp_path, gtzan_slice):
    outside, batch = tmp_path / "outside", tmp_path / "batch"
    (batch / "nested").mkdir(parents=True)
    outside.mkdir()
    real = shutil.copy2(gtzan_slice["abs_path"][0], batch / "nested" / "a.flac")
    shutil.copy2(gtzan_slice["abs_path"][1], outside / "secret.flac")
    (batch / "inside_link.flac").symlink_to("nested/a.flac")  # stays inside: accepted
    (batch / "escape.flac").symlink_to("../outside/secret.flac")  # `..` out of the folder
    (batch / "absolute.flac").symlink_to(outside / "secret.flac")  # absolute, outside
    (batch / "dir_link").symlink_to(outside, target_is_directory=True)  # a folder outside
    (batch / "broken.ogg").symlink_to("nested/missing.ogg")
    (batch / "notes.txt").write_text("not audio")
    accepted, refused = discover(folder=batch, extensions=["flac", "ogg"])
    assert sorted(f.key for f in accepted) == ["inside_link.flac", "nested/a.flac"]
    reasons = {r.key: r.reason for r in refused}
    assert set(reasons) == {"escape.flac", "absolute.flac", "dir_link", "broken.ogg", "notes.txt"}
    assert "outside the batch folder" in reasons["escape.flac"] and "outside" in reasons["absolute.flac"]
    assert "outside the batch folder" in reasons["dir_link"] and "broken symlink" in reasons["broken.ogg"]
    assert all(str(batch) in reason for reason in reasons.values())  # every reason names the file
    assert file_sha256(real) == file_sha256(batch / "inside_link.flac")


@pytest.mark.parametrize("bad", ["../up", "a/b", "", ".hidden", "x..y"])
def test_batch_ids_cannot_escape_the_store(bad):
    with pytest.raises(ValueError, match="batch id"):
        check_batch_id(bad)


def test_inbox_files_move_to_the_archive_never_deleted(tmp_path, modern_clips):
    inbox, archive = tmp_path / "inbox", tmp_path / "archive"
    (inbox / "day1").mkdir(parents=True)
    shutil.copy2(modern_clips[0], inbox / "day1" / modern_clips[0].name)
    shutil.copy2(modern_clips[1], inbox / modern_clips[1].name)
    (inbox / ".partial.ogg").write_bytes(b"upload in progress")  # hidden: left for the next run
    digests = {p.relative_to(inbox).as_posix(): file_sha256(p) for p in pending(inbox=inbox)}
    folder = take(inbox=inbox, archive=archive, batch_id="b1")
    assert folder == archive / "b1"
    assert {k: file_sha256(folder / k) for k in digests} == digests  # same bytes, same relative paths
    assert pending(inbox=inbox) == [] and (inbox / ".partial.ogg").exists()
    assert take(inbox=inbox, archive=archive, batch_id="b2") is None


def test_store_partitions_survive_and_accumulate(tmp_path):
    first = pd.DataFrame({"file": ["a.ogg"], "confidence": [0.4]})
    second = pd.DataFrame({"file": ["b.ogg", "c.ogg"], "confidence": [0.9, 0.6]})
    write_batch(store=tmp_path, table="predictions", batch_id="20260101T000000Z", frame=first)
    write_batch(store=tmp_path, table="predictions", batch_id="20260102T000000Z", frame=second)
    assert partition(store=tmp_path, table="predictions", batch_id="20260101T000000Z").is_file()
    assert not list(tmp_path.rglob("*.tmp"))  # atomic: no temp file left behind
    everything = read_table(store=tmp_path, table="predictions")
    assert everything["file"].tolist() == ["a.ogg", "b.ogg", "c.ogg"]
    assert everything["batch_id"].tolist() == ["20260101T000000Z"] + ["20260102T000000Z"] * 2
    assert read_table(store=tmp_path, table="predictions", batch_id="20260102T000000Z")["file"].tolist() == [
        "b.ogg",
        "c.ogg",
    ]


def test_drift_alert_posts_to_the_configured_webhook(params):
    received = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    local = {
        **params,
        "monitoring": {**params["monitoring"], "webhook_url": f"http://127.0.0.1:{server.server_port}/hook"},
    }
    result = send_alert(summary=drift_summary(batch_id="b1", share=0.45, count=40), params=local)
    thread.join(timeout=10)
    server.server_close()
    assert result["webhook"] == 204
    assert received == [
        {
            "text": result["text"],
            "batch_id": "b1",
            "verdict": "drift",
            "estimated_accuracy": {"estimate": 0.55, "low": 0.4, "high": 0.7, "level": 0.9, "shift": 0.0},
            "novel_files": ["odd.ogg"],
        }
    ]
    assert "40 of the features drifted" in result["text"] and "tempo up 12.0 %" in result["text"]
    assert params["monitoring"]["webhook_url"] is None  # off by default
