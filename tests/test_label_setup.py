"""`edge-app label setup`: SNS topics + policy, S3 notification, CORS, task files (moto) and the streaming
CreateLabelingJob request (botocore Stubber: validated against SageMaker's service model)."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from edge_app.errors import EdgeAppError
from training.flywheel.labeling import NOTIFICATION_ID, bounding_box_lambdas, setup
from training.flywheel.settings import parse_settings

REGION = "eu-west-1"
ACCOUNT = "123456789012"
RAW = {"region": REGION, "bucket": "plant-flywheel", "upload_prefix": "collect",
       "labeling": {"job_name": "trays-stream", "role_arn": f"arn:aws:iam::{ACCOUNT}:role/GroundTruthRole",
                    "workteam_arn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:workteam/private-crowd/plant",
                    "classes": ["tray", "empty-tray"]}}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="plant-flywheel", CreateBucketConfiguration={"LocationConstraint": REGION})
        # an unrelated notification that must survive the setup
        sns = boto3.client("sns", region_name=REGION)
        other = sns.create_topic(Name="other-topic")["TopicArn"]
        s3.put_bucket_notification_configuration(Bucket="plant-flywheel", NotificationConfiguration={
            "TopicConfigurations": [{"Id": "other", "TopicArn": other, "Events": ["s3:ObjectRemoved:*"]}]})
        yield s3, sns


def expected_request(input_topic: str, output_topic: str) -> dict:
    pre, acs = bounding_box_lambdas(REGION)
    return {
        "LabelingJobName": "trays-stream", "LabelAttributeName": "bounding-box",
        "InputConfig": {"DataSource": {"SnsDataSource": {"SnsTopicArn": input_topic}},
                        "DataAttributes": {"ContentClassifiers": ["FreeOfPersonallyIdentifiableInformation",
                                                                  "FreeOfAdultContent"]}},
        "OutputConfig": {"S3OutputPath": "s3://plant-flywheel/labels/", "SnsTopicArn": output_topic},
        "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/GroundTruthRole",
        "LabelCategoryConfigS3Uri": "s3://plant-flywheel/labeling-config/trays-stream/label-categories.json",
        "HumanTaskConfig": {
            "WorkteamArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:workteam/private-crowd/plant",
            "UiConfig": {"UiTemplateS3Uri": "s3://plant-flywheel/labeling-config/trays-stream/bounding-box.liquid.html"},
            "PreHumanTaskLambdaArn": pre, "TaskKeywords": ["bounding box", "image", "tray", "packaging"],
            "TaskTitle": "Draw a box around every packed tray",
            "TaskDescription": "Box each tray in the bin; skip trays hidden by more than half.",
            "NumberOfHumanWorkersPerDataObject": 1, "TaskTimeLimitInSeconds": 600,
            "TaskAvailabilityLifetimeInSeconds": 864000, "MaxConcurrentTaskCount": 200,
            "AnnotationConsolidationConfig": {"AnnotationConsolidationLambdaArn": acs}},
        "Tags": [{"Key": "edge-app", "Value": "flywheel"}],
    }


def test_setup_creates_resources_and_streaming_job(aws) -> None:
    s3, sns = aws
    settings = parse_settings(RAW, "test")
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    stubber = Stubber(sagemaker)
    in_arn = f"arn:aws:sns:{REGION}:{ACCOUNT}:edge-app-GroundTruth-input"
    out_arn = f"arn:aws:sns:{REGION}:{ACCOUNT}:edge-app-GroundTruth-output"
    stubber.add_response("create_labeling_job", {"LabelingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:"
                                                                   "labeling-job/trays-stream"},
                         expected_request(in_arn, out_arn))
    with stubber:
        result = setup(settings, s3=s3, sns=sns, sagemaker=sagemaker)
    stubber.assert_no_pending_responses()
    assert (result.input_topic, result.output_topic) == (in_arn, out_arn) and result.job_status == "created"
    assert "StoppingConditions" not in result.request  # streaming: runs until stopped
    # topic policy: only S3 from our bucket and account may publish
    policy = json.loads(sns.get_topic_attributes(TopicArn=in_arn)["Attributes"]["Policy"])
    ours = [s for s in policy["Statement"] if s["Principal"] == {"Service": "s3.amazonaws.com"}]
    assert len(ours) == 1 and ours[0]["Action"] == "SNS:Publish" and ours[0]["Resource"] == in_arn
    assert ours[0]["Condition"]["ArnLike"]["aws:SourceArn"] == "arn:aws:s3:::plant-flywheel"
    assert ours[0]["Condition"]["StringEquals"]["aws:SourceAccount"] == ACCOUNT
    # notification: ObjectCreated on collect/*.jpg -> input topic; the other notification kept
    config = s3.get_bucket_notification_configuration(Bucket="plant-flywheel")["TopicConfigurations"]
    by_id = {c["Id"]: c for c in config}
    assert set(by_id) == {"other", NOTIFICATION_ID}
    mine = by_id[NOTIFICATION_ID]
    assert mine["TopicArn"] == in_arn and mine["Events"] == ["s3:ObjectCreated:*"]
    rules = {r["Name"].lower(): r["Value"] for r in mine["Filter"]["Key"]["FilterRules"]}
    assert rules == {"prefix": "collect/", "suffix": ".jpg"}
    cors = s3.get_bucket_cors(Bucket="plant-flywheel")["CORSRules"]
    assert any("GET" in r["AllowedMethods"] and "*" in r["AllowedOrigins"] for r in cors)
    labels = json.loads(s3.get_object(Bucket="plant-flywheel",
                                      Key="labeling-config/trays-stream/label-categories.json")["Body"].read())
    assert labels == {"document-version": "2018-11-28", "labels": [{"label": "tray"}, {"label": "empty-tray"}]}
    html = s3.get_object(Bucket="plant-flywheel",
                         Key="labeling-config/trays-stream/bounding-box.liquid.html")["Body"].read().decode()
    assert "<crowd-bounding-box" in html and "{{ task.input.taskObject | grant_read_access }}" in html
    assert "{{ task.input.labels | to_json | escape }}" in html


def test_rerun_is_idempotent_and_reports_existing_job(aws) -> None:
    s3, sns = aws
    settings = parse_settings(RAW, "test")
    first = setup(settings, s3=s3, sns=sns, sagemaker=None)
    assert first.job_status.startswith("not created")
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    stubber = Stubber(sagemaker)
    stubber.add_client_error("create_labeling_job", "ResourceInUse", "job exists")
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:labeling-job/trays-stream"
    stubber.add_response("describe_labeling_job", {
        "LabelingJobStatus": "InProgress", "LabelCounters": {}, "CreationTime": "2026-11-23T10:00:00Z",
        "LastModifiedTime": "2026-11-23T10:00:00Z", "JobReferenceCode": "x", "LabelingJobName": "trays-stream",
        "LabelingJobArn": arn, "InputConfig": first.request["InputConfig"],
        "OutputConfig": first.request["OutputConfig"], "RoleArn": first.request["RoleArn"],
        "HumanTaskConfig": first.request["HumanTaskConfig"]}, {"LabelingJobName": "trays-stream"})
    with stubber:
        again = setup(settings, s3=s3, sns=sns, sagemaker=sagemaker)
    assert again.job_arn == arn and again.job_status == "exists (InProgress)"
    config = s3.get_bucket_notification_configuration(Bucket="plant-flywheel")["TopicConfigurations"]
    assert sorted(c["Id"] for c in config) == sorted(["other", NOTIFICATION_ID])  # replaced, not duplicated
    policy = json.loads(sns.get_topic_attributes(TopicArn=again.input_topic)["Attributes"]["Policy"])
    assert sum(s.get("Sid") == "AllowS3ObjectCreatedFromFlywheelBucket" for s in policy["Statement"]) == 1
    assert not again.cors_added


def test_bad_settings_and_region_are_one_line_errors() -> None:
    with pytest.raises(EdgeAppError, match=r"test: labeling.role_arn: String should match pattern"):
        parse_settings({**RAW, "labeling": {**RAW["labeling"], "role_arn": "GroundTruthRole"}}, "test")
    with pytest.raises(EdgeAppError, match="not available in 'sa-east-1'"):
        bounding_box_lambdas("sa-east-1")
