"""``capa catalog query`` against a real S3-compatible server (moto in server mode).

The server runs in a thread of the test process and speaks S3 over HTTP on a loopback
port; capa reaches it exactly as it would reach MinIO or AWS: s3fs with an endpoint URL and
credentials from the standard AWS environment variables. The bundles uploaded are the
real runs of ``conftest.py``, spread over two rigs' prefixes as a lab would share one
bucket; the answers must equal the local ones.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import moto.server as moto_server
import pytest

from .conftest import QueryRoot, run_capa
from .test_query import EXAMPLE

BUCKET = "lab-bundles"
PREFIX = "rigs/*/runs"  # every rig's runs root in the bucket


@pytest.fixture(scope="module")
def s3_endpoint(query_root: QueryRoot) -> Iterator[str]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        client = boto3.client(
            "s3",
            endpoint_url=url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        client.create_bucket(Bucket=BUCKET)
        for path in sorted(query_root.root.rglob("*")):
            if path.is_file() and path.parent != query_root.root:  # bundles, not runs.sqlite
                relative = path.relative_to(query_root.root)
                rig = "furnace-2" if relative.parts[0] == query_root.ids["hot13"] else "furnace-1"
                key = f"rigs/{rig}/runs/{relative.as_posix()}"
                client.upload_file(str(path), BUCKET, key)
        yield url
    finally:
        server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # No profile or config file of the machine running the tests may leak in.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


QUERIES = [
    EXAMPLE,
    "SELECT run_id, sample_id, operator_id, tags, bundle_schema_version FROM runs ORDER BY run_id",
    "SELECT run_id, kind, severity, message FROM events ORDER BY run_id, id",
    "SELECT run_id, channel, count(*) AS n, min(value) AS lo, max(value) AS hi "
    "FROM samples GROUP BY ALL ORDER BY ALL",
    "SELECT * FROM channels ORDER BY run_id, channel",
]


@pytest.mark.parametrize("sql", QUERIES)
def test_s3_store_answers_as_the_local_runs_root(query_root: QueryRoot, s3_endpoint, aws_env, sql):
    code, local, err = run_capa("catalog", "query", sql, "--runs-root", query_root.root, "--json")
    assert code == 0, err
    url = f"s3://{BUCKET}/{PREFIX}"
    code, remote, err = run_capa(
        "catalog", "query", sql, "--runs-root", url, "--endpoint-url", s3_endpoint, "--json"
    )
    assert code == 0, err
    assert json.loads(remote) == json.loads(local)
    assert json.loads(remote)  # every query has rows
    assert f"from 4 bundle(s) in {url}" in err


def test_the_endpoint_can_come_from_the_aws_environment(
    query_root, s3_endpoint, aws_env, monkeypatch
):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    code, out, err = run_capa(
        "catalog", "query", EXAMPLE, "--runs-root", f"s3://{BUCKET}/{PREFIX}", "--json"
    )
    assert code == 0, err
    ids = query_root.ids
    assert [r["run_id"] for r in json.loads(out)] == sorted([ids["hot12"], ids["v2hot12"]])


def test_s3_paths_of_the_runs_view_and_refusals(query_root, s3_endpoint, aws_env):
    from capa.query import query

    url = f"s3://{BUCKET}/{PREFIX}"
    options = {"endpoint_url": s3_endpoint}
    paths = query("SELECT run_id, path FROM runs ORDER BY 1", url, storage_options=options)
    hot13 = query_root.ids["hot13"]
    for run_id, path in zip(*paths.table.to_pydict().values(), strict=True):
        rig = "furnace-2" if run_id == hot13 else "furnace-1"
        assert path == f"s3://{BUCKET}/rigs/{rig}/runs/{run_id}"
    one_rig = query(
        "SELECT run_id FROM runs", f"s3://{BUCKET}/rigs/furnace-2/runs", storage_options=options
    )
    assert one_rig.table["run_id"].to_pylist() == [hot13]
    code, _, err = run_capa(
        "catalog",
        "query",
        f"COPY runs TO '{url}/leak.csv'",
        "--runs-root",
        url,
        "--endpoint-url",
        s3_endpoint,
    )
    assert code == 2
    assert "COPY statements are refused" in err
    # reading is limited to the runs root's fixed prefix, in the bucket as on a disk
    one_rig = f"s3://{BUCKET}/rigs/furnace-2/runs"
    outside = f"s3://{BUCKET}/rigs/furnace-1/runs/{query_root.ids['hot12']}/scalars.parquet"
    code, _, err = run_capa(
        "catalog",
        "query",
        f"SELECT count(*) FROM read_parquet('{outside}')",
        "--runs-root",
        one_rig,
        "--endpoint-url",
        s3_endpoint,
    )
    assert code == 2
    assert "Permission Error" in err
    code, out, err = run_capa(
        "catalog",
        "query",
        f"SELECT count(*) AS n FROM read_parquet('{outside}')",
        "--runs-root",
        url,
        "--endpoint-url",
        s3_endpoint,
        "--json",
    )
    assert code == 0, err  # the same file is readable from a root that covers it
    assert json.loads(out)[0]["n"] > 0


def test_an_unreachable_store_is_one_line_exit_2(aws_env, monkeypatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore's retries would only add time
    code, _, err = run_capa(
        "catalog",
        "query",
        "SELECT * FROM runs",
        "--runs-root",
        "s3://nobucket-here/x",
        "--endpoint-url",
        "http://127.0.0.1:9",
    )
    assert code == 2, err
    assert err.startswith("capa: error: cannot list s3://nobucket-here/x/*/manifest.json: ")
    assert len(err.strip().splitlines()) == 1
