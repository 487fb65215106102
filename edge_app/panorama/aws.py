"""boto3 clients for Panorama deployments.

AWS ended Panorama support on 31 May 2026 and current botocore no longer ships the ``panorama`` service
model; ``botocore_data/`` holds its last published model, added to botocore's data search path here, so the
client (and botocore's ``Stubber``, which validates every request against the model) keeps working.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

BOTOCORE_DATA = Path(__file__).resolve().parent / "botocore_data"


def botocore_session() -> Any:
    """A botocore session that can load the vendored ``panorama`` model."""
    import botocore.session

    session = botocore.session.get_session()
    loader = session.get_component("data_loader")
    if str(BOTOCORE_DATA) not in loader.search_paths:
        loader.search_paths.append(str(BOTOCORE_DATA))
    return session


def panorama_client(region: str | None = None) -> Any:
    import boto3

    return boto3.Session(botocore_session=botocore_session(), region_name=region).client("panorama")


def s3_client(region: str | None = None) -> Any:
    import boto3

    return boto3.Session(region_name=region).client("s3")
