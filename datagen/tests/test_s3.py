"""Writing to s3:// against a moto S3 server on 127.0.0.1 with fake credentials."""

from __future__ import annotations

import json
import socket

import pytest
import s3fs
from typer.testing import CliRunner

import fraudgen
from fraudgen import writer
from fraudgen.audit import audit_path
from fraudgen.cli import app

moto_server = pytest.importorskip("moto.server")

runner = CliRunner()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def moto_endpoint(tmp_path_factory):
    """Start a moto server on a free 127.0.0.1 port with fake credentials."""
    home = tmp_path_factory.mktemp("aws")
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            patch.delenv(name, raising=False)
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        patch.setenv("AWS_CONFIG_FILE", str(home / "config"))
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "credentials"))
        patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        port = free_port()
        server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
        server.start()
        endpoint = f"http://127.0.0.1:{port}"
        patch.setenv("AWS_ENDPOINT_URL", endpoint)
        s3fs.S3FileSystem.clear_instance_cache()
        try:
            yield endpoint
        finally:
            s3fs.S3FileSystem.clear_instance_cache()
            server.stop()


@pytest.fixture(name="bucket")
def bucket_fixture(moto_endpoint, request):
    """Create an empty bucket named after the test; return its name."""
    name = request.node.name.replace("_", "-")[:50].strip("-").lower()
    fs = s3fs.S3FileSystem(endpoint_url=moto_endpoint)
    fs.mkdir(name)
    return name


def bucket_files(endpoint: str, bucket: str) -> dict[str, bytes]:
    fs = s3fs.S3FileSystem(endpoint_url=endpoint)
    fs.invalidate_cache()
    return {key.removeprefix(f"{bucket}/"): fs.cat_file(key) for key in fs.find(bucket)}


def local_files(folder) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_moto_s3_output_matches_local_bytes(
    tmp_path, make_config, moto_endpoint, bucket
):
    config = make_config(days=5, write_csv=True)
    local = fraudgen.generate_to_path(config, tmp_path / "local")
    remote = fraudgen.generate_to_path(
        config, f"s3://{bucket}/raw", storage_options={"endpoint_url": moto_endpoint}
    )
    assert remote == local
    expected = {
        f"raw/{name}": data for name, data in local_files(tmp_path / "local").items()
    }
    assert bucket_files(moto_endpoint, bucket) == expected
    assert len(expected) == 11


def test_moto_s3_audit_reads_partitions(tmp_path, make_config, moto_endpoint, bucket):
    config = make_config(days=5)
    fraudgen.generate_to_path(config, tmp_path / "local")
    options = {"endpoint_url": moto_endpoint}
    fraudgen.generate_to_path(config, f"s3://{bucket}/raw", storage_options=options)
    remote = audit_path(f"s3://{bucket}/raw", storage_options=options)
    assert remote == audit_path(tmp_path / "local")


def test_moto_s3_cli_respects_overwrite(moto_endpoint, bucket):
    out = f"s3://{bucket}/raw"
    args = ["generate", "--out", out, "--rows", "2000", "--days", "4", "--quiet"]
    first = runner.invoke(app, [*args, "--csv"])
    assert first.exit_code == 0, first.output
    written = bucket_files(moto_endpoint, bucket)
    assert "raw/csv/dt=2025-01-04/part-0.csv" in written
    assert json.loads(written["raw/manifest.json"])["days"] == 4

    again = runner.invoke(app, [*args, "--seed", "5"])
    assert again.exit_code == 2
    assert "not empty" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    assert bucket_files(moto_endpoint, bucket) == written

    shorter = ["generate", "--out", out, "--rows", "2000", "--days", "3"]
    replaced = runner.invoke(app, [*shorter, "--overwrite", "--quiet"])
    assert replaced.exit_code == 0, replaced.output
    keys = sorted(bucket_files(moto_endpoint, bucket))
    assert keys == [
        "raw/dt=2025-01-01/part-0.parquet",
        "raw/dt=2025-01-02/part-0.parquet",
        "raw/dt=2025-01-03/part-0.parquet",
        "raw/manifest.json",
    ]


def test_moto_s3_failure_leaves_nothing(
    make_config, moto_endpoint, bucket, monkeypatch
):
    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(writer, "_build_manifest", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        fraudgen.generate_to_path(
            make_config(days=3),
            f"s3://{bucket}/raw",
            storage_options={"endpoint_url": moto_endpoint},
        )
    assert bucket_files(moto_endpoint, bucket) == {}


def test_moto_s3_bad_config_writes_nothing(tmp_path, moto_endpoint, bucket):
    config = tmp_path / "bad.yaml"
    config.write_text("fraud_rate: -0.5\n", encoding="utf-8")
    result = runner.invoke(
        app, ["generate", "--config", str(config), "--out", f"s3://{bucket}/raw"]
    )
    assert result.exit_code == 2
    assert "fraud_rate" in result.stderr
    assert bucket_files(moto_endpoint, bucket) == {}


def test_moto_s3_missing_bucket_exits_2(moto_endpoint):
    result = runner.invoke(
        app, ["generate", "--out", "s3://absent-bucket/raw", "--rows", "2000"]
    )
    assert result.exit_code == 2
    assert "bucket 'absent-bucket'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_moto_s3_bucket_root_rejected(make_config, moto_endpoint, bucket):
    with pytest.raises(ValueError, match="without a prefix"):
        fraudgen.generate_to_path(
            make_config(days=2),
            f"s3://{bucket}",
            storage_options={"endpoint_url": moto_endpoint},
        )
