"""The S3 Object Lock tests' side of the store (tests/it/s3_object_lock.rs): runs moto's S3
server, optionally with its clock moved by ARCA_TEST_SKEW seconds (store and client disagree),
and does what an administrator would do with the storage's own tools (boto3), printing JSON.

    moto_s3.py serve PORT
    moto_s3.py ENDPOINT mkbucket BUCKET
    moto_s3.py ENDPOINT versions BUCKET PREFIX       -> [{"key", "version", "latest", "marker"}]
    moto_s3.py ENDPOINT retention BUCKET KEY         -> {"mode", "until", "now"} (until: unix s)
    moto_s3.py ENDPOINT set-retention BUCKET KEY SECONDS|none   (SECONDS after the store's now)
"""

import datetime
import json
import os
import sys
import time

SKEW = float(os.environ.get("ARCA_TEST_SKEW", "0"))


def store_now():
    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=SKEW)


def serve(port):
    if SKEW:
        # The store's clock, everywhere moto and the HTTP server read one: retention dates,
        # Last-Modified, and the Date header (http.server asks time.time() for each answer).
        real_time = time.time
        time.time = lambda: real_time() + SKEW
        import moto.core.utils as utils
        import moto.s3.models as models

        real_utcnow = utils.utcnow
        skewed = lambda: real_utcnow() + datetime.timedelta(seconds=SKEW)  # noqa: E731
        utils.utcnow = skewed
        models.utcnow = skewed
    from moto.server import main

    main(["-H", "127.0.0.1", "-p", port])


def client(endpoint):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="arca-test",
        aws_secret_access_key="arca-test-secret",
    )


def main(argv):
    if argv[0] == "serve":
        return serve(argv[1])
    s3 = client(argv[0])
    cmd, args = argv[1], argv[2:]
    if cmd == "mkbucket":
        s3.create_bucket(Bucket=args[0])
        out = {}
    elif cmd == "versions":
        r = s3.list_object_versions(Bucket=args[0], Prefix=args[1])
        out = [
            {"key": v["Key"], "version": v["VersionId"], "latest": v["IsLatest"], "marker": False}
            for v in r.get("Versions", [])
        ] + [
            {"key": v["Key"], "version": v["VersionId"], "latest": v["IsLatest"], "marker": True}
            for v in r.get("DeleteMarkers", [])
        ]
    elif cmd == "retention":
        # HEAD: moto 5.2.1 answers GetObjectRetention with an error.
        r = s3.head_object(Bucket=args[0], Key=args[1])
        until = r.get("ObjectLockRetainUntilDate")
        out = {
            "mode": r.get("ObjectLockMode"),
            "until": until.timestamp() if until else None,
            "now": store_now().timestamp(),
        }
    elif cmd == "set-retention":
        if args[2] == "none":
            retention = {}
        else:
            until = store_now() + datetime.timedelta(seconds=float(args[2]))
            retention = {"Mode": "GOVERNANCE", "RetainUntilDate": until}
        s3.put_object_retention(
            Bucket=args[0], Key=args[1], Retention=retention, BypassGovernanceRetention=True
        )
        out = {}
    else:
        raise SystemExit(f"unknown command {cmd}")
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
